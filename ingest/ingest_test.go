package ingest_test

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
)

type known map[string]bool

func (k known) Known(site, asset string) bool { return k[site+"/"+asset] }

func newPipeline(t testing.TB) (*ingest.Pipeline, []string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, kafka.Topics()...),
		kfake.ListenFn(func(n, a string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(a)
			return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0), kgo.RecordPartitioner(kafka.SitePartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	p, err := ingest.New(ingest.Options{Producer: prod, Directory: known{"PO-001001-1/env-1": true}})
	if err != nil {
		t.Fatal(err)
	}
	return p, c.ListenAddrs()
}

func TestHandle_Outcomes(t *testing.T) {
	p, addrs := newPipeline(t)
	now := time.Now()
	cases := []struct {
		topic, payload string
		out            ingest.Outcome
		reason         string
		kafkaTopic     string
		key            string
	}{
		{"polis/v1/PO-001001-1/env-1/telemetry", `{"m":{"temp_c":21}}`, ingest.Accepted, "", kafka.TopicTelemetry, "PO-001001-1"},
		{"polis/v1/PO-001001-1/env-1/event", `{"type":"door_open"}`, ingest.Accepted, "", kafka.TopicEvents, "PO-001001-1"},
		{"polis/v1/PO-001001-1/env-1/status", `online`, ingest.Accepted, "", kafka.TopicEvents, "PO-001001-1"},
		{"polis/v1/PO-001001-1/env-1/state/reported", `{"fw":"1.2"}`, ingest.Accepted, "", kafka.TopicState, "PO-001001-1/env-1"},
		{"polis/v1/PO-001001-1/env-1/state/desired", `{"fw":"1.3"}`, ingest.Ignored, "", "", ""},
		{"bridge/anything", `x`, ingest.Ignored, "", "", ""},
		{"polis/v1/PO-001001-1/env-1/nope", `{}`, ingest.DeadLettered, "bad_topic", kafka.TopicDeadLetter, "PO-001001-1"},
		{"polis/v1/PO-001001-1/atm-9/telemetry", `{"m":{"x_c":1}}`, ingest.DeadLettered, "unknown_asset", kafka.TopicDeadLetter, "PO-001001-1"},
		{"polis/v1/PO-001001-1/env-1/telemetry", `{"m":{"temp_c":"x"}}`, ingest.DeadLettered, "non_numeric", kafka.TopicDeadLetter, "PO-001001-1"},
		{"polis/v1/PO-001001-1/env-1/telemetry", string(make([]byte, 300<<10)), ingest.DeadLettered, "too_large", kafka.TopicDeadLetter, "PO-001001-1"},
	}
	want := map[string]int{}
	for _, c := range cases {
		out, rej, err := p.Handle(context.Background(), ingest.Message{Topic: c.topic, Payload: []byte(c.payload), Received: now})
		if err != nil {
			t.Fatalf("%s: %v", c.topic, err)
		}
		if out != c.out {
			t.Fatalf("%s %.20q: outcome %v; want %v", c.topic, c.payload, out, c.out)
		}
		if (rej == nil) != (c.reason == "") || (rej != nil && rej.Code != c.reason) {
			t.Fatalf("%s %.20q: rejection %v; want %q", c.topic, c.payload, rej, c.reason)
		}
		if c.kafkaTopic != "" {
			want[c.kafkaTopic+" "+c.key]++
		}
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(kafka.Topics()...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got, n := map[string]int{}, 0
	for n < 8 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			got[r.Topic+" "+string(r.Key)]++
			n++
			if r.Topic == kafka.TopicTelemetry {
				var rec record.Record
				if err := record.Unmarshal(r.Value, &rec); err != nil || len(rec.Points) != 1 || rec.Points[0].Metric != "temp_c" {
					t.Errorf("telemetry record %s: %v", r.Value, err)
				}
			}
		})
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("records by topic and key; got %v; want %v", got, want)
	}
}

// BenchmarkHandle measures publishes through decode, validation and a Kafka
// acknowledgement from an in-process kfake, with many publishers at once as
// the broker has (one per connection).
func BenchmarkHandle(b *testing.B) {
	p, _ := newPipeline(b)
	payload := []byte(`{"ts":` + fmt.Sprint(time.Now().UnixMilli()) + `,"m":{"temp_c":21.5,"humidity_pct":40,"co2_ppm":650}}`)
	b.SetParallelism(64)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, _, err := p.Handle(context.Background(), ingest.Message{Topic: "polis/v1/PO-001001-1/env-1/telemetry", Payload: payload}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
