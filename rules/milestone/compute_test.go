package milestone

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// fleet is a small hand-built registry:
//
//	PO-058001-1 Lazio     atm-1 operational, totem-1 installed (live: operational), gw-1 commissioned (live: bogus)
//	PO-092001-1 Sardegna  atm-1 "" (live: faulty), totem-1 planned, gw-1 ""
//	PO-001001-1 (none)    atm-1 decommissioned, pv-1 operational
//	CW-RM-1     Lazio     desk-1 operational, desk-2 faulty, room-1 commissioned
//	CW-CA-1     Sardegna  no assets
func fleet() ([]*registry.Site, StateFunc) {
	a := func(id string, st lifecycle.State) *registry.Asset {
		return &registry.Asset{ID: id, Type: registry.AssetTypeOf(id), Lifecycle: st}
	}
	sites := []*registry.Site{
		{ID: "PO-058001-1", Kind: registry.KindPostOffice, Region: "Lazio", Population: 3000, Assets: []*registry.Asset{
			a("atm-1", lifecycle.Operational), a("totem-1", lifecycle.Installed), a("gw-1", lifecycle.Commissioned)}},
		{ID: "PO-092001-1", Kind: registry.KindPostOffice, Region: "Sardegna", Population: 800, Assets: []*registry.Asset{
			a("atm-1", ""), a("totem-1", lifecycle.Planned), a("gw-1", "")}},
		{ID: "PO-001001-1", Kind: registry.KindPostOffice, Population: 1200, Assets: []*registry.Asset{
			a("atm-1", lifecycle.Decommissioned), a("pv-1", lifecycle.Operational)}},
		{ID: "CW-RM-1", Kind: registry.KindCoworking, Region: "Lazio", Assets: []*registry.Asset{
			a("desk-1", lifecycle.Operational), a("desk-2", lifecycle.Faulty), a("room-1", lifecycle.Commissioned)}},
		{ID: "CW-CA-1", Kind: registry.KindCoworking, Region: "Sardegna"},
	}
	live := map[string]lifecycle.State{
		"PO-058001-1/totem-1": lifecycle.Operational,
		"PO-092001-1/atm-1":   lifecycle.Faulty,
		"PO-058001-1/gw-1":    "bogus", // an invalid live state falls back to the registry
	}
	state := func(site, asset string) (lifecycle.State, bool) {
		st, ok := live[site+"/"+asset]
		return st, ok
	}
	return sites, state
}

const computePack = `milestones:
  - {id: atm_achieved, title: t, line: sportello_unico, count: assets, target: 2, deadline: 2026-12-31,
     where: 'asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]', source: {fact: F16, url: "https://x.it"}}
  - {id: atm_over, title: t, line: sportello_unico, count: assets, target: 1, deadline: 2026-12-31,
     where: 'asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]', source: {fact: F16, url: "https://x.it"}}
  - {id: atm_late, title: t, line: sportello_unico, count: assets, target: 4, deadline: 2024-06-30,
     where: 'asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]', source: {fact: F16, url: "https://x.it"}}
  - {id: atm_on_track, title: t, line: sportello_unico, count: assets, target: 3, start: 2024-01-01, deadline: 2024-12-31,
     where: 'asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]', source: {fact: F16, url: "https://x.it"}}
  - {id: atm_at_risk, title: t, line: sportello_unico, count: assets, target: 5, start: 2024-01-01, deadline: 2024-12-31,
     where: 'asset.type == "atm" && asset.lifecycle in ["operational", "faulty"]', source: {fact: F16, url: "https://x.it"}}
  - {id: sites_complete, title: t, line: programma, count: sites, target: 10, deadline: 2026-12-31,
     where: 'all_assets_in("commissioned", "operational", "faulty")', source: {fact: F28, url: "https://x.it"}}
  - {id: sites_with_atm, title: t, line: sportello_unico, count: sites, target: 10, deadline: 2026-12-31,
     where: 'site.kind == "post_office" && assets_in("atm", "operational", "faulty") >= 1', source: {fact: F28, url: "https://x.it"}}
  - {id: pv_any, title: t, line: sportello_unico, count: assets, target: 10, deadline: 2026-12-31,
     where: 'asset.type == "pv"', source: {fact: F20, url: "https://x.it"}}
  - {id: planned, title: t, line: programma, count: assets, target: 10, deadline: 2026-12-31,
     where: 'asset.lifecycle == "planned"', source: {fact: F28, url: "https://x.it"}}
  - {id: faulty_desk_sites, title: t, line: spazi_per_italia, count: sites, target: 10, deadline: 2026-12-31,
     where: 'any(site.assets, .type == "desk" && .lifecycle == "faulty")', source: {fact: F23, url: "https://x.it"}}
  - {id: runtime_error, title: t, line: programma, count: sites, target: 10, deadline: 2026-12-31,
     where: 'site.assets[10].id == "x"', source: {fact: F23, url: "https://x.it"}}
`

