// Package broker embeds mochi-mqtt: it authenticates devices against the
// registry, enforces the topic ACLs of docs/design.md, and hands each accepted
// publish to ingest, acknowledging QoS 1 only once Kafka has the record.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/ingest"
)

// DeviceAuth checks a device's username (SITE/ASSET) and secret and returns
// its asset type.
type DeviceAuth func(username string, secret []byte) (assetType string, ok bool)

// Ingester takes publishes and connection changes.
type Ingester interface {
	Handle(ctx context.Context, msg ingest.Message) (ingest.Outcome, *ingest.Rejection, error)
	Status(ctx context.Context, site, asset, status, cause string, at time.Time) error
}

// Defaults of Options, used for a zero field.
const (
	DefaultAddr          = "127.0.0.1:1883" // TCP listener
	DefaultMaxPacket     = 1 << 20          // bytes
	DefaultIngestTimeout = 10 * time.Second
)

// refusalLogEvery is how often a refusal is logged per reason.
const refusalLogEvery = time.Second

// Options configure the broker.
type Options struct {
	Addr      string // TCP, default DefaultAddr
	WSAddr    string // WebSocket; empty = off
	TLSAddr   string // TCP+TLS; needs TLS
	TLS       *tls.Config
	Devices   DeviceAuth
	Accounts  []Account
	Ingest    Ingester
	MaxPacket uint32 // MQTT packet limit, default DefaultMaxPacket
	// IngestTimeout bounds how long a publish waits for Kafka (default
	// DefaultIngestTimeout).
	IngestTimeout time.Duration
	Logger        *slog.Logger
	Registerer    prometheus.Registerer
}

// Broker is the embedded MQTT server.
type Broker struct {
	o   Options
	srv *mqtt.Server
	log *slog.Logger
	m   *metrics
	// inflight counts publishes waiting for Kafka, so Close can wait for them.
	inflight sync.WaitGroup
}

// New builds a broker; Serve starts it.
func New(o Options) (*Broker, error) {
	if o.Devices == nil || o.Ingest == nil {
		return nil, errors.New("cannot create broker: Devices and Ingest are required")
	}
	if o.Addr == "" {
		o.Addr = DefaultAddr
	}
	if o.MaxPacket == 0 {
		o.MaxPacket = DefaultMaxPacket
	}
	if o.IngestTimeout <= 0 {
		o.IngestTimeout = DefaultIngestTimeout
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	for i, a := range o.Accounts {
		if err := a.validate(); err != nil {
			return nil, fmt.Errorf("cannot use service account %d: %w", i+1, err)
		}
	}
	log := o.Logger.With("component", "broker")
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = o.MaxPacket
	srv := mqtt.New(&mqtt.Options{
		Capabilities: caps,
		InlineClient: true,
		Logger:       slog.New(minLevel{min: mochiLevel(o.Logger), h: o.Logger.Handler()}).With("component", "mochi"),
	})
	b := &Broker{o: o, srv: srv, log: log, m: newMetrics(o.Registerer, srv)}
	h := &hook{b: b, principals: map[*mqtt.Client]*principal{}}
	if err := srv.AddHook(h, nil); err != nil {
		return nil, fmt.Errorf("cannot add broker hook: %w", err)
	}
	if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tcp", Address: o.Addr})); err != nil {
		return nil, fmt.Errorf("cannot listen for MQTT on %s: %w", o.Addr, err)
	}
	if o.WSAddr != "" {
		if err := srv.AddListener(listeners.NewWebsocket(listeners.Config{Type: "ws", ID: "ws", Address: o.WSAddr})); err != nil {
			return nil, fmt.Errorf("cannot listen for MQTT over WebSocket on %s: %w", o.WSAddr, err)
		}
	}
	if o.TLSAddr != "" {
		if o.TLS == nil {
			return nil, errors.New("cannot listen for MQTT over TLS: no certificate configured")
		}
		if err := srv.AddListener(listeners.NewTCP(listeners.Config{Type: "tcp", ID: "tls", Address: o.TLSAddr, TLSConfig: o.TLS})); err != nil {
			return nil, fmt.Errorf("cannot listen for MQTT over TLS on %s: %w", o.TLSAddr, err)
		}
	}
	return b, nil
}

