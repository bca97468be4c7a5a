// Package ingest turns accepted MQTT publishes into Kafka records: it
// decodes and validates payloads, normalises them, and produces them keyed by
// site. A payload that fails goes to the dead-letter topic with its reason.
package ingest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/payload"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/ingest/topic"
	"github.com/polis-platform/polis/kafka"
)

// DefaultMaxPayload is the largest payload ingested (bytes) unless
// Options.MaxPayload says otherwise.
const DefaultMaxPayload = 256 << 10

// Directory tells whether an asset is registered.
type Directory interface {
	Known(site, asset string) bool
}

// Producer is the part of *kgo.Client ingest uses.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Options configure a Pipeline.
type Options struct {
	Producer   Producer
	Directory  Directory
	Limits     payload.Limits
	MaxPayload int // bytes; larger payloads are dead-lettered (default DefaultMaxPayload)
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock; tests pin it. Defaults to time.Now.
	Now func() time.Time
}

// Message is one MQTT publish handed over by the broker.
type Message struct {
	Topic    string
	Payload  []byte
	Received time.Time
	Client   string // MQTT client id, for logs
}

// Outcome says what happened to a message.
type Outcome int

const (
	// Accepted: the record is in Kafka.
	Accepted Outcome = iota
	// DeadLettered: the payload was refused and is in the dead-letter topic.
	DeadLettered
	// Ignored: not a platform topic that is ingested (state/desired, foreign topics).
	Ignored
)

// Rejection is returned with DeadLettered: the reason a device can act on.
type Rejection struct {
	Code    string // a payload.Code: the catalogue of dead-letter reasons
	Message string
}

func (r *Rejection) Error() string { return r.Code + ": " + r.Message }

// Pipeline decodes, validates and produces.
type Pipeline struct {
	o   Options
	log *slog.Logger
	m   *metrics
}

// New returns a Pipeline.
func New(o Options) (*Pipeline, error) {
	if o.Producer == nil || o.Directory == nil {
		return nil, errors.New("cannot create ingest pipeline: Producer and Directory are required")
	}
	if o.MaxPayload <= 0 {
		o.MaxPayload = DefaultMaxPayload
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Pipeline{o: o, log: o.Logger.With("component", "ingest"), m: newMetrics(o.Registerer)}, nil
}

// Handle ingests one message. It returns only once Kafka has the record (or
// its dead letter); an error means Kafka did not take it and the publisher
// must not be acknowledged.
func (p *Pipeline) Handle(ctx context.Context, msg Message) (Outcome, *Rejection, error) {
	if msg.Received.IsZero() {
		msg.Received = p.o.Now()
	}
	tp, err := topic.Parse(msg.Topic)
	if errors.Is(err, topic.ErrNotPlatform) || (err == nil && tp.Kind == topic.Desired) {
		return Ignored, nil, nil
	}
	if err != nil {
		// Keep whatever site and asset the topic names, so the dead letter
		// is keyed (and partitioned) like the device's other records.
		parts := strings.SplitN(strings.TrimPrefix(msg.Topic, topic.Prefix), "/", 3)
		if len(parts) == 3 {
			tp.Site, tp.Asset = parts[0], parts[1]
		}
		return p.deadLetter(ctx, msg, tp, payload.CodeBadTopic, err.Error())
	}
	if len(msg.Payload) > p.o.MaxPayload {
		return p.deadLetter(ctx, msg, tp, payload.CodeTooLarge,
			fmt.Sprintf("payload is %d bytes; the limit is %d", len(msg.Payload), p.o.MaxPayload))
	}
	if !p.o.Directory.Known(tp.Site, tp.Asset) {
		return p.deadLetter(ctx, msg, tp, payload.CodeUnknownAsset,
			fmt.Sprintf("asset %s of site %s is not in the registry", tp.Asset, tp.Site))
	}
	rec, kafkaTopic, err := p.decode(msg, tp)
	if err != nil {
		var pe *payload.Error
		if errors.As(err, &pe) {
			return p.deadLetter(ctx, msg, tp, pe.Code, pe.Msg)
		}
		return p.deadLetter(ctx, msg, tp, payload.CodeBadPayload, err.Error())
	}
	value, err := record.Marshal(rec)
	if err != nil {
		return p.deadLetter(ctx, msg, tp, payload.CodeBadPayload, err.Error())
	}
	key := tp.Site
	if kafkaTopic == kafka.TopicState {
		key = tp.Site + "/" + tp.Asset
	}
	if err := p.produce(ctx, &kgo.Record{Topic: kafkaTopic, Key: []byte(key), Value: value, Timestamp: msg.Received}); err != nil {
		p.m.messages.WithLabelValues(string(tp.Kind), "failed").Inc()
		return Accepted, nil, err
	}
	p.m.messages.WithLabelValues(string(tp.Kind), "accepted").Inc()
	p.m.points.Add(float64(len(rec.Points)))
	for _, pt := range rec.Points {
		if pt.Late {
			p.m.late.Inc()
		}
	}
	return Accepted, nil, nil
}

func (p *Pipeline) decode(msg Message, tp topic.Topic) (*record.Record, string, error) {
	now := msg.Received
	rec := &record.Record{Site: tp.Site, Asset: tp.Asset, Received: now.UnixMilli()}
	switch tp.Kind {
	case topic.Telemetry:
		pts, err := payload.DecodeTelemetry(nil, msg.Payload, now, p.o.Limits)
		if err != nil {
			return nil, "", err
		}
		rec.Kind, rec.Points = record.KindTelemetry, pts
		return rec, kafka.TopicTelemetry, nil
	case topic.Event:
		typ, ts, body, err := payload.DecodeEvent(msg.Payload, now, p.o.Limits)
		if err != nil {
			return nil, "", err
		}
		rec.Kind, rec.Event, rec.TS, rec.Body = record.KindEvent, typ, ts, body
		return rec, kafka.TopicEvents, nil
	case topic.Reported:
		ts, props, err := payload.DecodeReported(msg.Payload, now, p.o.Limits)
		if err != nil {
			return nil, "", err
		}
		rec.Kind, rec.TS, rec.Body = record.KindReported, ts, props
		return rec, kafka.TopicState, nil
	case topic.Status:
		st, err := payload.DecodeStatus(msg.Payload)
		if err != nil {
			return nil, "", err
		}
		rec.Kind, rec.Status, rec.TS = record.KindStatus, st, now.UnixMilli()
		return rec, kafka.TopicEvents, nil
	}
	return nil, "", fmt.Errorf("BUG: unhandled topic kind %q", tp.Kind)
}

// Status records a connection change the broker saw (connect, disconnect,
// lost connection) for a device that did not publish it itself, and waits
// for Kafka.
func (p *Pipeline) Status(ctx context.Context, site, asset, status, cause string, at time.Time) error {
	r, err := statusRecord(site, asset, status, cause, at)
	if err != nil {
		return err
	}
	return p.produce(ctx, r)
}

// StatusAsync records a connection change like Status but does not wait for
// Kafka: done gets the outcome later, exactly once. The broker uses it on
// connect, where waiting held the device's first packets behind a Kafka
// round trip. Order is kept: the record is handed to the producer before
// StatusAsync returns, and one producer keeps the order of records bound for
// one partition (a site's records share one), so an online status still
// precedes the offline status or telemetry produced after it.
func (p *Pipeline) StatusAsync(ctx context.Context, site, asset, status, cause string, at time.Time, done func(error)) {
	r, err := statusRecord(site, asset, status, cause, at)
	if err != nil {
		done(err)
		return
	}
	p.produceAsync(ctx, r, done)
}

func statusRecord(site, asset, status, cause string, at time.Time) (*kgo.Record, error) {
	rec := &record.Record{Kind: record.KindStatus, Site: site, Asset: asset, Status: status,
		TS: at.UnixMilli(), Received: at.UnixMilli(), Body: []byte(fmt.Sprintf(`{"cause":%q}`, cause))}
	value, err := record.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("cannot encode status of %s/%s: %w", site, asset, err)
	}
	return &kgo.Record{Topic: kafka.TopicEvents, Key: []byte(site), Value: value, Timestamp: at}, nil
}

