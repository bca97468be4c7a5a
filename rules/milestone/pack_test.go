package milestone

import (
	"encoding/csv"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

const packPath = "../milestones/polis.yaml"

// sharedData returns the path of a file in the shared public data folder
// (../shared/data from the repo root). The data is not copied into the repo,
// so a missing file fails the test instead of skipping it.
func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data relative to the repo root)", err)
	}
	return p
}

func TestPack_Loads(t *testing.T) {
	ms, err := LoadFile(packPath)
	if err != nil {
		t.Fatalf("the real pack does not load:\n%v", err)
	}
	if len(ms) < 15 {
		t.Fatalf("only %d milestones", len(ms))
	}
	for _, m := range ms {
		if m.Source.Fact == "" || m.Source.URL == "" {
			t.Errorf("%s has no source", m.ID)
		}
		// The public portal is in Italian: every target has its title there.
		if m.TitleIT == "" {
			t.Errorf("%s has no title_it", m.ID)
		}
	}
}

// Every target of the pack is traceable to its fact row: same URL, line,
// and the number is the row's value or appears in its note.
func TestPack_MatchesFacts(t *testing.T) {
	f, err := os.Open(sharedData(t, "polis_fatti_pubblici.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	facts := map[string][]string{}
	for _, r := range rows[1:] {
		facts[r[col["id"]]] = r
	}
	ms, err := LoadFile(packPath)
	if err != nil {
		t.Fatal(err)
	}
	num := regexp.MustCompile(`[0-9]+`)
	for _, m := range ms {
		r, ok := facts[m.Source.Fact]
		if !ok {
			t.Errorf("%s: fact %s is not in the facts table", m.ID, m.Source.Fact)
			continue
		}
		if r[col["fonte_url"]] != m.Source.URL {
			t.Errorf("%s: url %q, fact %s has %q", m.ID, m.Source.URL, m.Source.Fact, r[col["fonte_url"]])
		}
		if string(m.Line) != r[col["linea"]] {
			t.Errorf("%s: line %s, fact %s is %s", m.ID, m.Line, m.Source.Fact, r[col["linea"]])
		}
		nums := num.FindAllString(r[col["valore"]]+" "+r[col["nota"]], -1)
		if !slices.Contains(nums, strconv.Itoa(m.Target)) {
			t.Errorf("%s: target %d is neither the value nor in the note of fact %s", m.ID, m.Target, m.Source.Fact)
		}
	}
}

// The pack's counts agree with a plain recount on a fleet placed in real
// comuni, with random live states.
func TestPack_Recount(t *testing.T) {
	cs, err := registry.LoadComuni(sharedData(t, "comuni_mappa_ai_2020.csv"))
	if err != nil {
		t.Fatal(err)
	}
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 700, Coworking: 25, Seed: 7, Comuni: cs})
	if err != nil {
		t.Fatal(err)
	}
	sites := reg.Sites()
	live := randomStates(sites, 1)
	state := func(site, asset string) (lifecycle.State, bool) {
		st, ok := live[site+"/"+asset]
		return st, ok
	}
	ms, err := LoadFile(packPath)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]Progress{}
	for _, p := range Compute(ms, sites, state, time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)) {
		if p.EvalErrors > 0 {
			t.Errorf("%s: %d evaluation errors: %s", p.ID, p.EvalErrors, p.EvalError)
		}
		got[p.ID] = p
	}
	installed := []lifecycle.State{lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty}
	done := []lifecycle.State{lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty}
	var atms, offices, sardegna int
	atmRegion := map[string]int{}
	for _, s := range sites {
		complete := len(s.Assets) > 0
		for _, a := range s.Assets {
			st := live[s.ID+"/"+a.ID]
			if a.Type == registry.TypeATM && slices.Contains(installed, st) {
				atms++
				atmRegion[s.Region]++
			}
			complete = complete && slices.Contains(done, st)
		}
		if complete && s.Kind == registry.KindPostOffice {
			offices++
			if s.Region == "Sardegna" {
				sardegna++
			}
		}
	}
	if atms == 0 || offices == 0 {
		t.Fatalf("degenerate fleet: %d atms, %d complete offices", atms, offices)
	}
	if p := got["atm_installed_7000"]; p.Current != atms || len(p.ByRegion) != len(atmRegion) {
		t.Errorf("atm_installed_7000: %d in %d regions, recount %d in %d", p.Current, len(p.ByRegion), atms, len(atmRegion))
	}
	for r, n := range atmRegion {
		if got["atm_installed_7000"].ByRegion[r] != n {
			t.Errorf("atm_installed_7000 in %s: %d, recount %d", r, got["atm_installed_7000"].ByRegion[r], n)
		}
	}
	if p := got["offices_completed_6933"]; p.Current != offices {
		t.Errorf("offices_completed_6933: %d, recount %d", p.Current, offices)
	}
	if p := got["offices_sardegna_45_2023"]; p.Current != sardegna || p.Current != p.ByRegion["Sardegna"] || len(p.ByRegion) > 1 {
		t.Errorf("offices_sardegna_45_2023: %+v, recount %d", p, sardegna)
	}
}

// randomStates gives each asset a lifecycle state, most of them far along
// so that whole sites complete.
func randomStates(sites []*registry.Site, seed uint64) map[string]lifecycle.State {
	rng := rand.New(rand.NewPCG(seed, 0))
	weights := []struct {
		st lifecycle.State
		w  int
	}{{lifecycle.Planned, 3}, {lifecycle.Installed, 5}, {lifecycle.Commissioned, 10}, {lifecycle.Operational, 78}, {lifecycle.Faulty, 3}, {lifecycle.Decommissioned, 1}}
	out := map[string]lifecycle.State{}
	for _, s := range sites {
		for _, a := range s.Assets {
			n := rng.IntN(100)
			for _, w := range weights {
				if n < w.w {
					out[s.ID+"/"+a.ID] = w.st
					break
				}
				n -= w.w
			}
		}
	}
	return out
}
