package dsl

import (
	"testing"
	"time"
)

// BenchmarkEval measures a typical pack condition: twin fields, a history
// window over a 256-point ring and the Rome clock.
func BenchmarkEval(b *testing.B) {
	p := mustCompile(b, `asset.type == "env" && open_now() && !holiday() && hour() >= 8
		&& (avg("co2_ppm", "15m") > 1200 || last("temp_c") > 27)`)
	now := time.Date(2026, time.March, 10, 11, 0, 0, 0, Rome)
	ring := NewRing(256)
	for i := range 256 {
		ts := now.Add(-time.Duration(255-i) * 10 * time.Second)
		ring.Add("co2_ppm", ts, 1300)
		ring.Add("temp_c", ts, 22)
	}
	env := &Env{Metric: "co2_ppm", Value: 1300, TS: now, History: ring,
		Asset: AssetEnv{ID: "env-1", Type: "env", Metrics: map[string]float64{"temp_c": 22, "co2_ppm": 1300}},
		Site:  SiteEnv{ID: "CW-RM-1", Kind: "coworking", OpenNow: true}}
	b.ReportAllocs()
	for b.Loop() {
		ok, err := p.Eval(env)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}
