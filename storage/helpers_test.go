package storage

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

func testLogger() *slog.Logger {
	if os.Getenv("POLIS_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// env is one test's Kafka cluster, producer and ClickHouse database.
type env struct {
	bus  *kafka.Embedded
	prod *kgo.Client
	adm  *kadm.Client
	conn driver.Conn
	db   string
}

// newEnv starts kfake and prepares db (migrated) on the server at addr.
func newEnv(t *testing.T, addr, db string) *env {
	t.Helper()
	b, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Partitions: 4, Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(b.Addrs()...), kgo.DefaultProduceTopic(kafka.TopicTelemetry),
		kgo.RecordPartitioner(kafka.SitePartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	e := &env{bus: b, prod: prod, adm: kadm.NewClient(prod), conn: chtest.Conn(t, addr), db: db}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := schema.Apply(ctx, e.conn, db); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) produce(t testing.TB, topic string, values ...[]byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		// Keyed by site like ingest does: a site's records stay in order
		// in one partition, which the rollups rely on.
		var site struct {
			Site string `json:"site"`
		}
		_ = json.Unmarshal(v, &site)
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(site.Site), Value: v}
	}
	if err := e.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatalf("cannot produce: %v", err)
	}
}

// running is a Writer in its own goroutine.
type running struct {
	w      *Writer
	reg    *prometheus.Registry
	cancel context.CancelFunc
	done   chan error
}

func (e *env) startWriter(t *testing.T, conn driver.Conn, o WriterOptions) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	o.Brokers = e.bus.Addrs()
	o.Conn = conn
	if o.RollupEvery == 0 {
		o.RollupEvery = 100 * time.Millisecond // offsets are committed after it
	}
	o.Database = e.db
	o.Registerer = reg
	o.Logger = testLogger()
	w, err := NewWriter(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, reg: reg, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- w.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels Run and waits for it; a second call returns at once.
func (r *running) stop(t testing.TB) error {
	t.Helper()
	r.cancel()
	select {
	case err, ok := <-r.done:
		if !ok {
			return nil
		}
		close(r.done)
		return err
	case <-time.After(30 * time.Second):
		t.Fatal("writer did not stop within 30s")
		return nil
	}
}

// metric returns the value of a counter or gauge (summed over labels).
func (r *running) metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			sum += value(m)
		}
	}
	return sum
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return 0
}

// committed sums the group's committed offsets on topic (-1 if none yet).
func (e *env) committed(t testing.TB, topic string) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.adm.FetchOffsets(ctx, kafka.GroupStorage)
	if err != nil {
		t.Logf("cannot fetch committed offsets: %v", err)
		return -1
	}
	var sum int64
	for _, ps := range resp {
		for _, o := range ps {
			if o.Topic == topic && o.Err == nil && o.At >= 0 {
				sum += o.At
			}
		}
	}
	return sum
}

func (e *env) count(t testing.TB, table string, final bool) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := CountTable(ctx, e.conn, e.db, table, final)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// telemetry makes n records of two points each, from 5 sites and 3 assets,
// 250 ms apart so that several share a second (Legacy keeps the ms apart).
func telemetry(t testing.TB, first, n int, base time.Time) [][]byte {
	t.Helper()
	out := make([][]byte, 0, n)
	for i := first; i < first+n; i++ {
		ts := base.Add(time.Duration(i) * 250 * time.Millisecond).UnixMilli()
		r := &record.Record{Kind: record.KindTelemetry, Site: fmt.Sprintf("PO-001001-%d", i%5), Asset: fmt.Sprintf("atm-%d", i%3),
			Received: ts + 40, Points: []record.Point{
				{Metric: "temp_c", TS: ts, Value: float64(i)},
				{Metric: "cash_pct", TS: ts, Value: float64(1000 - i), Late: i%7 == 0},
			}}
		b, err := record.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
