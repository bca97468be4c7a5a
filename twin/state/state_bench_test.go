package state

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

// benchSiteTypes is a site of 30 assets; 5,000 sites make 150,000.
var benchSiteTypes = []string{"atm", "totem", "locker", "showcase", "evc", "evc", "pv", "env", "env", "meter",
	"outdoor", "gateway", "room", "room", "room", "room",
	"desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk", "desk"}

// benchMetrics are eight metrics per type: the simulator's, padded.
var benchMetrics = map[string][]string{
	"atm":      {"available", "cassette1_pct", "cassette2_pct", "cassette3_pct", "cassette4_pct", "transactions_count", "cash_eur", "temp_c"},
	"totem":    {"online", "session_count", "paper_pct", "temp_c", "uptime_s", "rssi_dbm", "cpu_pct", "mem_pct"},
	"locker":   {"free_count", "occupied_count", "temp_c", "door_open_count", "uptime_s", "rssi_dbm", "cpu_pct", "mem_pct"},
	"showcase": {"online", "screen_on", "interactions_count", "temp_c", "uptime_s", "rssi_dbm", "cpu_pct", "mem_pct"},
	"evc":      {"connector_state", "power_kw", "energy_kwh", "energy_total_kwh", "voltage_v", "current_a", "temp_c", "uptime_s"},
	"pv":       {"power_kw", "energy_kwh", "inverter_state", "voltage_v", "current_a", "temp_c", "uptime_s", "rssi_dbm"},
	"env":      {"temp_c", "humidity_pct", "co2_ppm", "occupancy_count", "voc_ppb", "pm25_ugm3", "noise_db", "lux"},
	"meter":    {"power_kw", "energy_kwh", "voltage_v", "current_a", "frequency_hz", "pf", "temp_c", "uptime_s"},
	"outdoor":  {"occupancy_count", "lights_on", "temp_c", "humidity_pct", "noise_db", "lux", "uptime_s", "rssi_dbm"},
	"gateway":  {"uptime_s", "rssi_dbm", "cpu_pct", "mem_pct", "temp_c", "rx_count", "tx_count", "queue_count"},
	"desk":     {"occupied", "temp_c", "lux", "noise_db", "battery_pct", "rssi_dbm", "uptime_s", "presence_count"},
	"room":     {"occupied", "occupancy_count", "temp_c", "co2_ppm", "humidity_pct", "lux", "noise_db", "battery_pct"},
}

type benchAsset struct{ site, asset, typ string }

func benchFleet(assets int) []benchAsset {
	out := make([]benchAsset, 0, assets)
	for i := 0; len(out) < assets; i++ {
		site := fmt.Sprintf("PO-%06d-1", i)
		n := map[string]int{}
		for _, typ := range benchSiteTypes {
			if len(out) == assets {
				break
			}
			n[typ]++
			out = append(out, benchAsset{site, fmt.Sprintf("%s-%d", typ, n[typ]), typ})
		}
	}
	return out
}

func benchRecord(a benchAsset, ts int64, rng *rand.Rand) *record.Record {
	r := &record.Record{Kind: record.KindTelemetry, Site: a.site, Asset: a.asset, Received: ts + 500}
	for _, m := range benchMetrics[a.typ] {
		r.Points = append(r.Points, record.Point{Metric: m, TS: ts, Value: float64(rng.IntN(100))})
	}
	return r
}

// loadBench registers the fleet and gives every asset its eight metrics.
func loadBench(fleet []benchAsset, start int64) *Store {
	s := New(Options{Location: rome})
	rng := rand.New(rand.NewPCG(1, 1))
	for _, a := range fleet {
		s.AddAsset(a.site, a.asset, a.typ)
		s.Apply(benchRecord(a, start, rng))
	}
	return s
}

// benchStream is records (updates) of random assets with four points each (a typical
// telemetry message); the benchmark moves their timestamps forward on every
// pass so that each Apply is a real update.
func benchStream(fleet []benchAsset, n int, start int64) []*record.Record {
	rng := rand.New(rand.NewPCG(2, 2))
	recs := make([]*record.Record, n)
	for i := range recs {
		r := benchRecord(fleet[rng.IntN(len(fleet))], start+int64(i), rng)
		r.Points = r.Points[:4]
		recs[i] = r
	}
	return recs
}

const benchAssets = 150_000

func BenchmarkApply(b *testing.B) {
	start := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC).UnixMilli()
	fleet := benchFleet(benchAssets)
	s := loadBench(fleet, start)
	recs := benchStream(fleet, 1<<16, start+1000)
	b.ReportAllocs()
	b.ResetTimer()
	points := 0
	for i := 0; b.Loop(); i++ {
		r := recs[i&(len(recs)-1)]
		if i&(len(recs)-1) == 0 {
			for _, r := range recs {
				for j := range r.Points {
					r.Points[j].TS += 1 << 20
					r.Points[j].Value++
				}
				r.Received += 1 << 20
			}
		}
		s.Apply(r)
		points += len(r.Points)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
	b.ReportMetric(float64(points)/b.Elapsed().Seconds(), "points/s")
}

func BenchmarkApplyParallel(b *testing.B) {
	start := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC).UnixMilli()
	fleet := benchFleet(benchAssets)
	s := loadBench(fleet, start)
	b.ReportAllocs()
	b.ResetTimer()
	var seed uint64
	b.RunParallel(func(pb *testing.PB) {
		seed++ // RunParallel's setup is serial
		rng := rand.New(rand.NewPCG(seed, 3))
		r := &record.Record{Kind: record.KindTelemetry, Points: make([]record.Point, 4)}
		ts := start + 1000
		for pb.Next() {
			a := fleet[rng.IntN(len(fleet))]
			ts++
			r.Site, r.Asset, r.Received = a.site, a.asset, ts
			for j := range r.Points {
				r.Points[j] = record.Point{Metric: benchMetrics[a.typ][j], TS: ts, Value: float64(ts & 1023)}
			}
			s.Apply(r)
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "updates/s")
}

// heapInuse returns the in-use heap after a full collection.
func heapInuse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// memoryPerAsset loads n assets with eight metrics each and returns the heap
// growth per asset. The id strings are shared with the caller (the registry),
// as they are when the twin is fed from the registry.
func memoryPerAsset(n int) float64 {
	fleet := benchFleet(n)
	start := time.Date(2026, 6, 15, 12, 0, 0, 0, time.UTC).UnixMilli()
	before := heapInuse()
	s := loadBench(fleet, start)
	after := heapInuse()
	runtime.KeepAlive(s)
	return (float64(after) - float64(before)) / float64(n)
}

func BenchmarkMemoryPerAsset(b *testing.B) {
	var per float64
	for b.Loop() {
		per = memoryPerAsset(benchAssets)
	}
	b.ReportMetric(per, "bytes/asset")
}

// TestMemoryPerAsset holds the aim of under 1 KiB per asset.
func TestMemoryPerAsset(t *testing.T) {
	if testing.Short() {
		t.Skip("loads 50,000 assets")
	}
	if per := memoryPerAsset(50_000); per > 1024 {
		t.Fatalf("unexpected memory per asset; got %.0f bytes; want under 1024", per)
	} else {
		t.Logf("%.0f bytes per asset", per)
	}
}
