package polisds_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
	"github.com/polis-platform/polis/storage/schema"
)

// Benchmark sizes: 100 series (10 sites × 5 assets × 2 metrics), 7 days of
// 1-hour rollup rows, each standing for 360 raw points (one every 10 s).
const (
	benchSeries        = 100
	benchHours         = 7 * 24
	benchPointsPerHour = 360
)

// BenchmarkQueryData_7Days100Series is a timeseries query over 7 days
// with a 1-hour interval (the 1-hour rollup, FINAL, merged into the
// interval), through the plugin's gRPC server, on 100 series × 168 hourly
// rows = 16,800 rows (6,048,000 raw points) inserted once.
func BenchmarkQueryData_7Days100Series(b *testing.B) {
	addr := chtest.Shared(b)
	db := chtest.Database(b, addr)
	conn := chtest.Conn(b, addr)
	ctx := context.Background()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	f, err := schema.Detect(ctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	to := time.Now().UTC().Truncate(time.Hour)
	from := to.Add(-benchHours * time.Hour)
	var rows [][]any
	for s := range benchSeries {
		site, asset, metric := fmt.Sprintf("PO-%02d", s/10), fmt.Sprintf("env-%d", s%10/2), []string{"temp_c", "co2_ppm"}[s%2]
		for h := range benchHours {
			bucket := from.Add(time.Duration(h) * time.Hour)
			last := bucket.Add(time.Hour - 10*time.Second)
			var lastTS any = last
			if f != schema.Modern {
				lastTS = uint64(last.UnixMilli())
			}
			v := float64(20 + h%24)
			rows = append(rows, []any{site, asset, metric, bucket, v - 1, v + 1, v * benchPointsPerHour,
				uint64(benchPointsPerHour), v, lastTS, uint64(h + 1)})
		}
	}
	exec(b, ctx, conn, "INSERT INTO "+db+".telemetry_1h (site, asset, metric, bucket, min, max, sum, count, last, last_ts, upto)", rows...)

	client := startPlugin(b)
	settings, _ := json.Marshal(map[string]any{"clickhouseAddress": addr, "database": db})
	model, _ := json.Marshal(polisds.TimeSeriesQuery{QueryType: "timeseries"})
	req := &backend.QueryDataRequest{
		PluginContext: backend.PluginContext{PluginID: polisds.PluginID, DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
			ID: 1, UID: "bench", Name: "Polis", JSONData: settings, Updated: time.Now()}},
		Queries: []backend.DataQuery{{RefID: "A", JSON: model, Interval: time.Hour, MaxDataPoints: 1000,
			TimeRange: backend.TimeRange{From: from, To: to}}},
	}
	check := func() {
		resp, err := client.QueryData(ctx, req)
		if err != nil {
			b.Fatal(err)
		}
		r := resp.Responses["A"]
		if r.Error != nil {
			b.Fatal(r.Error)
		}
		n := 0
		for _, fr := range r.Frames {
			n += fr.Rows()
		}
		if len(r.Frames) != benchSeries || n != len(rows) {
			b.Fatalf("%d frames, %d points; want %d, %d", len(r.Frames), n, benchSeries, len(rows))
		}
	}
	check() // warm: the instance, the flavor, the server's caches
	b.ResetTimer()
	start := time.Now()
	for b.Loop() {
		check()
	}
	el := time.Since(start)
	b.ReportMetric(el.Seconds()*1000/float64(b.N), "ms/query")
	b.ReportMetric(float64(len(rows))*float64(b.N)/el.Seconds(), "rows/s")
	b.ReportMetric(float64(len(rows))*benchPointsPerHour*float64(b.N)/el.Seconds(), "raw-points/s")
}
