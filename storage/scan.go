package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// ScanQuery selects raw telemetry for a replay (a rule backtest).
type ScanQuery struct {
	From, To   time.Time // [From, To)
	Sites      []string  // empty: every site
	AssetTypes []string  // by the asset id's prefix; empty: every asset
	Metrics    []string  // empty: every metric
	Limit      int       // rows at most; <= 0: DefaultScanLimit
}

// DefaultScanLimit bounds a replay so that a careless range cannot read the
// whole table into a request.
const DefaultScanLimit = 5_000_000

// Point is one raw telemetry row.
type Point struct {
	Site, Asset, Metric string
	TS                  time.Time
	Value               float64
}

// Scan calls fn for the points of q in event-time order and returns how many
// it read. It stops at the first error fn returns.
func Scan(ctx context.Context, conn driver.Conn, db string, f schema.Flavor, q ScanQuery, fn func(Point) error) (int, error) {
	if err := schema.ValidDatabase(db); err != nil {
		return 0, err
	}
	sql, args := scanSQL(db, f, q)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return 0, fmt.Errorf("cannot scan telemetry: %w", err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var p Point
		var t uint64
		if err := rows.Scan(&p.Site, &p.Asset, &p.Metric, &t, &p.Value); err != nil {
			return n, fmt.Errorf("cannot scan telemetry: %w", err)
		}
		p.TS = time.UnixMilli(int64(t)).UTC()
		if p.TS.Before(q.From) || !p.TS.Before(q.To) {
			continue
		}
		n++
		if err := fn(p); err != nil {
			return n, err
		}
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("cannot scan telemetry: %w", err)
	}
	return n, nil
}

// scanSQL is the query Scan runs, with its arguments: whole seconds around
// [From, To), the milliseconds as t; Scan cuts the rest.
func scanSQL(db string, f schema.Flavor, q ScanQuery) (string, []any) {
	if q.Limit <= 0 {
		q.Limit = DefaultScanLimit
	}
	where := []string{"ts >= toDateTime(?)", "ts < toDateTime(?)"}
	args := []any{q.From.Unix(), q.To.Unix() + 1}
	// One placeholder per value: a bound slice reaches 18.16 as an Array.
	in := func(col string, vals []string) {
		if len(vals) > 0 {
			where = append(where, col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")+")")
			for _, v := range vals {
				args = append(args, v)
			}
		}
	}
	in("site", q.Sites)
	in("metric", q.Metrics)
	if len(q.AssetTypes) > 0 {
		var or []string
		for _, t := range q.AssetTypes {
			or = append(or, "asset LIKE ?") // the prefix, with LIKE's wildcards escaped
			args = append(args, strings.NewReplacer("%", "\\%", "_", "\\_").Replace(t)+"-%")
		}
		where = append(where, "("+strings.Join(or, " OR ")+")")
	}
	sql := fmt.Sprintf("SELECT site, asset, metric, %s AS t, value FROM %s.%s WHERE %s ORDER BY t LIMIT %d",
		unixMillis(f), db, schema.TableTelemetry, strings.Join(where, " AND "), q.Limit)
	return sql, args
}
