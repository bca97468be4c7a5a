package schema

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
)

var update = flag.Bool("update", false, "rewrite testdata/*.sql")

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

func TestFlavorFor(t *testing.T) {
	f := func(version string, want Flavor) {
		t.Helper()
		got, err := FlavorFor(version)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", version, err)
		}
		if got != want {
			t.Fatalf("unexpected flavor for %q; got %s; want %s", version, got, want)
		}
	}
	f("18.16.1", Legacy)
	f("19.17.4.11", Legacy)
	f("20.2.1", Legacy)
	f("20.3.1.2672", Modern)
	f("21.8.15.7", Modern)
	f("24.8.4.13", Modern)
	f(" 25.3.2.39 ", Modern)
}

func TestFlavorFor_Failure(t *testing.T) {
	for _, v := range []string{"", "18", "x.1", "18.y.1"} {
		if _, err := FlavorFor(v); err == nil {
			t.Fatalf("expected an error for %q", v)
		}
	}
}

func TestValidDatabase(t *testing.T) {
	for _, ok := range []string{"polis", "t_abc_123", "_x"} {
		if err := ValidDatabase(ok); err != nil {
			t.Fatalf("unexpected error for %q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", "1abc", "a-b", "a.b", "a;DROP", "a b", strings.Repeat("a", 64)} {
		if err := ValidDatabase(bad); err == nil {
			t.Fatalf("expected an error for %q", bad)
		}
	}
}

// The generated DDL of both flavors is pinned in testdata.
func TestSQL_Golden(t *testing.T) {
	for _, f := range []Flavor{Legacy, Modern} {
		got := SQL(f, DefaultDatabase, Options{})
		path := filepath.Join("testdata", f.String()+".sql")
		if *update {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test ./storage/schema -update)", err)
		}
		if got != string(want) {
			t.Fatalf("generated %s DDL differs from %s (run go test ./storage/schema -update and review the diff):\n%s", f, path, got)
		}
	}
}

func TestMigrations_Invariants(t *testing.T) {
	for _, f := range []Flavor{Legacy, Modern} {
		ms := Migrations(f, "db", Options{})
		for i, m := range ms {
			if m.Version != i+1 || m.Name == "" || (len(m.Statements) == 0 && m.Upgrade == nil) {
				t.Fatalf("%s: unexpected migration %d: %+v", f, i, m)
			}
			for _, s := range m.Statements {
				if !strings.Contains(s, "IF NOT EXISTS db.") {
					t.Fatalf("%s: statement is not idempotent or not qualified:\n%s", f, s)
				}
				if strings.HasPrefix(s, "CREATE TABLE") && (!strings.Contains(s, "\nPARTITION BY ") || !strings.Contains(s, "\nORDER BY (")) {
					t.Fatalf("%s: table without PARTITION BY/ORDER BY:\n%s", f, s)
				}
			}
		}
		all := SQL(f, "db", Options{})
		for _, feature := range []string{"DateTime64", "CODEC(", "TTL ", "LowCardinality"} {
			has := strings.Contains(all, feature)
			if f == Legacy && has {
				t.Fatalf("legacy DDL uses %s, which 18.16 lacks", feature)
			}
			if f == Modern && !has {
				t.Fatalf("modern DDL does not use %s", feature)
			}
		}
	}
}

func TestMigrations_Retention(t *testing.T) {
	s := SQL(Modern, "db", Options{RetentionDays: 90, DeadLetterRetentionDays: -1})
	if !strings.Contains(s, "TTL toDateTime(ts) + INTERVAL 90 DAY") {
		t.Fatalf("raw TTL not applied:\n%s", s)
	}
	if strings.Contains(s, "TTL toDateTime(received)") {
		t.Fatalf("dead-letter TTL present although disabled:\n%s", s)
	}
	if s := SQL(Modern, "db", Options{}); !strings.Contains(s, "INTERVAL 400 DAY") || !strings.Contains(s, "INTERVAL 30 DAY") {
		t.Fatalf("default TTLs missing:\n%s", s)
	}
}

// The Legacy flavor runs on the real 18.16 server; Apply twice is a no-op;
// a lost ledger re-applies cleanly because every statement is idempotent.
func TestApply_Legacy(t *testing.T) {
	addr := chtest.Shared(t)
	conn := chtest.Conn(t, addr)
	db := chtest.Database(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	f, err := Detect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := ServerVersion(ctx, conn); f != Legacy {
		t.Skipf("server %s is %s; this test covers Legacy", v, f)
	}
	all := []int{1, 2, 3, 4, 5, 6, 7, 8}
	applied, err := Apply(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(applied, all) {
		t.Fatalf("unexpected first Apply; got %v; want %v", applied, all)
	}
	applied, err = Apply(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second Apply applied %v; want nothing", applied)
	}
	got, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, all) {
		t.Fatalf("unexpected ledger; got %v; want %v", got, all)
	}

	var tables []struct {
		Name string `ch:"name"`
	}
	if err := conn.Select(ctx, &tables, "SELECT name FROM system.tables WHERE database = ? ORDER BY name", db); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, x := range tables {
		names = append(names, x.Name)
	}
	want := []string{"alerts", "deadletter", "events", "lifecycle_events", "schema_migrations", "telemetry", "telemetry_1h",
		"telemetry_1m", "twin_snapshots"}
	if !slices.Equal(names, want) {
		t.Fatalf("unexpected tables; got %v; want %v", names, want)
	}

	if err := conn.Exec(ctx, "DROP TABLE "+db+"."+TableMigrations); err != nil {
		t.Fatal(err)
	}
	applied, err = Apply(ctx, conn, db)
	if err != nil {
		t.Fatalf("re-applying over existing tables: %v", err)
	}
	if !slices.Equal(applied, all) {
		t.Fatalf("unexpected re-apply; got %v; want %v", applied, all)
	}
}

func TestApply_BadDatabase(t *testing.T) {
	if _, err := Apply(context.Background(), nil, "x;y"); err == nil {
		t.Fatal("expected an error")
	}
}
