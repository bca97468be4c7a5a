package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

func produceN(t *testing.T, addrs []string, topic string, n, size int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.RecordPartitioner(SitePartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range n {
		// Random values: zeros would compress away and hide disk growth.
		val := make([]byte, size)
		_, _ = rand.Read(val)
		r := &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "PO-%06d-1", i%50), Value: val}
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				t.Errorf("produce: %v", err)
			}
		})
	}
	if err := cl.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func countAll(t *testing.T, addrs []string, topic string, want int) int {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n := 0
	for n < want && ctx.Err() == nil {
		n += cl.PollFetches(ctx).NumRecords()
	}
	return n
}

func TestEmbedded_RestartLosesNothing(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	addr := e.Addrs()
	produceN(t, addr, TopicTelemetry, 5000, 100)
	e.Close()

	e2, err := StartEmbedded(EmbeddedOptions{Addr: addr[0], DataDir: dir, Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if got := countAll(t, e2.Addrs(), TopicTelemetry, 5000); got != 5000 {
		t.Fatalf("unexpected records after restart; got %d; want 5000", got)
	}
}

func TestEmbedded_RetentionBoundsDisk(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir, Partitions: 2,
		Retention: time.Hour, RetentionBytes: 256 << 10, RetentionCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	// 20 MB into two partitions bounded at 256 KiB each.
	for range 10 {
		produceN(t, e.Addrs(), TopicTelemetry, 2000, 1000)
	}
	e.ApplyRetention()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, TopicTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	starts.Each(func(o kadm.ListedOffset) {
		if o.Offset == 0 {
			t.Errorf("partition %d kept everything: retention.bytes not applied", o.Partition)
		}
	})
	size := dirSize(t, filepath.Join(dir))
	t.Logf("on disk after retention: %d bytes", size)
	if size > 8<<20 {
		t.Fatalf("embedded Kafka uses %d bytes on disk after retention; want well under the 20 MB produced", size)
	}
}

func dirSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	err := filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			n += fi.Size()
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSitePartitioner_SameSiteSamePartition(t *testing.T) {
	p := SitePartitioner().ForTopic(TopicState)
	for i := range 200 {
		site := fmt.Sprintf("PO-%06d-1", i)
		a := p.Partition(&kgo.Record{Key: []byte(site)}, 16)
		b := p.Partition(&kgo.Record{Key: []byte(site + "/atm-1")}, 16)
		c := p.Partition(&kgo.Record{Key: []byte(site + "/evc-2")}, 16)
		if a != b || a != c {
			t.Fatalf("site %s spread over partitions %d, %d, %d", site, a, b, c)
		}
	}
	if SiteOf([]byte("PO-1/atm-1")) != "PO-1" || SiteOf([]byte("PO-1")) != "PO-1" {
		t.Fatal("SiteOf does not cut at the slash")
	}
}

// The embedded cluster keeps record data on disk, not in the heap: memory
// after writing far more than retention keeps is about what it was before.
func TestEmbedded_MemoryStaysBounded(t *testing.T) {
	dir := t.TempDir()
	e, err := StartEmbedded(EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: dir, Partitions: 2,
		RetentionBytes: 1 << 20, RetentionCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapInuse
	}
	before := heap()
	for range 16 {
		produceN(t, e.Addrs(), TopicTelemetry, 4000, 1000) // 64 MB in all
		e.ApplyRetention()
	}
	after := heap()
	t.Logf("heap in use: %d MB before, %d MB after writing 64 MB", before>>20, after>>20)
	if after > before+24<<20 {
		t.Fatalf("heap grew from %d to %d bytes after writing 64 MB with 2 MB retained", before, after)
	}
}
