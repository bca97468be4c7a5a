package services

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// sharedData returns the path of a file of the shared public data folder
// (../shared/data next to the repository). The data is not copied into the
// repository, so a missing file fails the test.
func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join("..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data next to the repository)", err)
	}
	return p
}

// demoFleet is `make run`'s fleet: 4,800 post offices in real small comuni
// and 250 coworking spaces in provincial capitals, at their centroids.
var demoFleet = sync.OnceValues(func() (*registry.Registry, error) {
	cs, err := registry.LoadComuni(filepath.Join("..", "..", "shared", "data", "comuni_mappa_ai_2020.csv"))
	if err != nil {
		return nil, err
	}
	ll, err := registry.LoadCentroids(filepath.Join("..", "..", "shared", "data", "comuni_centroidi_openpolis_2023.csv"))
	if err != nil {
		return nil, err
	}
	registry.JoinCentroids(cs, ll)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1, Comuni: cs, ReproducibleSecrets: true})
	return reg, err
})

func loadDemoFleet(tb testing.TB) *registry.Registry {
	tb.Helper()
	sharedData(tb, "comuni_mappa_ai_2020.csv")
	reg, err := demoFleet()
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// haversineKm is the great-circle distance, computed independently of S2.
func haversineKm(a, b registry.LatLon) float64 {
	rad := math.Pi / 180
	dLat, dLon := (b.Lat-a.Lat)*rad, (b.Lon-a.Lon)*rad
	h := math.Sin(dLat/2)*math.Sin(dLat/2) + math.Cos(a.Lat*rad)*math.Cos(b.Lat*rad)*math.Sin(dLon/2)*math.Sin(dLon/2)
	return 2 * EarthRadiusKm * math.Asin(math.Sqrt(h))
}

// The spatial index finds exactly the sites a scan of every site finds,
// at the same distances, for random points and radii over Italy.
func TestWithin_MatchesAScan(t *testing.T) {
	reg := loadDemoFleet(t)
	s := buildSnapshot(reg.Sites(), DefaultCatalogue(), time.Now())
	if len(s.cells) < 5000 {
		t.Fatalf("only %d of %d sites located", len(s.cells), len(s.entries))
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for q := range 300 {
		center := registry.LatLon{Lat: 36.5 + 10.5*rng.Float64(), Lon: 6.8 + 11.7*rng.Float64()}
		radius := []float64{0.5, 5, 25, 60, 200}[q%5]
		got := map[string]int64{}
		s.within(center, radius, func(i int, d int64) {
			id := s.entries[i].site.ID
			if _, dup := got[id]; dup {
				t.Fatalf("%s visited twice", id)
			}
			got[id] = d
		})
		want := 0
		for _, e := range s.entries {
			d := haversineKm(center, registry.LatLon{Lat: e.site.Lat, Lon: e.site.Lon})
			dm, found := got[e.site.ID]
			switch {
			case math.Abs(d-radius) < 0.001: // on the edge: rounding may go either way
				if found {
					want++
				}
			case d < radius:
				want++
				if !found {
					t.Fatalf("query %d (%v, %g km): missed %s at %.3f km", q, center, radius, e.site.ID, d)
				}
				if math.Abs(float64(dm)/1000-d) > 0.002 {
					t.Fatalf("%s: distance %d m; haversine says %.1f m", e.site.ID, dm, d*1000)
				}
			case found:
				t.Fatalf("query %d (%v, %g km): %s at %.3f km is outside", q, center, radius, e.site.ID, d)
			}
		}
		if len(got) != want {
			t.Fatalf("query %d: %d found; want %d", q, len(got), want)
		}
	}
}

// ordered reports whether items are available first, then nearer, then by id.
func ordered(items []OfficeAvailability) bool {
	return slices.IsSortedFunc(items, func(a, b OfficeAvailability) int {
		ka := cursorKey{!a.Availability.Available, int64(math.Round(*a.DistanceKm * 1000)), a.Site}
		kb := cursorKey{!b.Availability.Available, int64(math.Round(*b.DistanceKm * 1000)), b.Site}
		switch {
		case ka.less(kb):
			return -1
		case kb.less(ka):
			return 1
		}
		return 0
	})
}

// Following the cursors gives every office of the query once, in order,
// and the same set as one big page.
func TestFind_RankingAndPagination(t *testing.T) {
	reg := loadDemoFleet(t)
	w := newStoreTwin(t, reg)
	now := romeTime(t, "2026-03-15 10:00") // Sunday: only the ATMs serve
	// Half the ATMs report cash, some too little.
	rng := rand.New(rand.NewPCG(3, 4))
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if a.Type == registry.TypeATM && rng.IntN(2) == 0 {
				cash := 20000.0
				if rng.IntN(4) == 0 {
					cash = 100
				}
				w.telemetry(s.ID, a.ID, now.Add(-time.Minute), "available", 1, "cash_eur", cash)
			}
		}
	}
	f := newTestFinder(t, reg, w)
	q := Query{Service: "cash_withdrawal", Near: &registry.LatLon{Lat: 45.07, Lon: 7.69}, RadiusKm: 60} // Torino
	q.Limit = MaxLimit
	all, err := f.Find(q, now)
	if err != nil {
		t.Fatal(err)
	}
	if all.Total < 40 || all.Available == 0 || all.Available == all.Total || all.Next == "" {
		t.Fatalf("total %d, available %d, next %q: the test needs more than a page of both kinds", all.Total, all.Available, all.Next)
	}
	q.Limit = 7
	var pages []OfficeAvailability
	seen := map[string]bool{}
	cursor := ""
	for n := 0; ; n++ {
		if n > all.Total {
			t.Fatal("the cursors do not end")
		}
		q.Cursor = cursor
		p, err := f.Find(q, now)
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != all.Total || len(p.Items) > q.Limit {
			t.Fatalf("page %d: total %d, %d items", n, p.Total, len(p.Items))
		}
		for _, it := range p.Items {
			if seen[it.Site] {
				t.Fatalf("%s on two pages", it.Site)
			}
			seen[it.Site] = true
			if it.Availability.Service != "cash_withdrawal" || *it.DistanceKm > 60 {
				t.Fatalf("item %+v", it)
			}
		}
		pages = append(pages, p.Items...)
		if p.Next == "" {
			break
		}
		cursor = p.Next
	}
	if len(pages) != all.Total || !ordered(pages) {
		t.Fatalf("%d items over the pages of %d; ordered %v", len(pages), all.Total, ordered(pages))
	}
	avail := 0
	for _, it := range pages {
		if it.Availability.Available {
			avail++
		} else if it.Availability.Reason == "" {
			t.Fatalf("%s unavailable without a reason", it.Site)
		}
	}
	if avail != all.Available {
		t.Fatalf("%d available over the pages; the first said %d", avail, all.Available)
	}

	// A cursor belongs to its query.
	other := q
	other.RadiusKm = 30
	other.Cursor = all.Next
	var qe *QueryError
	if _, err := f.Find(other, now); !errors.As(err, &qe) || qe.Param != "cursor" || !strings.Contains(qe.Msg, "another query") {
		t.Fatalf("cursor of another query: %v", err)
	}
	for _, bad := range []string{"!!", "Zm9v", encodeCursor("x", cursorKey{site: "nope"})} {
		other.Cursor = bad
		if _, err := f.Find(other, now); !errors.As(err, &qe) || qe.Param != "cursor" {
			t.Fatalf("cursor %q: %v", bad, err)
		}
	}

	// available=true keeps only those, in the same order.
	yes := true
	q.Cursor, q.Available, q.Limit = "", &yes, MaxLimit
	onlyAvail, err := f.Find(q, now)
	if err != nil || onlyAvail.Total != all.Available || onlyAvail.Available != all.Available {
		t.Fatalf("available=true: %d of %d, %v", onlyAvail.Total, all.Available, err)
	}
	for i, it := range onlyAvail.Items {
		if !it.Availability.Available || it.Site != pages[i].Site {
			t.Fatalf("available=true item %d: %s; want %s", i, it.Site, pages[i].Site)
		}
	}
}

