package storage

import (
	"fmt"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/storage/schema"
)

// BenchmarkRollupMerge is the writer's rollup work for a batch of 30,000
// points from 1,000 series (a 500 ms batch at 60,000 points/s), its rows in
// the cache as in steady state: both tables, per point.
func BenchmarkRollupMerge(b *testing.B) {
	t0 := time.Now().Truncate(time.Minute)
	batch := newBatch(schema.Legacy)
	for i := range 10_000 {
		batch.tel.add(&record.Record{Site: fmt.Sprintf("PO-%06d-1", i%200), Asset: fmt.Sprintf("env-%d", i%5), Received: t0.UnixMilli(),
			Points: []record.Point{{Metric: "temp_c", TS: t0.UnixMilli() + int64(i), Value: 21}, {Metric: "co2_ppm", TS: t0.UnixMilli() + int64(i), Value: 400},
				{Metric: "power_kw", TS: t0.UnixMilli() + int64(i), Value: 1}}}, 0, int64(i))
	}
	rs := newRollups(schema.Legacy)
	for _, r := range rs {
		for k := range r.missing(batch.tel) {
			r.cache[k] = rollupRow{}
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		batch.tel.sid = batch.tel.sid[:0] // each batch numbers its series again
		for _, r := range rs {
			r.reset()
			for k := range r.missing(batch.tel) {
				r.cache[k] = rollupRow{}
			}
			r.mergeBatch(batch.tel)
		}
	}
	b.ReportMetric(float64(b.N*batch.tel.len())/b.Elapsed().Seconds(), "points/s")
}
