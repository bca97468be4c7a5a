package progress

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// Store is where the Builder reads the lifecycle history and the month's
// energy: ClickHouse (ClickHouseStore).
type Store interface {
	// HistoryVersion is cheap, and changes whenever the stored history
	// does (and may change when it does not, e.g. when ClickHouse merges
	// duplicate rows): the Builder reads the history again only then.
	HistoryVersion(ctx context.Context) (string, error)
	// History returns every stored lifecycle change.
	History(ctx context.Context) ([]Change, error)
	// Energy returns what each site's PV plants produced and its chargers
	// delivered in [from, to).
	Energy(ctx context.Context, from, to time.Time) (map[string]SiteEnergy, error)
}

// ClickHouseStore reads lifecycle_events and telemetry_1h (storage/schema)
// on either flavor: Debian's 18.16 (Legacy) and current ClickHouse (Modern).
type ClickHouseStore struct {
	conn   driver.Conn
	db     string
	flavor schema.Flavor
}

// NewClickHouseStore reads database db of flavor f through conn.
func NewClickHouseStore(conn driver.Conn, db string, f schema.Flavor) (*ClickHouseStore, error) {
	if conn == nil {
		return nil, fmt.Errorf("cannot read the portal's history: no ClickHouse connection")
	}
	if err := schema.ValidDatabase(db); err != nil {
		return nil, err
	}
	if !f.Valid() {
		return nil, fmt.Errorf("cannot read the portal's history: invalid ClickHouse flavor %v", f)
	}
	return &ClickHouseStore{conn: conn, db: db, flavor: f}, nil
}

// tsMillis is lifecycle_events.ts in Unix ms (Int64) in flavor f's columns.
func tsMillis(f schema.Flavor) string {
	if f == schema.Modern {
		return "toUnixTimestamp64Milli(ts)"
	}
	return "toInt64(toUInt64(toUnixTimestamp(ts)) * 1000 + ts_ms)"
}

// HistoryVersionSQL is the probe HistoryVersion runs: the number of rows
// and the newest change.
func HistoryVersionSQL(db string, f schema.Flavor) string {
	return fmt.Sprintf("SELECT count() AS n, max(%s) AS newest FROM %s.%s", tsMillis(f), db, schema.TableLifecycle)
}

// HistorySQL is the query History runs. Every row is read: the history is
// one row per change of an asset (a few per asset, about 150,000 for the
// whole programme), and the portal folds it in Go, where it replays each
// site day by day; duplicates the table has not merged yet are dropped
// there. ORDER BY is left to Go as well (NewHistory sorts per asset).
func HistorySQL(db string, f schema.Flavor) string {
	return fmt.Sprintf("SELECT site, asset, from_state, to_state, %s AS t FROM %s.%s", tsMillis(f), db, schema.TableLifecycle)
}

// HistoryVersion implements Store.
func (s *ClickHouseStore) HistoryVersion(ctx context.Context) (string, error) {
	var (
		n      uint64
		newest int64
	)
	if err := s.conn.QueryRow(ctx, HistoryVersionSQL(s.db, s.flavor)).Scan(&n, &newest); err != nil {
		return "", fmt.Errorf("cannot probe the lifecycle history: %w", err)
	}
	return fmt.Sprintf("%d/%d", n, newest), nil
}

// History implements Store.
func (s *ClickHouseStore) History(ctx context.Context) ([]Change, error) {
	rows, err := s.conn.Query(ctx, HistorySQL(s.db, s.flavor))
	if err != nil {
		return nil, fmt.Errorf("cannot read the lifecycle history: %w", err)
	}
	defer rows.Close()
	var out []Change
	for rows.Next() {
		var (
			site, asset, from, to string
			ms                    int64
		)
		if err := rows.Scan(&site, &asset, &from, &to, &ms); err != nil {
			return nil, fmt.Errorf("cannot read the lifecycle history: %w", err)
		}
		out = append(out, Change{Site: site, Asset: asset, From: lifecycle.State(from), To: lifecycle.State(to),
			At: time.UnixMilli(ms).UTC()})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the lifecycle history: %w", err)
	}
	return out, nil
}

// Energy counters (loadtest/models_energy.go, twin/state): a PV plant's
// energy_kwh is what it produced since local midnight (it resets every
// night); a charging point's energy_total_kwh is what it delivered over
// its life (it resets only when the device is replaced or reset).
const (
	pvCounter  = "energy_kwh"
	evcCounter = "energy_total_kwh"
)

// EnergySQL is the query Energy runs over [from, to): per asset, the
// increase of its counter, from the hourly rollup (telemetry_1h, exact
// and small: one row per series and hour, where raw telemetry has one per
// sample). The increase sums the differences between consecutive hours'
// last readings, and counts a reading lower than the one before (the
// counter reset: at midnight, or after a restart) as increase since the
// reset, as Prometheus's increase() does; the first hour adds its own rise
// (last - min). Both flavors have the same rollup columns; the query uses
// only functions ClickHouse 18.16 has.
func EnergySQL(db string, from, to time.Time) string {
	return fmt.Sprintf(`SELECT site, asset, metric,
    arraySort(groupArray((bucket, min, last))) AS s,
    arrayMap(x -> tupleElement(x, 3), s) AS v,
    greatest(tupleElement(s[1], 3) - tupleElement(s[1], 2), 0)
      + arraySum(arrayMap((c, p) -> if(c >= p, c - p, c), arrayPopFront(v), arrayPopBack(v))) AS kwh
FROM %s.%s FINAL
WHERE bucket >= toDateTime(%d) AND bucket < toDateTime(%d)
  AND ((metric = '%s' AND asset LIKE '%s-%%') OR (metric = '%s' AND asset LIKE '%s-%%'))
GROUP BY site, asset, metric`, db, schema.TableTelemetry1h, from.Unix(), to.Unix(),
		pvCounter, registry.TypePV, evcCounter, registry.TypeEVC)
}

// Energy implements Store.
func (s *ClickHouseStore) Energy(ctx context.Context, from, to time.Time) (map[string]SiteEnergy, error) {
	rows, err := s.conn.Query(ctx, "SELECT site, asset, kwh FROM ("+EnergySQL(s.db, from, to)+")")
	if err != nil {
		return nil, fmt.Errorf("cannot read the month's energy: %w", err)
	}
	defer rows.Close()
	out := map[string]SiteEnergy{}
	for rows.Next() {
		var (
			site, asset string
			kwh         float64
		)
		if err := rows.Scan(&site, &asset, &kwh); err != nil {
			return nil, fmt.Errorf("cannot read the month's energy: %w", err)
		}
		e := out[site]
		if strings.HasPrefix(asset, registry.TypePV+"-") {
			e.PVkWh += kwh
		} else {
			e.EVCkWh += kwh
		}
		out[site] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read the month's energy: %w", err)
	}
	return out, nil
}

// monthStart is the start of now's calendar month in Europe/Rome.
func monthStart(now time.Time) time.Time {
	n := now.In(rome)
	return time.Date(n.Year(), n.Month(), 1, 0, 0, 0, 0, rome)
}