func TestCompute(t *testing.T) {
	ms, err := Load("compute.yaml", []byte(computePack))
	if err != nil {
		t.Fatal(err)
	}
	sites, state := fleet()
	now := time.Date(2024, 7, 1, 12, 0, 0, 0, time.UTC)
	got := Compute(ms, sites, state, now)
	if len(got) != len(ms) {
		t.Fatalf("got %d progress rows for %d milestones", len(got), len(ms))
	}
	want := []struct {
		id       string
		current  int
		percent  float64
		status   string
		expected int
		byRegion map[string]int
	}{
		{"atm_achieved", 2, 100, StatusAchieved, 1, map[string]int{"Lazio": 1, "Sardegna": 1}},
		{"atm_over", 2, 200, StatusAchieved, 1, map[string]int{"Lazio": 1, "Sardegna": 1}},
		{"atm_late", 2, 50, StatusLate, 4, map[string]int{"Lazio": 1, "Sardegna": 1}},
		// 182.5 of 366 days: 3 × 0.4987 → 2 expected, 2 there.
		{"atm_on_track", 2, 66.7, StatusOnTrack, 2, map[string]int{"Lazio": 1, "Sardegna": 1}},
		// 5 × 0.4987 → 3 expected, 2 there.
		{"atm_at_risk", 2, 40, StatusAtRisk, 3, map[string]int{"Lazio": 1, "Sardegna": 1}},
		// Half-way from 2022-01-01 to 2026-12-31 half of 10 is expected.
		// PO-058001-1 (gw-1 falls back to commissioned) and CW-RM-1; not
		// the empty CW-CA-1.
		{"sites_complete", 2, 20, StatusAtRisk, 5, map[string]int{"Lazio": 2}},
		{"sites_with_atm", 2, 20, StatusAtRisk, 5, map[string]int{"Lazio": 1, "Sardegna": 1}},
		{"pv_any", 1, 10, StatusAtRisk, 5, map[string]int{UnknownRegion: 1}},
		// totem-1 planned, and gw-1 with no state anywhere.
		{"planned", 2, 20, StatusAtRisk, 5, map[string]int{"Sardegna": 2}},
		{"faulty_desk_sites", 1, 10, StatusAtRisk, 5, map[string]int{"Lazio": 1}},
		{"runtime_error", 0, 0, StatusAtRisk, 5, map[string]int{}},
	}
	for i, w := range want {
		p := got[i]
		if p.ID != w.id {
			t.Fatalf("row %d is %s, want %s (order of ms)", i, p.ID, w.id)
		}
		if p.Current != w.current || p.Percent != w.percent || p.Status != w.status || len(p.ByRegion) != len(w.byRegion) {
			t.Errorf("%s: got current %d percent %v status %s by_region %v; want %d %v %s %v",
				w.id, p.Current, p.Percent, p.Status, p.ByRegion, w.current, w.percent, w.status, w.byRegion)
		}
		if w.expected > 0 && p.Expected != w.expected {
			t.Errorf("%s: expected %d, want %d", w.id, p.Expected, w.expected)
		}
		for r, n := range w.byRegion {
			if p.ByRegion[r] != n {
				t.Errorf("%s: by_region[%s] = %d, want %d", w.id, r, p.ByRegion[r], n)
			}
		}
	}
	if p := got[len(got)-1]; p.EvalErrors != len(sites) || !strings.HasPrefix(p.EvalError, "PO-058001-1: ") {
		t.Errorf("runtime errors: got %d (%q), want %d", p.EvalErrors, p.EvalError, len(sites))
	}
	if p := got[0]; p.EvalErrors != 0 || p.Source.Fact != "F16" || p.Deadline != "2026-12-31" || p.Start != "2022-01-01" ||
		p.Line != LineSportelloUnico || p.Count != CountAssets || p.Title != "t" || p.Target != 2 {
		t.Errorf("unexpected row %+v", p)
	}
}

