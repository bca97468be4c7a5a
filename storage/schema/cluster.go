package schema

import (
	"fmt"
	"regexp"
	"strings"
)

// The cluster DDL: the Modern schema on a ClickHouse cluster of shards of
// replicas coordinated by ClickHouse Keeper (deploy/). It is a third shape
// of the same tables, not a third Flavor: the columns, types and sorting
// keys are Modern's, so every query and insert of the platform, which names
// the tables without a suffix, runs unchanged on it. Each table becomes
//
//   - NAME_local, on every node (ON CLUSTER): the Modern engine made
//     Replicated (ReplacingMergeTree -> ReplicatedReplacingMergeTree), its
//     replicas in Keeper under /clickhouse/tables/{shard}/DB/NAME;
//   - NAME, a Distributed table over NAME_local, sharded by site (by
//     partition for the twin snapshots), so that every row of a site, and
//     so every copy of a point's identity, lands on one shard: FINAL, the
//     rollups' newest-row-wins and the identity collapse all work per shard.
//
// The migrations ledger is one replicated table on every node (a path
// without {shard}), and the script records every migration as applied, so
// a `polis serve` started with migrations on sees nothing to do.
//
// Inserts through the Distributed tables must be synchronous (the writer
// commits Kafka offsets once ClickHouse has the rows): the deploy/ configs
// set distributed_foreground_insert (insert_distributed_sync before 23.x)
// in the platform user's profile.

// DefaultKeeperPrefix is the Keeper path under which the replicated tables
// keep their replicas.
const DefaultKeeperPrefix = "/clickhouse/tables"

// clusterShardKeys is each table's sharding key. A table missing here makes
// ClusterStatements fail, so a new migration cannot be left off the
// cluster by mistake.
var clusterShardKeys = map[string]string{
	TableTelemetry:   "cityHash64(site)",
	TableTelemetry1m: "cityHash64(site)",
	TableTelemetry1h: "cityHash64(site)",
	TableEvents:      "cityHash64(site)",
	TableDeadLetter:  "cityHash64(site)",
	TableLifecycle:   "cityHash64(site)",
	TableAlerts:      "cityHash64(site)",
	TableSnapshots:   "partition",
}

var (
	createRE = regexp.MustCompile(`^CREATE TABLE IF NOT EXISTS ([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)\n`)
	engineRE = regexp.MustCompile(`(?m)^ENGINE = ((?:Replacing|Summing|Aggregating|Collapsing)?MergeTree)\(([^)\n]*)\)$`)
)

// ClusterStatements returns every statement of the cluster DDL for database
// db on the cluster named cluster (remote_servers), in order: the database
// and the ledger on every node, each migration's tables (local, then
// distributed), and the ledger rows of every migration.
func ClusterStatements(cluster, db string, o Options) ([]string, error) {
	if err := validCluster(cluster, db); err != nil {
		return nil, err
	}
	out := clusterBootstrap(cluster, db)
	var ledger []string
	for _, m := range Migrations(Modern, db, o) {
		stmts, err := clusterMigration(cluster, db, m)
		if err != nil {
			return nil, err
		}
		out = append(out, stmts...)
		// An Upgrade rebuilds data an older release made; a cluster
		// database starts with the current shapes and has none.
		ledger = append(ledger, fmt.Sprintf("(%d, '%s', now())", m.Version, m.Name))
	}
	out = append(out, RecordSQL(db)+" VALUES "+strings.Join(ledger, ", "))
	return out, nil
}

func validCluster(cluster, db string) error {
	if err := ValidDatabase(db); err != nil {
		return err
	}
	if !identRE.MatchString(cluster) {
		return fmt.Errorf("cannot use cluster name %q: want letters, digits and _", cluster)
	}
	return nil
}

