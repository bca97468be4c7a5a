package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// Ping checks that ClickHouse answers a query.
func Ping(ctx context.Context, conn driver.Conn) error {
	var one uint8
	if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return fmt.Errorf("cannot reach ClickHouse: %w", err)
	}
	return nil
}

// Count returns the number of distinct raw telemetry rows of site (all sites
// if empty). FINAL collapses re-delivered duplicates.
func Count(ctx context.Context, conn driver.Conn, db, site string) (uint64, error) {
	if err := schema.ValidDatabase(db); err != nil {
		return 0, err
	}
	q, args := countSQL(db, site)
	var n uint64
	if err := conn.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count telemetry of %q: %w", site, err)
	}
	return n, nil
}

// countSQL is the query Count runs, with its arguments.
func countSQL(db, site string) (string, []any) {
	q := "SELECT count() FROM " + db + "." + schema.TableTelemetry + " FINAL"
	if site == "" {
		return q, nil
	}
	return q + " WHERE site = ?", []any{site}
}

// CountTable counts the rows of one of the schema's tables, with FINAL
// (distinct rows) or without (rows as stored, duplicates included).
func CountTable(ctx context.Context, conn driver.Conn, db, table string, final bool) (uint64, error) {
	if err := schema.ValidDatabase(db); err != nil {
		return 0, err
	}
	switch table {
	case schema.TableTelemetry, schema.TableEvents, schema.TableDeadLetter:
	default:
		return 0, fmt.Errorf("cannot count table %q: not a raw table of the schema", table)
	}
	q := "SELECT count() FROM " + db + "." + table
	if final {
		q += " FINAL"
	}
	var n uint64
	if err := conn.QueryRow(ctx, q).Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count %s.%s: %w", db, table, err)
	}
	return n, nil
}

// Resolution selects a rollup table.
type Resolution int

const (
	Minute Resolution = iota + 1
	Hour
)

func (r Resolution) table() (string, error) {
	switch r {
	case Minute:
		return schema.TableTelemetry1m, nil
	case Hour:
		return schema.TableTelemetry1h, nil
	}
	return "", fmt.Errorf("cannot query rollup: unknown resolution %d", int(r))
}

// RollupQuery filters a rollup read; empty fields and zero times match all.
type RollupQuery struct {
	Site, Asset, Metric string
	From, To            time.Time // bucket start in [From, To)
}

// Bucket is one merged rollup row.
type Bucket struct {
	Site   string    `ch:"site"`
	Asset  string    `ch:"asset"`
	Metric string    `ch:"metric"`
	Start  time.Time `ch:"bucket"`
	Min    float64   `ch:"min_value"`
	Max    float64   `ch:"max_value"`
	Avg    float64   `ch:"avg_value"`
	Count  uint64    `ch:"samples"`
	Last   float64   `ch:"last_value"` // value of the latest sample in the bucket
}

// Rollup reads buckets, ordered by series then time. The writer rewrites a
// bucket's row as points arrive (schema: rollupTable), so FINAL is what
// makes the answer the newest row of each bucket until merges catch up.
func Rollup(ctx context.Context, conn driver.Conn, db string, res Resolution, q RollupQuery) ([]Bucket, error) {
	if err := schema.ValidDatabase(db); err != nil {
		return nil, err
	}
	sql, args, err := rollupSQL(db, res, q)
	if err != nil {
		return nil, err
	}
	var out []Bucket
	if err := conn.Select(ctx, &out, sql, args...); err != nil {
		table, _ := res.table()
		return nil, fmt.Errorf("cannot read %s.%s: %w", db, table, err)
	}
	return out, nil
}

// rollupSQL is the query Rollup runs, with its arguments.
func rollupSQL(db string, res Resolution, q RollupQuery) (string, []any, error) {
	table, err := res.table()
	if err != nil {
		return "", nil, err
	}
	var where []string
	var args []any
	for _, f := range []struct{ col, v string }{{"site", q.Site}, {"asset", q.Asset}, {"metric", q.Metric}} {
		if f.v != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.v)
		}
	}
	if !q.From.IsZero() {
		where = append(where, "bucket >= toDateTime(?)")
		args = append(args, q.From.Unix())
	}
	if !q.To.IsZero() {
		where = append(where, "bucket < toDateTime(?)")
		args = append(args, q.To.Unix())
	}
	sql := `SELECT site, asset, metric, bucket,
    min AS min_value, max AS max_value, if(count = 0, 0, sum / count) AS avg_value,
    count AS samples, last AS last_value
FROM ` + db + `.` + table + ` FINAL`
	if len(where) > 0 {
		sql += "\nWHERE " + strings.Join(where, " AND ")
	}
	sql += "\nORDER BY site, asset, metric, bucket"
	return sql, args, nil
}
