package progress

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Levels are cumulative: each state counts at its level and every level
// below; faulty counts as commissioned; decommissioned counts nowhere.
func TestAddLevel(t *testing.T) {
	for _, c := range []struct {
		s       lifecycle.State
		working bool
		want    Counts
	}{
		{lifecycle.Planned, false, Counts{Planned: 1}},
		{lifecycle.Installed, false, Counts{Planned: 1, Installed: 1}},
		{lifecycle.Commissioned, false, Counts{Planned: 1, Installed: 1, Commissioned: 1}},
		{lifecycle.Operational, false, Counts{Planned: 1, Installed: 1, Commissioned: 1, Operational: 1}},
		{lifecycle.Operational, true, Counts{Planned: 1, Installed: 1, Commissioned: 1, Operational: 1, WorkingNow: 1}},
		{lifecycle.Faulty, false, Counts{Planned: 1, Installed: 1, Commissioned: 1, Faulty: 1}},
		{lifecycle.Faulty, true, Counts{Planned: 1, Installed: 1, Commissioned: 1, Faulty: 1}}, // online but faulty: not working
		{lifecycle.Commissioned, true, Counts{Planned: 1, Installed: 1, Commissioned: 1}},      // online but not in service
		{lifecycle.Decommissioned, true, Counts{}},
		{"bogus", false, Counts{}},
	} {
		var got Counts
		addLevel(&got, c.s, c.working)
		if got != c.want {
			t.Errorf("%s (working %v): %+v, want %+v", c.s, c.working, got, c.want)
		}
	}
}

func TestCompleted(t *testing.T) {
	P, I, C, O, F, D := lifecycle.Planned, lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty, lifecycle.Decommissioned
	for _, c := range []struct {
		states []lifecycle.State
		want   bool
	}{
		{nil, false},
		{[]lifecycle.State{C, O, F}, true},
		{[]lifecycle.State{O, O, O}, true},
		{[]lifecycle.State{O, O, I}, false},
		{[]lifecycle.State{O, P}, false},
		// A decommissioned asset is not "commissioned or later": the site
		// is not completed, as the milestones' all_assets_in says.
		{[]lifecycle.State{O, D}, false},
	} {
		if got := completed(c.states); got != c.want {
			t.Errorf("completed(%v) = %v, want %v", c.states, got, c.want)
		}
	}
}

// smallFleet is three sites whose states the tests set by hand.
func smallFleet() []*registry.Site {
	po := func(id, comune, name, prov, region string, ids ...string) *registry.Site {
		s := &registry.Site{ID: id, Kind: registry.KindPostOffice, Comune: comune, Name: name, Province: prov, Region: region}
		for _, a := range ids {
			s.Assets = append(s.Assets, &registry.Asset{ID: a, Type: registry.AssetTypeOf(a), Supplier: "S-" + registry.AssetTypeOf(a)})
		}
		return s
	}
	cw := po("CW-CA-1", "092009", "Cagliari", "CA", "Sardegna", "desk-1", "desk-2", "room-1", "gw-1")
	cw.Kind = registry.KindCoworking
	cw.Coworking = &registry.Coworking{Workstations: 2, MeetingRooms: 1}
	return []*registry.Site{
		po("PO-111093-1", "111093", "Ussana", "SU", "Sardegna", "totem-1", "atm-1", "gw-1"),
		po("PO-111027-1", "111027", "Gesturi", "SU", "Sardegna", "totem-1", "atm-1", "gw-1"),
		cw,
	}
}

type liveMap map[string]state.Status

func (l liveMap) AssetStatus(site, asset string, _ time.Time) (state.Status, bool) {
	s, ok := l[site+"/"+asset]
	return s, ok
}

func (l liveMap) SiteView(site string, _ time.Time) (state.SiteView, bool) {
	if site == "CW-CA-1" {
		return state.SiteView{Desks: 2, DesksOccupied: 1, Rooms: 1, RoomsOccupied: 1}, true
	}
	return state.SiteView{}, false
}

