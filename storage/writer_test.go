package storage

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

const (
	waitFor = 30 * time.Second
	step    = 50 * time.Millisecond
)

type series struct{ site, asset, metric string }

type agg struct {
	min, max, last float64
	lastTS         int64
	count          uint64
}

// expected folds generated records into per-series aggregates.
func expected(t *testing.T, values [][]byte) map[series]*agg {
	t.Helper()
	out := map[series]*agg{}
	for _, v := range values {
		var r record.Record
		if err := record.Unmarshal(v, &r); err != nil {
			t.Fatal(err)
		}
		for _, p := range r.Points {
			k := series{r.Site, r.Asset, p.Metric}
			a := out[k]
			if a == nil {
				a = &agg{min: p.Value, max: p.Value, last: p.Value, lastTS: p.TS}
				out[k] = a
			}
			a.min, a.max, a.count = min(a.min, p.Value), max(a.max, p.Value), a.count+1
			if p.TS >= a.lastTS {
				a.last, a.lastTS = p.Value, p.TS
			}
		}
	}
	return out
}

// fold merges rollup buckets per series and counts buckets per series.
func fold(bs []Bucket) (map[series]*agg, map[series]int) {
	out, buckets := map[series]*agg{}, map[series]int{}
	for _, b := range bs { // ordered by time within a series
		k := series{b.Site, b.Asset, b.Metric}
		a := out[k]
		if a == nil {
			a = &agg{min: b.Min, max: b.Max}
			out[k] = a
		}
		a.min, a.max, a.count, a.last = min(a.min, b.Min), max(a.max, b.Max), a.count+b.Count, b.Last
		buckets[k]++
	}
	return out, buckets
}

func TestWriter_Telemetry(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	// 600 records over 150 s across an hour boundary: 3 minute and 2 hour
	// buckets per series.
	base := time.Date(2026, 3, 1, 10, 59, 0, 0, time.UTC)
	values := telemetry(t, 0, 600, base)
	e.produce(t, kafka.TopicTelemetry, values[:300]...)
	e.produce(t, kafka.TopicTelemetry, []byte(`{"v":1,"kind":"telemetry"`)) // undecodable
	e.produce(t, kafka.TopicTelemetry, values[300:]...)
	r := e.startWriter(t, e.conn, WriterOptions{MaxWait: 100 * time.Millisecond})

	const rows = 1200
	testutil.Eventually(t, waitFor, step, func() bool { return e.count(t, schema.TableTelemetry, true) == rows },
		"telemetry rows; last count %d", e.count(t, schema.TableTelemetry, true))
	if n := e.count(t, schema.TableTelemetry, false); n != rows {
		t.Fatalf("unexpected stored rows; got %d; want %d (duplicates?)", n, rows)
	}
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 601 },
		"committed offsets; got %d; want 601", e.committed(t, kafka.TopicTelemetry))
	for name, want := range map[string]float64{
		"polis_storage_rows_written_total":     rows + 1, // and the undecodable record, dead-lettered
		"polis_storage_records_consumed_total": 601,
		"polis_storage_records_skipped_total":  1,
		"polis_storage_clickhouse_up":          1,
		"polis_storage_insert_errors_total":    0,
		"polis_storage_consumer_lag":           0,
	} {
		if got := r.metric(t, name); got != want {
			t.Fatalf("unexpected %s; got %v; want %v", name, got, want)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := Count(ctx, e.conn, e.db, "PO-001001-3"); err != nil || n != rows/5 {
		t.Fatalf("unexpected Count for one site; got %d, %v; want %d", n, err, rows/5)
	}

	want := expected(t, values)
	for _, tc := range []struct {
		res     Resolution
		buckets int
	}{{Minute, 3}, {Hour, 2}} {
		bs, err := Rollup(ctx, e.conn, e.db, tc.res, RollupQuery{})
		if err != nil {
			t.Fatal(err)
		}
		got, nb := fold(bs)
		if len(got) != len(want) {
			t.Fatalf("resolution %d: unexpected series; got %d; want %d", tc.res, len(got), len(want))
		}
		var total uint64
		for k, w := range want {
			g := got[k]
			if g == nil || g.count != w.count || g.min != w.min || g.max != w.max || g.last != w.last {
				t.Fatalf("resolution %d, %v: rollup disagrees with raw; got %+v; want %+v", tc.res, k, g, w)
			}
			if nb[k] != tc.buckets {
				t.Fatalf("resolution %d, %v: unexpected buckets; got %d; want %d", tc.res, k, nb[k], tc.buckets)
			}
			total += g.count
		}
		if total != rows {
			t.Fatalf("resolution %d: rollup counts sum to %d; want %d", tc.res, total, rows)
		}
	}

	from := time.Date(2026, 3, 1, 11, 0, 0, 0, time.UTC)
	bs, err := Rollup(ctx, e.conn, e.db, Minute, RollupQuery{Site: "PO-001001-0", Asset: "atm-0", Metric: "temp_c", From: from})
	if err != nil {
		t.Fatal(err)
	}
	if len(bs) != 2 || !bs[0].Start.Equal(from) || bs[0].Site != "PO-001001-0" || bs[0].Metric != "temp_c" {
		t.Fatalf("unexpected filtered rollup: %+v", bs)
	}
}

// Samples in one second keep their order: Legacy stores the ms apart.
func TestWriter_SubSecond(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	sec := time.Date(2026, 3, 1, 12, 0, 7, 0, time.UTC).UnixMilli()
	var values [][]byte
	for _, ms := range []int64{999, 0, 500, 250} { // last in time is not last produced
		b, err := record.Marshal(&record.Record{Kind: record.KindTelemetry, Site: "CW-RM-1", Asset: "desk-1", Received: sec + 2000,
			Points: []record.Point{{Metric: "occupancy", TS: sec + ms, Value: float64(ms)}}})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, b)
	}
	e.produce(t, kafka.TopicTelemetry, values...)
	e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond})
	testutil.Eventually(t, waitFor, step, func() bool { return e.count(t, schema.TableTelemetry, true) == 4 },
		"4 rows in one second; got %d", e.count(t, schema.TableTelemetry, true))
	// The raw rows can be seen a moment before the rollup view's.
	var bs []Bucket
	testutil.Eventually(t, waitFor, step, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var err error
		if bs, err = Rollup(ctx, e.conn, e.db, Minute, RollupQuery{Site: "CW-RM-1"}); err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, b := range bs {
			n += b.Count
		}
		return n == 4
	}, "4 rows in the minute rollup; got %v", testutil.Lazy(func() any { return bs }))
	if len(bs) != 1 || bs[0].Last != 999 || bs[0].Count != 4 || bs[0].Min != 0 || bs[0].Max != 999 {
		t.Fatalf("unexpected rollup: %+v", bs)
	}
}

