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
	ms := "toUInt64(toUnixTimestamp(ts)) * 1000 + ts_ms"
	if f == schema.Modern {
		ms = "toUInt64(toUnixTimestamp64Milli(ts))"
	}
	sql := fmt.Sprintf(`SELECT %s AS t, value FROM %s.%s FINAL
WHERE site = ? AND asset = ? AND metric = ? AND ts >= toDateTime(?) AND ts < toDateTime(?)
ORDER BY t LIMIT %d`, ms, db, schema.TableTelemetry, maxRawSamples)
	rows, err := conn.Query(ctx, sql, site, asset, metric, from.Unix(), to.Unix()+1)
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
