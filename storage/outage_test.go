package storage

import (
	"context"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

// ClickHouse goes away mid-stream: the writer keeps the batch, commits
// nothing it has not stored, and once the server is back every row lands
// exactly once.
func TestWriter_ClickHouseOutage(t *testing.T) {
	srv := chtest.Private(t)
	e := newEnv(t, srv.NativeAddr(), schema.DefaultDatabase)
	base := time.Date(2026, 3, 4, 8, 0, 0, 0, time.UTC)
	r := e.startWriter(t, e.conn, WriterOptions{MaxWait: 50 * time.Millisecond})

	e.produce(t, kafka.TopicTelemetry, telemetry(t, 0, 100, base)...)
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 100 },
		"committed before the outage; got %d", e.committed(t, kafka.TopicTelemetry))
	if got := e.count(t, schema.TableTelemetry, true); got != 200 {
		t.Fatalf("unexpected rows before the outage; got %d; want 200", got)
	}

	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	e.produce(t, kafka.TopicTelemetry, telemetry(t, 100, 150, base)...)
	testutil.Eventually(t, waitFor, step, func() bool {
		return r.metric(t, "polis_storage_insert_errors_total") >= 2 && r.metric(t, "polis_storage_clickhouse_up") == 0
	}, "insert errors while ClickHouse is down; errors %v", r.metric(t, "polis_storage_insert_errors_total"))
	if got := e.committed(t, kafka.TopicTelemetry); got != 100 {
		t.Fatalf("offsets moved while ClickHouse was down; got %d; want 100", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := srv.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, waitFor, step, func() bool { return e.committed(t, kafka.TopicTelemetry) == 250 },
		"committed after the outage; got %d", e.committed(t, kafka.TopicTelemetry))
	if got := e.count(t, schema.TableTelemetry, false); got != 500 {
		t.Fatalf("unexpected rows after the outage; got %d; want 500 (lost or duplicated)", got)
	}
	if got := r.metric(t, "polis_storage_clickhouse_up"); got != 1 {
		t.Fatalf("unexpected storage_clickhouse_up after recovery; got %v", got)
	}
	bs, err := Rollup(ctx, e.conn, e.db, Hour, RollupQuery{})
	if err != nil {
		t.Fatal(err)
	}
	var n uint64
	for _, b := range bs {
		n += b.Count
	}
	if n != 500 {
		t.Fatalf("unexpected rollup count after the outage; got %d; want 500", n)
	}
}