func TestFind_Filters(t *testing.T) {
	reg := loadDemoFleet(t)
	f := newTestFinder(t, reg, newStoreTwin(t, reg))
	now := romeTime(t, "2026-03-10 10:00") // open: certificates at every counter
	var some *registry.Site
	for _, s := range reg.Sites() {
		if s.Kind == registry.KindPostOffice && s.Region == "Sardegna" {
			some = s
			break
		}
	}
	if some == nil {
		t.Fatal("no office in Sardegna")
	}
	tests := []struct {
		name  string
		q     Query
		check func(t *testing.T, p Page)
		param string // a QueryError on this parameter
		err   error
	}{
		{name: "comune by code", q: Query{Service: "civil_certificate", Comune: some.Comune}, check: func(t *testing.T, p Page) {
			// Nothing has reported: the counter decides, by the office's hours.
			if p.Total != 1 || p.Items[0].Site != some.ID || p.Items[0].DistanceKm != nil || p.Items[0].Availability.Available != Hours(some, now).Open {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "comune by name, any case", q: Query{Service: "civil_certificate", Comune: strings.ToUpper(some.Name)}, check: func(t *testing.T, p Page) {
			if p.Total < 1 || p.Items[0].Name != some.Name {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "region", q: Query{Service: "passport", Region: "sardegna", Limit: MaxLimit}, check: func(t *testing.T, p Page) {
			if p.Total < 100 || len(p.Items) != MaxLimit || p.Next == "" {
				t.Fatalf("total %d, %d items", p.Total, len(p.Items))
			}
			for _, it := range p.Items {
				if it.Region != "Sardegna" {
					t.Fatalf("%s in %s", it.Site, it.Region)
				}
			}
		}},
		{name: "near and region", q: Query{Service: "passport", Near: &registry.LatLon{Lat: some.Lat, Lon: some.Lon}, RadiusKm: 200, Region: "Sardegna", Limit: MaxLimit}, check: func(t *testing.T, p Page) {
			if p.Items[0].Site != some.ID || *p.Items[0].DistanceKm != 0 {
				t.Fatalf("the office at the point is not first: %+v", p.Items[0])
			}
			for _, it := range p.Items {
				if it.Region != "Sardegna" {
					t.Fatalf("%s in %s", it.Site, it.Region)
				}
			}
		}},
		{name: "coworking service at coworking spaces only", q: Query{Service: "coworking_desk", Region: "Lombardia"}, check: func(t *testing.T, p Page) {
			if p.Total == 0 {
				t.Fatal("no coworking space in Lombardia")
			}
			for _, it := range p.Items {
				if it.Kind != registry.KindCoworking {
					t.Fatalf("%s is a %s", it.Site, it.Kind)
				}
			}
		}},
		{name: "unknown comune: nothing", q: Query{Service: "passport", Comune: "Atlantide"}, check: func(t *testing.T, p Page) {
			if p.Total != 0 || p.Items == nil {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "nothing in the sea", q: Query{Service: "passport", Near: &registry.LatLon{Lat: 40, Lon: 12}, RadiusKm: 1}, check: func(t *testing.T, p Page) {
			if p.Total != 0 {
				t.Fatalf("%+v", p)
			}
		}},
		{name: "unknown service", q: Query{Service: "teleport", Region: "Lazio"}, err: ErrUnknownService},
		{name: "no place", q: Query{Service: "passport"}, param: "near"},
		{name: "bad latitude", q: Query{Service: "passport", Near: &registry.LatLon{Lat: 91, Lon: 12}}, param: "near"},
		{name: "NaN longitude", q: Query{Service: "passport", Near: &registry.LatLon{Lat: 41, Lon: math.NaN()}}, param: "near"},
		{name: "radius too large", q: Query{Service: "passport", Near: &registry.LatLon{Lat: 41, Lon: 12}, RadiusKm: 201}, param: "radius_km"},
		{name: "negative radius", q: Query{Service: "passport", Near: &registry.LatLon{Lat: 41, Lon: 12}, RadiusKm: -1}, param: "radius_km"},
		{name: "limit too large", q: Query{Service: "passport", Region: "Lazio", Limit: MaxLimit + 1}, param: "limit"},
		{name: "unknown region", q: Query{Service: "passport", Region: "Atlantide"}, param: "region"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := f.Find(tc.q, now)
			var qe *QueryError
			switch {
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("got %v; want %v", err, tc.err)
				}
			case tc.param != "":
				if !errors.As(err, &qe) || qe.Param != tc.param || qe.Msg == "" {
					t.Fatalf("got %v; want a QueryError on %s", err, tc.param)
				}
			case err != nil:
				t.Fatal(err)
			default:
				tc.check(t, p)
			}
		})
	}
}

func TestCoworking(t *testing.T) {
	reg := testFleet(t, map[string]lifecycle.State{"desk-2": lifecycle.Installed})
	w := newStoreTwin(t, reg)
	f := newTestFinder(t, reg, w)
	now := romeTime(t, "2026-03-10 10:00")
	w.telemetry(testCoworking, "desk-1", now.Add(-time.Minute), "occupied", 0)
	w.telemetry(testCoworking, "room-1", now.Add(-time.Minute), "occupied", 1)
	p, err := f.Coworking(Query{Near: &registry.LatLon{Lat: 45.07, Lon: 7.69}, RadiusKm: 50}, now)
	if err != nil {
		t.Fatal(err)
	}
	if p.Total != 1 || len(p.Items) != 1 {
		t.Fatalf("%+v", p)
	}
	sp := p.Items[0]
	if sp.Site != testCoworking || !sp.OpenNow || !sp.Available || sp.Desks.Total != 2 || sp.Desks.Free == nil || *sp.Desks.Free != 1 ||
		sp.Rooms.Total != 1 || *sp.Rooms.Free != 0 || len(sp.Services) != 2 {
		t.Fatalf("%+v", sp)
	}
	if sp.Services[0].Service != "coworking_desk" || !sp.Services[0].Available || sp.Services[1].Reason != ReasonNoFreeRoom {
		t.Fatalf("services %+v", sp.Services)
	}
	// Closed on Sunday: desks still counted, nothing available.
	p, err = f.Coworking(Query{Region: "Piemonte"}, romeTime(t, "2026-03-15 10:00"))
	if err != nil || p.Total != 1 || p.Items[0].Available || p.Items[0].OpenNow || p.Available != 0 {
		t.Fatalf("closed: %+v, %v", p, err)
	}
	// Held by another instance: counts unknown.
	w.setRemote(testCoworking)
	p, err = f.Coworking(Query{Region: "Piemonte"}, now)
	if err != nil || p.Items[0].Desks.Free != nil || p.Items[0].Available {
		t.Fatalf("remote: %+v, %v", p, err)
	}
	if _, err := f.Coworking(Query{}, now); err == nil {
		t.Fatal("a query without a place was answered")
	}
}

// The index follows the registry: a site added later is found after a
// refresh, and an unchanged registry keeps its index.
func TestFinder_Refresh(t *testing.T) {
	reg := testFleet(t, nil)
	f := newTestFinder(t, reg, newStoreTwin(t, reg))
	now := romeTime(t, "2026-03-10 10:00")
	before := f.snap.Load()
	f.Refresh()
	if f.snap.Load().entries[0].site != before.entries[0].site || len(f.snap.Load().cells) != len(before.cells) {
		t.Fatal("an unchanged registry was indexed again")
	}
	added := &registry.Site{ID: "PO-001004-1", Kind: registry.KindPostOffice, Comune: "001004", Name: "Albiano d'Ivrea", Region: "Piemonte",
		Lat: 45.43, Lon: 7.95, OpeningHours: registry.MustParseOpeningHours(registry.PostOfficeHours)}
	if err := reg.Add(added); err != nil {
		t.Fatal(err)
	}
	if _, ok := f.Office(added.ID, now); ok {
		t.Fatal("found before the refresh interval")
	}
	f.Refresh()
	if _, ok := f.Office(added.ID, now); !ok {
		t.Fatal("not found after a refresh")
	}
	if _, err := NewFinder(FinderOptions{}); err == nil {
		t.Fatal("a finder without fleet and twin")
	}
}
