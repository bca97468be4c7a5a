package schema

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/internal/chserver/chtest"
)

// A database made by release v7 (telemetry keyed by time alone, rollups fed
// by materialised views) is rebuilt by migration 8 on the real 18.16
// server, its rows kept; an upgrade interrupted after the first rename
// resumes.
func TestUpgrade_Legacy(t *testing.T) {
	addr := chtest.Shared(t)
	conn := chtest.Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := Detect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if f != Legacy {
		// Only with POLIS_TEST_CLICKHOUSE pointing at a current server: the
		// tests' own server is Debian's 18.16.
		t.Skipf("flavor %v: this test covers the 18.16 (Legacy) upgrade", f)
	}
	for _, interrupted := range []bool{false, true} {
		db := chtest.Database(t, addr)
		v7(t, ctx, conn, db)
		if interrupted {
			exec(t, ctx, conn, "RENAME TABLE "+db+".telemetry TO "+db+".telemetry_pre8")
		}
		applied, err := Apply(ctx, conn, db)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(applied, []int{8}) {
			t.Fatalf("applied %v; want [8]", applied)
		}
		if n := count(t, ctx, conn, "SELECT count() FROM "+db+".telemetry FINAL WHERE koffset = 0"); n != 3 {
			t.Fatalf("interrupted=%v: %d old points in the new telemetry; want 3", interrupted, n)
		}
		if n := count(t, ctx, conn, "SELECT count() FROM "+db+".events FINAL"); n != 1 {
			t.Fatalf("interrupted=%v: %d events after the upgrade; want 1", interrupted, n)
		}
		var sum float64
		var samples uint64
		if err := conn.QueryRow(ctx, "SELECT sum(sum), sum(count) FROM "+db+".telemetry_1m FINAL").Scan(&sum, &samples); err != nil {
			t.Fatal(err)
		}
		if samples != 3 || sum != 21.5+22.5+400 {
			t.Fatalf("interrupted=%v: the 1-minute rollup holds %d points summing to %v; want 3 and %v", interrupted, samples, sum, 21.5+22.5+400)
		}
		var names []string
		rows, err := conn.Query(ctx, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			names = append(names, n)
		}
		rows.Close()
		for _, want := range []string{"telemetry_v7", "telemetry_1m_v7", "telemetry_1h_v7", "events_v7"} {
			if !slices.Contains(names, want) {
				t.Fatalf("interrupted=%v: the old table %s is not kept: %v", interrupted, want, names)
			}
		}
		for _, gone := range []string{"telemetry_1m_mv", "telemetry_1h_mv", "telemetry_pre8"} {
			if slices.Contains(names, gone) {
				t.Fatalf("interrupted=%v: %s is left: %v", interrupted, gone, names)
			}
		}
		if applied, err := Apply(ctx, conn, db); err != nil || len(applied) != 0 {
			t.Fatalf("second Apply: %v, %v", applied, err)
		}
	}
}

// v7 makes db as release v7 did, with three points and an event in it.
func v7(t *testing.T, ctx context.Context, conn driver.Conn, db string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "legacy_v7.sql"))
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range scriptStatements(strings.ReplaceAll(string(b), "polis.", db+".")) {
		st = strings.Replace(st, "CREATE DATABASE IF NOT EXISTS polis", "CREATE DATABASE IF NOT EXISTS "+db, 1)
		exec(t, ctx, conn, st)
	}
	for _, m := range Migrations(Legacy, db, Options{})[:7] {
		if err := record(ctx, conn, db, m); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Now().UTC().Truncate(time.Minute).Add(-time.Hour)
	batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".telemetry (site, asset, metric, ts, ts_ms, value, received, late)")
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range []float64{21.5, 22.5, 400} {
		metric := "temp_c"
		if v == 400 {
			metric = "co2_ppm"
		}
		if err := batch.Append("PO-001002-1", "env-1", metric, at.Add(time.Duration(i)*time.Second), uint16(0), v, at, uint8(0)); err != nil {
			t.Fatal(err)
		}
	}
	if err := batch.Send(); err != nil {
		t.Fatal(err)
	}
	ev, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".events (site, asset, ts, ts_ms, type, body, received)")
	if err != nil {
		t.Fatal(err)
	}
	if err := ev.Append("PO-001002-1", "env-1", at, uint16(5), "status", "online", at); err != nil {
		t.Fatal(err)
	}
	if err := ev.Send(); err != nil {
		t.Fatal(err)
	}
}

func exec(t *testing.T, ctx context.Context, conn driver.Conn, sql string) {
	t.Helper()
	if err := conn.Exec(ctx, sql); err != nil {
		t.Fatalf("%v\nin: %s", err, sql)
	}
}

func count(t *testing.T, ctx context.Context, conn driver.Conn, sql string) uint64 {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(ctx, sql).Scan(&n); err != nil {
		t.Fatalf("%v\nin: %s", err, sql)
	}
	return n
}
