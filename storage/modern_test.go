package storage

import (
	"fmt"
	"maps"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chdbtest"
	"github.com/polis-platform/polis/storage/schema"
)

// The queries of this package and of README.md on the Modern schema,
// executed on chDB (the ClickHouse 26.x engine). Rows go in as the writer
// sends them: its batch's columns, one INSERT per table.

// modernDB opens a chDB session with the Modern schema applied to database
// polis, as schema.Apply would.
func modernDB(t *testing.T) (*chdbtest.Session, string) {
	t.Helper()
	s := chdbtest.Open(t)
	db := schema.DefaultDatabase
	s.Exec(t, schema.Statements(schema.Modern, db, schema.Options{})...)
	return s, db
}

// insertModern inserts a batch as the writer does: one INSERT per table,
// naming the writer's columns, the values the writer would send, then the
// rollup rows the batch changes (rs: the writer's rollups, whose cache
// holds what is stored; a key not cached counts as not stored).
func insertModern(t *testing.T, s *chdbtest.Session, db string, b *batch, rs []*rollup) {
	t.Helper()
	tables := b.tables
	for _, r := range rs {
		r.reset()
		for k := range r.missing(b.tel) {
			r.cache[k] = rollupRow{}
		}
		r.mergeBatch(b.tel)
		r.lay()
		tables = append(tables, r)
	}
	insertTables(t, s, db, tables)
	for _, r := range rs {
		r.commit()
	}
}

func insertTables(t *testing.T, s *chdbtest.Session, db string, tables []table) {
	t.Helper()
	for _, tb := range tables {
		if tb.len() == 0 {
			continue
		}
		cols := tb.values()
		var rows []string
		for i := range tb.len() {
			vals := make([]string, len(cols))
			for j, c := range cols {
				lit, err := chdbtest.Literal(reflect.ValueOf(c).Index(i).Interface())
				if err != nil {
					t.Fatalf("column %s of %s: %v", tb.columns()[j], tb.name(), err)
				}
				vals[j] = lit
			}
			rows = append(rows, "("+strings.Join(vals, ", ")+")")
		}
		s.Exec(t, insertSQL(db, tb)+" VALUES "+strings.Join(rows, ", "))
	}
}

// types checks that a query's columns have the ClickHouse types the
// function running it scans into Go values (clickhouse-go refuses, say, a
// UInt32 for a *uint64).
func types(t *testing.T, s *chdbtest.Session, want []string, sql string, args []any) {
	t.Helper()
	if got := s.Types(t, sql, args...); !slices.Equal(got, want) {
		t.Fatalf("unexpected result columns; got %q; want %q\nin:\n%s", got, want, sql)
	}
}

// query binds args into sql and runs it.
func query(t *testing.T, s *chdbtest.Session, sql string, args []any) []chdbtest.Row {
	t.Helper()
	return s.MustRows(t, sql, args...)
}

type point struct {
	site, asset, metric string
	ts                  time.Time
	value               float64
}

// telemetryBatch puts points into a Modern batch, one record each.
func telemetryBatch(ps []point) *batch {
	b := newBatch(schema.Modern)
	for i, p := range ps {
		b.tel.add(&record.Record{V: 1, Kind: record.KindTelemetry, Site: p.site, Asset: p.asset,
			Received: p.ts.Add(time.Second).UnixMilli(),
			Points:   []record.Point{{Metric: p.metric, TS: p.ts.UnixMilli(), Value: p.value}}}, 0, int64(i))
	}
	return b
}