// Serve starts the listeners and returns; Close stops them.
func (b *Broker) Serve() error {
	if err := b.srv.Serve(); err != nil {
		return fmt.Errorf("cannot start MQTT broker: %w", err)
	}
	b.log.Info("MQTT broker listening", "addr", b.Addr(), "ws", b.o.WSAddr, "tls", b.o.TLSAddr)
	return nil
}

// Run serves until ctx ends, then stops accepting and waits for the
// publishes in flight (Close).
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Serve(); err != nil {
		return err
	}
	<-ctx.Done()
	return b.Close()
}

// Addr returns the bound TCP address (useful with port 0).
func (b *Broker) Addr() string {
	if l, ok := b.srv.Listeners.Get("tcp"); ok {
		return l.Address()
	}
	return b.o.Addr
}

// Publish sends a message from the platform itself (desired state), retained
// when asked; it bypasses ACLs.
func (b *Broker) Publish(topic string, payload []byte, retain bool, qos byte) error {
	if err := b.srv.Publish(topic, payload, retain, qos); err != nil {
		return fmt.Errorf("cannot publish to %s: %w", topic, err)
	}
	return nil
}

// Close stops accepting connections and disconnects clients. Publishes being
// ingested finish first: each waits for Kafka inside the client's read loop.
func (b *Broker) Close() error {
	// mochi's own Close (v2.7.9) can deadlock: Clients.GetByListener takes
	// the read lock twice, and a disconnecting client's Delete waiting for
	// the write lock in between blocks both forever. Close the listeners
	// with a closer that takes the lock once, which also waits for every
	// client goroutine; mochi's Close then has no clients left to race with.
	b.srv.Listeners.CloseAll(func(listener string) {
		for _, cl := range b.srv.Clients.GetAll() {
			if cl.Net.Listener == listener && !cl.Closed() {
				_ = b.srv.DisconnectClient(cl, packets.ErrServerShuttingDown)
			}
		}
	})
	err := b.srv.Close()
	done := make(chan struct{})
	go func() { b.inflight.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(b.o.IngestTimeout):
		b.log.Warn("stopped waiting for publishes in flight to Kafka")
	}
	if err != nil {
		return fmt.Errorf("cannot stop MQTT broker: %w", err)
	}
	return nil
}

// mochiLevel is Error, or Debug when the platform logs at Debug.
func mochiLevel(l *slog.Logger) slog.Level {
	if l.Enabled(context.Background(), slog.LevelDebug) {
		return slog.LevelDebug
	}
	return slog.LevelError
}

type hook struct {
	mqtt.HookBase
	b          *Broker
	mu         sync.Mutex
	principals map[*mqtt.Client]*principal
}

func (h *hook) ID() string { return "polis" }

func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPublish, mqtt.OnSessionEstablished,
		mqtt.OnDisconnect, mqtt.OnWillSent, mqtt.OnSubscribe:
		return true
	}
	return false
}

func (h *hook) principal(cl *mqtt.Client) *principal {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.principals[cl]
}

func (h *hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	user, secret := string(pk.Connect.Username), pk.Connect.Password
	p, ok := h.b.authenticate(user, secret)
	if !ok {
		h.b.refuse("bad_credentials", "client", cl.ID, "username", user, "remote", cl.Net.Remote)
		return false
	}
	if pk.Connect.WillFlag && !p.canPublish(pk.Connect.WillTopic) {
		h.b.refuse("will_topic", "client", cl.ID, "username", user, "topic", pk.Connect.WillTopic)
		return false
	}
	h.mu.Lock()
	h.principals[cl] = p
	h.mu.Unlock()
	return true
}

func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	p := h.principal(cl)
	if p == nil {
		return false
	}
	if write {
		if p.canPublish(topic) {
			return true
		}
		h.b.refuse("acl_publish", "client", cl.ID, "principal", p.String(), "topic", topic)
		return false
	}
	if p.canSubscribe(topic) {
		return true
	}
	h.b.refuse("acl_subscribe", "client", cl.ID, "principal", p.String(), "filter", topic)
	return false
}

