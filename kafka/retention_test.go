package kafka

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Each topic keeps records by its own spec: with a one-second retention
// and a 64 KiB bound per partition, once both have passed the stream
// topics are emptied while the compacted topics still hold the latest
// record of every key and the rules topic holds every version.
func TestEmbedded_RetentionSparesKeptTopics(t *testing.T) {
	const retention = time.Second
	e, err := StartEmbedded(EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 2,
		Retention: retention, RetentionBytes: 64 << 10, RetentionCheck: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...), kgo.RecordPartitioner(SitePartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	produce := func(rs []*kgo.Record) {
		t.Helper()
		if err := cl.ProduceSync(ctx, rs...).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// A value is its label and 1 KB of its own random bytes: anything
	// repeated would compress away and stay under the 64 KiB bound.
	value := func(label string) []byte {
		v := make([]byte, len(label)+1000)
		_, _ = rand.Read(v[copy(v, label):])
		return v
	}

	// Three rounds, each its own batches: kfake compacts all but a
	// partition's last batch, so round 1 is superseded by round 2 in a
	// batch compaction may clean.
	const sites, rounds = 20, 3
	keyOf := map[string]func(i int) string{
		TopicState:    func(i int) string { return fmt.Sprintf("PO-%06d-1/atm-%d", i/2, i%2) },
		TopicDesired:  func(i int) string { return fmt.Sprintf("PO-%06d-1/atm-%d", i/2, i%2) },
		TopicRegistry: func(i int) string { return fmt.Sprintf("PO-%06d-1", i) },
	}
	nkeys := map[string]int{TopicState: 2 * sites, TopicDesired: 2 * sites, TopicRegistry: sites}
	for round := 1; round <= rounds; round++ {
		var rs []*kgo.Record
		for topic, key := range keyOf {
			for i := range nkeys[topic] {
				rs = append(rs, &kgo.Record{Topic: topic, Key: []byte(key(i)),
					Value: value(fmt.Sprintf("round %d;", round))})
			}
		}
		produce(rs)
	}
	const versions = 150 // 150 KB of rules history, over the 64 KiB bound
	var rs []*kgo.Record
	for v := range versions {
		rs = append(rs, &kgo.Record{Topic: TopicRules, Key: fmt.Appendf(nil, "rule-%d", v%7), Value: value(fmt.Sprintf("version %d;", v))})
	}
	for _, topic := range []string{TopicTelemetry, TopicEvents, TopicAlerts, TopicDeadLetter} {
		for i := range 100 {
			rs = append(rs, &kgo.Record{Topic: topic, Key: fmt.Appendf(nil, "PO-%06d-1", i%sites), Value: value("")})
		}
	}
	produce(rs)

	time.Sleep(retention + 500*time.Millisecond)
	e.c.Compact()
	e.ApplyRetention()

	adm := kadm.NewClient(cl)
	for _, topic := range []string{TopicTelemetry, TopicEvents, TopicAlerts, TopicDeadLetter} {
		if got := readAll(ctx, t, adm, e.Addrs(), topic); len(got) != 0 {
			t.Errorf("%s holds %d records past its retention; want none", topic, len(got))
		}
	}
	for topic, key := range keyOf {
		latest := map[string]string{}
		round1 := 0
		for _, r := range readAll(ctx, t, adm, e.Addrs(), topic) {
			v := string(r.Value[:len("round 1;")])
			latest[string(r.Key)] = v // per partition in offset order, and a key has one partition
			if v == "round 1;" {
				round1++
			}
		}
		stale := 0
		for i := range nkeys[topic] {
			if latest[key(i)] != fmt.Sprintf("round %d;", rounds) {
				stale++
			}
		}
		if stale > 0 {
			t.Errorf("%s: %d of %d keys lost their latest record (round %d) to retention", topic, stale, nkeys[topic], rounds)
		}
		if round1 > 0 {
			t.Errorf("%s still holds %d superseded round-1 records: not compacted", topic, round1)
		}
	}
	got := readAll(ctx, t, adm, e.Addrs(), TopicRules)
	if len(got) != versions {
		t.Fatalf("%s holds %d versions after retention; want all %d", TopicRules, len(got), versions)
	}
	for i, r := range got {
		if want := fmt.Sprintf("version %d;", i); string(r.Value[:len(want)]) != want {
			t.Fatalf("%s record %d is %q; want %q", TopicRules, i, r.Value[:len(want)], want)
		}
	}
}

// readAll reads every record of topic between its start and end offsets.
func readAll(ctx context.Context, t *testing.T, adm *kadm.Client, addrs []string, topic string) []*kgo.Record {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	starts, err := adm.ListStartOffsets(ctx, topic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{} // partition -> end offset still to reach
	ends.Each(func(o kadm.ListedOffset) {
		if s, _ := starts.Lookup(topic, o.Partition); s.Offset < o.Offset {
			left[o.Partition] = o.Offset
		}
	})
	if len(left) == 0 {
		return nil
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	wait, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for len(left) > 0 {
		fs := cl.PollFetches(wait)
		if wait.Err() != nil {
			t.Fatalf("%s: partitions %v not read to their end in time", topic, left)
		}
		fs.EachError(func(_ string, p int32, err error) { t.Errorf("fetch %s/%d: %v", topic, p, err) })
		fs.EachRecord(func(r *kgo.Record) {
			out = append(out, r)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return out
}
