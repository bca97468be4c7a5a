package record

import "testing"

func BenchmarkRecordRoundTrip(b *testing.B) {
	r := &Record{Kind: KindTelemetry, Site: "PO-001001-1", Asset: "env-1", Received: 1700000000123}
	for i := range 4 {
		r.Points = append(r.Points, Point{Metric: []string{"temp_c", "co2_ppm", "humidity_pct", "occupancy_count"}[i], TS: 1700000000000, Value: 21.5 + float64(i)})
	}
	b.ReportAllocs()
	for b.Loop() {
		v, err := Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		var out Record
		if err := Unmarshal(v, &out); err != nil {
			b.Fatal(err)
		}
	}
}
