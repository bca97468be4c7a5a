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

	"github.com/polis-platform/polis/internal/chserver"
	"github.com/polis-platform/polis/internal/chserver/chtest"
)

// What ApplyCluster runs for a ledger: from an empty one, exactly the
// statements of the golden script (between its bootstrap and its ledger
// rows); from a partial one, the rest; from a full one, nothing.
func TestClusterPlan(t *testing.T) {
	all := Migrations(Modern, "polis", Options{})
	script, err := ClusterStatements("polis", "polis", Options{})
	if err != nil {
		t.Fatal(err)
	}
	boot := clusterBootstrap("polis", "polis")
	if !slices.Equal(script[:len(boot)], boot) {
		t.Fatalf("the script does not start with the bootstrap:\n%s", strings.Join(script[:len(boot)], "\n"))
	}
	tables := script[len(boot) : len(script)-1]
	for _, tc := range []struct {
		name     string
		done     []int
		versions []int
		stmts    []string
	}{
		{"empty ledger", nil, []int{1, 2, 3, 4, 5, 6, 7, 8}, tables},
		{"first migration done", []int{1}, []int{2, 3, 4, 5, 6, 7, 8}, tables[2:]},
		// 8 (point_identity) is an Upgrade alone: recorded, nothing run.
		{"all but the last", []int{1, 2, 3, 4, 5, 6, 7}, []int{8}, nil},
		{"up to date", []int{1, 2, 3, 4, 5, 6, 7, 8}, nil, nil},
		{"newer binary's versions", []int{1, 2, 3, 4, 5, 6, 7, 8, 9}, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			done := map[int]bool{}
			for _, v := range tc.done {
				done[v] = true
			}
			steps, err := clusterPlan("polis", "polis", all, done)
			if err != nil {
				t.Fatal(err)
			}
			var versions []int
			var stmts []string
			for _, st := range steps {
				versions = append(versions, st.m.Version)
				stmts = append(stmts, st.statements...)
			}
			if !slices.Equal(versions, tc.versions) {
				t.Fatalf("applies %v; want %v", versions, tc.versions)
			}
			if !slices.Equal(stmts, tc.stmts) {
				t.Fatalf("runs %d statements:\n%s\nwant %d:\n%s", len(stmts), strings.Join(stmts, ";\n"), len(tc.stmts), strings.Join(tc.stmts, ";\n"))
			}
		})
	}
}

// A migration the cluster cannot take is refused before anything runs.
func TestClusterPlan_Refused(t *testing.T) {
	upgrade := func(context.Context, driver.Conn, dialect) error { return nil }
	for _, tc := range []struct {
		name string
		m    Migration
		want string
	}{
		{"an upgrade of data", Migration{Version: 99, Name: "reshape", Upgrade: upgrade}, "upgrades existing data"},
		{"an ALTER", Migration{Version: 99, Name: "alter", Statements: []string{"ALTER TABLE polis.telemetry ADD COLUMN x UInt8"}}, "not a CREATE TABLE"},
		{"a table without a sharding key", Migration{Version: 99, Name: "new", Statements: []string{
			"CREATE TABLE IF NOT EXISTS polis.new_table\n(x UInt8)\nENGINE = MergeTree()\nORDER BY x"}}, "no sharding key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms := append(Migrations(Modern, "polis", Options{}), tc.m)
			done := map[int]bool{1: true, 2: true, 3: true, 4: true, 5: true, 6: true, 7: true, 8: true}
			if _, err := clusterPlan("polis", "polis", ms, done); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("clusterPlan: %v; want an error about %q", err, tc.want)
			}
		})
	}
}

func TestApplyCluster_BadNames(t *testing.T) {
	for _, tc := range []struct{ cluster, db, want string }{
		{"", "polis", "cluster name"},
		{"a b", "polis", "cluster name"},
		{"polis", "x;y", "database name"},
	} {
		if _, err := ApplyCluster(context.Background(), nil, tc.cluster, tc.db, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("ApplyCluster(%q, %q): %v; want an error about the %s", tc.cluster, tc.db, err, tc.want)
		}
	}
}

// On the real 18.16 server, with a cluster polis in its remote_servers
// (never reached: a Distributed table resolves its hosts when read): the
// cluster DDL is refused (it is Modern's); a database made by Apply is not
// taken for a cluster one, a Distributed telemetry is.
func TestApplyCluster_Legacy(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "config.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	remote := `<yandex><remote_servers><polis><shard><replica><host>127.0.0.1</host><port>1</port></replica></shard></polis></remote_servers></yandex>`
	if err := os.WriteFile(filepath.Join(dir, "config.d", "cluster.xml"), []byte(remote), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srv, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
	})
	conn := chtest.Conn(t, srv.NativeAddr())
	const db = "polis_cluster"
	if f, err := Detect(ctx, conn); err != nil {
		t.Fatal(err)
	} else if f != Legacy {
		t.Skipf("server is %s; this test covers Legacy", f)
	}

	if _, err := ApplyCluster(ctx, conn, "polis", db, Options{}); err == nil || !strings.Contains(err.Error(), "needs the modern DDL") {
		t.Fatalf("ApplyCluster on 18.16: %v; want a refusal", err)
	}
	if err := CheckCluster(ctx, conn, db); err == nil || !strings.Contains(err.Error(), "is missing, not Distributed") {
		t.Fatalf("CheckCluster on an empty database: %v", err)
	}
	if _, err := Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	if err := CheckCluster(ctx, conn, db); err == nil || !strings.Contains(err.Error(), "is a ReplacingMergeTree table, not Distributed") {
		t.Fatalf("CheckCluster on a single-server database: %v", err)
	}
	for _, s := range []string{
		"RENAME TABLE " + db + ".telemetry TO " + db + ".telemetry_local",
		"CREATE TABLE " + db + ".telemetry AS " + db + ".telemetry_local ENGINE = Distributed(polis, " + db + ", telemetry_local, cityHash64(site))",
	} {
		if err := conn.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	if err := CheckCluster(ctx, conn, db); err != nil {
		t.Fatalf("CheckCluster on a Distributed telemetry: %v", err)
	}
}
