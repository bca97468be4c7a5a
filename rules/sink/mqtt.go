package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
)

// DefaultTopicPrefix is where an MQTT sink publishes unless told otherwise.
const DefaultTopicPrefix = "polis/alerts/v1"

// DefaultAckTimeout bounds the wait for the MQTT broker's PUBACK unless
// MQTTOptions.AckTimeout says otherwise.
const DefaultAckTimeout = 10 * time.Second

// MQTT publishing is at least once: QoS 1, never retained (a retained alert
// change would greet every new subscriber with stale state).
const (
	mqttQoS    = 1
	mqttRetain = false
)

// MQTTOptions configure an MQTT sink.
type MQTTOptions struct {
	Name    string   // consumer group "sink-<name>"
	Brokers []string // Kafka seed brokers
	// Kafka is how its Kafka client connects (SASL, TLS); zero: plaintext.
	Kafka kafka.ClientOptions
	// URL of the MQTT broker, e.g. tcp://host:1883 (also ssl, tls, mqtt,
	// mqtts, ws, wss as paho accepts them).
	URL         string
	Username    string
	Password    string
	ClientID    string // default "polis-sink-<name>"
	TopicPrefix string // default DefaultTopicPrefix
	// Backoff bounds between retries of one alert (default
	// DefaultMinBackoff, DefaultMaxBackoff); MaxBackoff also caps paho's
	// pause between reconnects.
	MinBackoff, MaxBackoff time.Duration
	// AckTimeout bounds the wait for the broker's PUBACK; default
	// DefaultAckTimeout.
	AckTimeout time.Duration
	Logger     *slog.Logger
	// Registerer gets polis_alert_sink_dead_lettered_total if non-nil.
	Registerer prometheus.Registerer
}

// MQTT publishes every delivered alert change on
// <prefix>/<site>/<asset>/<rule_id>, in order per site.
type MQTT struct {
	o   MQTTOptions
	c   *consumer
	log *slog.Logger
}

var mqttSchemes = map[string]bool{"tcp": true, "ssl": true, "tls": true, "mqtt": true, "mqtts": true, "ws": true, "wss": true}

// NewMQTT validates the options.
func NewMQTT(o MQTTOptions) (*MQTT, error) {
	if o.Name == "" || o.URL == "" || len(o.Brokers) == 0 {
		return nil, errors.New("cannot create MQTT sink: Name, URL and Brokers are required")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("cannot create MQTT sink: URL %q is not of the form tcp://host:port: %w", o.URL, err)
	}
	if !mqttSchemes[u.Scheme] || u.Host == "" {
		return nil, fmt.Errorf("cannot create MQTT sink: URL %q is not of the form tcp://host:port", o.URL)
	}
	if o.Password != "" && o.Username == "" {
		return nil, errors.New("cannot create MQTT sink: Password given without Username")
	}
	if o.ClientID == "" {
		o.ClientID = "polis-sink-" + o.Name
	}
	o.TopicPrefix = strings.TrimSuffix(o.TopicPrefix, "/")
	if o.TopicPrefix == "" {
		o.TopicPrefix = DefaultTopicPrefix
	}
	if strings.ContainsAny(o.TopicPrefix, "+#\x00") {
		return nil, fmt.Errorf("cannot create MQTT sink: TopicPrefix %q contains a wildcard or NUL", o.TopicPrefix)
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		return nil, fmt.Errorf("cannot create MQTT sink: MaxBackoff %s is below MinBackoff %s", o.MaxBackoff, o.MinBackoff)
	}
	if o.AckTimeout <= 0 {
		o.AckTimeout = DefaultAckTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "sink", "sink", o.Name)
	return &MQTT{o: o, log: log, c: &consumer{name: o.Name, kind: "mqtt", target: RedactURL(o.URL), brokers: o.Brokers,
		conn: o.Kafka, log: log, min: o.MinBackoff, max: o.MaxBackoff, m: m}}, nil
}

// alertTopic is <prefix>/<site>/<asset>/<rule_id>. A level that is empty or
// holds '/', '+', '#' or NUL would be missing, split or rejected by the
// broker (which drops the connection, so the alert could never go out):
// empty becomes "_" and those characters become '_'.
func alertTopic(prefix string, a *record.AlertChange) string {
	return prefix + "/" + topicLevel(a.Site) + "/" + topicLevel(a.Asset) + "/" + topicLevel(a.RuleID)
}

var levelReplacer = strings.NewReplacer("/", "_", "+", "_", "#", "_", "\x00", "_")

func topicLevel(s string) string {
	if s == "" {
		return "_"
	}
	return levelReplacer.Replace(s)
}

// Run delivers until ctx ends.
func (m *MQTT) Run(ctx context.Context) error {
	// Paho keeps (re)connecting in the background, so a broker that is not up
	// yet at start or restarts is survived; publishing waits for it.
	retryEvery := min(max(m.o.MinBackoff, time.Second), m.o.MaxBackoff)
	opts := mqtt.NewClientOptions().
		AddBroker(m.o.URL).
		SetClientID(m.o.ClientID).
		SetUsername(m.o.Username).
		SetPassword(m.o.Password).
		SetCleanSession(true).
		SetAutoReconnect(true).
		SetConnectRetry(true).
		SetConnectRetryInterval(retryEvery).
		SetMaxReconnectInterval(m.o.MaxBackoff).
		SetConnectTimeout(m.o.AckTimeout).
		SetWriteTimeout(m.o.AckTimeout).
		SetOnConnectHandler(func(mqtt.Client) { m.log.Debug("connected to MQTT broker", "url", m.c.target) }).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			m.log.Debug("lost connection to MQTT broker", "url", m.c.target, "err", err)
		})
	c := mqtt.NewClient(opts)
	conn := c.Connect() // completes only once connected; publish checks the connection itself
	defer c.Disconnect(250)
	// Give a broker that is up the time to accept us, so a normal start does
	// not begin with a warning; one that is down is the retry loop's business.
	t := time.NewTimer(m.o.AckTimeout)
	select {
	case <-conn.Done():
	case <-t.C:
	case <-ctx.Done():
	}
	t.Stop()

	return m.c.consume(ctx, func(ctx context.Context, raw []byte, a *record.AlertChange) error {
		topic := alertTopic(m.o.TopicPrefix, a)
		return retry(ctx, m.log, m.o.MinBackoff, m.o.MaxBackoff,
			func(ctx context.Context) error { return m.publish(ctx, c, topic, raw) },
			"url", m.c.target, "topic", topic)
	})
}

// publisher is the part of a paho client publish needs.
type publisher interface {
	IsConnectionOpen() bool
	Publish(topic string, qos byte, retained bool, payload any) mqtt.Token
}

// publish sends one alert and waits for the broker's PUBACK.
func (m *MQTT) publish(ctx context.Context, c publisher, topic string, body []byte) error {
	// Paho would queue a publish made while it reconnects and, with a clean
	// session, drop it on reconnect without completing its token; every
	// retry would also queue another copy. Publish only on a live connection.
	if !c.IsConnectionOpen() {
		return fmt.Errorf("cannot publish alert to %s: not connected to %s", topic, m.c.target)
	}
	tok := c.Publish(topic, mqttQoS, mqttRetain, body)
	t := time.NewTimer(m.o.AckTimeout)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
		return fmt.Errorf("cannot publish alert to %s: no PUBACK within %s", topic, m.o.AckTimeout)
	case <-ctx.Done():
		return fmt.Errorf("cannot publish alert to %s: %w", topic, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("cannot publish alert to %s: %w", topic, err)
	}
	return nil
}
