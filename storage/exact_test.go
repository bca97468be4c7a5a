package storage

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

// Answers lost between ClickHouse and the writer (the server stored the
// rows, the writer saw a broken connection and sent them again): the raw
// table and every rollup still count each point once.
func TestWriter_LostAnswers_RawAndRollupsExact(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	proxy := testutil.NewCutProxy(t, addr)
	proxy.MinRequest = 1024 // a batch's data, not a query or a ping
	e.startWriter(t, chtest.Conn(t, proxy.Addr()), WriterOptions{MaxWait: 50 * time.Millisecond})

	base := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Hour).Add(59 * time.Minute)
	const records, perRecord = 1200, 2
	proxy.Cut(6)
	for i := 0; i < records; i += 100 {
		e.produce(t, kafka.TopicTelemetry, telemetry(t, i, 100, base)...)
		time.Sleep(30 * time.Millisecond) // several batches, so cuts hit different tables
	}
	const points = records * perRecord
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return e.count(t, schema.TableTelemetry, true) == points },
		"%d points stored; have %v", points, testutil.Lazy(func() any { return e.count(t, schema.TableTelemetry, true) }))
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return e.committed(t, kafka.TopicTelemetry) == records },
		"every record committed")
	if proxy.Cuts() == 0 {
		t.Fatal("no answer was lost: the test did not test anything")
	}
	if n := e.count(t, schema.TableTelemetry, false); n <= points {
		t.Logf("raw rows before merges: %d (lost answers: %d)", n, proxy.Cuts())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, res := range []Resolution{Minute, Hour} {
		bs, err := Rollup(ctx, e.conn, e.db, res, RollupQuery{})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		for _, b := range bs {
			n += b.Count
		}
		if n != points {
			t.Fatalf("resolution %d counts %d points; want %d (lost answers: %d)", res, n, points, proxy.Cuts())
		}
	}
	if n := e.count(t, schema.TableTelemetry, true); n != points {
		t.Fatalf("raw: %d points with FINAL; want %d", n, points)
	}
}

// A record ClickHouse cannot take (a time beyond what its column holds)
// or the writer cannot decode goes to the dead-letter table; the records
// around it are stored and the partition moves on.
func TestWriter_PoisonRecordsAreDeadLettered(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Minute)
	good := telemetry(t, 0, 40, base)
	poison := []byte(`{"v":1,"kind":"telemetry","site":"PO-001001-0","asset":"atm-0","recv":` +
		itoa(base.UnixMilli()) + `,"points":[{"m":"temp_c","t":` + itoa(time.Date(2200, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()) + `,"v":1}]}`)
	e.produce(t, kafka.TopicTelemetry, good[:20]...)
	e.produce(t, kafka.TopicTelemetry, poison, []byte(`{"v":1,"kind":"telemetry","site":"PO-001001-0"`))
	e.produce(t, kafka.TopicTelemetry, good[20:]...)
	r := e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond})

	const points = 40 * 2
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return e.count(t, schema.TableTelemetry, true) == points },
		"good points stored around the poison; have %v", testutil.Lazy(func() any { return e.count(t, schema.TableTelemetry, true) }))
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return e.count(t, schema.TableDeadLetter, true) == 2 },
		"two dead letters; have %v", testutil.Lazy(func() any { return e.count(t, schema.TableDeadLetter, true) }))
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return e.committed(t, kafka.TopicTelemetry) == 42 },
		"every record committed")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rows, err := e.conn.Query(ctx, "SELECT reason, topic, site FROM "+e.db+".deadletter FINAL ORDER BY reason")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var reason, topic, site string
		if err := rows.Scan(&reason, &topic, &site); err != nil {
			t.Fatal(err)
		}
		got = append(got, reason+" "+topic+" "+site)
	}
	rows.Close()
	want := []string{"bad_record polis.telemetry.v1 ", "storage_refused polis.telemetry.v1 PO-001001-0"} // an undecodable record names no site
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("dead letters %q; want %q", got, want)
	}
	if n := r.metric(t, "polis_storage_rows_refused_total"); n != 1 {
		t.Fatalf("rows refused: %v; want 1", n)
	}
	bs, err := Rollup(ctx, e.conn, e.db, Minute, RollupQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, b := range bs {
		n += b.Count
	}
	if n != points {
		t.Fatalf("the 1-minute rollup counts %d points; want %d (the refused one left out)", n, points)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// insertSplitting finds the one row refused among many, in few inserts, and
// stores the rest.
func TestInsertSplitting_FindsTheRefusedRow(t *testing.T) {
	addr := chtest.Shared(t)
	e := newEnv(t, addr, chtest.Database(t, addr))
	b := newBatch(schema.Legacy)
	for i, v := range telemetry(t, 0, 50, time.Now().Add(-time.Hour)) {
		var r record.Record
		if err := record.Unmarshal(v, &r); err != nil {
			t.Fatal(err)
		}
		b.tel.add(&r, 0, int64(i))
	}
	tb := b.tel
	// The driver refuses any insert holding row 37 (as it would a value it
	// cannot encode); the others reach the real server.
	inserts := 0
	insert := func(ctx context.Context, s table) error {
		inserts++
		if sp := s.(span); sp.lo <= 37 && 37 < sp.hi {
			return &appendError{errors.New("cannot encode row 37")}
		}
		return insertTable(ctx, e.conn, e.db, s)
	}
	var bad []int
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := splitInsert(ctx, insert, tb, 0, tb.len(), func(i int, err error) { bad = append(bad, i) }); err != nil {
		t.Fatal(err)
	}
	if len(bad) != 1 || bad[0] != 37 {
		t.Fatalf("refused rows %v; want [37]", bad)
	}
	if inserts > 2*8 {
		t.Fatalf("%d inserts to find one row of %d", inserts, tb.len())
	}
	// A failure that is not about the rows is not split: it is retried.
	if err := splitInsert(ctx, func(context.Context, table) error { return errors.New("connection reset") }, tb, 0, tb.len(),
		func(i int, err error) { t.Fatalf("row %d taken for refused after a network error", i) }); err == nil {
		t.Fatal("a network error was swallowed")
	}
	if n := e.count(t, schema.TableTelemetry, true); n != uint64(tb.len()-1) {
		t.Fatalf("%d rows stored; want %d", n, tb.len()-1)
	}
}