// modernPoints are some minutes of telemetry ending about 20 minutes ago
// (the README's example reads the last hour): milliseconds that share a
// second, values out of time order, two sites, an asset type with an
// underscore and one that LIKE's _ would match.
func modernPoints() (base time.Time, ps []point) {
	base = time.Now().UTC().Add(-25 * time.Minute).Truncate(time.Minute)
	at := func(ms int64) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }
	co2 := func(site, asset string, ms int64, v float64) point {
		return point{site, asset, "co2_ppm", at(ms), v}
	}
	ps = []point{
		co2("PO-001002-1", "env-1", 100, 400),
		co2("PO-001002-1", "env-1", 10_750, 430),
		co2("PO-001002-1", "env-1", 10_250, 420), // same second, earlier, inserted later
		co2("PO-001002-1", "env-1", 59_999, 410),
		co2("PO-001002-1", "env-1", 60_000, 500),
		co2("PO-001002-1", "env-1", 61_001, 480),
		co2("PO-001002-1", "env-1", 150_000, 450),
		{"PO-001002-1", "env-1", "temp_c", at(5_000), 21.5},
		{"PO-001002-1", "env-1", "temp_c", at(65_000), 22.25},
		co2("PO-001002-1", "air_q-1", 20_000, 390),
		co2("PO-001002-1", "airxq-1", 21_000, 395),
		co2("PO-002003-1", "env-1", 30_500, 610),
		co2("PO-002003-1", "env-1", 90_500, 620),
	}
	return base, ps
}

type bucketAgg struct {
	min, max, sum, last float64
	count               int
	lastTS              time.Time
}

