package progress

import (
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

const smallPack = `milestones:
  - id: offices_completed_2
    title: "Offices completed"
    title_it: "Uffici completati"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && all_assets_in("commissioned", "operational", "faulty")
    target: 2
    deadline: 2026-12-31
    source: {fact: F28, url: "https://tgposte.poste.it/2024/12/10/uffici-postali-servizi-spazi-polis"}
  - id: offices_completed_1_2023
    title: "One office by 2023"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && all_assets_in("commissioned", "operational", "faulty")
    target: 1
    deadline: 2023-12-31
    source: {fact: F15, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
  - id: atm_installed_3
    title: "ATMs"
    line: sportello_unico
    count: assets
    where: asset.type == "atm" && asset.lifecycle in ["installed", "commissioned", "operational", "faulty"]
    target: 3
    deadline: 2026-12-31
    source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
`

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// historyCase is smallFleet's two post offices with a known history.
func historyCase(t *testing.T) (*computer, []*registry.Site, []Change) {
	t.Helper()
	ms, err := milestone.Load("small.yaml", []byte(smallPack))
	if err != nil {
		t.Fatal(err)
	}
	facts := []milestone.Fact{
		{ID: "F30", Date: time.Date(2023, 6, 30, 0, 0, 0, 0, time.UTC), Line: milestone.LineSportelloUnico, Type: milestone.FactProgress,
			Metric: "interventi conclusi", Value: 1500, HasValue: true, SourceURL: "https://example.org/f30", SourceKind: "Poste Italiane (TG Poste)"},
		{ID: "F32", Date: time.Date(2023, 1, 12, 0, 0, 0, 0, time.UTC), Line: milestone.LineSportelloUnico, Type: milestone.FactProgress,
			Metric: "ATM evoluti installati", Value: 700, HasValue: true, SourceURL: "https://example.org/f32"},
		{ID: "F24", Date: time.Date(2023, 4, 6, 0, 0, 0, 0, time.UTC), Line: milestone.LineSportelloUnico, Type: milestone.FactProgress,
			Metric: "uffici con servizi Giustizia", Value: 5, HasValue: true, SourceURL: "https://example.org/f24"},
	}
	c, err := newComputer(ms, facts, []Supplementary{}, []Funding{}, nil, DefaultDeadline)
	if err != nil {
		t.Fatal(err)
	}
	sites := smallFleet()[:2]
	ch := func(site, asset string, from, to lifecycle.State, when string) Change {
		return Change{Site: site, Asset: asset, From: from, To: to, At: at(when)}
	}
	P, I, C, O := lifecycle.Planned, lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational
	changes := []Change{
		// Ussana: everything installed in January 2023 (the ATM on the
		// 12th, late in the evening, Rome time), commissioned on 2023-03-01.
		ch("PO-111093-1", "totem-1", P, I, "2023-01-05T09:00:00Z"),
		ch("PO-111093-1", "atm-1", P, I, "2023-01-12T22:30:00Z"),
		ch("PO-111093-1", "gw-1", P, I, "2023-01-05T09:00:00Z"),
		ch("PO-111093-1", "totem-1", I, C, "2023-03-01T10:00:00Z"),
		ch("PO-111093-1", "atm-1", I, C, "2023-03-01T11:00:00Z"),
		ch("PO-111093-1", "gw-1", I, C, "2023-03-01T12:00:00Z"),
		ch("PO-111093-1", "gw-1", C, O, "2023-03-02T08:00:00Z"),
		// Gesturi: ATM installed in 2024, the rest stays installed.
		ch("PO-111027-1", "atm-1", P, I, "2024-02-10T09:00:00Z"),
		ch("PO-111027-1", "totem-1", P, I, "2024-02-11T09:00:00Z"),
		ch("PO-111027-1", "gw-1", P, I, "2024-02-11T09:00:00Z"),
		// Stored twice before ClickHouse merged: counts once.
		ch("PO-111027-1", "gw-1", P, I, "2024-02-11T09:00:00Z"),
	}
	return c, sites, changes
}

func finalStates(changes []Change) func(site, asset string) (lifecycle.State, bool) {
	m := map[assetKey]lifecycle.State{}
	for _, c := range changes {
		m[assetKey{c.Site, c.Asset}] = c.To
	}
	return func(site, asset string) (lifecycle.State, bool) { s, ok := m[assetKey{site, asset}]; return s, ok }
}

func targetByID(t *testing.T, s *Snapshot, id string) Target {
	t.Helper()
	for _, tg := range s.Targets {
		if tg.ID == id {
			return tg
		}
	}
	t.Fatalf("no target %s", id)
	return Target{}
}

func TestFold_Dates(t *testing.T) {
	c, sites, changes := historyCase(t)
	now := at("2024-06-01T12:00:00Z")
	f := fold(NewHistory(changes), sites, c.set, now, nil)
	if f.changes != 10 {
		t.Errorf("%d changes, want 10 (a duplicate row counts once)", f.changes)
	}
	s := c.build(buildInput{now: now, sites: sites, state: finalStates(changes), hist: f})
	if !s.HistoryAt.Equal(now) {
		t.Errorf("HistoryAt %v", s.HistoryAt)
	}

	one := targetByID(t, s, "offices_completed_1_2023")
	if one.Current != 1 || one.Status != milestone.StatusAchieved ||
		!one.AchievedOn.Equal(at("2023-03-01T12:00:00Z")) || !one.ReachedOn.Equal(at("2023-03-01T12:00:00Z")) {
		t.Errorf("one office: current %d status %s achieved %v reached %v", one.Current, one.Status, one.AchievedOn, one.ReachedOn)
	}
	two := targetByID(t, s, "offices_completed_2")
	if two.Current != 1 || !two.AchievedOn.IsZero() || two.Pace != 0 || !two.Projected.IsZero() {
		t.Errorf("two offices: %+v", two)
	}
	atm := targetByID(t, s, "atm_installed_3")
	if atm.Current != 2 || !atm.ReachedOn.Equal(at("2024-02-10T09:00:00Z")) {
		t.Errorf("ATMs: current %d reached %v", atm.Current, atm.ReachedOn)
	}
	// One ATM over the 180 days before 2024-06-01: 1/180 a day; one to go.
	if want := 1.0 / 180; atm.Pace != want || atm.Projected.Format(time.DateOnly) != "2024-11-28" {
		t.Errorf("ATMs: pace %v projected %v; want %v, 2024-11-28", atm.Pace, atm.Projected, want)
	}
	// Monthly points: the ATM of 2023-01-12 22:30 UTC is on the 12th
	// (23:30 in Rome), in January; the last point is now.
	pts := atm.Trend.Points
	if pts[0].Date.In(rome).Format(time.DateOnly) != "2022-01-31" || pts[12].Value != 1 || pts[11].Value != 0 ||
		pts[len(pts)-1].Value != 2 || !pts[len(pts)-1].Date.Equal(now) {
		t.Errorf("ATM trend: first %v, Jan 2023 %v, Dec 2022 %v, last %v", pts[0], pts[12], pts[11], pts[len(pts)-1])
	}
	// Published figures beside the twin's count at the end of their day in
	// Rome: F32 (2023-01-12) sees the ATM installed at 23:30 that day.
	for _, p := range s.Published {
		want := map[string]int{"F30": 1, "F32": 1, "F24": -1}[p.Fact]
		if p.Twin != want {
			t.Errorf("published %s (%s): twin %d, want %d", p.Fact, p.Measure, p.Twin, want)
		}
	}
	us := s.Office("PO-111093-1")
	if !us.CompletedOn.Equal(at("2023-03-01T12:00:00Z")) || !us.Assets[1].InstalledOn.Equal(at("2023-01-12T22:30:00Z")) {
		t.Errorf("Ussana completed %v, ATM installed %v", us.CompletedOn, us.Assets[1].InstalledOn)
	}
	// Area trends count completed post offices by month.
	su := s.Province("su")
	if got := su.Trend.Points; got[13].Value != 0 || got[14].Value != 1 || got[len(got)-1].Value != 1 {
		t.Errorf("province trend %v", got)
	}
	// The feed: the target achieved and the office completed, newest first.
	// (Same time: by id.)
	if len(s.Feed) != 2 || s.Feed[0].ID != "office/PO-111093-1" || s.Feed[1].ID != "target/offices_completed_1_2023" ||
		s.Feed[0].Link != "/uffici/PO-111093-1" || !s.Feed[1].At.Equal(one.AchievedOn) {
		t.Errorf("feed %+v", s.Feed)
	}
}

// Changes the tracker has and ClickHouse does not yet count from the build
// that first sees them, until a history that has them is read.
func TestFold_LiveChanges(t *testing.T) {
	c, sites, changes := historyCase(t)
	t0 := at("2024-06-01T12:00:00Z")
	f := fold(NewHistory(changes), sites, c.set, t0, nil)
	// Gesturi's assets are commissioned live at t1; the history does not
	// have it yet.
	live := append([]Change(nil), changes...)
	for _, a := range []string{"atm-1", "totem-1", "gw-1"} {
		live = append(live, Change{Site: "PO-111027-1", Asset: a, From: lifecycle.Installed, To: lifecycle.Commissioned, At: at("2024-06-01T12:10:00Z")})
	}
	t1 := at("2024-06-01T12:10:05Z")
	s := c.build(buildInput{now: t1, sites: sites, state: finalStates(live), hist: f})
	two := targetByID(t, s, "offices_completed_2")
	if two.Current != 2 || !two.AchievedOn.Equal(t1) || !two.ReachedOn.Equal(t1) {
		t.Errorf("after a live change: current %d achieved %v reached %v, want 2 at %v", two.Current, two.AchievedOn, two.ReachedOn, t1)
	}
	if ge := s.Office("PO-111027-1"); !ge.Completed || !ge.CompletedOn.Equal(t1) {
		t.Errorf("Gesturi completed %v on %v, want at %v", ge.Completed, ge.CompletedOn, t1)
	}
	if p := s.Province("su").Trend.Points; p[len(p)-1].Value != 2 {
		t.Errorf("the trend's last point is %v, want 2", p[len(p)-1])
	}
	// A later build keeps the first time it saw them.
	t2 := t1.Add(5 * time.Second)
	s = c.build(buildInput{now: t2, sites: sites, state: finalStates(live), hist: f})
	if two := targetByID(t, s, "offices_completed_2"); !two.AchievedOn.Equal(t1) {
		t.Errorf("second build: achieved %v, want %v", two.AchievedOn, t1)
	}
	// Then the history has them: their real time.
	f2 := fold(NewHistory(live), sites, c.set, t2, f)
	s = c.build(buildInput{now: t2, sites: sites, state: finalStates(live), hist: f2})
	if two := targetByID(t, s, "offices_completed_2"); !two.AchievedOn.Equal(at("2024-06-01T12:10:00Z")) {
		t.Errorf("after the history has them: achieved %v", two.AchievedOn)
	}
	if len(c.live) != 0 {
		t.Errorf("%d sites still counted as live-only", len(c.live))
	}
	// The refold reused the site that did not change.
	if f2.sites["PO-111093-1"] != f.sites["PO-111093-1"] || f2.sites["PO-111027-1"] == f.sites["PO-111027-1"] {
		t.Error("the refold did not reuse exactly the unchanged site")
	}
}

// Assets without any stored change count from their registry date, or
// from before records.
func TestFold_WithoutChanges(t *testing.T) {
	c, sites, _ := historyCase(t)
	inst := at("2022-05-10T08:00:00Z")
	for _, s := range sites {
		for _, a := range s.Assets {
			a.Lifecycle = lifecycle.Operational
		}
	}
	sites[0].Assets[1].InstalledAt = inst // Ussana's ATM
	now := at("2024-06-01T12:00:00Z")
	f := fold(NewHistory(nil), sites, c.set, now, nil)
	s := c.build(buildInput{now: now, sites: sites, hist: f})
	atm := targetByID(t, s, "atm_installed_3")
	if atm.Current != 2 || !atm.ReachedOn.Equal(inst) {
		t.Errorf("ATMs %d reached %v, want 2 on %v", atm.Current, atm.ReachedOn, inst)
	}
	if atm.Trend.Points[0].Value != 1 {
		t.Errorf("the ATM without a date counts from the first point: %v", atm.Trend.Points[0])
	}
	two := targetByID(t, s, "offices_completed_2")
	if two.Current != 2 || !two.AchievedOn.Equal(inst) || !s.Office("PO-111027-1").CompletedOn.IsZero() {
		t.Errorf("offices: %d achieved %v; Gesturi completed on %v (want no date)", two.Current, two.AchievedOn, s.Office("PO-111027-1").CompletedOn)
	}
}
