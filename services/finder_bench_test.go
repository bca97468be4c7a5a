package services

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// benchFinder is the demo fleet (4,800 offices, 250 coworking spaces) with
// every operational ATM, totem, locker, charger and desk having reported,
// and query points at the offices' own positions (where people are).
func benchFinder(b *testing.B) (*Finder, []registry.LatLon, time.Time) {
	b.Helper()
	reg := loadDemoFleet(b)
	w := newStoreTwin(b, reg)
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC) // Tuesday 10:00 in Rome
	at := now.Add(-time.Minute)
	rng := rand.New(rand.NewPCG(5, 6))
	var points []registry.LatLon
	for _, s := range reg.Sites() {
		points = append(points, registry.LatLon{Lat: s.Lat, Lon: s.Lon})
		for _, a := range s.Assets {
			switch a.Type {
			case registry.TypeATM:
				w.telemetry(s.ID, a.ID, at, "available", 1, "cash_eur", float64(rng.IntN(200000)), "cassette1_pct", 50, "transactions_count", 1000)
			case registry.TypeTotem:
				w.telemetry(s.ID, a.ID, at, "online", 1, "paper_pct", float64(rng.IntN(100)), "session_count", 10)
			case registry.TypeLocker:
				w.telemetry(s.ID, a.ID, at, "free_count", float64(rng.IntN(5)), "occupied_count", 20, "temp_c", 20)
			case registry.TypeEVC:
				w.telemetry(s.ID, a.ID, at, "connector_state", float64(rng.IntN(4)), "power_kw", 7, "energy_kwh", 3)
			case registry.TypeDesk, registry.TypeRoom:
				w.telemetry(s.ID, a.ID, at, "occupied", float64(rng.IntN(2)))
			}
		}
	}
	return newTestFinder(b, reg, w), points, now
}

// go test -run '^$' -bench Finder -benchmem ./services/
func BenchmarkFinder(b *testing.B) {
	f, points, now := benchFinder(b)
	for _, bc := range []struct {
		name    string
		service string
		radius  float64
	}{
		{"cash_withdrawal/25km", "cash_withdrawal", 25},
		{"civil_certificate/25km", "civil_certificate", 25},
		{"cash_withdrawal/200km", "cash_withdrawal", 200},
	} {
		b.Run(bc.name, func(b *testing.B) {
			i, found := 0, 0
			for b.Loop() {
				p := points[i%len(points)]
				i++
				page, err := f.Find(Query{Service: bc.service, Near: &p, RadiusKm: bc.radius}, now)
				if err != nil {
					b.Fatal(err)
				}
				found += page.Total
			}
			b.ReportMetric(float64(found)/float64(i), "offices/op")
		})
	}
	b.Run("office", func(b *testing.B) {
		sites := f.snap.Load().entries
		i := 0
		for b.Loop() {
			if _, ok := f.Office(sites[i%len(sites)].site.ID, now); !ok {
				b.Fatal("unknown site")
			}
			i++
		}
	})
	b.Run("coworking/25km", func(b *testing.B) {
		i := 0
		for b.Loop() {
			p := points[i%len(points)]
			i++
			if _, err := f.Coworking(Query{Near: &p}, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("cash_withdrawal/25km/parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			i := rand.IntN(len(points))
			for pb.Next() {
				p := points[i%len(points)]
				i++
				if _, err := f.Find(Query{Service: "cash_withdrawal", Near: &p}, now); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("index", func(b *testing.B) {
		sites := f.fleet.Sites()
		for b.Loop() {
			buildSnapshot(sites, f.cat, now)
		}
	})
}