func TestBuild_Counts(t *testing.T) {
	sites := smallFleet()
	st := map[string]lifecycle.State{
		"PO-111093-1/totem-1": lifecycle.Operational, "PO-111093-1/atm-1": lifecycle.Faulty, "PO-111093-1/gw-1": lifecycle.Operational,
		"PO-111027-1/totem-1": lifecycle.Operational, "PO-111027-1/atm-1": lifecycle.Decommissioned, "PO-111027-1/gw-1": lifecycle.Installed,
		"CW-CA-1/desk-1": lifecycle.Operational, "CW-CA-1/desk-2": lifecycle.Operational, "CW-CA-1/room-1": lifecycle.Commissioned,
		"CW-CA-1/gw-1": lifecycle.Operational,
	}
	live := liveMap{
		"PO-111093-1/totem-1": state.StatusOnline, "PO-111093-1/atm-1": state.StatusOnline, // faulty: not working
		"PO-111027-1/totem-1": state.StatusStale,
		"CW-CA-1/desk-1":      state.StatusOnline, "CW-CA-1/desk-2": state.StatusOffline, "CW-CA-1/gw-1": state.StatusOnline,
	}
	ms, facts := realPack(t)
	c, err := newComputer(ms, facts, SupplementaryTargets, SupplementaryFunding, nil, DefaultDeadline)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	s := c.build(buildInput{now: now, sites: sites, live: live,
		state: func(site, asset string) (lifecycle.State, bool) { v, ok := st[site+"/"+asset]; return v, ok }})

	it := s.Italy
	if it.Offices != 2 || it.OfficesCompleted != 1 || it.OfficesOperational != 0 || it.Coworking != 1 || it.CoworkingCompleted != 1 {
		t.Errorf("Italy: offices %d completed %d operational %d coworking %d completed %d",
			it.Offices, it.OfficesCompleted, it.OfficesOperational, it.Coworking, it.CoworkingCompleted)
	}
	for typ, want := range map[string]Counts{
		"atm":     {Planned: 1, Installed: 1, Commissioned: 1, Faulty: 1}, // the decommissioned ATM counts nowhere
		"totem":   {Planned: 2, Installed: 2, Commissioned: 2, Operational: 2, WorkingNow: 1},
		"gateway": {Planned: 3, Installed: 3, Commissioned: 2, Operational: 2, WorkingNow: 1},
		"desk":    {Planned: 2, Installed: 2, Commissioned: 2, Operational: 2, WorkingNow: 1},
		"room":    {Planned: 1, Installed: 1, Commissioned: 1},
	} {
		if got := it.ByType[typ]; got != want {
			t.Errorf("Italy %s: %+v, want %+v", typ, got, want)
		}
	}
	if r := s.Region("sardegna"); r == nil || r.ByType["totem"] != it.ByType["totem"] || r.Code != "20" {
		t.Errorf("Sardegna: %+v", r)
	}
	if p := s.Province("su"); p == nil || p.Offices != 2 || p.Coworking != 0 || p.Code != "111" || p.Name != "SU" {
		t.Errorf("Sud Sardegna (no name in the registry, no comuni list): %+v", p)
	}
	us, ge := s.Office("PO-111093-1"), s.Office("PO-111027-1")
	if !us.Completed || us.Operational || ge.Completed {
		t.Errorf("Ussana completed %v operational %v; Gesturi completed %v", us.Completed, us.Operational, ge.Completed)
	}
	if a := us.Assets[1]; a.ID != "atm-1" || a.Status != "online" || !a.Online || a.WorkingNow || a.TypeName != "ATM evoluto" {
		t.Errorf("Ussana's faulty ATM: %+v", a)
	}
	if a := us.Assets[2]; a.Status != "" || a.Online {
		t.Errorf("an asset the live twin does not hold: %+v", a)
	}
	if cw := s.Office("CW-CA-1"); cw.FreeWorkstations != 1 || cw.FreeRooms != 0 || cw.Workstations != 2 {
		t.Errorf("coworking: %+v", cw)
	}
	// Without history: no dates, no trends, energy unknown.
	if !s.HistoryAt.IsZero() || us.CompletedOn.IsZero() == false || us.PVkWhMonth != -1 || len(it.Trend.Points) != 0 {
		t.Errorf("without history: HistoryAt %v, CompletedOn %v, PV %v, trend %v", s.HistoryAt, us.CompletedOn, us.PVkWhMonth, it.Trend.Points)
	}
	for _, tg := range s.Targets {
		if !tg.ReachedOn.IsZero() || tg.Pace != 0 || len(tg.Trend.Points) != 0 {
			t.Errorf("target %s has history figures without history", tg.ID)
		}
	}
	for _, p := range s.Published {
		if p.Twin != -1 {
			t.Errorf("published %s: twin %d without history, want -1", p.Fact, p.Twin)
		}
	}
	// Suppliers: by name, with their types and sites.
	var names []string
	for _, sp := range s.Suppliers {
		names = append(names, sp.Name)
	}
	if !slices.Equal(names, []string{"S-atm", "S-desk", "S-gateway", "S-room", "S-totem"}) {
		t.Errorf("suppliers %v", names)
	}
	if sp := s.Suppliers[2]; sp.Assets != 3 || sp.Sites != 3 || sp.ByType["gateway"] != 3 {
		t.Errorf("gateway supplier %+v", sp)
	}
}

