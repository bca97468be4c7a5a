package progress

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

var fixtureNow = time.Date(2026, 1, 20, 12, 0, 0, 0, time.UTC)

// The fixture is what the pages and open data of other packages are
// tested against: its JSON is a golden file, so a change to it is seen.
func TestFixture_Golden(t *testing.T) {
	b, err := json.MarshalIndent(Fixture(fixtureNow), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", "fixture.golden.json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./portal/progress -run Golden -update)", err)
	}
	if !bytes.Equal(b, want) {
		t.Fatalf("Fixture differs from %s (run with -update if intended)", path)
	}
	// The same now gives the same snapshot.
	again, _ := json.MarshalIndent(Fixture(fixtureNow), "", "  ")
	if !bytes.Equal(append(again, '\n'), b) {
		t.Fatal("Fixture is not deterministic")
	}
}

func TestFixture_Lookups(t *testing.T) {
	s := Fixture(fixtureNow)
	if len(s.Regions) != 3 || len(s.Offices) != 9 || len(s.Coworking) != 2 {
		t.Fatalf("%d regions, %d offices, %d coworking; want 3, 9, 2", len(s.Regions), len(s.Offices), len(s.Coworking))
	}
	sar := s.Region("sardegna")
	if sar == nil || sar.Name != "Sardegna" || sar.Code != "20" || sar.Kind != AreaRegion || sar.Offices != 3 {
		t.Fatalf("Region(sardegna) = %+v", sar)
	}
	if s.Region("Sardegna") != nil || s.Region("nowhere") != nil {
		t.Error("a region is found by a name that is not its slug")
	}
	su := s.Province("su")
	if su == nil || su.Name != "Sud Sardegna" || su.Code != "111" || su.Parent != "sardegna" || su.Offices != 2 {
		t.Fatalf("Province(su) = %+v", su)
	}
	var provs []string
	for _, p := range s.ProvincesOf("sardegna") {
		provs = append(provs, p.Slug)
	}
	if !slices.Equal(provs, []string{"ca", "su"}) {
		t.Errorf("ProvincesOf(sardegna) = %v, want [ca su] (by name: Cagliari, Sud Sardegna)", provs)
	}
	if s.ProvincesOf("nowhere") != nil {
		t.Error("ProvincesOf an unknown region is not nil")
	}
	ag := s.Comune("001001")
	if ag == nil || ag.Name != "Agliè" || ag.Slug != "aglie" || ag.Parent != "to" || ag.Offices != 1 {
		t.Fatalf("Comune(001001) = %+v", ag)
	}
	var comuni []string
	for _, c := range s.ComuniIn("su") {
		comuni = append(comuni, c.Name)
	}
	if !slices.Equal(comuni, []string{"Gesturi", "Ussana"}) {
		t.Errorf("ComuniIn(su) = %v", comuni)
	}
	o := s.Office("PO-001001-1")
	if o == nil || o.ComuneName != "Agliè" || o.RegionSlug != "piemonte" || !o.Completed || o.CompletedOn.IsZero() {
		t.Fatalf("Office(PO-001001-1) = %+v", o)
	}
	if cw := s.Office("CW-TO-1"); cw == nil || cw.Kind != "coworking" || cw.Workstations != 6 || cw.FreeWorkstations != 4 {
		t.Fatalf("Office(CW-TO-1) = %+v", cw)
	}
	if s.Office("PO-999999-1") != nil {
		t.Error("an unknown office is found")
	}
	ids := func(os []*Office) []string {
		var out []string
		for _, o := range os {
			out = append(out, o.Site)
		}
		return out
	}
	for _, c := range []struct {
		area      *Area
		offices   []string
		coworking []string
	}{
		{s.Italy, []string{"PO-001001-1", "PO-001002-1", "PO-004013-1", "PO-057027-1", "PO-058015-1", "PO-059025-1",
			"PO-092099-1", "PO-111027-1", "PO-111093-1"}, []string{"CW-RM-1", "CW-TO-1"}},
		{s.Region("lazio"), []string{"PO-057027-1", "PO-058015-1", "PO-059025-1"}, []string{"CW-RM-1"}},
		{s.Province("to"), []string{"PO-001001-1", "PO-001002-1"}, []string{"CW-TO-1"}},
		{s.Comune("058091"), nil, []string{"CW-RM-1"}},
		{s.Comune("111093"), []string{"PO-111093-1"}, nil},
		{nil, nil, nil},
	} {
		if got := ids(s.OfficesIn(c.area)); !slices.Equal(got, c.offices) {
			t.Errorf("OfficesIn(%v) = %v, want %v", c.area, got, c.offices)
		}
		if got := ids(s.CoworkingIn(c.area)); !slices.Equal(got, c.coworking) {
			t.Errorf("CoworkingIn(%v) = %v, want %v", c.area, got, c.coworking)
		}
	}
	// A snapshot decoded from JSON answers once indexed.
	b, _ := json.Marshal(s)
	var d Snapshot
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	d.Index()
	if d.Office("CW-RM-1") == nil || d.Province("rm") == nil || len(d.OfficesIn(d.Region("piemonte"))) != 3 {
		t.Error("a decoded snapshot does not answer its lookups after Index")
	}
}