func (p *Pipeline) deadLetter(ctx context.Context, msg Message, tp topic.Topic, reason payload.Code, text string) (Outcome, *Rejection, error) {
	code := string(reason)
	rej := &Rejection{Code: code, Message: text}
	p.m.deadLetters.WithLabelValues(code).Inc()
	p.log.Debug("payload dead-lettered", "topic", msg.Topic, "client", msg.Client, "reason", code, "message", text)
	pl := msg.Payload
	if len(pl) > p.o.MaxPayload {
		pl = pl[:p.o.MaxPayload]
	}
	dl := &record.DeadLetter{Received: msg.Received.UnixMilli(), Topic: msg.Topic, Reason: code, Message: text,
		Site: tp.Site, Asset: tp.Asset, Payload: pl}
	value, err := record.MarshalDeadLetter(dl)
	if err != nil {
		return DeadLettered, rej, fmt.Errorf("cannot encode dead letter: %w", err)
	}
	key := tp.Site
	if key == "" {
		key = "unknown"
	}
	if err := p.produce(ctx, &kgo.Record{Topic: kafka.TopicDeadLetter, Key: []byte(key), Value: value, Timestamp: msg.Received}); err != nil {
		return DeadLettered, rej, err
	}
	return DeadLettered, rej, nil
}

// produce waits for Kafka's acknowledgement, or for ctx. An idempotent
// producer cannot fail a record already sent, so waiting on the promise alone
// could outlast any deadline; giving up on ctx means the device resends and
// the record may land twice, which at-least-once delivery allows.
func (p *Pipeline) produce(ctx context.Context, r *kgo.Record) error {
	start := time.Now()
	done := make(chan error, 1)
	p.o.Producer.Produce(ctx, r, func(_ *kgo.Record, err error) { done <- err })
	var err error
	select {
	case err = <-done:
	case <-ctx.Done():
		err = ctx.Err()
	}
	return p.produced(r, start, err)
}

// produceAsync hands r to the producer and calls done with Kafka's answer.
func (p *Pipeline) produceAsync(ctx context.Context, r *kgo.Record, done func(error)) {
	start := time.Now()
	p.o.Producer.Produce(ctx, r, func(_ *kgo.Record, err error) { done(p.produced(r, start, err)) })
}

// produced counts a produce that took since start and ended with err.
func (p *Pipeline) produced(r *kgo.Record, start time.Time, err error) error {
	p.m.produceSeconds.Observe(time.Since(start).Seconds())
	if err != nil {
		p.m.produceErrors.Inc()
		return fmt.Errorf("cannot produce to %s: %w", r.Topic, err)
	}
	return nil
}
