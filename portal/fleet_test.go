package portal

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// The full demo fleet (4,800 post offices in real comuni, 250 coworking
// spaces) with the rollout history the demo generates, built by
// progress.Builder as polis serve does: the benchmarks' snapshot, and a
// test that every kind of page renders at that size.

// fleetNow ends the rollout history.
var fleetNow = time.Date(2026, time.December, 8, 10, 30, 0, 0, rome)

func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join("..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data beside the repository)", err)
	}
	return p
}

var (
	fleetOnce sync.Once
	fleetSnap *progress.Snapshot
	fleetErr  error
)

// fullFleet builds the snapshot once per test binary (it takes seconds).
func fullFleet(tb testing.TB) *progress.Snapshot {
	tb.Helper()
	fleetOnce.Do(func() { fleetSnap, fleetErr = buildFullFleet(tb) })
	if fleetErr != nil {
		tb.Fatal(fleetErr)
	}
	return fleetSnap
}

func buildFullFleet(tb testing.TB) (*progress.Snapshot, error) {
	comuni, err := registry.LoadComuni(sharedData(tb, "comuni_mappa_ai_2020.csv"))
	if err != nil {
		return nil, err
	}
	facts, err := milestone.LoadFactsFile(sharedData(tb, "polis_fatti_pubblici.csv"))
	if err != nil {
		return nil, err
	}
	pack, err := milestone.LoadFile(filepath.Join("..", "rules", "milestones", "polis.yaml"))
	if err != nil {
		return nil, err
	}
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1, Comuni: comuni, ReproducibleSecrets: true})
	if err != nil {
		return nil, err
	}
	reg.SetAllPlanned()
	var rf []registry.RolloutFact
	for _, f := range facts {
		if f.Type == milestone.FactProgress && f.HasValue {
			rf = append(rf, registry.RolloutFact{ID: f.ID, Date: f.Date, Value: f.Value, Unit: f.Unit, Metric: f.Metric})
		}
	}
	events, err := registry.PlanRollout(reg, registry.RolloutOptions{Now: fleetNow, Seed: 1, Facts: rf})
	if err != nil {
		return nil, err
	}
	st := &memStore{}
	final := map[[2]string]lifecycle.State{}
	for _, ev := range events {
		st.changes = append(st.changes, progress.Change{Site: ev.Site, Asset: ev.Asset, From: ev.From, To: ev.To, At: ev.At})
		final[[2]string{ev.Site, ev.Asset}] = ev.To
	}
	b, err := progress.NewBuilder(progress.Options{
		Registry: reg, Milestones: pack, Facts: facts, Comuni: comuni, Store: st, Live: allOnline{},
		Lifecycle: func(site, asset string) (lifecycle.State, bool) {
			s, ok := final[[2]string{site, asset}]
			return s, ok
		},
		Now:    func() time.Time { return fleetNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return nil, err
	}
	if err := b.Refresh(context.Background()); err != nil {
		return nil, err
	}
	return b.Snapshot(), nil
}

// memStore is the lifecycle history and the month's energy in memory,
// where polis serve reads ClickHouse.
type memStore struct{ changes []progress.Change }

func (s *memStore) HistoryVersion(context.Context) (string, error) { return "1", nil }
func (s *memStore) History(context.Context) ([]progress.Change, error) {
	return s.changes, nil
}
func (s *memStore) Energy(context.Context, time.Time, time.Time) (map[string]progress.SiteEnergy, error) {
	return map[string]progress.SiteEnergy{}, nil
}

// allOnline is a live twin where every device reports and none is faulty.
type allOnline struct{}

func (allOnline) AssetStatus(string, string, time.Time) (state.Status, bool) {
	return state.StatusOnline, true
}
func (allOnline) SiteView(string, time.Time) (state.SiteView, bool) { return state.SiteView{}, false }

func fleetPortal(tb testing.TB) *Handler {
	tb.Helper()
	snap := fullFleet(tb)
	h, err := New(Options{Snapshot: func() *progress.Snapshot { return snap }, Services: testAnswers,
		Now: func() time.Time { return fleetNow }, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

// TestFullFleet renders the overview, every region and province, and a
// sample of comuni and offices of the full fleet.
func TestFullFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the full fleet: not with -short")
	}
	h := fleetPortal(t)
	snap := fullFleet(t)
	if len(snap.Offices) != 4800 || len(snap.Coworking) != 250 || len(snap.Regions) != 20 {
		t.Fatalf("fleet of %d offices, %d coworking spaces, %d regions", len(snap.Offices), len(snap.Coworking), len(snap.Regions))
	}
	paths := []string{"/", "/obiettivi", "/regioni", "/coworking", "/fornitori", "/finanziamento", "/cerca?q=san"}
	for _, a := range snap.Regions {
		paths = append(paths, "/regioni/"+a.Slug)
	}
	for _, a := range snap.Provinces {
		paths = append(paths, "/province/"+a.Slug)
	}
	for i := 0; i < len(snap.Comuni); i += 97 {
		paths = append(paths, "/comuni/"+snap.Comuni[i].Code)
	}
	for i := 0; i < len(snap.Offices); i += 151 {
		paths = append(paths, "/uffici/"+snap.Offices[i].Site)
	}
	for _, p := range paths {
		w := get(t, h, p)
		if w.Code != http.StatusOK {
			t.Errorf("%s: %d", p, w.Code)
			continue
		}
		if strings.Contains(w.Body.String(), "n.d.") && p == "/regioni" {
			t.Errorf("/regioni: a region of the map has no figure")
		}
	}
	home := get(t, h, "/").Body.Bytes()
	checkPage(t, home)
	if !strings.Contains(string(home), "Proiezione al ritmo attuale") {
		t.Errorf("the overview has no projection")
	}
}

// The benchmarks serve pages of the full fleet: from the page cache (the
// steady state: one render per page per snapshot, or per liveTTL for an
// office with the services' answers) and rendered each time (the first
// request after a snapshot; offices, each read rarely).
func benchPage(b *testing.B, path string, cached bool) {
	h := fleetPortal(b)
	if !cached {
		h.cache = newPageCache(0)
	}
	if w := get(b, h, path); w.Code != http.StatusOK {
		b.Fatalf("%s: %d", path, w.Code)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r, _ := http.NewRequest(http.MethodGet, path, nil)
		for pb.Next() {
			w := &discardWriter{h: http.Header{}}
			h.ServeHTTP(w, r)
			if w.code != http.StatusOK {
				b.Errorf("%s: %d", path, w.code)
				return
			}
		}
	})
}

// discardWriter is a ResponseWriter that keeps only the status, so that
// the benchmark measures the handler and not a recorder's buffer.
type discardWriter struct {
	h    http.Header
	code int
}

func (w *discardWriter) Header() http.Header { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return len(b), nil
}
func (w *discardWriter) WriteHeader(code int) { w.code = code }

func BenchmarkOverview(b *testing.B)       { benchPage(b, "/", true) }
func BenchmarkOverviewRender(b *testing.B) { benchPage(b, "/", false) }
func BenchmarkRegion(b *testing.B)         { benchPage(b, "/regioni/lombardia", true) }
func BenchmarkRegionRender(b *testing.B)   { benchPage(b, "/regioni/lombardia", false) }
func BenchmarkProvinceRender(b *testing.B) { benchPage(b, "/province/cn", false) }
func BenchmarkOffice(b *testing.B)         { benchPage(b, "/uffici/"+fullFleet(b).Offices[0].Site, true) }
func BenchmarkOfficeRender(b *testing.B) {
	benchPage(b, "/uffici/"+fullFleet(b).Offices[0].Site, false)
}
func BenchmarkSearch(b *testing.B)           { benchPage(b, "/cerca?q=san", true) }
func BenchmarkOfficeNoServices(b *testing.B) { benchOfficeCached(b) }

// benchOfficeCached: an office page without live answers is cached like
// the others.
func benchOfficeCached(b *testing.B) {
	snap := fullFleet(b)
	h, err := New(Options{Snapshot: func() *progress.Snapshot { return snap }, Now: func() time.Time { return fleetNow },
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	path := "/uffici/" + snap.Offices[0].Site
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r, _ := http.NewRequest(http.MethodGet, path, nil)
		for pb.Next() {
			h.ServeHTTP(&discardWriter{h: http.Header{}}, r)
		}
	})
}