// The fixture has every kind of figure the pages show, consistent with
// itself, and no secret.
func TestFixture_Complete(t *testing.T) {
	s := Fixture(fixtureNow)
	byID := map[string]Target{}
	for _, tg := range s.Targets {
		byID[tg.ID] = tg
		if tg.Method == "" || tg.Title == "" || tg.Measure == "" || len(tg.Trend.Points) == 0 {
			t.Errorf("target %s lacks a method, title, measure or trend: %+v", tg.ID, tg)
		}
		if _, ok := MethodByAnchor(tg.Method); !ok {
			t.Errorf("target %s: method %q is not in Methods", tg.ID, tg.Method)
		}
	}
	for id, want := range map[string][]string{
		"offices_completed_6933": {"offices_completed_4764", "offices_completed_4800"},
		"atm_installed_7000":     {"atm_installed_3000"},
		"coworking_desks_5000":   {"coworking_desks_10000"},
	} {
		if got := byID[id].Disagrees; !slices.Equal(got, want) {
			t.Errorf("%s disagrees with %v, want %v", id, got, want)
		}
	}
	if byID["offices_completed_1500_2023"].Disagrees != nil {
		t.Error("an intermediate target is said to disagree")
	}
	if a := byID["offices_sardegna_2_2023"]; a.Status != milestone.StatusAchieved || a.AchievedOn.IsZero() {
		t.Errorf("the achieved target is %+v", a)
	}
	if p := byID["offices_completed_4764"]; p.Pace <= 0 || p.Projected.IsZero() || p.ReachedOn.IsZero() {
		t.Errorf("offices_completed_4764 has no pace or projection: %+v", p)
	}
	if len(s.Published) == 0 || len(s.Funding) == 0 || len(s.Suppliers) == 0 || len(s.Feed) == 0 {
		t.Fatal("the fixture lacks published figures, funding, suppliers or feed")
	}
	var poste []string
	for _, f := range s.Funding {
		if f.Measure == "poste_share" {
			poste = append(poste, f.ID)
			if len(f.Disagrees) != 1 {
				t.Errorf("funding %s: disagrees %v", f.ID, f.Disagrees)
			}
		}
	}
	if len(poste) != 2 {
		t.Errorf("Poste's share has %v, want the 400 and 320 M EUR figures", poste)
	}
	if s.Italy.Offices != 9 || s.Italy.OfficesCompleted != 7 || s.Italy.Coworking != 2 || s.Italy.CoworkingCompleted != 1 {
		t.Errorf("Italy: %+v", s.Italy)
	}
	if s.HistoryAt.IsZero() || s.EnergyAt.IsZero() || s.Deadline.IsZero() {
		t.Error("freshness or deadline missing")
	}
	b, _ := json.Marshal(s)
	for _, bad := range []string{"secret", "password", "$argon", "token"} {
		if strings.Contains(strings.ToLower(string(b)), bad) {
			t.Errorf("the fixture's JSON contains %q", bad)
		}
	}
}
