package schema

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// clusterSkipsUpgrade are the migrations whose Upgrade rebuilds data in a
// shape older than the cluster DDL: a cluster database was never in it, so
// ApplyCluster records them without running the Upgrade. A new migration
// with an Upgrade must be added here or given a cluster form; until then
// ApplyCluster refuses it rather than skip it silently.
var clusterSkipsUpgrade = map[int]bool{
	8: true, // point_identity: databases made before the point's Kafka identity was in the key
}

// clusterStep is one migration as the cluster applies it.
type clusterStep struct {
	m          Migration
	statements []string
}

// clusterPlan is the steps that bring a cluster database whose ledger holds
// done up to date with migrations, in order.
func clusterPlan(cluster, db string, migrations []Migration, done map[int]bool) ([]clusterStep, error) {
	var steps []clusterStep
	for _, m := range migrations {
		if done[m.Version] {
			continue
		}
		if m.Upgrade != nil && !clusterSkipsUpgrade[m.Version] {
			return nil, fmt.Errorf("migration %d (%s) upgrades existing data, which ApplyCluster cannot do on a cluster: "+
				"give it a cluster form in storage/schema (applycluster.go)", m.Version, m.Name)
		}
		stmts, err := clusterMigration(cluster, db, m)
		if err != nil {
			return nil, err
		}
		steps = append(steps, clusterStep{m: m, statements: stmts})
	}
	return steps, nil
}

// ApplyCluster is ApplyWith for a ClickHouse cluster of shards of replicas
// (deploy/): it brings database db up to date with the statements
// ClusterStatements lists, on every node of cluster (remote_servers), with
// the same ledger, so running it again, or from several instances at once,
// is a no-op (every statement is IF NOT EXISTS, the ledger a replicated
// ReplacingMergeTree). The server must take the Modern DDL.
//
// An up-to-date database costs no ON CLUSTER statement: each waits for every
// node (distributed_ddl_task_timeout), and an instance restarting while a
// ClickHouse node is down must not wait for it.
//
// It refuses a database whose tables are not the cluster's (one made
// without the cluster flag): the platform would write each node's rows to
// that node alone.
func ApplyCluster(ctx context.Context, conn driver.Conn, cluster, db string, o Options) (applied []int, err error) {
	if err := validCluster(cluster, db); err != nil {
		return nil, err
	}
	v, err := ServerVersion(ctx, conn)
	if err != nil {
		return nil, err
	}
	if f, err := FlavorFor(v); err != nil {
		return nil, err
	} else if f != Modern {
		return nil, fmt.Errorf("cannot apply the cluster schema to ClickHouse %s: it needs the %s DDL (ClickHouse 20.3 or newer)", v, Modern)
	}
	ledger, err := tableEngine(ctx, conn, db, TableMigrations)
	if err != nil {
		return nil, err
	}
	if ledger == "" {
		for _, s := range clusterBootstrap(cluster, db) {
			if err := conn.Exec(ctx, s); err != nil {
				return nil, fmt.Errorf("cannot create database %s and its migrations table on cluster %s: %w", db, cluster, err)
			}
		}
	}
	done, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	steps, err := clusterPlan(cluster, db, Migrations(Modern, db, o), done)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		for _, s := range st.statements {
			if err := conn.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("cannot apply migration %d (%s) to %s on cluster %s: %w", st.m.Version, st.m.Name, db, cluster, err)
			}
		}
		if err := record(ctx, conn, db, st.m); err != nil {
			return applied, err
		}
		applied = append(applied, st.m.Version)
	}
	if err := CheckCluster(ctx, conn, db); err != nil {
		return applied, err
	}
	return applied, nil
}

// CheckCluster reports an error unless db's telemetry table is Distributed,
// as the cluster DDL makes it.
func CheckCluster(ctx context.Context, conn driver.Conn, db string) error {
	if err := ValidDatabase(db); err != nil {
		return err
	}
	engine, err := tableEngine(ctx, conn, db, TableTelemetry)
	if err != nil {
		return err
	}
	if engine != "Distributed" {
		if engine == "" {
			engine = "missing"
		} else {
			engine = "a " + engine + " table"
		}
		return fmt.Errorf("database %s is not the cluster schema: %s.%s is %s, not Distributed "+
			"(it was made without --clickhouse-cluster; see deploy/README.md)", db, db, TableTelemetry, engine)
	}
	return nil
}

// tableEngine returns the engine of db.table on the server conn reaches,
// or "" if there is no such table.
func tableEngine(ctx context.Context, conn driver.Conn, db, table string) (string, error) {
	var rows []struct {
		Engine string `ch:"engine"`
	}
	if err := conn.Select(ctx, &rows, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", db, table); err != nil {
		return "", fmt.Errorf("cannot look up table %s.%s: %w", db, table, err)
	}
	if len(rows) == 0 {
		return "", nil
	}
	return rows[0].Engine, nil
}
