package ingest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
)

// StatusAsync must keep the order of a connection's status records although
// it does not wait: online (async) is handed over before offline (sync), and
// both land on the site's partition in that order.
func TestStatusAsync_KeepsOrderWithLaterRecords(t *testing.T) {
	p, addrs := newPipeline(t)
	const site = "PO-001001-1"
	at := time.UnixMilli(1_700_000_000_000)
	done := make(chan error, 2) // 2: a second call of done would show
	p.StatusAsync(context.Background(), site, "env-1", "online", "connect", at, func(err error) { done <- err })
	if err := p.Status(context.Background(), site, "env-1", "offline", "clean", at.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("online status not produced: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s")
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(kafka.TopicEvents), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var got []string
	for len(got) < 2 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var rec record.Record
			if err := record.Unmarshal(r.Value, &rec); err != nil {
				t.Fatalf("cannot decode %s: %v", r.Value, err)
			}
			if string(r.Key) != site || rec.Kind != record.KindStatus || rec.Asset != "env-1" {
				t.Fatalf("unexpected record %s key %s", r.Value, r.Key)
			}
			got = append(got, rec.Status+"@"+time.UnixMilli(rec.TS).UTC().Format("05"))
		})
	}
	if strings.Join(got, ",") != "online@20,offline@21" {
		t.Fatalf("status records; got %v; want online@20,offline@21", got)
	}
	if len(done) != 0 {
		t.Fatal("done called twice")
	}
}

// A record Kafka cannot take reaches done as an error, once.
func TestStatusAsync_ReportsFailure(t *testing.T) {
	prod, err := kgo.NewClient(kgo.SeedBrokers("127.0.0.1:1"))
	if err != nil {
		t.Fatal(err)
	}
	prod.Close() // a closed client fails every record
	p, err := ingest.New(ingest.Options{Producer: prod, Directory: known{}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 2)
	p.StatusAsync(context.Background(), "PO-001001-1", "env-1", "online", "connect", time.Now(), func(err error) { done <- err })
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), kafka.TopicEvents) {
			t.Fatalf("got %v; want an error naming %s", err, kafka.TopicEvents)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("done not called within 10s")
	}
	if len(done) != 0 {
		t.Fatal("done called twice")
	}
}
