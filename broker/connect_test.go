package broker_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/ingest"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
)

// holdingProducer produces every record at once but holds back Kafka's
// answer for records of one topic until released, like a slow broker.
type holdingProducer struct {
	ingest.Producer
	topic   string
	release chan struct{}
	mu      sync.Mutex
	held    int
}

func (h *holdingProducer) Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	if r.Topic != h.topic {
		h.Producer.Produce(ctx, r, promise)
		return
	}
	h.mu.Lock()
	h.held++
	h.mu.Unlock()
	h.Producer.Produce(ctx, r, func(r *kgo.Record, err error) {
		go func() { <-h.release; promise(r, err) }()
	})
}

func (h *holdingProducer) heldCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.held
}

// A device's first publish must not wait for its online status to be
// acknowledged by Kafka: the broker used to, which held every connecting
// device's first PUBACK (and, with mochi reading nothing meanwhile, its
// pings) behind a produce round trip. Both records still reach Kafka.
func TestConnect_FirstPublishDoesNotWaitForOnlineStatus(t *testing.T) {
	hp := &holdingProducer{topic: kafka.TopicEvents, release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(hp.release) }) }
	s := newStackProducer(t, func(p ingest.Producer) ingest.Producer { hp.Producer = p; return hp },
		// Longer than the publish wait below: a broker that waits for the
		// status answer cannot acknowledge in time.
		func(o *broker.Options) { o.IngestTimeout = time.Minute })
	t.Cleanup(release) // before the stack's own cleanups, which wait for it
	c := s.device(t, siteA, "env-1", func(o *paho.ClientOptions) { o.SetClientID("env-1-first-publish") })
	tok := c.Publish("polis/v1/"+siteA+"/env-1/telemetry", 1, false, `{"m":{"temp_c":21}}`)
	if !tok.WaitTimeout(20 * time.Second) {
		t.Fatalf("first publish not acknowledged while the online status (%d held) waits for Kafka", hp.heldCount())
	}
	if err := tok.Error(); err != nil {
		t.Fatal(err)
	}
	if hp.heldCount() != 1 {
		t.Fatalf("held status records: %d; want 1 (online)", hp.heldCount())
	}
	release()
	var kinds []string
	for _, r := range decodeAll(t, s.consume(t, 2, 10*time.Second, kafka.TopicEvents, kafka.TopicTelemetry)) {
		switch r.Kind {
		case record.KindStatus:
			kinds = append(kinds, "status:"+r.Status)
		default:
			kinds = append(kinds, "points")
		}
	}
	if got := strings.Join(kinds, ","); !strings.Contains(got, "status:online") || !strings.Contains(got, "points") {
		t.Fatalf("records; got %s; want the online status and the telemetry", got)
	}
}