// The builder's counts of the targets and their status are milestone's,
// on the real pack over a fleet in random states.
func TestBuild_AgreesWithMilestone(t *testing.T) {
	ms, facts := realPack(t)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 300, Coworking: 30, Seed: 3, Comuni: realComuni(t), ReproducibleSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	sites := reg.Sites()
	rng := rand.New(rand.NewPCG(5, 5))
	st := map[string]lifecycle.State{}
	for _, s := range sites {
		for _, a := range s.Assets {
			// Whole sites done more often than chance, so that completion counts are not all zero.
			if s.Population%3 == 0 {
				st[s.ID+"/"+a.ID] = lifecycle.Operational
			} else {
				st[s.ID+"/"+a.ID] = lifecycle.States[rng.IntN(len(lifecycle.States))]
			}
		}
	}
	state := func(site, asset string) (lifecycle.State, bool) { v, ok := st[site+"/"+asset]; return v, ok }
	c, err := newComputer(ms, facts, nil, nil, nil, DefaultDeadline)
	if err != nil {
		t.Fatal(err)
	}
	for _, now := range []time.Time{time.Date(2023, 6, 1, 0, 0, 0, 0, time.UTC), time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC)} {
		snap := c.build(buildInput{now: now, sites: sites, state: state})
		want := milestone.Compute(ms, sites, state, now)
		nonzero := 0
		for i, p := range want {
			got := snap.Targets[i]
			if got.ID != p.ID || got.Current != p.Current || got.Status != p.Status || got.Percent != p.Percent || got.Expected != p.Expected {
				t.Errorf("%s at %s: builder %d %s %.1f%% expected %d; milestone %d %s %.1f%% expected %d", p.ID, now.Format(time.DateOnly),
					got.Current, got.Status, got.Percent, got.Expected, p.Current, p.Status, p.Percent, p.Expected)
			}
			if p.Current > 0 {
				nonzero++
			}
		}
		if nonzero < len(want)/2 {
			t.Fatalf("only %d of %d targets count anything: the test proves little", nonzero, len(want))
		}
	}
}

// The evaluator's memo and incremental counts give milestone.Compute's
// counts, site by site, as assets change one at a time.
func TestEvaluator_Incremental(t *testing.T) {
	ms, _ := realPack(t)
	set, _, err := newMeasureSet(ms)
	if err != nil {
		t.Fatal(err)
	}
	sites := smallFleet()
	reg, _, _ := registry.Generate(registry.GenerateOptions{Sites: 40, Coworking: 5, Seed: 9, Comuni: realComuni(t), ReproducibleSecrets: true})
	sites = append(sites, reg.Sites()...)
	rng := rand.New(rand.NewPCG(1, 2))
	e := newEvaluator(set)
	for _, s := range sites {
		states := make([]lifecycle.State, len(s.Assets))
		for i := range states {
			states[i] = lifecycle.Planned
		}
		sc := e.begin(s, states)
		for step := 0; step < 30; step++ {
			var changed []int
			for range 1 + rng.IntN(2) {
				j := rng.IntN(len(states))
				states[j] = lifecycle.States[rng.IntN(len(lifecycle.States))]
				changed = append(changed, j)
			}
			sc.update(changed)
			want := milestone.Compute(set.ms, []*registry.Site{s}, func(_, asset string) (lifecycle.State, bool) {
				for i, a := range s.Assets {
					if a.ID == asset {
						return states[i], true
					}
				}
				return "", false
			}, time.Time{})
			for i, p := range want {
				if sc.total[i] != int32(p.Current) {
					t.Fatalf("%s step %d, measure %s: %d, want %d (states %v)", s.ID, step, set.list[i].Key, sc.total[i], p.Current, states)
				}
			}
		}
	}
}

