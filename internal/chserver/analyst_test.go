package chserver

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// The read-only analyst on a real server (Debian's 18.16 here), and every
// SQL block of docs/schema.md run by that user over a small fixture.

const analystTestPassword = "s3cret-analyst"

// analystServer starts a server with the analyst configured (small limits,
// so the test can exceed them quickly) and the schema applied to polis.
func analystServer(t *testing.T) (s *Server, admin driver.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	// A first call makes a password; the test then pins one it knows.
	if _, _, err := AnalystPassword(filepath.Join(dir, "pw")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pw"), []byte(analystTestPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	plain, sum, err := AnalystPassword(filepath.Join(dir, "pw"))
	if err != nil || plain != analystTestPassword {
		t.Fatalf("AnalystPassword kept file: got %q, %v", plain, err)
	}
	s, err = Start(ctx, Options{Dir: filepath.Join(dir, "ch"), Analyst: &Analyst{
		PasswordSHA256: sum,
		Limits:         AnalystLimits{MaxExecutionTime: time.Second, MaxResultRows: 1000},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin, err = openConn(s.NativeAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	if _, err := schema.Apply(ctx, admin, schema.DefaultDatabase); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE DATABASE IF NOT EXISTS secret",
		"CREATE TABLE IF NOT EXISTS secret.t (x UInt8) ENGINE = Memory",
	} {
		if err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	return s, admin
}

func analystConn(t *testing.T, s *Server, db string) driver.Conn {
	t.Helper()
	c, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{s.NativeAddr()},
		Auth:        clickhouse.Auth{Database: db, Username: AnalystUser, Password: analystTestPassword},
		DialTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestAnalyst_ReadOnly(t *testing.T) {
	s, _ := analystServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	b, err := os.ReadFile(filepath.Join(s.Dir(), usersFile))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), analystTestPassword) || !strings.Contains(string(b), "<password_sha256_hex>") {
		t.Fatal("users.xml holds the plaintext or lacks the hash")
	}
	if fi, err := os.Stat(filepath.Join(s.Dir(), usersFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("users.xml mode: %v %v", fi.Mode(), err)
	}

	// Wrong password: refused.
	bad, err := clickhouse.Open(&clickhouse.Options{Addr: []string{s.NativeAddr()},
		Auth: clickhouse.Auth{Database: "polis", Username: AnalystUser, Password: "nope"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bad.Ping(ctx); err == nil {
		t.Fatal("wrong password accepted")
	}
	bad.Close()

	c := analystConn(t, s, "polis")
	var n uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM polis.telemetry").Scan(&n); err != nil {
		t.Fatalf("SELECT refused: %v", err)
	}
	// Without a database the session starts in the server's default
	// database, which the analyst may not use (what the banner's
	// clickhouse-client line does, so it names --database polis).
	nodb := analystConn(t, s, "")
	if err := nodb.QueryRow(ctx, "SELECT count() FROM polis.telemetry").Scan(&n); err != nil {
		t.Logf("without a database: %v", err)
	}

	refused := map[string]string{
		"INSERT":           "INSERT INTO polis.schema_migrations (version, name, applied_at) SELECT 99, 'x', now()",
		"CREATE":           "CREATE TABLE polis.mine (x UInt8) ENGINE = Memory",
		"CREATE DATABASE":  "CREATE DATABASE mine",
		"DROP":             "DROP TABLE polis.alerts",
		"ALTER":            "ALTER TABLE polis.alerts DELETE WHERE 1",
		"TRUNCATE":         "TRUNCATE TABLE polis.alerts",
		"SET limit":        "SET max_result_rows = 0",
		"SET time":         "SET max_execution_time = 0",
		"other database":   "SELECT x FROM secret.t",
		"default database": "SELECT count() FROM default.nope",
		"result rows":      "SELECT number FROM system.numbers LIMIT 5000",
		"execution time":   "SELECT count() FROM system.numbers WHERE sipHash64(number) = 42",
		"table function":   "SELECT count() FROM numbers(10)",
	}
	for name, q := range refused {
		began := time.Now()
		rows, err := c.Query(ctx, q)
		if err == nil {
			for rows.Next() {
			}
			err = rows.Err()
			rows.Close()
		}
		if err == nil {
			t.Errorf("%s: %q was allowed", name, q)
			continue
		}
		t.Logf("%s refused in %s: %v", name, time.Since(began).Round(time.Millisecond), err)
		if name == "execution time" && time.Since(began) > 10*time.Second {
			t.Errorf("slow query ran %s; want it cut after about 1 s", time.Since(began))
		}
	}
	// A per-query setting (sent with the query, not SET) does not lift
	// the limit either.
	sctx := clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"max_result_rows": 0}))
	if err := drain(sctx, c, "SELECT number FROM system.numbers LIMIT 5000"); err == nil {
		t.Error("a per-query setting of max_result_rows lifted the limit")
	} else {
		t.Logf("per-query max_result_rows=0 did not lift the limit: %v", err)
	}
	// Within the limits, reads work.
	var cnt uint64
	if err := c.QueryRow(ctx, "SELECT count() FROM (SELECT number FROM system.numbers LIMIT 999)").Scan(&cnt); err != nil || cnt != 999 {
		t.Fatalf("got %d, %v", cnt, err)
	}
	var dbs []string
	rows, err := c.Query(ctx, "SELECT name FROM system.databases ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var d string
		_ = rows.Scan(&d)
		dbs = append(dbs, d)
	}
	rows.Close()
	t.Logf("system.databases as seen by the analyst: %v", dbs)
}

func drain(ctx context.Context, c driver.Conn, q string) error {
	rows, err := c.Query(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// sqlBlocks returns the ```sql blocks of a Markdown file.
func sqlBlocks(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		out = append(out, m[1])
	}
	return out
}

// rowsOf runs q and renders each row as its values joined by "|".
func rowsOf(ctx context.Context, t *testing.T, c driver.Conn, q string) []string {
	t.Helper()
	rows, err := c.Query(ctx, q)
	if err != nil {
		t.Fatalf("cannot run\n%s\n: %v", q, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		cts := rows.ColumnTypes()
		ptrs := make([]any, len(cts))
		for i, ct := range cts {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		vals := make([]string, len(ptrs))
		for i, p := range ptrs {
			v := reflect.ValueOf(p).Elem().Interface()
			if tm, ok := v.(time.Time); ok {
				v = tm.UTC().Format(time.DateOnly)
			}
			vals[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(vals, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func at(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

// insert appends rows (each a slice of column values) through a batch
// naming its columns, as 18.16 needs.
func insert(ctx context.Context, t *testing.T, c driver.Conn, table, cols string, rows ...[]any) {
	t.Helper()
	b, err := c.PrepareBatch(ctx, "INSERT INTO polis."+table+" ("+cols+")")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			t.Fatalf("%s: %v", table, err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatalf("%s: %v", table, err)
	}
}

// analystFixture: March 2026 (Rome is UTC+1): two PV plants and a charger
// on two days, ATM availability inside and outside opening hours, charger
// states, and two resolved occurrences of one alert and an open one.
func analystFixture(ctx context.Context, t *testing.T, c driver.Conn) {
	const rcols = "site, asset, metric, bucket, min, max, sum, count, last, last_ts, kpart, upto, seen"
	r := func(site, asset, metric, bucket string, min, max, sum float64, count uint64, upto uint64) []any {
		b := at(bucket)
		return []any{site, asset, metric, b, min, max, sum, count, max, uint64(b.UnixMilli()), uint16(0), upto, uint64(b.UnixMilli())}
	}
	// A stale version of a row first, in its own part: FINAL must drop it.
	insert(ctx, t, c, "telemetry_1h", rcols, r("PO-001002-1", "pv-1", "energy_kwh", "2026-03-02 12:00:00", 0, 99, 99, 1, 1))
	insert(ctx, t, c, "telemetry_1h", rcols,
		r("PO-001002-1", "pv-1", "energy_kwh", "2026-03-02 08:00:00", 2, 3, 30, 12, 1),
		r("PO-001002-1", "pv-1", "energy_kwh", "2026-03-02 12:00:00", 9, 10.5, 120, 12, 2),
		r("PO-001002-1", "pv-1", "energy_kwh", "2026-03-03 10:00:00", 3, 4, 42, 12, 3),
		r("CW-RM-1", "pv-1", "energy_kwh", "2026-03-02 11:00:00", 6, 7, 80, 12, 1),
		r("PO-001002-1", "evc-1", "energy_total_kwh", "2026-03-02 09:00:00", 100, 110, 1260, 12, 4),
		r("PO-001002-1", "evc-1", "energy_total_kwh", "2026-03-02 15:00:00", 110, 130, 1440, 12, 5),
		// Another metric of the charger: not energy.
		r("PO-001002-1", "evc-1", "energy_kwh", "2026-03-02 15:00:00", 0, 20, 100, 12, 5),
	)
	insert(ctx, t, c, "telemetry_1m", rcols,
		r("PO-001002-1", "atm-1", "available", "2026-03-02 08:00:00", 1, 1, 1, 1, 1), // Mon 09:00 Rome: open
		r("PO-001002-1", "atm-1", "available", "2026-03-02 09:00:00", 0, 0, 0, 1, 2), // Mon 10:00: open
		r("PO-001002-1", "atm-1", "available", "2026-03-02 19:00:00", 0, 0, 0, 1, 3), // Mon 20:00: closed
		r("PO-001002-1", "atm-1", "available", "2026-03-01 09:00:00", 0, 0, 0, 1, 4), // Sun: closed
		r("PO-001002-1", "atm-1", "available", "2026-03-07 09:00:00", 1, 1, 1, 1, 5), // Sat 10:00: open
		r("PO-001002-1", "atm-1", "available", "2026-03-07 12:00:00", 0, 0, 0, 1, 6), // Sat 13:00: closed
		r("PO-058091-1", "atm-1", "available", "2026-03-02 10:00:00", 1, 1, 2, 2, 1),
	)
	tcols := "site, asset, metric, ts, ts_ms, value, received, late, kpart, koffset, kidx"
	p := func(ts string, v float64, off uint64) []any {
		return []any{"PO-001002-1", "evc-1", "connector_state", at(ts), uint16(0), v, at(ts), uint8(0), uint16(0), off, uint16(0)}
	}
	insert(ctx, t, c, "telemetry", tcols,
		p("2026-03-02 10:00:00", 0, 1), p("2026-03-02 10:01:00", 1, 2),
		p("2026-03-02 10:02:00", 1, 3), p("2026-03-02 10:03:00", 2, 4))
	insert(ctx, t, c, "telemetry", tcols, p("2026-03-02 10:03:00", 2, 4)) // re-delivered: collapses
	acols := "ts, ts_ms, kind, delivered, level, fingerprint, rule_id, site, asset, state, severity, summary, labels, value, active_at, fired_at, resolved_at, acked_by, assignee, occurrence"
	a := func(ts, kind, fp, rule string, occ uint32) []any {
		return []any{at(ts), uint16(0), kind, uint8(1), uint8(0), fp, rule, "PO-001002-1", "atm-1", kind, "critical", "", "{}", 0.0,
			at(ts), at(ts), at(ts), "", "", occ}
	}
	insert(ctx, t, c, "alerts", acols,
		a("2026-03-02 08:00:00", "fired", "f1", "atm_down", 1),
		a("2026-03-02 08:10:00", "resolved", "f1", "atm_down", 1),
		a("2026-03-02 09:00:00", "fired", "f1", "atm_down", 2),
		a("2026-03-02 09:02:00", "acked", "f1", "atm_down", 2),
		a("2026-03-02 09:20:00", "resolved", "f1", "atm_down", 2),
		a("2026-03-02 10:00:00", "fired", "f2", "pv_fault", 1),
	)
}

// Each SQL block of docs/schema.md, run by the analyst, with the rows the
// fixture must give. A block is known by a phrase of its first line.
var schemaDocWant = map[string][]string{
	"energy per province per day": {
		"2026-03-02|001|10.5|30",
		"2026-03-02|RM|7|0",
		"2026-03-03|001|4|0",
	},
	"atm availability in opening hours": {
		"001|3|0.667",
		"058|2|1",
	},
	"charger utilisation": {
		"2026-03-02|PO-001002-1|evc-1|4|0.5|0.75",
	},
	"mean time to resolve": {
		"atm_down|2|900",
	},
}

func TestAnalyst_SchemaDocQueries(t *testing.T) {
	s, admin := analystServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	analystFixture(ctx, t, admin)
	c := analystConn(t, s, "polis")
	seen := map[string]bool{}
	for _, q := range sqlBlocks(t, "../../docs/schema.md") {
		first, _, _ := strings.Cut(q, "\n")
		if strings.Contains(first, "production") {
			continue // current ClickHouse's SQL access control: not on 18.16
		}
		var name string
		for k := range schemaDocWant {
			if strings.Contains(strings.ToLower(first), k) {
				name = k
			}
		}
		if name == "" {
			t.Errorf("docs/schema.md block %q has no expected result here", first)
			continue
		}
		seen[name] = true
		got := rowsOf(ctx, t, c, q)
		if !reflect.DeepEqual(got, schemaDocWant[name]) {
			t.Errorf("%s: got\n%s\nwant\n%s", name, strings.Join(got, "\n"), strings.Join(schemaDocWant[name], "\n"))
		}
	}
	for k := range schemaDocWant {
		if !seen[k] {
			t.Errorf("docs/schema.md lacks the %q query", k)
		}
	}
}