// Without a live state function the registry's states count.
func TestCompute_NoLiveState(t *testing.T) {
	ms, err := Load("compute.yaml", []byte(computePack))
	if err != nil {
		t.Fatal(err)
	}
	sites, _ := fleet()
	got := Compute(ms, sites, nil, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	// Only PO-058001-1's atm-1 is in service; PO-092001-1's has no state.
	if got[0].Current != 1 || got[0].ByRegion["Lazio"] != 1 {
		t.Fatalf("atm_achieved: %+v", got[0])
	}
	// PO-058001-1 is no longer complete: totem-1 is only installed.
	if got[5].Current != 1 || got[5].ByRegion["Lazio"] != 1 {
		t.Fatalf("sites_complete: %+v", got[5])
	}
	// The inputs are untouched.
	if sites[1].Assets[0].Lifecycle != "" || sites[0].Assets[1].Lifecycle != lifecycle.Installed {
		t.Fatal("Compute modified the registry")
	}
}

// A deadline is the end of its day in Rome, whatever the server's zone.
func TestCompute_DeadlineEndOfDayRome(t *testing.T) {
	ms, err := Load("compute.yaml", []byte(computePack))
	if err != nil {
		t.Fatal(err)
	}
	ms = ms[2:3] // atm_late: due 2024-06-30
	sites, state := fleet()
	// 23:59 in Rome (CEST, UTC+2) on the deadline day: not late yet.
	if p := Compute(ms, sites, state, time.Date(2024, 6, 30, 21, 59, 0, 0, time.UTC))[0]; p.Status != StatusAtRisk {
		t.Fatalf("one minute before the end of the day: %s", p.Status)
	}
	if p := Compute(ms, sites, state, time.Date(2024, 6, 30, 22, 0, 0, 0, time.UTC))[0]; p.Status != StatusLate {
		t.Fatalf("at midnight in Rome: %s", p.Status)
	}
	// Before start nothing is expected yet.
	if p := Compute(ms, sites, state, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC))[0]; p.Status != StatusOnTrack || p.Expected != 0 {
		t.Fatalf("before start: %s expected %d", p.Status, p.Expected)
	}
}

func TestCompute_Empty(t *testing.T) {
	if got := Compute(nil, nil, nil, time.Now()); len(got) != 0 {
		t.Fatalf("got %v", got)
	}
	ms, err := Load("compute.yaml", []byte(computePack))
	if err != nil {
		t.Fatal(err)
	}
	got := Compute(ms, nil, nil, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))
	if got[0].Current != 0 || got[0].ByRegion == nil || got[0].Status != StatusLate && got[0].Status != StatusAtRisk {
		t.Fatalf("empty fleet: %+v", got[0])
	}
	// A milestone not made by Load is reported, not run.
	got = Compute([]*Milestone{{ID: "x", Target: 1}}, nil, nil, time.Now())
	if got[0].EvalErrors != 1 || got[0].EvalError == "" {
		t.Fatalf("uncompiled milestone: %+v", got[0])
	}
}

// The portal reads snake_case JSON.
func TestProgress_JSON(t *testing.T) {
	ms, err := Load("compute.yaml", []byte(computePack))
	if err != nil {
		t.Fatal(err)
	}
	sites, state := fleet()
	b, err := json.Marshal(Compute(ms[:1], sites, state, time.Date(2024, 7, 1, 0, 0, 0, 0, time.UTC))[0])
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"atm_achieved","title":"t","line":"sportello_unico","count":"assets","target":2,"current":2,` +
		`"expected":1,"percent":100,"start":"2022-01-01","deadline":"2026-12-31","status":"achieved",` +
		`"source":{"fact":"F16","url":"https://x.it"},"by_region":{"Lazio":1,"Sardegna":1}}`
	if string(b) != want {
		t.Fatalf("got\n%s\nwant\n%s", b, want)
	}
}