func TestAnalyze(t *testing.T) {
	for _, c := range []struct {
		where string
		want  string
		local bool // for an asset count
		known bool
	}{
		{`asset.type == "atm" && asset.lifecycle in ["installed"]`, "asset.type,asset.lifecycle", true, true},
		{`asset.type == "env" && site.kind == "post_office"`, "site.kind,asset.type", true, true},
		{`site.kind == "post_office" && all_assets_in("operational")`, "site.kind,site.assets", false, true},
		{`any(site.assets, .lifecycle == "installed") && site.region == "Sardegna"`, "site.region,site.assets", false, true},
		{`asset.type == "desk" && assets_in("room", "operational") > 0`, "asset.type,site.assets", false, true},
		{`site.assets[0].id == "atm-1"`, "site.assets", false, true},
		{`asset.supplier startsWith "Acme" && site.population < 15000`, "site.population,asset.supplier", true, true},
		{`asset == nil`, "", true, true},                         // whole asset: keyed by all its fields
		{`site.nope == 1`, "", false, false},                     // a field the analysis does not know
		{`site["kind"] == "coworking"`, "site.kind", true, true}, // the same as site.kind
		{`site[asset.type] == 1`, "", false, false},              // a field chosen at run time
	} {
		d := analyze(c.where)
		m := &milestone.Milestone{Count: milestone.CountAssets, Where: c.where}
		cm := compileMeasure(m)
		if d.known != c.known || (c.known && d.String() != c.want) || cm.assetLocal != c.local {
			t.Errorf("analyze(%s) = %q known %v local %v; want %q known %v local %v",
				c.where, d.String(), d.known, cm.assetLocal, c.want, c.known, c.local)
		}
	}
}

func ExampleSlug() {
	fmt.Println(Slug("Valle d'Aosta/Vallée d'Aoste"), Slug("Forlì-Cesena"), Slug("BZ"))
	// Output: valle-d-aosta forli-cesena bz
}

// The whole programme's fleet in real comuni: every region and province
// with its ISTAT code and name (names from the comuni list, which the
// generated registry lacks), every office findable.
func TestBuild_FullFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the whole programme")
	}
	reg := fullFleet(t)
	ms, facts := realPack(t)
	b, err := NewBuilder(Options{Registry: reg, Milestones: ms, Facts: facts, Comuni: realComuni(t),
		Now: func() time.Time { return time.Date(2025, 11, 30, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	s := b.Snapshot()
	if len(s.Regions) != 20 || len(s.Offices) != 4800 || len(s.Coworking) != 250 || s.Italy.Offices != 4800 || s.Italy.Coworking != 250 {
		t.Fatalf("%d regions, %d offices, %d coworking", len(s.Regions), len(s.Offices), len(s.Coworking))
	}
	if len(s.Provinces) < 100 {
		t.Errorf("%d provinces", len(s.Provinces))
	}
	sum := 0
	for _, r := range s.Regions {
		if len(r.Code) != 2 || s.Region(r.Slug) != r {
			t.Errorf("region %+v", r)
		}
		for _, p := range s.ProvincesOf(r.Slug) {
			if len(p.Code) != 3 || p.Name == "" || p.Name == strings.ToUpper(p.Slug) || s.Province(p.Slug) != p {
				t.Errorf("province %+v", p)
			}
		}
		sum += r.Offices
	}
	if sum != 4800 {
		t.Errorf("the regions' offices add up to %d", sum)
	}
	for _, o := range append(s.Offices[:50:50], s.Coworking[:10]...) {
		if s.Office(o.Site) != o || s.Comune(o.Comune) == nil || s.Province(strings.ToLower(o.Province)) == nil || o.ProvinceName == "" {
			t.Errorf("office %s cannot be found through its areas", o.Site)
		}
	}
}

// analyze never panics, and an expression it calls understood reads only
// fields it knows, so that memo keys cover everything it reads.
func FuzzAnalyze(f *testing.F) {
	for _, s := range []string{
		`asset.type == "atm" && asset.lifecycle in ["installed"]`,
		`site.kind == "post_office" && all_assets_in("operational")`,
		`any(site.assets, .lifecycle == "installed" && #index > 0)`,
		`site.assets[0].supplier == site.name`,
		`let x = asset; x.type == "pv"`,
		`site?.kind ?? "x"`,
		`)(`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, where string) {
		d := analyze(where)
		if !d.known {
			return
		}
		for k := range d.site {
			if k != "*" && !contains(siteFields, k) {
				t.Fatalf("%q: known with site field %q", where, k)
			}
		}
		for k := range d.asset {
			if k != "*" && !contains(assetFields, k) {
				t.Fatalf("%q: known with asset field %q", where, k)
			}
		}
	})
}
