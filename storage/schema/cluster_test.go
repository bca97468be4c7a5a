package schema

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/polis-platform/polis/internal/chserver/chdbtest"
)

// clusterGolden is the cluster DDL as shipped: one file, the deployment's
// (deploy/clickhouse/cluster.sql), pinned by this test and by deploy's.
var clusterGolden = filepath.Join("..", "..", "deploy", "clickhouse", "cluster.sql")

// The cluster DDL is pinned in the deployment's cluster.sql.
func TestClusterSQL_Golden(t *testing.T) {
	got, err := ClusterSQL("polis", DefaultDatabase, Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := clusterGolden
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./storage/schema -update)", err)
	}
	if got != string(want) {
		t.Fatalf("generated cluster DDL differs from %s (run go test ./storage/schema -update and review the diff):\n%s", path, got)
	}
}

// Every table of the Modern schema is on the cluster twice: replicated
// locally, with Modern's columns, engine arguments, sorting key and TTL,
// and distributed by its sharding key over the local one.
func TestClusterStatements_EveryTable(t *testing.T) {
	stmts, err := ClusterStatements("polis", "polis", Options{})
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]string{}
	nameRE := regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS polis\.([a-z0-9_]+) ON CLUSTER polis`)
	for _, s := range stmts {
		if m := nameRE.FindStringSubmatch(s); m != nil {
			if _, dup := byName[m[1]]; dup {
				t.Fatalf("table %s created twice", m[1])
			}
			byName[m[1]] = s
		}
	}
	modern := 0
	for _, m := range Migrations(Modern, "polis", Options{}) {
		for _, s := range m.Statements {
			modern++
			table := createRE.FindStringSubmatch(s)[2]
			local, dist := byName[table+"_local"], byName[table]
			if local == "" || dist == "" {
				t.Fatalf("table %s: local %q, distributed %q", table, local, dist)
			}
			// The local table is the Modern one, but for its name and engine.
			e := engineRE.FindStringSubmatch(s)
			wantEngine := "ENGINE = Replicated" + e[1] + "('/clickhouse/tables/{shard}/polis/" + table + "', '{replica}'"
			if e[2] != "" {
				wantEngine += ", " + e[2]
			}
			wantEngine += ")"
			if back := strings.Replace(strings.Replace(local, table+"_local ON CLUSTER polis", table, 1), wantEngine, e[0], 1); back != s {
				t.Fatalf("local table of %s is not the Modern table with a replicated engine:\n%s\nwant engine %s", table, local, wantEngine)
			}
			wantDist := "ENGINE = Distributed(polis, polis, " + table + "_local, " + clusterShardKeys[table] + ")"
			if !strings.HasSuffix(dist, wantDist) || !strings.Contains(dist, " AS polis."+table+"_local\n") {
				t.Fatalf("distributed table of %s:\n%s\nwant it AS the local table with %s", table, dist, wantDist)
			}
		}
	}
	if want := 2*modern + 1; len(byName) != want { // + the ledger
		t.Fatalf("%d tables on the cluster; want %d", len(byName), want)
	}
	if !strings.Contains(byName[TableMigrations], "ReplicatedReplacingMergeTree('/clickhouse/tables/all/polis/schema_migrations', '{replica}')") {
		t.Fatalf("the ledger must be one replicated table on every node (no {shard}):\n%s", byName[TableMigrations])
	}
	last := stmts[len(stmts)-1]
	for _, m := range Migrations(Modern, "polis", Options{}) {
		if !strings.Contains(last, "("+strconv.Itoa(m.Version)+", '"+m.Name+"', now())") {
			t.Fatalf("the ledger rows do not record migration %d:\n%s", m.Version, last)
		}
	}
}

func TestClusterStatements_Refused(t *testing.T) {
	for _, tc := range []struct{ cluster, db, want string }{
		{"", "polis", "cluster name"},
		{"a-b", "polis", "cluster name"},
		{"polis", "a;b", "database name"},
	} {
		if _, err := ClusterStatements(tc.cluster, tc.db, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("ClusterStatements(%q, %q): %v; want an error about the %s", tc.cluster, tc.db, err, tc.want)
		}
	}
	for _, tc := range []struct{ stmt, want string }{
		{"ALTER TABLE polis.telemetry ADD COLUMN x UInt8", "not a CREATE TABLE"},
		{"CREATE TABLE IF NOT EXISTS other.telemetry\n(x UInt8)\nENGINE = MergeTree()\nORDER BY x", "not a CREATE TABLE"},
		{"CREATE TABLE IF NOT EXISTS polis.new_table\n(x UInt8)\nENGINE = MergeTree()\nORDER BY x", "no sharding key"},
		{"CREATE TABLE IF NOT EXISTS polis.telemetry\n(x UInt8)\nENGINE = Log", "one MergeTree-family ENGINE"},
	} {
		if _, _, err := clusterTable("polis", "polis", tc.stmt); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("clusterTable(%q): %v; want %q", tc.stmt, err, tc.want)
		}
	}
}

// Every statement of the script parses on current ClickHouse (chDB, 26.x).
// chDB has no Keeper and no remote_servers, so the statements cannot be
// run there: formatQuery checks the syntax and normalises it.
func TestClusterSQL_ParsesOnChDB(t *testing.T) {
	s := chdbtest.Open(t)
	golden, err := os.ReadFile(clusterGolden)
	if err != nil {
		t.Fatal(err)
	}
	script := scriptStatements(string(golden))
	stmts, err := ClusterStatements("polis", DefaultDatabase, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(script) != len(stmts) {
		t.Fatalf("%s has %d statements; want %d", clusterGolden, len(script), len(stmts))
	}
	for _, st := range script {
		rows, err := s.Rows("SELECT formatQuery(" + lit(t, st) + ") AS q")
		if err != nil {
			t.Fatalf("ClickHouse does not parse:\n%s\n%v", st, err)
		}
		if q := rows[0].String("q"); strings.HasPrefix(st, "CREATE") && !strings.Contains(q, "ON CLUSTER polis") {
			t.Fatalf("statement lost its ON CLUSTER when parsed: %s", q)
		}
	}
}