// clusterBootstrap creates the database and the migrations ledger on every
// node of cluster.
func clusterBootstrap(cluster, db string) []string {
	on := " ON CLUSTER " + cluster
	return []string{
		"CREATE DATABASE IF NOT EXISTS " + db + on,
		`CREATE TABLE IF NOT EXISTS ` + db + `.` + TableMigrations + on + `
(
    version UInt32,
    name String,
    applied_at DateTime('UTC')
)
ENGINE = ReplicatedReplacingMergeTree('` + DefaultKeeperPrefix + `/all/` + db + `/` + TableMigrations + `', '{replica}')
ORDER BY version`,
	}
}

// clusterMigration is the cluster DDL of one Modern migration: for each of
// its tables, the local table and the distributed one.
func clusterMigration(cluster, db string, m Migration) ([]string, error) {
	var out []string
	for _, s := range m.Statements {
		local, dist, err := clusterTable(cluster, db, s)
		if err != nil {
			return nil, fmt.Errorf("migration %d (%s): %w", m.Version, m.Name, err)
		}
		out = append(out, local, dist)
	}
	return out, nil
}

// clusterTable turns one Modern CREATE TABLE into its replicated local
// table and the Distributed table over it.
func clusterTable(cluster, db, stmt string) (local, dist string, err error) {
	m := createRE.FindStringSubmatch(stmt)
	if m == nil || m[1] != db {
		return "", "", fmt.Errorf("cannot put on a cluster a statement that is not a CREATE TABLE in %s: %.60q", db, stmt)
	}
	table := m[2]
	key, ok := clusterShardKeys[table]
	if !ok {
		return "", "", fmt.Errorf("table %s has no sharding key: add it to clusterShardKeys (storage/schema/cluster.go)", table)
	}
	engines := engineRE.FindAllStringSubmatchIndex(stmt, -1)
	if len(engines) != 1 {
		return "", "", fmt.Errorf("table %s: want one MergeTree-family ENGINE line, found %d", table, len(engines))
	}
	e := engines[0]
	engine, args := stmt[e[2]:e[3]], stmt[e[4]:e[5]]
	params := "'" + DefaultKeeperPrefix + "/{shard}/" + db + "/" + table + "', '{replica}'"
	if args != "" {
		params += ", " + args
	}
	local = "CREATE TABLE IF NOT EXISTS " + db + "." + table + "_local ON CLUSTER " + cluster + "\n" +
		stmt[len(m[0]):e[0]] + "ENGINE = Replicated" + engine + "(" + params + ")" + stmt[e[1]:]
	dist = "CREATE TABLE IF NOT EXISTS " + db + "." + table + " ON CLUSTER " + cluster + " AS " + db + "." + table + "_local\n" +
		"ENGINE = Distributed(" + cluster + ", " + db + ", " + table + "_local, " + key + ")"
	return local, dist, nil
}

// ClusterSQL renders the cluster DDL as one script, for clickhouse-client
// --multiquery (deploy/clickhouse/cluster.sql is this output).
func ClusterSQL(cluster, db string, o Options) (string, error) {
	stmts, err := ClusterStatements(cluster, db, o)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "-- Schema of database %s on ClickHouse cluster %s (shards of replicas, ClickHouse Keeper):\n", db, cluster)
	b.WriteString("-- the modern flavor with Replicated engines (TABLE_local) and Distributed tables (TABLE) sharded by site.\n")
	b.WriteString("-- Generated by storage/schema (ClusterSQL); do not edit. Regenerate: go test ./storage/schema -update\n")
	b.WriteString("-- `polis serve --clickhouse-cluster " + cluster + "` and `polis migrate --clickhouse-cluster " + cluster + "` apply it (ApplyCluster);\n")
	b.WriteString("-- by hand, before the first `polis serve` (then run with --migrate=false):\n")
	b.WriteString("--   clickhouse-client --host CH --multiquery < cluster.sql\n\n")
	for _, s := range stmts {
		b.WriteString(s + ";\n\n")
	}
	return strings.TrimSuffix(b.String(), "\n"), nil
}
