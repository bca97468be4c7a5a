package storage

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// History resolutions: the table a history query reads.
const (
	ResolutionRaw    = "raw"
	ResolutionMinute = "1m"
	ResolutionHour   = "1h"
)

// ChooseResolution picks the table a history query reads:
//
//   - span up to 6 hours: raw points (at most some thousands per metric);
//   - span up to 7 days: 1-minute rollups (at most 10,080 buckets);
//   - longer: 1-hour rollups.
//
// A step forces a coarser table when it is at least that table's bucket
// (step >= 1m: at least 1m; step >= 1h: 1h), never a finer one: the coarser
// of the two choices wins.
func ChooseResolution(from, to time.Time, step time.Duration) string {
	span := to.Sub(from)
	rank := 0
	switch {
	case span > 7*24*time.Hour:
		rank = 2
	case span > 6*time.Hour:
		rank = 1
	}
	switch {
	case step >= time.Hour:
		rank = max(rank, 2)
	case step >= time.Minute:
		rank = max(rank, 1)
	}
	return [...]string{ResolutionRaw, ResolutionMinute, ResolutionHour}[rank]
}

// HistoryQuery asks for one metric of one asset over [From, To).
type HistoryQuery struct {
	Site, Asset, Metric string
	From, To            time.Time
	Step                time.Duration
}

// HistoryResult is a history at the resolution ChooseResolution picked.
type HistoryResult struct {
	Resolution string
	Points     []HistoryPoint
}

// HistoryPoint is a raw point (Min = Max = Value, Count 1) or a bucket.
type HistoryPoint struct {
	TS              time.Time
	Value, Min, Max float64
	Count           uint64
}

// History reads an asset's metric from the raw table or a rollup, by
// ChooseResolution.
func History(ctx context.Context, conn driver.Conn, db string, f schema.Flavor, q HistoryQuery) (HistoryResult, error) {
	res := HistoryResult{Resolution: ChooseResolution(q.From, q.To, q.Step)}
	if res.Resolution == ResolutionRaw {
		ss, err := Raw(ctx, conn, db, f, q.Site, q.Asset, q.Metric, q.From, q.To)
		if err != nil {
			return res, err
		}
		for _, s := range ss {
			res.Points = append(res.Points, HistoryPoint{TS: s.TS, Value: s.Value, Min: s.Value, Max: s.Value, Count: 1})
		}
		return res, nil
	}
	r := Minute
	if res.Resolution == ResolutionHour {
		r = Hour
	}
	bs, err := Rollup(ctx, conn, db, r, RollupQuery{Site: q.Site, Asset: q.Asset, Metric: q.Metric, From: q.From, To: q.To})
	if err != nil {
		return res, err
	}
	for _, b := range bs {
		res.Points = append(res.Points, HistoryPoint{TS: b.Start, Value: b.Avg, Min: b.Min, Max: b.Max, Count: b.Count})
	}
	return res, nil
}