// rollupOf computes in Go what the rollup views keep, per series and bucket.
func rollupOf(ps []point, bucket func(time.Time) time.Time) map[[4]string]*bucketAgg {
	out := map[[4]string]*bucketAgg{}
	for _, p := range ps {
		k := [4]string{p.site, p.asset, p.metric, bucket(p.ts).Format(time.DateTime)}
		a := out[k]
		if a == nil {
			a = &bucketAgg{min: p.value, max: p.value}
			out[k] = a
		}
		a.min, a.max, a.sum = min(a.min, p.value), max(a.max, p.value), a.sum+p.value
		a.count++
		if !p.ts.Before(a.lastTS) {
			a.last, a.lastTS = p.value, p.ts
		}
	}
	return out
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// checkRollup compares a rollupSQL answer with rollupOf, counts times dup.
func checkRollup(t *testing.T, rows []chdbtest.Row, want map[[4]string]*bucketAgg, dup int) {
	t.Helper()
	if len(rows) != len(want) {
		t.Fatalf("unexpected rollup; got %d buckets %v; want %d", len(rows), rows, len(want))
	}
	prev := ""
	for _, r := range rows {
		k := [4]string{r.String("site"), r.String("asset"), r.String("metric"), r.String("bucket")}
		key := strings.Join(k[:], "|")
		if key <= prev {
			t.Fatalf("rollup not ordered by series and bucket: %q after %q", key, prev)
		}
		prev = key
		a := want[k]
		if a == nil {
			t.Fatalf("unexpected bucket %v", k)
		}
		if !near(r.Float("min_value"), a.min) || !near(r.Float("max_value"), a.max) ||
			!near(r.Float("avg_value"), a.sum/float64(a.count)) || r.Int("samples") != int64(a.count*dup) ||
			!near(r.Float("last_value"), a.last) {
			t.Fatalf("unexpected bucket %v; got %v; want min %v max %v avg %v count %d last %v",
				k, r, a.min, a.max, a.sum/float64(a.count), a.count*dup, a.last)
		}
	}
}

func TestModern_Telemetry(t *testing.T) {
	s, db := modernDB(t)
	base, ps := modernPoints()
	rs := newRollups(schema.Modern)
	insertModern(t, s, db, telemetryBatch(ps), rs)

	count := func(site string) int64 {
		t.Helper()
		q, args := countSQL(db, site)
		return query(t, s, q, args)[0].Int("count()")
	}
	if n := count(""); n != int64(len(ps)) {
		t.Fatalf("unexpected count; got %d; want %d", n, len(ps))
	}
	q, args := countSQL(db, "PO-002003-1")
	types(t, s, []string{"count() UInt64"}, q, args) // Count: *uint64
	if n := count("PO-002003-1"); n != 2 {
		t.Fatalf("unexpected count of PO-002003-1; got %d; want 2", n)
	}

	// Raw: one series, whole seconds around the range, by time, milliseconds
	// kept.
	raw := func(from, to time.Time) (ms []int64, vs []float64) {
		t.Helper()
		q, args := rawSQL(db, schema.Modern, "PO-001002-1", "env-1", "co2_ppm", from, to)
		for _, r := range query(t, s, q, args) {
			ms = append(ms, r.Int("t")-base.UnixMilli())
			vs = append(vs, r.Float("value"))
		}
		return ms, vs
	}
	q, args = rawSQL(db, schema.Modern, "PO-001002-1", "env-1", "co2_ppm", base, base.Add(time.Hour))
	types(t, s, []string{"t UInt64", "value Float64"}, q, args) // Raw: *uint64, *float64
	ms, vs := raw(base.Add(10500*time.Millisecond), base.Add(61*time.Second))
	if want := []int64{10_250, 10_750, 59_999, 60_000, 61_001}; !slices.Equal(ms, want) {
		t.Fatalf("unexpected raw times (ms after base); got %v; want %v", ms, want)
	}
	if want := []float64{420, 430, 410, 500, 480}; !slices.Equal(vs, want) {
		t.Fatalf("unexpected raw values; got %v; want %v", vs, want)
	}

	minute := func(ts time.Time) time.Time { return ts.Truncate(time.Minute) }
	hour := func(ts time.Time) time.Time { return ts.Truncate(time.Hour) }
	rollup := func(res Resolution, q RollupQuery) []chdbtest.Row {
		t.Helper()
		sql, args, err := rollupSQL(db, res, q)
		if err != nil {
			t.Fatal(err)
		}
		return query(t, s, sql, args)
	}
	// Rollup: the ch tags and types of Bucket.
	sql, args, err := rollupSQL(db, Hour, RollupQuery{Site: "x", Asset: "y", Metric: "z", From: base, To: base.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	types(t, s, []string{"site LowCardinality(String)", "asset LowCardinality(String)", "metric LowCardinality(String)",
		"bucket DateTime('UTC')", "min_value Float64", "max_value Float64", "avg_value Float64", "samples UInt64",
		"last_value Float64"}, sql, args)
	checkRollup(t, rollup(Minute, RollupQuery{}), rollupOf(ps, minute), 1)
	checkRollup(t, rollup(Hour, RollupQuery{}), rollupOf(ps, hour), 1)
	var env1 []point
	for _, p := range ps {
		if p.site == "PO-001002-1" && p.asset == "env-1" && p.metric == "co2_ppm" && !p.ts.Before(base.Add(time.Minute)) && p.ts.Before(base.Add(2*time.Minute)) {
			env1 = append(env1, p)
		}
	}
	checkRollup(t, rollup(Minute, RollupQuery{Site: "PO-001002-1", Asset: "env-1", Metric: "co2_ppm",
		From: base.Add(time.Minute), To: base.Add(2 * time.Minute)}), rollupOf(env1, minute), 1)

	// The writer's own reads of the rollups: a row read back to merge into,
	// and a partition's horizon.
	for _, r := range rs {
		b := base.Truncate(time.Duration(r.width) * time.Second)
		rows := query(t, s, r.loadSQL(db, "?"), []any{b.Unix(), "PO-002003-1"})
		if len(rows) == 0 {
			t.Fatalf("%s: no row read back for PO-002003-1 at %s", r.table, b)
		}
		if rows[0].Int("count") == 0 || rows[0].Int("upto") == 0 {
			t.Fatalf("%s: row read back without its count or position: %v", r.table, rows[0])
		}
		h := query(t, s, r.horizonSQL(db), []any{0, base.Add(-time.Hour).Unix()})
		if len(h) != 1 || h[0].String("max(bucket)") == "" {
			t.Fatalf("%s: horizon query answered %v", r.table, h)
		}
	}

	// Backtest scan: every series in time order; filters; LIKE's _ escaped.
	scan := func(q ScanQuery) (out []string) {
		t.Helper()
		sql, args := scanSQL(db, schema.Modern, q)
		prev := int64(0)
		for _, r := range query(t, s, sql, args) {
			if r.Int("t") < prev {
				t.Fatalf("scan not in time order: %v", r)
			}
			prev = r.Int("t")
			out = append(out, r.String("site")+"/"+r.String("asset")+"/"+r.String("metric")+"="+r.String("value"))
		}
		return out
	}
	sql, args = scanSQL(db, schema.Modern, ScanQuery{From: base, To: base.Add(time.Hour), Sites: []string{"a"}, AssetTypes: []string{"b"}, Metrics: []string{"c"}})
	types(t, s, []string{"site LowCardinality(String)", "asset LowCardinality(String)", "metric LowCardinality(String)",
		"t UInt64", "value Float64"}, sql, args) // Scan: *string x 3, *uint64, *float64
	if got := scan(ScanQuery{From: base, To: base.Add(time.Hour)}); len(got) != len(ps) {
		t.Fatalf("unexpected full scan; got %d points %v; want %d", len(got), got, len(ps))
	}
	got := scan(ScanQuery{From: base, To: base.Add(time.Hour), Sites: []string{"PO-001002-1"}, AssetTypes: []string{"air_q"}, Metrics: []string{"co2_ppm"}})
	if want := []string{"PO-001002-1/air_q-1/co2_ppm=390"}; !slices.Equal(got, want) {
		t.Fatalf("unexpected filtered scan; got %v; want %v", got, want)
	}
	got = scan(ScanQuery{From: base.Add(30 * time.Second), To: base.Add(time.Hour), Sites: []string{"PO-002003-1", "PO-009999-1"}, AssetTypes: []string{"env", "gw"}, Limit: 1})
	if want := []string{"PO-002003-1/env-1/co2_ppm=610"}; !slices.Equal(got, want) {
		t.Fatalf("unexpected limited scan; got %v; want %v", got, want)
	}

	// A batch whose answer was lost is sent again with the same rollup rows;
	// a batch replayed after a crash merges nothing into rows that hold it.
	// FINAL collapses both copies: every count stays exact.
	again := telemetryBatch(ps)
	insertModern(t, s, db, again, nil) // raw again
	lost := newRollups(schema.Modern)
	for _, r := range lost {
		for k := range r.missing(again.tel) {
			r.cache[k] = rollupRow{}
		}
		r.mergeBatch(again.tel)
		r.lay()
		insertTables(t, s, db, []table{r}) // the same rows as the first insert
	}
	insertModern(t, s, db, telemetryBatch(ps), rs) // replayed: nothing to merge
	for table, want := range map[string]int{"telemetry_1m": len(rollupOf(ps, minute)), "telemetry_1h": len(rollupOf(ps, hour))} {
		if rows := s.MustRows(t, "SELECT count() AS n FROM "+db+"."+table); rows[0].Int("n") != int64(2*want) {
			t.Fatalf("%s: %v rows before merging; want %d (the first insert and the re-sent one, nothing from the replay)", table, rows, 2*want)
		}
	}
	if n := count(""); n != int64(len(ps)) {
		t.Fatalf("unexpected count after a re-delivery; got %d; want %d", n, len(ps))
	}
	if rows := s.MustRows(t, "SELECT count() AS n FROM "+db+".telemetry"); rows[0].Int("n") != int64(3*len(ps)) {
		t.Fatalf("the re-deliveries were not stored before merging: %v", rows)
	}
	if ms2, vs2 := raw(base.Add(10500*time.Millisecond), base.Add(61*time.Second)); !slices.Equal(ms2, ms) || !slices.Equal(vs2, vs) {
		t.Fatalf("raw read shows duplicates; got %v %v; want %v %v", ms2, vs2, ms, vs)
	}
	checkRollup(t, rollup(Minute, RollupQuery{}), rollupOf(ps, minute), 1)
	checkRollup(t, rollup(Hour, RollupQuery{}), rollupOf(ps, hour), 1)
	s.Exec(t, "OPTIMIZE TABLE "+db+".telemetry FINAL", "OPTIMIZE TABLE "+db+".telemetry_1m FINAL")
	if rows := s.MustRows(t, "SELECT count() AS n FROM "+db+".telemetry"); rows[0].Int("n") != int64(len(ps)) {
		t.Fatalf("the re-delivery did not collapse on merge: %v", rows)
	}
	if rows := s.MustRows(t, "SELECT count() AS n FROM "+db+".telemetry_1m"); rows[0].Int("n") != int64(len(rollupOf(ps, minute))) {
		t.Fatalf("the rollup rows did not collapse on merge: %v", rows)
	}
	checkRollup(t, rollup(Minute, RollupQuery{}), rollupOf(ps, minute), 1)
}

// alertChanges: too_hot fires twice on one asset and is resolved after 300 s
// and 120 s (MTTR 210 s), acked once; co2_high fires and stays open.
func alertChanges(t0 time.Time) []record.AlertChange {
	ms := func(d time.Duration) int64 { return t0.Add(d).UnixMilli() }
	hot := func(kind string, at time.Duration, occ int, firedAt time.Duration) record.AlertChange {
		a := record.AlertChange{V: 1, Kind: kind, At: ms(at), Deliver: true, Fingerprint: "fp-hot", RuleID: "too_hot",
			Site: "PO-001002-1", Asset: "env-1", State: "firing", Severity: "warning", Summary: "too hot: 31.5 °C",
			Labels: map[string]string{"team": "facility"}, Value: 31.5, ActiveAt: ms(firedAt - 30*time.Second),
			FiredAt: ms(firedAt), Occurrence: occ}
		switch kind {
		case "resolved":
			a.State, a.ResolvedAt = "resolved", ms(at)
		case "acked":
			a.AckedBy, a.Assignee = "ops", "mario.rossi"
		}
		return a
	}
	return []record.AlertChange{
		hot("fired", 0, 1, 0),
		hot("acked", 60*time.Second, 1, 0),
		hot("resolved", 300*time.Second, 1, 0),
		hot("fired", 1000*time.Second, 2, 1000*time.Second),
		hot("resolved", 1120*time.Second, 2, 1000*time.Second),
		{V: 1, Kind: "fired", At: ms(500 * time.Second), Deliver: false, Level: 1, Fingerprint: "fp-co2", RuleID: "co2_high",
			Site: "PO-002003-1", Asset: "env-1", State: "firing", Severity: "critical", Summary: "CO2 1500 ppm",
			Value: 1500, ActiveAt: ms(450 * time.Second), FiredAt: ms(500 * time.Second), Occurrence: 1},
	}
}

func TestModern_Alerts(t *testing.T) {
	s, db := modernDB(t)
	t0 := time.Now().UTC().Add(-2 * time.Hour).Truncate(time.Second).Add(123 * time.Millisecond)
	b := newBatch(schema.Modern)
	for _, a := range alertChanges(t0) {
		b.al.add(&a)
	}
	insertModern(t, s, db, b, nil)

	// What the platform's tests ask of the history.
	for q, want := range map[string]int64{
		"SELECT count() AS n FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = 'fired' AND delivered = 1":    2,
		"SELECT count() AS n FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = 'acked' AND acked_by = 'ops'": 1,
		"SELECT count() AS n FROM %s.alerts FINAL WHERE delivered = 0 AND level = 1":                           1,
	} {
		if n := s.MustRows(t, strings.Replace(q, "%s", db, 1))[0].Int("n"); n != want {
			t.Fatalf("%s: got %d; want %d", q, n, want)
		}
	}
	rows := s.MustRows(t, "SELECT toUnixTimestamp64Milli(ts) AS ts, fired_at, resolved_at, labels, assignee, occurrence FROM "+db+
		".alerts WHERE fingerprint = 'fp-hot' AND kind = 'resolved' ORDER BY ts")
	if len(rows) != 2 || rows[0].Int("ts") != t0.Add(300*time.Second).UnixMilli() ||
		rows[0].String("fired_at") != t0.Format(time.DateTime) || rows[0].String("resolved_at") != t0.Add(300*time.Second).Format(time.DateTime) ||
		rows[0].String("labels") != `{"team":"facility"}` || rows[1].Int("occurrence") != 2 {
		t.Fatalf("unexpected resolved rows: %v", rows)
	}
}

// Every SQL example of README.md runs on the Modern schema; the CO2 and
// MTTR examples give the numbers the rows make.
func TestModern_READMEQueries(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(readme), -1)
	if len(blocks) < 3 {
		t.Fatalf("README.md has %d sql blocks; want at least the dead-letter, CO2 and MTTR examples", len(blocks))
	}
	// and the queries given to clickhouse-client
	clients := regexp.MustCompile(`clickhouse-client[^"\n]* -q "([^"]+)"`).FindAllStringSubmatch(string(readme), -1)
	if len(clients) == 0 {
		t.Fatal("README.md has no clickhouse-client -q example")
	}
	blocks = append(blocks, clients...)

	s, db := modernDB(t)
	if db != "polis" {
		t.Fatalf("the examples name database polis; the test uses %s", db)
	}
	base, ps := modernPoints()
	b := telemetryBatch(ps)
	for _, a := range alertChanges(time.Now().UTC().Add(-3 * time.Hour)) {
		b.al.add(&a)
	}
	b.dl.add(&record.DeadLetter{Received: base.UnixMilli(), Topic: "polis/v1/PO-001002-1/env-1/telemetry", Reason: "bad_json",
		Message: "payload is not JSON", Site: "PO-001002-1", Asset: "env-1", Payload: []byte("{oops")})
	insertModern(t, s, db, b, newRollups(schema.Modern))

	seen := map[string]bool{}
	for _, m := range blocks {
		sql := strings.TrimSpace(m[1])
		rows := s.MustRows(t, sql)
		switch {
		case strings.Contains(sql, "FROM polis.deadletter"):
			seen["deadletter"] = true
			if len(rows) != 1 || rows[0].String("reason") != "bad_json" || rows[0].String("topic") != "polis/v1/PO-001002-1/env-1/telemetry" {
				t.Fatalf("unexpected dead letters: %v", rows)
			}
		case strings.Contains(sql, "co2"):
			seen["co2"] = true
			var env1 []point
			for _, p := range ps {
				if p.site == "PO-001002-1" && p.asset == "env-1" && p.metric == "co2_ppm" {
					env1 = append(env1, p)
				}
			}
			want := rollupOf(env1, func(ts time.Time) time.Time { return ts.Truncate(time.Minute) })
			if len(rows) != len(want) {
				t.Fatalf("unexpected CO2 minutes; got %v; want %d", rows, len(want))
			}
			for _, r := range rows {
				a := want[[4]string{"PO-001002-1", "env-1", "co2_ppm", r.String("bucket")}]
				if a == nil || !near(r.Float("co2"), a.sum/float64(a.count)) {
					t.Fatalf("unexpected CO2 minute %v", r)
				}
			}
		case strings.Contains(sql, "FROM polis.telemetry ORDER BY received DESC"):
			seen["latest"] = true
			if len(rows) != 10 || rows[0].String("site") == "" || rows[0].String("ts") == "" {
				t.Fatalf("unexpected latest points: %v", rows)
			}
		case strings.Contains(sql, "mttr"):
			seen["mttr"] = true
			if len(rows) != 1 || rows[0].String("rule_id") != "too_hot" || !near(rows[0].Float("mttr_s"), 210) {
				t.Fatalf("unexpected MTTR: %v; want too_hot 210", rows)
			}
		}
	}
	if len(seen) != 4 {
		t.Fatalf("README.md examples checked: %v; want deadletter, co2, mttr and latest", seen)
	}
}

// The twin restores each asset's lifecycle state from the latest stored
// change (LatestLifecycleSQL), in the columns InsertLifecycle inserts.
func TestModern_Lifecycle(t *testing.T) {
	s, db := modernDB(t)
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	var rows []string
	for _, e := range []struct {
		asset, from, to string
		at              time.Duration
	}{
		{"env-1", "", "installed", 0},
		{"env-1", "installed", "active", 1500 * time.Millisecond},
		{"env-1", "active", "maintenance", 1700 * time.Millisecond}, // same second: the milliseconds decide
		{"ev-1", "", "installed", time.Hour},
		{"ev-1", "installed", "active", 2 * time.Hour},
	} {
		rows = append(rows, "('PO-001002-1', '"+e.asset+"', '"+e.from+"', '"+e.to+"', "+
			"toDateTime64('"+t0.Add(e.at).Format("2006-01-02 15:04:05.000")+"', 3, 'UTC'), 'api:ops', 'test')")
	}
	s.Exec(t, "INSERT INTO "+db+"."+schema.TableLifecycle+" (site, asset, from_state, to_state, ts, actor, cause) VALUES "+strings.Join(rows, ", "))
	q := LatestLifecycleSQL(db, schema.Modern)
	// LatestLifecycle scans three *string.
	if cols := s.Types(t, q); !slices.Equal(cols, []string{"site LowCardinality(String)", "asset LowCardinality(String)", "argMax(to_state, ts) String"}) {
		t.Fatalf("unexpected columns of %s: %q", q, cols)
	}
	got := map[string]string{}
	for _, r := range s.MustRows(t, q) {
		got[r.String("site")+"/"+r.String("asset")] = r.String("argMax(to_state, ts)")
	}
	if want := map[string]string{"PO-001002-1/env-1": "maintenance", "PO-001002-1/ev-1": "active"}; !maps.Equal(got, want) {
		t.Fatalf("unexpected latest states; got %v; want %v", got, want)
	}
}

// Events and dead letters: distinct rows in the same millisecond both stay,
// a re-delivered batch collapses (the bodies and payloads are in the keys).
func TestModern_EventsAndDeadLetters(t *testing.T) {
	s, db := modernDB(t)
	at := time.Now().UTC().Truncate(time.Second).Add(-time.Hour + 250*time.Millisecond).UnixMilli()
	b := newBatch(schema.Modern)
	for i, r := range []record.Record{
		{V: 1, Kind: record.KindEvent, Site: "PO-001002-1", Asset: "lock-1", Received: at + 5, TS: at, Event: "door_open", Body: []byte(`{"door":1}`)},
		{V: 1, Kind: record.KindEvent, Site: "PO-001002-1", Asset: "lock-1", Received: at + 5, TS: at, Event: "door_open", Body: []byte(`{"door":2}`)},
		{V: 1, Kind: record.KindStatus, Site: "PO-001002-1", Asset: "lock-1", Received: at + 9, Status: "offline"},
		{V: 1, Kind: record.KindReported, Site: "PO-001002-1", Asset: "lock-1", Received: at + 12, TS: at + 10, Body: []byte(`{"fw":"1.2.3"}`)},
	} {
		b.ev.add(&r, 0, int64(i))
	}
	for _, d := range []record.DeadLetter{
		{Received: at, Topic: "polis/v1/PO-001002-1/env-1/telemetry", Reason: "bad_json", Message: "not JSON", Site: "PO-001002-1", Asset: "env-1", Payload: []byte("{a")},
		{Received: at, Topic: "polis/v1/PO-001002-1/env-1/telemetry", Reason: "bad_json", Message: "not JSON", Site: "PO-001002-1", Asset: "env-1", Payload: []byte("{b")},
	} {
		b.dl.add(&d)
	}
	insertModern(t, s, db, b, nil)
	insertModern(t, s, db, b, nil) // delivered twice

	count := func(table, final string) int64 {
		t.Helper()
		return s.MustRows(t, "SELECT count() AS n FROM "+db+"."+table+" "+final)[0].Int("n")
	}
	for table, want := range map[string]int64{schema.TableEvents: 4, schema.TableDeadLetter: 2} {
		if n, all := count(table, "FINAL"), count(table, ""); n != want || all != 2*want {
			t.Fatalf("%s: %d rows, %d with FINAL; want %d and %d", table, all, n, 2*want, want)
		}
	}
	rows := s.MustRows(t, "SELECT type, body, toUnixTimestamp64Milli(ts) AS ts FROM "+db+".events FINAL ORDER BY ts, type, body")
	var got []string
	for _, r := range rows {
		got = append(got, fmt.Sprintf("%d %s %s", r.Int("ts")-at, r.String("type"), r.String("body")))
	}
	want := []string{`0 door_open {"door":1}`, `0 door_open {"door":2}`, `9 status offline`, `10 reported {"fw":"1.2.3"}`}
	if !slices.Equal(got, want) {
		t.Fatalf("unexpected events; got %q; want %q", got, want)
	}
}