// OnSubscribe is only here to count; refusals come from OnACLCheck.
func (h *hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet { return pk }

func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	p := h.principal(cl)
	if p == nil || p.role == roleService {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	if err := h.b.o.Ingest.Status(ctx, p.site, p.asset, "online", "connect", time.Now()); err != nil {
		h.b.log.Warn("cannot record device online", "principal", p.String(), "err", err)
	}
}

func (h *hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	h.mu.Lock()
	p := h.principals[cl]
	delete(h.principals, cl)
	h.mu.Unlock()
	if errors.Is(err, packets.ErrPacketTooLarge) {
		h.b.refuse("packet_too_large", "client", cl.ID)
	}
	if p == nil || p.role == roleService || p.willStatus || cl.IsTakenOver() {
		return
	}
	cause := "clean"
	if err != nil {
		cause = "lost: " + err.Error()
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	if err := h.b.o.Ingest.Status(ctx, p.site, p.asset, "offline", cause, time.Now()); err != nil {
		h.b.log.Warn("cannot record device offline", "principal", p.String(), "err", err)
	}
}

// OnWillSent ingests a will published on a platform topic, as if the device
// had sent it.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	p := h.principal(cl)
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	out, _, err := h.b.o.Ingest.Handle(ctx, ingest.Message{Topic: pk.TopicName, Payload: pk.Payload, Received: time.Now(), Client: cl.ID})
	if err != nil {
		h.b.log.Warn("cannot ingest will message", "principal", p.String(), "topic", pk.TopicName, "err", err)
		return
	}
	if out == ingest.Accepted && len(pk.TopicName) > 7 && pk.TopicName[len(pk.TopicName)-7:] == "/status" {
		h.mu.Lock()
		p.willStatus = true
		h.mu.Unlock()
	}
}

func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if cl.Net.Inline {
		return pk, nil
	}
	h.b.inflight.Add(1)
	defer h.b.inflight.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), h.b.o.IngestTimeout)
	defer cancel()
	out, rej, err := h.b.o.Ingest.Handle(ctx, ingest.Message{Topic: pk.TopicName, Payload: pk.Payload, Received: start, Client: cl.ID})
	v5 := cl.Properties.ProtocolVersion == 5
	switch {
	case err != nil:
		// Kafka does not have it: the device must not get a PUBACK.
		h.b.refuse("kafka_unavailable", "client", cl.ID, "topic", pk.TopicName, "err", err)
		if pk.FixedHeader.Qos == 0 {
			return pk, packets.ErrRejectPacket
		}
		if v5 {
			return pk, packets.ErrUnspecifiedError
		}
		// MQTT 3 has no negative PUBACK: drop the connection so the client
		// resends on reconnect.
		cl.Stop(packets.ErrServerUnavailable)
		return pk, packets.ErrRejectPacket
	case out == ingest.DeadLettered:
		h.b.m.deadLettered.Inc()
		h.b.log.Debug("publish dead-lettered", "client", cl.ID, "topic", pk.TopicName, "reason", rej.Code)
		if v5 && pk.FixedHeader.Qos > 0 {
			return pk, packets.Code{Code: packets.ErrPayloadFormatInvalid.Code, Reason: rej.Error()}
		}
		// The dead letter is durable; acknowledge so the device moves on.
		return pk, packets.CodeSuccessIgnore
	case out == ingest.Accepted:
		h.b.m.ingested.Inc()
		h.b.m.publishSeconds.Observe(time.Since(start).Seconds())
	}
	return pk, nil
}

func (b *Broker) authenticate(user string, secret []byte) (*principal, bool) {
	for i := range b.o.Accounts {
		a := &b.o.Accounts[i]
		if a.Username == user {
			if !a.check(secret) {
				return nil, false
			}
			return &principal{role: roleService, name: a.Username, publish: a.Publish, subscribe: a.Subscribe}, true
		}
	}
	typ, ok := b.o.Devices(user, secret)
	if !ok {
		return nil, false
	}
	site, asset, _ := cutUser(user)
	r := roleDevice
	if typ == "gateway" {
		r = roleGateway
	}
	return &principal{role: r, site: site, asset: asset}, true
}

func cutUser(u string) (site, asset string, ok bool) {
	for i := 0; i < len(u); i++ {
		if u[i] == '/' {
			return u[:i], u[i+1:], true
		}
	}
	return u, "", false
}

// refuse counts a refusal and logs it, at most once a second per reason so
// that a misbehaving fleet cannot flood the log.
func (b *Broker) refuse(reason string, kv ...any) {
	b.m.refused.WithLabelValues(reason).Inc()
	if _, ok := b.m.refusals.Allow(reason); ok {
		b.log.Warn("MQTT request refused", append([]any{"reason", reason}, kv...)...)
	}
}