func TestWriter_EventsAndDeadLetter(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	ts := time.Date(2026, 3, 1, 9, 0, 0, 123_000_000, time.UTC).UnixMilli()
	ev := func(r *record.Record) []byte {
		b, err := record.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	e.produce(t, kafka.TopicEvents,
		ev(&record.Record{Kind: record.KindEvent, Site: "PO-058091-1", Asset: "locker-1", Received: ts + 5, TS: ts,
			Event: "door_open", Body: json.RawMessage(`{"door":12}`)}),
		ev(&record.Record{Kind: record.KindStatus, Site: "PO-058091-1", Asset: "atm-1", Received: ts + 9, Status: "offline"}),
	)
	raw := []byte("\xff\x00not json")
	var dls [][]byte
	for i, reason := range []string{"payload_invalid_json", "topic_unknown", "payload_too_large"} {
		b, err := record.MarshalDeadLetter(&record.DeadLetter{Received: ts + int64(i), Topic: "polis/v1/PO-058091-1/atm-1/telemetry",
			Reason: reason, Message: "cannot decode payload", Site: "PO-058091-1", Asset: "atm-1", Payload: raw})
		if err != nil {
			t.Fatal(err)
		}
		dls = append(dls, b)
	}
	dls = append(dls, []byte(`{"received":1}`)) // no reason: dead-lettered itself, as bad_record
	e.produce(t, kafka.TopicDeadLetter, dls...)
	r := e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond})

	testutil.Eventually(t, waitFor, step, func() bool {
		return e.count(t, schema.TableEvents, true) == 2 && e.count(t, schema.TableDeadLetter, true) == 4
	}, "events %v/2, dead letters %v/4", testutil.Lazy(func() any { return e.count(t, schema.TableEvents, true) }),
		testutil.Lazy(func() any { return e.count(t, schema.TableDeadLetter, true) }))
	if got := r.metric(t, "polis_storage_records_skipped_total"); got != 1 {
		t.Fatalf("unexpected skipped; got %v; want 1", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var events []struct {
		Asset string    `ch:"asset"`
		TS    time.Time `ch:"ts"`
		Type  string    `ch:"type"`
		Body  string    `ch:"body"`
	}
	if err := e.conn.Select(ctx, &events, "SELECT asset, ts, type, body FROM "+e.db+".events ORDER BY asset"); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 || events[0].Type != "status" || events[0].Body != "offline" ||
		events[1].Type != "door_open" || events[1].Body != `{"door":12}` || events[1].TS.Unix() != ts/1000 {
		t.Fatalf("unexpected events: %+v", events)
	}
	var dl struct {
		Topic   string `ch:"topic"`
		Reason  string `ch:"reason"`
		Payload string `ch:"payload"`
		Site    string `ch:"site"`
	}
	if err := e.conn.QueryRow(ctx, "SELECT topic, reason, payload, site FROM "+e.db+".deadletter WHERE reason = 'topic_unknown'").ScanStruct(&dl); err != nil {
		t.Fatal(err)
	}
	if dl.Payload != string(raw) || dl.Site != "PO-058091-1" || !strings.HasPrefix(dl.Topic, "polis/v1/") {
		t.Fatalf("unexpected dead letter: %+v", dl)
	}
	if err := e.conn.QueryRow(ctx, "SELECT topic, reason, payload, site FROM "+e.db+".deadletter WHERE reason = 'bad_record'").ScanStruct(&dl); err != nil {
		t.Fatal(err)
	}
	if dl.Payload != `{"received":1}` || dl.Topic != kafka.TopicDeadLetter {
		t.Fatalf("unexpected dead letter of the undecodable record: %+v", dl)
	}
}

// A flush happens at MaxRows without waiting for MaxWait; what is left when
// the context ends is flushed and committed before Run returns.
func TestWriter_FlushOnSizeAndShutdown(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	const n = 105 // records, 2 rows each
	e.produce(t, kafka.TopicTelemetry, telemetry(t, 0, n, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC))...)
	r := e.startWriter(t, e.conn, WriterOptions{MaxRows: 10, MaxWait: time.Hour})
	testutil.Eventually(t, waitFor, step, func() bool {
		return r.metric(t, "polis_storage_records_consumed_total") == n && e.count(t, schema.TableTelemetry, true) >= 2*n-20
	}, "size-triggered flushes; consumed %v, rows %d", r.metric(t, "polis_storage_records_consumed_total"), e.count(t, schema.TableTelemetry, true))
	if err := r.stop(t); err != nil {
		t.Fatalf("unexpected error from Run: %v", err)
	}
	if got := e.count(t, schema.TableTelemetry, false); got != 2*n {
		t.Fatalf("unexpected rows after shutdown; got %d; want %d", got, 2*n)
	}
	if got := e.committed(t, kafka.TopicTelemetry); got != n {
		t.Fatalf("unexpected committed offsets after shutdown; got %d; want %d", got, n)
	}
}

