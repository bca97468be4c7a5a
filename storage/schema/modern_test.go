package schema

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/polis-platform/polis/internal/chserver/chdbtest"
)

// The Modern branch, executed on chDB (the ClickHouse 26.x engine): the
// golden script as it stands, then every statement Apply runs over it
// (idempotent), the ledger's INSERT and query, and what the tables became.
func TestModern_ChDB(t *testing.T) {
	s := chdbtest.Open(t)
	v := s.MustRows(t, "SELECT version() AS v")[0].String("v")
	if f, err := FlavorFor(v); err != nil || f != Modern {
		t.Fatalf("chDB %s: flavor %v, %v; want modern", v, f, err)
	}

	golden, err := os.ReadFile(filepath.Join("testdata", "modern.sql"))
	if err != nil {
		t.Fatal(err)
	}
	script := scriptStatements(string(golden))
	if want := len(Statements(Modern, DefaultDatabase, Options{})); len(script) != want {
		t.Fatalf("testdata/modern.sql has %d statements; want %d", len(script), want)
	}
	s.Exec(t, script...)
	s.Exec(t, Statements(Modern, DefaultDatabase, Options{})...)

	// Two instances migrating at once both record every version.
	for range 2 {
		for _, m := range Migrations(Modern, DefaultDatabase, Options{}) {
			s.Exec(t, RecordSQL(DefaultDatabase)+" VALUES ("+lit(t, uint32(m.Version))+", "+lit(t, m.Name)+", now())")
		}
	}
	if got := s.Types(t, AppliedVersionsSQL(DefaultDatabase)); !slices.Equal(got, []string{"version UInt32"}) {
		t.Fatalf("AppliedVersions scans a uint32; the query returns %q", got)
	}
	var versions []int64
	for _, r := range s.MustRows(t, AppliedVersionsSQL(DefaultDatabase)) {
		versions = append(versions, r.Int("version"))
	}
	if want := []int64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(versions, want) {
		t.Fatalf("unexpected applied versions; got %v; want %v", versions, want)
	}

	engines := map[string]string{}
	for _, r := range s.MustRows(t, "SELECT name, engine FROM system.tables WHERE database = ? ORDER BY name", DefaultDatabase) {
		engines[r.String("name")] = r.String("engine")
	}
	wantEngines := map[string]string{
		"alerts": "ReplacingMergeTree", "deadletter": "ReplacingMergeTree", "events": "ReplacingMergeTree",
		"lifecycle_events": "ReplacingMergeTree", "schema_migrations": "ReplacingMergeTree",
		"telemetry": "ReplacingMergeTree", "telemetry_1h": "ReplacingMergeTree",
		"telemetry_1m": "ReplacingMergeTree", "twin_snapshots": "ReplacingMergeTree",
	}
	if len(engines) != len(wantEngines) {
		t.Fatalf("unexpected tables; got %v; want %v", engines, wantEngines)
	}
	for name, e := range wantEngines {
		if engines[name] != e {
			t.Fatalf("unexpected engine of %s; got %q; want %q (all: %v)", name, engines[name], e, engines)
		}
	}

	// The types and codecs the server made of the DDL.
	cols := map[string]string{}
	for _, r := range s.MustRows(t, "SELECT table, name, type, compression_codec FROM system.columns WHERE database = ?", DefaultDatabase) {
		cols[r.String("table")+"."+r.String("name")] = strings.TrimSpace(r.String("type") + " " + r.String("compression_codec"))
	}
	for col, want := range map[string]string{
		"telemetry.site":       "LowCardinality(String)",
		"telemetry.ts":         "DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))",
		"telemetry.value":      "Float64 CODEC(Gorilla(8), ZSTD(1))",
		"telemetry.received":   "DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1))",
		"telemetry_1m.bucket":  "DateTime('UTC') CODEC(DoubleDelta, ZSTD(1))",
		"telemetry_1m.last_ts": "DateTime64(3, 'UTC')",
		"telemetry_1h.upto":    "UInt64",
		"telemetry.koffset":    "UInt64 CODEC(Delta(8), ZSTD(1))",
		"events.body":          "String CODEC(ZSTD(3))",
		"alerts.ts":            "DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))",
		"alerts.fired_at":      "DateTime('UTC')",
		"lifecycle_events.ts":  "DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1))",
		"twin_snapshots.data":  "String CODEC(ZSTD(3))",
		"deadletter.received":  "DateTime64(3, 'UTC') CODEC(Delta(8), ZSTD(1))",
	} {
		if cols[col] != want {
			t.Fatalf("unexpected column %s; got %q; want %q", col, cols[col], want)
		}
	}

	// Retention: the TTL drops whole parts; Options reach the tables.
	ttl := func(db, table string) string {
		t.Helper()
		rows := s.MustRows(t, "SELECT engine_full FROM system.tables WHERE database = ? AND name = ?", db, table)
		if len(rows) != 1 {
			t.Fatalf("no table %s.%s", db, table)
		}
		return rows[0].String("engine_full")
	}
	for table, want := range map[string]string{
		TableTelemetry:  "TTL toDateTime(ts) + toIntervalDay(400) SETTINGS ttl_only_drop_parts = 1",
		TableEvents:     "TTL toDateTime(ts) + toIntervalDay(400) SETTINGS ttl_only_drop_parts = 1",
		TableDeadLetter: "TTL toDateTime(received) + toIntervalDay(30) SETTINGS ttl_only_drop_parts = 1",
	} {
		if got := ttl(DefaultDatabase, table); !strings.Contains(got, want) {
			t.Fatalf("unexpected engine of %s; got %q; want it to contain %q", table, got, want)
		}
	}
	for _, table := range []string{TableLifecycle, TableAlerts, TableSnapshots, TableTelemetry1m} {
		if got := ttl(DefaultDatabase, table); strings.Contains(got, "TTL") {
			t.Fatalf("%s expires rows: %q", table, got)
		}
	}
	s.Exec(t, Statements(Modern, "kept", Options{RetentionDays: -1, DeadLetterRetentionDays: 7})...)
	if got := ttl("kept", TableTelemetry); strings.Contains(got, "TTL") {
		t.Fatalf("telemetry expires although retention is off: %q", got)
	}
	if got := ttl("kept", TableDeadLetter); !strings.Contains(got, "toIntervalDay(7)") {
		t.Fatalf("unexpected dead-letter retention: %q", got)
	}
}

// scriptStatements splits a golden script into its statements.
func scriptStatements(script string) []string {
	var out []string
	for _, part := range strings.Split(script, ";\n") {
		var lines []string
		for _, l := range strings.Split(part, "\n") {
			if !strings.HasPrefix(strings.TrimSpace(l), "--") {
				lines = append(lines, l)
			}
		}
		if st := strings.TrimSpace(strings.Join(lines, "\n")); st != "" {
			out = append(out, st)
		}
	}
	return out
}

func lit(t *testing.T, v any) string {
	t.Helper()
	s, err := chdbtest.Literal(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
