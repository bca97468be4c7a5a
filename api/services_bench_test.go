package api

import (
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/twin/registry"
)

// BenchmarkServiceOffices is GET /api/v1/services/cash_withdrawal/offices
// through the server's handler (no network): the demo fleet (4,800
// offices, 250 coworking spaces, real comuni), every ATM reporting, a
// request from a different client address each time near a random office.
//
//	go test -run '^$' -bench ServiceOffices -benchmem ./api/
func BenchmarkServiceOffices(b *testing.B) {
	data := filepath.Join("..", "..", "shared", "data")
	cs, err := registry.LoadComuni(filepath.Join(data, "comuni_mappa_ai_2020.csv"))
	if err != nil {
		b.Fatalf("%v (the benchmark reads ../shared/data next to the repository)", err)
	}
	ll, err := registry.LoadCentroids(filepath.Join(data, "comuni_centroidi_openpolis_2023.csv"))
	if err != nil {
		b.Fatal(err)
	}
	registry.JoinCentroids(cs, ll)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1, Comuni: cs, ReproducibleSecrets: true})
	if err != nil {
		b.Fatal(err)
	}
	live := newFakeLive(b, reg)
	rng := rand.New(rand.NewPCG(1, 2))
	var near []string
	for _, s := range reg.Sites() {
		near = append(near, strconv.FormatFloat(s.Lat, 'f', 4, 64)+","+strconv.FormatFloat(s.Lon, 'f', 4, 64))
		for _, a := range s.Assets {
			if a.Type == registry.TypeATM {
				live.telemetry(s.ID, a.ID, "available", 1, testNow.Add(-time.Minute))
				live.telemetry(s.ID, a.ID, "cash_eur", float64(rng.IntN(100000)), testNow.Add(-time.Minute))
			}
		}
	}
	f, err := services.NewFinder(services.FinderOptions{Fleet: reg, Twin: live})
	if err != nil {
		b.Fatal(err)
	}
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: slog.New(slog.DiscardHandler),
		Limits: Limits{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if err := s.MountV1(V1Options{Fleet: reg, Live: live, Services: f, Now: func() time.Time { return testNow }}); err != nil {
		b.Fatal(err)
	}
	h := s.srv.Handler
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		req := httptest.NewRequest("GET", "/api/v1/services/cash_withdrawal/offices?near="+near[i%len(near)], nil)
		req.RemoteAddr = "127.0.0.1:5000"
		req.Header.Set("X-Forwarded-For", "10.0."+strconv.Itoa(i/250%250)+"."+strconv.Itoa(1+i%250))
		i++
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d: %s", rec.Code, rec.Body)
		}
	}
}
