package schema

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// upgradeIdentity rebuilds the telemetry tables of a database made before
// migration 8: the raw table gains the Kafka identity of each point in its
// key, and the rollups become the exact rows the writer keeps (they were
// AggregatingMergeTree tables fed by materialised views, which counted a
// re-inserted batch twice). Each step is recognised by the tables it left,
// so an interrupted upgrade resumes: old tables are renamed *_pre8 while
// they are copied, then *_v7, which stay for the operator to drop.
func upgradeIdentity(ctx context.Context, conn driver.Conn, d dialect) error {
	ts := "ts"
	if !d.modern() {
		ts = "ts, ts_ms"
	}
	// The views go first: they would feed the old rollups from the copy of
	// the raw rows below.
	for _, t := range []string{TableTelemetry1m, TableTelemetry1h} {
		if err := conn.Exec(ctx, "DROP TABLE IF EXISTS "+d.db+"."+t+"_mv"); err != nil {
			return fmt.Errorf("cannot drop the view feeding %s: %w", t, err)
		}
	}
	raw := []string{"site", "asset", "metric", ts, "value", "received", "late"}
	if err := rebuild(ctx, conn, d, TableTelemetry, "koffset", d.telemetry(),
		fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s_pre8", d.db, TableTelemetry, strings.Join(raw, ", "), strings.Join(raw, ", "), d.db, TableTelemetry)); err != nil {
		return err
	}
	ev := []string{"site", "asset", ts, "type", "body", "received"}
	if err := rebuild(ctx, conn, d, TableEvents, "koffset", d.events(),
		fmt.Sprintf("INSERT INTO %s.%s (%s) SELECT %s FROM %s.%s_pre8", d.db, TableEvents, strings.Join(ev, ", "), strings.Join(ev, ", "), d.db, TableEvents)); err != nil {
		return err
	}
	lastTS := "toUInt64(toUnixTimestamp(bucket)) * 1000"
	if d.modern() {
		lastTS = "toDateTime64(bucket, 3, 'UTC')"
	}
	for _, r := range []struct{ table, partition string }{{TableTelemetry1m, "toYYYYMM(bucket)"}, {TableTelemetry1h, "toYear(bucket)"}} {
		// The old states carry no time of the last value: the bucket's
		// start stands in for it, and upto 0 lets every new point in.
		copySQL := fmt.Sprintf(`INSERT INTO %[1]s.%[2]s (site, asset, metric, bucket, min, max, sum, count, last, last_ts, kpart, upto, seen)
SELECT site, asset, metric, bucket, minMerge(min), maxMerge(max), avgMerge(avg) * countMerge(count), countMerge(count),
    argMaxMerge(last), %[3]s, 0, 0, 0
FROM %[1]s.%[2]s_pre8 GROUP BY site, asset, metric, bucket`, d.db, r.table, lastTS)
		if err := rebuild(ctx, conn, d, r.table, "upto", d.rollupTable(r.table, r.partition), copySQL); err != nil {
			return err
		}
	}
	return nil
}

// rebuild replaces table by the shape create makes when it lacks column
// marker, copying its rows with copySQL.
func rebuild(ctx context.Context, conn driver.Conn, d dialect, table, marker, create, copySQL string) error {
	exists, err := tableExists(ctx, conn, d.db, table)
	if err != nil {
		return err
	}
	if exists {
		has, err := columnExists(ctx, conn, d.db, table, marker)
		if err != nil {
			return err
		}
		if !has {
			if err := conn.Exec(ctx, fmt.Sprintf("RENAME TABLE %s.%s TO %s.%s_pre8", d.db, table, d.db, table)); err != nil {
				return fmt.Errorf("cannot set %s aside: %w", table, err)
			}
		}
	}
	if err := conn.Exec(ctx, create); err != nil {
		return fmt.Errorf("cannot create %s: %w", table, err)
	}
	pending, err := tableExists(ctx, conn, d.db, table+"_pre8")
	if err != nil || !pending {
		return err
	}
	// A copy interrupted and run again inserts the same rows twice; they
	// collapse like any re-insert.
	if err := conn.Exec(ctx, copySQL); err != nil {
		return fmt.Errorf("cannot copy %s into its new shape: %w", table, err)
	}
	if err := conn.Exec(ctx, fmt.Sprintf("RENAME TABLE %s.%s_pre8 TO %s.%s_v7", d.db, table, d.db, table)); err != nil {
		return fmt.Errorf("cannot keep the old %s: %w", table, err)
	}
	return nil
}

func tableExists(ctx context.Context, conn driver.Conn, db, table string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?", db, table).Scan(&n); err != nil {
		return false, fmt.Errorf("cannot look for table %s.%s: %w", db, table, err)
	}
	return n > 0, nil
}

func columnExists(ctx context.Context, conn driver.Conn, db, table, column string) (bool, error) {
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?", db, table, column).Scan(&n); err != nil {
		return false, fmt.Errorf("cannot read the columns of %s.%s: %w", db, table, err)
	}
	return n > 0, nil
}
