package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// Sample is one raw telemetry point.
type Sample struct {
	TS    time.Time
	Value float64
}

// maxRawSamples bounds a raw read; longer spans belong to the rollups.
const maxRawSamples = 100000

// Raw reads one series' raw points in [from, to), oldest first, with
// re-delivered duplicates collapsed (FINAL).
func Raw(ctx context.Context, conn driver.Conn, db string, f schema.Flavor, site, asset, metric string, from, to time.Time) ([]Sample, error) {
	if err := schema.ValidDatabase(db); err != nil {
		return nil, err
	}
	sql, args := rawSQL(db, f, site, asset, metric, from, to)
	rows, err := conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("cannot read raw telemetry: %w", err)
	}
	defer rows.Close()
	var out []Sample
	for rows.Next() {
		var t uint64
		var v float64
		if err := rows.Scan(&t, &v); err != nil {
			return nil, fmt.Errorf("cannot read raw telemetry: %w", err)
		}
		ts := time.UnixMilli(int64(t)).UTC()
		if ts.Before(from) || !ts.Before(to) {
			continue
		}
		out = append(out, Sample{TS: ts, Value: v})
	}
	return out, rows.Err()
}

// rawSQL is the query Raw runs, with its arguments: whole seconds around
// [from, to), the milliseconds as t; Raw cuts the rest.
func rawSQL(db string, f schema.Flavor, site, asset, metric string, from, to time.Time) (string, []any) {
	sql := fmt.Sprintf(`SELECT %s AS t, value FROM %s.%s FINAL
WHERE site = ? AND asset = ? AND metric = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)
ORDER BY t LIMIT %d`, unixMillis(f), db, schema.TableTelemetry, maxRawSamples)
	return sql, []any{site, asset, metric, from.Unix(), to.Unix() + 1}
}

// unixMillis is ts in Unix milliseconds (UInt64) in flavor f's columns.
func unixMillis(f schema.Flavor) string {
	if f == schema.Modern {
		return "toUInt64(toUnixTimestamp64Milli(ts))"
	}
	return "toUInt64(toUnixTimestamp(ts)) * 1000 + ts_ms"
}
