package storage

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

const lostMetric = "polis_storage_records_lost_to_retention_total"

// errorLog keeps the Error records of a logger.
type errorLog struct {
	mu   sync.Mutex
	recs []map[string]any
}

func (l *errorLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }
func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler            { return l }
func (l *errorLog) WithGroup(string) slog.Handler                 { return l }
func (l *errorLog) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.Any()
		return true
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, m)
	return nil
}

func (l *errorLog) all() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.recs...)
}

// A writer that restarts after retention deleted records past its
// committed offset says so: an Error log naming the topic, partition,
// committed offset and log start offset, and the gap in
// polis_storage_records_lost_to_retention_total; then it goes on from the
// log start, counting nothing twice.
func TestWriter_ReportsRecordsLostToRetention(t *testing.T) {
	addr := chtest.Shared(t)
	const retention = time.Second
	bus, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Partitions: 1, Retention: retention,
		RetentionCheck: time.Hour, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(bus.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	e := &env{bus: bus, prod: prod, adm: kadm.NewClient(prod), conn: chtest.Conn(t, addr), db: chtest.Database(t, addr)}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := schema.Apply(ctx, e.conn, e.db); err != nil {
		t.Fatal(err)
	}
	start := func(log *errorLog) *running {
		reg := prometheus.NewRegistry()
		w, err := NewWriter(WriterOptions{Brokers: bus.Addrs(), Conn: e.conn, Database: e.db, Registerer: reg,
			MaxWait: 50 * time.Millisecond, Logger: slog.New(log)})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		r := &running{w: w, reg: reg, cancel: cancel, done: make(chan error, 1)}
		go func() { r.done <- w.Run(ctx) }()
		t.Cleanup(func() { r.stop(t) })
		return r
	}
	base := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	values := telemetry(t, 0, 35, base)

	// Stored and committed: offsets 0-9.
	first := start(&errorLog{})
	e.produce(t, kafka.TopicTelemetry, values[:10]...)
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 10 },
		"the writer did not commit the first 10 records")
	if err := first.stop(t); err != nil {
		t.Fatal(err)
	}
	if n := first.metric(t, lostMetric); n != 0 {
		t.Fatalf("%s = %v with nothing lost", lostMetric, n)
	}

	// Offsets 10-29 come while the writer is stopped and outlive
	// retention: the log starts at 30.
	e.produce(t, kafka.TopicTelemetry, values[10:30]...)
	time.Sleep(retention + 200*time.Millisecond)
	bus.ApplyRetention()
	starts, err := e.adm.ListStartOffsets(ctx, kafka.TopicTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := starts.Lookup(kafka.TopicTelemetry, 0); s.Offset != 30 {
		t.Fatalf("log start offset %d after retention; want 30", s.Offset)
	}
	e.produce(t, kafka.TopicTelemetry, values[30:]...) // newer than retention

	// The restarted writer reports it as it resumes (committed_offset:
	// the check on assignment, not the one on fetches).
	log := &errorLog{}
	second := start(log)
	testutil.Eventually(t, waitFor, step, func() bool { return second.metric(t, lostMetric) == 20 },
		"the restarted writer did not count the 20 records retention deleted")
	var found bool
	for _, r := range log.all() {
		if r["topic"] == kafka.TopicTelemetry && r["partition"] == int64(0) && r["committed_offset"] == int64(10) &&
			r["log_start_offset"] == int64(30) && r["lost"] == int64(20) {
			found = true
		}
	}
	if !found {
		t.Fatalf("no Error log with topic, partition 0, committed offset 10, log start 30 and 20 lost; got %v", log.all())
	}

	// It goes on from the log start and counts nothing twice.
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 35 },
		"the writer did not go on from the log start")
	if n := second.metric(t, lostMetric); n != 20 {
		t.Fatalf("%s = %v after going on; want 20", lostMetric, n)
	}
	if got, want := e.count(t, "telemetry", true), uint64(2*15); got != want {
		t.Fatalf("telemetry holds %d rows; want %d (records 0-9 and 30-34, two points each)", got, want)
	}
	if n := len(log.all()); n != 1 {
		t.Fatalf("%d Error logs; want the one loss: %v", n, log.all())
	}
}

// A loss seen on a fetch: the records polled start past the offset
// expected and the log start is past it too (the writer fell behind while
// running, or the listing at assignment failed). A gap below the log start
// (transaction markers, compaction) is not a loss.
func TestLostWatch_Fetched(t *testing.T) {
	log := &errorLog{}
	lw, err := newLostWatch(slog.New(log), nil)
	if err != nil {
		t.Fatal(err)
	}
	fetch := func(logStart int64, offsets ...int64) kgo.FetchTopicPartition {
		p := kgo.FetchTopicPartition{Topic: kafka.TopicEvents}
		p.Partition, p.LogStartOffset = 3, logStart
		for _, o := range offsets {
			p.Records = append(p.Records, &kgo.Record{Topic: kafka.TopicEvents, Partition: 3, Offset: o})
		}
		return p
	}
	lost := func() float64 {
		ch := make(chan prometheus.Metric, 1)
		lw.count.WithLabelValues(kafka.TopicEvents).Collect(ch)
		return value(metricOf(t, <-ch))
	}
	lw.fetched(fetch(0, 5, 6, 7)) // no committed offset: the group started at the log start
	lw.fetched(fetch(0, 9, 10))   // a gap above the log start: not retention
	if n := lost(); n != 0 {
		t.Fatalf("lost %v without retention", n)
	}
	lw.fetched(fetch(40, 40, 41)) // 11-39 deleted before they were read
	if n := lost(); n != 29 {
		t.Fatalf("lost %v; want 29 (offsets 11-39)", n)
	}
	recs := log.all()
	if len(recs) != 1 || recs[0]["next_offset"] != int64(11) || recs[0]["log_start_offset"] != int64(40) || recs[0]["partition"] != int64(3) {
		t.Fatalf("want one Error log from offset 11 to log start 40; got %v", recs)
	}
	lw.forget(map[string][]int32{kafka.TopicEvents: {3}})
	lw.fetched(fetch(90, 90)) // no longer owned: nothing expected
	if n := lost(); n != 29 {
		t.Fatalf("lost %v after the partition was revoked; want still 29", n)
	}
}

func metricOf(t *testing.T, m prometheus.Metric) *dto.Metric {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	return &d
}