// A second writer resumes where the first stopped: nothing lost, nothing twice.
func TestWriter_RestartResumes(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	base := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	e.produce(t, kafka.TopicTelemetry, telemetry(t, 0, 200, base)...)
	r := e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond, Flavor: schema.Legacy})
	testutil.Eventually(t, waitFor, step, func() bool { return e.count(t, schema.TableTelemetry, true) == 400 },
		"first writer's rows; got %d", e.count(t, schema.TableTelemetry, true))
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	e.produce(t, kafka.TopicTelemetry, telemetry(t, 200, 100, base)...)

	// The second writer opens its own connection from a DSN.
	r2 := e.startWriter(t, nil, WriterOptions{DSN: "clickhouse://" + addr, MaxWait: 50 * time.Millisecond})
	defer r2.w.Close()
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 300 },
		"committed offsets; got %d; want 300", e.committed(t, kafka.TopicTelemetry))
	if got := e.count(t, schema.TableTelemetry, false); got != 600 {
		t.Fatalf("unexpected rows as stored; got %d; want 600 (lost or duplicated)", got)
	}
	if got := r2.metric(t, "polis_storage_records_consumed_total"); got != 100 {
		t.Fatalf("second writer consumed %v records; want only the 100 new ones", got)
	}
}

func TestNewWriter_Failure(t *testing.T) {
	f := func(o WriterOptions, want string) {
		t.Helper()
		_, err := NewWriter(o)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("unexpected error; got %v; want %q", err, want)
		}
	}
	brokers := []string{"127.0.0.1:1"}
	f(WriterOptions{DSN: "clickhouse://127.0.0.1:1"}, "no Kafka brokers")
	f(WriterOptions{Brokers: brokers}, "neither Conn nor DSN")
	f(WriterOptions{Brokers: brokers, DSN: "clickhouse://127.0.0.1:1", Database: "a-b"}, "cannot use database name")
	f(WriterOptions{Brokers: brokers, DSN: "clickhouse://127.0.0.1:1", Flavor: 9}, "unknown flavor")
	f(WriterOptions{Brokers: brokers, DSN: "://"}, "cannot parse ClickHouse DSN")
}

func TestRaw_ReadsOneSeriesInOrder(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	var values [][]byte
	for i := range 10 {
		b, err := record.Marshal(&record.Record{Kind: record.KindTelemetry, Site: "PO-001001-1", Asset: "env-1", Received: base.UnixMilli(),
			Points: []record.Point{{Metric: "temp_c", TS: base.Add(time.Duration(i) * 250 * time.Millisecond).UnixMilli(), Value: float64(i)}}})
		if err != nil {
			t.Fatal(err)
		}
		values = append(values, b)
	}
	e.produce(t, kafka.TopicTelemetry, values...)
	e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond})
	testutil.Eventually(t, waitFor, step, func() bool { return e.count(t, schema.TableTelemetry, true) == 10 }, "10 rows stored")
	got, err := Raw(context.Background(), e.conn, e.db, schema.Legacy, "PO-001001-1", "env-1", "temp_c", base.Add(500*time.Millisecond), base.Add(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 6 || got[0].Value != 2 || got[5].Value != 7 || !got[1].TS.Equal(base.Add(750*time.Millisecond)) {
		t.Fatalf("unexpected samples %v", got)
	}
}
