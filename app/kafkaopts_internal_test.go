package app

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/kafka"
)

// optValue makes a client (it connects to nothing until used) and returns
// one of its options' values.
func optValue(t *testing.T, o kafka.ClientOptions, opt any, opts ...kgo.Opt) any {
	t.Helper()
	cl, err := o.NewClient([]string{"127.0.0.1:1"}, nil, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	return cl.OptValue(opt)
}

// --kafka-session-timeout reaches every client the platform makes from its
// ClientOptions, the consumer groups' among them, with a heartbeat interval
// a third of it, at most 3 s.
func TestKafkaClientOptions_SessionTimeout(t *testing.T) {
	if d := Defaults().KafkaSessionTimeout; d != 10*time.Second {
		t.Fatalf("default session timeout %s; want 10s", d)
	}
	for _, tc := range []struct {
		session, wantSession, wantHeartbeat time.Duration
	}{
		{0, 45 * time.Second, 3 * time.Second}, // franz-go's defaults
		{DefaultKafkaSessionTimeout, 10 * time.Second, 3 * time.Second},
		{6 * time.Second, 6 * time.Second, 2 * time.Second},
		{time.Minute, time.Minute, 3 * time.Second},
	} {
		cfg := Defaults()
		cfg.KafkaSessionTimeout = tc.session
		o, err := kafkaClientOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		group := kgo.ConsumerGroup(kafka.GroupStorage)
		if got := optValue(t, o, kgo.SessionTimeout, group); got != tc.wantSession {
			t.Errorf("--kafka-session-timeout %s: session timeout %v; want %s", tc.session, got, tc.wantSession)
		}
		if got := optValue(t, o, kgo.HeartbeatInterval, group); got != tc.wantHeartbeat {
			t.Errorf("--kafka-session-timeout %s: heartbeat %v; want %s", tc.session, got, tc.wantHeartbeat)
		}
	}
}

// --kafka-fetch-wait reaches every consumer: a fetch waits up to it for a
// megabyte; 0 keeps franz-go's defaults (answer at the first byte).
func TestKafkaClientOptions_FetchWait(t *testing.T) {
	if d := Defaults().KafkaFetchWait; d != 200*time.Millisecond {
		t.Fatalf("default fetch wait %s; want 200ms", d)
	}
	for _, tc := range []struct {
		wait, wantWait time.Duration
		wantMin        int32
	}{
		{0, 5 * time.Second, 1}, // franz-go's defaults
		{DefaultKafkaFetchWait, 200 * time.Millisecond, 1 << 20},
		{time.Second, time.Second, 1 << 20},
	} {
		cfg := Defaults()
		cfg.KafkaFetchWait = tc.wait
		o, err := kafkaClientOptions(cfg)
		if err != nil {
			t.Fatal(err)
		}
		group := kgo.ConsumerGroup(kafka.GroupStorage)
		if got := optValue(t, o, kgo.FetchMaxWait, group); got != tc.wantWait {
			t.Errorf("--kafka-fetch-wait %s: fetch max wait %v; want %s", tc.wait, got, tc.wantWait)
		}
		if got := optValue(t, o, kgo.FetchMinBytes, group); got != tc.wantMin {
			t.Errorf("--kafka-fetch-wait %s: fetch min bytes %v; want %d", tc.wait, got, tc.wantMin)
		}
	}
}

// The ingest producer's records expire with the broker's ingest timeout,
// even once sent; the platform's other producer keeps franz-go's unlimited
// retries.
func TestIngestOpts(t *testing.T) {
	cfg := Defaults()
	if ingestTimeout != broker.DefaultIngestTimeout {
		t.Fatalf("ingest timeout %s; the broker's is %s", ingestTimeout, broker.DefaultIngestTimeout)
	}
	o := kafka.ClientOptions{}
	if got := optValue(t, o, kgo.RecordDeliveryTimeout, ingestOpts(cfg, ingestTimeout)...); got != broker.DefaultIngestTimeout {
		t.Fatalf("ingest producer: record delivery timeout %v; want the broker's %s", got, broker.DefaultIngestTimeout)
	}
	if got := optValue(t, o, kgo.AllowIdempotentProduceCancellation, ingestOpts(cfg, ingestTimeout)...); got != true {
		t.Fatalf("ingest producer: in-flight records cannot be cancelled (%v)", got)
	}
	if got := optValue(t, o, kgo.RecordDeliveryTimeout, producerOpts(cfg)...); got != time.Duration(0) {
		t.Fatalf("platform producer: record delivery timeout %v; want none", got)
	}
}

// A record sent to a broker that never answers (the network cut off after
// the request left) fails at the deadline, and is not written when the
// broker answers again: a device refused its PUBACK does not find its
// publish stored as well. Without AllowIdempotentProduceCancellation the
// promise would wait for the broker, and the test for its bound.
func TestIngestProducer_NotDeliveredAfterTimeout(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafka.TopicTelemetry))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var cut atomic.Bool
	cut.Store(true)
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if cut.Load() {
			return nil, nil, true // swallowed: no answer, nothing written
		}
		return nil, nil, false
	})
	const timeout = time.Second // the least franz-go takes
	cl, err := kafka.ClientOptions{}.NewClient(c.ListenAddrs(), nil, ingestOpts(Defaults(), timeout)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	produce := func(ctx context.Context, value string) <-chan error {
		done := make(chan error, 1)
		cl.Produce(ctx, &kgo.Record{Topic: kafka.TopicTelemetry, Key: []byte("site-1"), Value: []byte(value)},
			func(_ *kgo.Record, err error) { done <- err })
		return done
	}
	wait := func(done <-chan error) error {
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("no answer from the producer within 30s: an expired record was kept in flight")
			return nil
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := wait(produce(ctx, "refused")); err == nil {
		t.Fatal("a record Kafka never acknowledged was reported delivered")
	}
	cut.Store(false)
	if err := wait(produce(context.Background(), "stored")); err != nil {
		t.Fatalf("the producer does not recover once Kafka answers: %v", err)
	}

	cons, err := kafka.ClientOptions{}.NewClient(c.ListenAddrs(), nil, kgo.ConsumeTopics(kafka.TopicTelemetry),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	var values []string
	pctx, pcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer pcancel()
	for len(values) < 1 && pctx.Err() == nil {
		cons.PollFetches(pctx).EachRecord(func(r *kgo.Record) { values = append(values, string(r.Value)) })
	}
	// Anything after "stored" would have been written after it; what the
	// topic holds before it is what counts.
	if len(values) != 1 || values[0] != "stored" {
		t.Fatalf("the topic starts with %q; want the record sent after the refused one alone", values)
	}
}
