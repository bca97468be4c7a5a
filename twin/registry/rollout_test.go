package registry_test

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// rolloutNow is the end of the test histories: a Tuesday, after the last
// published figure (2026-01-16).
var rolloutNow = time.Date(2026, 12, 8, 10, 30, 0, 0, time.UTC)

func dataPath(t testing.TB, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data relative to the repo root)", err)
	}
	return p
}

// rolloutFacts reads the public facts table with the milestones' reader.
func rolloutFacts(t testing.TB) []registry.RolloutFact {
	t.Helper()
	facts, err := milestone.LoadFactsFile(dataPath(t, "polis_fatti_pubblici.csv"))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]registry.RolloutFact, 0, len(facts))
	for _, f := range facts {
		if f.Type == milestone.FactProgress && f.HasValue {
			out = append(out, registry.RolloutFact{ID: f.ID, Date: f.Date, Value: f.Value, Unit: f.Unit, Metric: f.Metric})
		}
	}
	return out
}

var (
	comuniOnce sync.Once
	comuni     []registry.Comune
	comuniErr  error
)

func realComuni(t testing.TB) []registry.Comune {
	t.Helper()
	comuniOnce.Do(func() { comuni, comuniErr = registry.LoadComuni(dataPath(t, "comuni_mappa_ai_2020.csv")) })
	if comuniErr != nil {
		t.Fatal(comuniErr)
	}
	return comuni
}

func fleet(t testing.TB, offices, coworking int, seed uint64) *registry.Registry {
	t.Helper()
	r, _, err := registry.Generate(registry.GenerateOptions{Sites: offices, Coworking: coworking, Seed: seed, Comuni: realComuni(t), ReproducibleSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	r.SetAllPlanned()
	return r
}

// statesAt folds the events dated up to t: each asset's state then.
func statesAt(evs []lifecycle.Event, t time.Time) map[string]lifecycle.State {
	st := map[string]lifecycle.State{}
	for _, ev := range evs {
		if !ev.At.After(t) {
			st[ev.Site+"/"+ev.Asset] = ev.To
		}
	}
	return st
}

// completedAt counts the sites of a kind whose every asset is commissioned
// or later at t: the milestones' "intervento concluso".
func completedAt(r *registry.Registry, kind registry.SiteKind, evs []lifecycle.Event, t time.Time) int {
	st := statesAt(evs, t)
	n := 0
	for _, s := range r.Sites() {
		if s.Kind != kind || len(s.Assets) == 0 {
			continue
		}
		done := true
		for _, a := range s.Assets {
			switch st[s.ID+"/"+a.ID] {
			case lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty:
			default:
				done = false
			}
		}
		if done {
			n++
		}
	}
	return n
}

// At each date the facts publish, the history has the published number of
// completed offices (and coworking spaces), scaled to the fleet: within
// one office or 1%, whichever is more (the first offices cannot start
// before the works did, which may delay one).
func TestPlanRollout_FollowsThePublishedFigures(t *testing.T) {
	facts := rolloutFacts(t)
	anchors := map[string]registry.SiteKind{"F12": registry.KindPostOffice, "F15": registry.KindPostOffice, "F26": registry.KindPostOffice,
		"F30": registry.KindPostOffice, "F45": registry.KindPostOffice, "F41": registry.KindCoworking}
	for _, size := range []struct{ offices, coworking int }{{4800, 250}, {600, 30}, {100, 5}} {
		t.Run(fmt.Sprintf("%d offices", size.offices), func(t *testing.T) {
			r := fleet(t, size.offices, size.coworking, 1)
			evs, err := registry.PlanRollout(r, registry.RolloutOptions{Now: rolloutNow, Seed: 1, Facts: facts})
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range facts {
				kind, ok := anchors[f.ID]
				if !ok {
					continue
				}
				n, ref := size.offices, registry.DefaultReferenceOffices
				if kind == registry.KindCoworking {
					n, ref = size.coworking, registry.DefaultReferenceCoworking
				}
				want := f.Value * float64(n) / float64(ref)
				got := completedAt(r, kind, evs, f.Date)
				if tol := math.Max(1, 0.01*want); math.Abs(float64(got)-want) > tol {
					t.Errorf("%s on %s: %d %s completed; want %.1f ± %.1f (%g of %d, scaled to %d)",
						f.ID, f.Date.Format(time.DateOnly), got, kind, want, tol, f.Value, ref, n)
				}
			}
			// Now: nearly done, with offices still in works or not
			// started, and a few faults open.
			st := statesAt(evs, rolloutNow)
			count := map[lifecycle.State]int{}
			total := 0
			for _, s := range r.Sites() {
				for _, a := range s.Assets {
					count[st[s.ID+"/"+a.ID]]++
					total++
				}
			}
			count[lifecycle.Planned] += count[""]
			delete(count, "")
			done := completedAt(r, registry.KindPostOffice, evs, rolloutNow)
			if size.offices >= 600 {
				if done >= size.offices || done < size.offices*95/100 {
					t.Errorf("%d of %d offices completed now; want nearly all, not all", done, size.offices)
				}
				if count[lifecycle.Planned] == 0 || count[lifecycle.Installed] == 0 || count[lifecycle.Commissioned] == 0 {
					t.Errorf("no asset still planned, installed or in acceptance now: %v", count)
				}
				if f := float64(count[lifecycle.Faulty]) / float64(total); f < 0.003 || f > 0.02 {
					t.Errorf("%.3f of the assets faulty now (%v); want about 0.008", f, count)
				}
			}
		})
	}
}

// Every asset's events are a path of allowed moves from planned, strictly
// later each time, within the works; the tracker takes the whole history
// as one batch, and folding it gives the states the history ends in.
func TestPlanRollout_ValidPaths(t *testing.T) {
	r := fleet(t, 600, 30, 3)
	evs, err := registry.PlanRollout(r, registry.RolloutOptions{Now: rolloutNow, Seed: 3, Facts: rolloutFacts(t)})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 600*8*3 {
		t.Fatalf("only %d events for 600 offices", len(evs))
	}
	type last struct {
		to lifecycle.State
		at time.Time
	}
	seen := map[string]last{}
	for i, ev := range evs {
		k := ev.Site + "/" + ev.Asset
		prev, ok := seen[k]
		if !ok {
			prev = last{to: lifecycle.Planned}
		}
		start := registry.OfficeWorksStart
		if strings.HasPrefix(ev.Site, "CW-") {
			start = registry.CoworkingWorksStart
		}
		switch {
		case !r.Known(ev.Site, ev.Asset):
			t.Fatalf("event %d: unknown asset %s", i, k)
		case ev.From != prev.to || !lifecycle.Allowed(ev.From, ev.To):
			t.Fatalf("event %d of %s: %s → %s after %s", i, k, ev.From, ev.To, prev.to)
		case ok && !ev.At.After(prev.at):
			t.Fatalf("event %d of %s at %s is not after %s", i, k, ev.At, prev.at)
		case ev.At.Before(start) || ev.At.After(rolloutNow):
			t.Fatalf("event %d of %s at %s: outside the works (%s to %s)", i, k, ev.At, start, rolloutNow)
		case i > 0 && ev.At.Before(evs[i-1].At):
			t.Fatalf("events not in time order at %d", i)
		case ev.Actor == "" || !strings.HasPrefix(ev.Cause, "rollout:") || ev.At.Nanosecond() != 0:
			t.Fatalf("event %d: actor %q, cause %q, at %s", i, ev.Actor, ev.Cause, ev.At)
		}
		seen[k] = last{ev.To, ev.At}
	}
	// Installations happen in working hours, Monday to Friday, in Rome.
	rome, _ := time.LoadLocation("Europe/Rome")
	for _, ev := range evs {
		if ev.To == lifecycle.Installed {
			lt := ev.At.In(rome)
			if lt.Hour() < 8 || lt.Hour() >= 18 || lt.Weekday() == time.Saturday || lt.Weekday() == time.Sunday {
				t.Fatalf("%s/%s installed at %s, outside working hours", ev.Site, ev.Asset, lt)
			}
		}
	}
	tr := lifecycle.NewTracker(lifecycle.Options{LogFirst: true})
	if err := r.SeedTracker(tr); err != nil {
		t.Fatal(err)
	}
	write, skipped, err := tr.CheckBatch(evs, rolloutNow)
	if err != nil || skipped != 0 || len(write) != len(evs) {
		t.Fatalf("the tracker refuses the history: %d to write, %d skipped, %v", len(write), skipped, err)
	}
	for _, ev := range write {
		if !tr.Apply(ev) {
			t.Fatalf("%+v did not start from the asset's state", ev)
		}
	}
	for k, l := range seen {
		site, asset, _ := strings.Cut(k, "/")
		if st, _ := tr.State(site, asset); st != l.to {
			t.Fatalf("%s is %s in the tracker; the history ends in %s", k, st, l.to)
		}
	}
}

// The same seed, fleet and now give the same history; another seed another
// one; an earlier now a prefix of the installations and acceptances.
func TestPlanRollout_Deterministic(t *testing.T) {
	facts := rolloutFacts(t)
	r := fleet(t, 200, 10, 5)
	plan := func(seed uint64, now time.Time) []lifecycle.Event {
		t.Helper()
		evs, err := registry.PlanRollout(r, registry.RolloutOptions{Now: now, Seed: seed, Facts: facts})
		if err != nil {
			t.Fatal(err)
		}
		return evs
	}
	a, b := plan(5, rolloutNow), plan(5, rolloutNow)
	if !slices.Equal(a, b) {
		t.Fatalf("the same seed gave two histories")
	}
	if slices.Equal(a, plan(6, rolloutNow)) {
		t.Fatalf("two seeds gave the same history")
	}
	earlier := time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	kept := func(evs []lifecycle.Event, until time.Time) []lifecycle.Event {
		var out []lifecycle.Event
		for _, ev := range evs {
			if !ev.At.After(until) && ev.Cause != registry.CauseRolloutFault && ev.Cause != registry.CauseRolloutRepair {
				out = append(out, ev)
			}
		}
		return out
	}
	if got, want := kept(plan(5, earlier), earlier), kept(a, earlier); !slices.Equal(got, want) || len(got) == 0 {
		t.Fatalf("the history to %s is not a prefix of the one to now: %d and %d events", earlier.Format(time.DateOnly), len(got), len(want))
	}
}

// The comuni the facts name as the first offices complete first, before
// the dates the facts give, when the fleet has them.
func TestPlanRollout_NamedFirstOffices(t *testing.T) {
	facts := rolloutFacts(t)
	r := fleet(t, 4800, 0, 1)
	evs, err := registry.PlanRollout(r, registry.RolloutOptions{Now: rolloutNow, Seed: 1, Facts: facts})
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]time.Time{ // comune -> published by
		"fara in sabina": date("2022-11-30"), "campagnano di roma": date("2022-11-30"), "san felice circeo": date("2022-11-30"),
		"candelo": date("2023-04-06"), "tolmezzo": date("2023-04-06"), "chiusa": date("2023-04-06"), "candiana": date("2023-04-06"),
		"alberobello": date("2023-04-06"), "ussana": date("2023-06-30"), "villa san pietro": date("2023-06-30"), "gesturi": date("2023-06-30"),
	}
	found := 0
	for _, s := range r.Sites() {
		name, _, _ := strings.Cut(strings.ToLower(s.Name), "/")
		by, ok := named[name]
		if !ok || !strings.HasSuffix(s.ID, "-1") {
			continue
		}
		found++
		one := registry.New()
		if err := one.Add(s); err != nil {
			t.Fatal(err)
		}
		if completedAt(one, registry.KindPostOffice, evs, by) != 1 {
			t.Errorf("%s (%s), named by the facts, is not completed by %s", s.Name, s.ID, by.Format(time.DateOnly))
		}
	}
	if found < 3 {
		t.Fatalf("only %d of the named comuni are in the fleet; the test proves little", found)
	}
}

func date(s string) time.Time {
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		panic(err)
	}
	return d.Add(24*time.Hour - time.Second)
}

func TestPlanRollout_Refusals(t *testing.T) {
	r := fleet(t, 10, 1, 1)
	facts := rolloutFacts(t)
	without := func(id string) []registry.RolloutFact {
		return slices.DeleteFunc(slices.Clone(facts), func(f registry.RolloutFact) bool { return f.ID == id })
	}
	change := func(id string, edit func(*registry.RolloutFact)) []registry.RolloutFact {
		out := slices.Clone(facts)
		for i := range out {
			if out[i].ID == id {
				edit(&out[i])
			}
		}
		return out
	}
	for _, tc := range []struct {
		name string
		o    registry.RolloutOptions
		want string
	}{
		{"no now", registry.RolloutOptions{Facts: facts}, "no now"},
		{"a fact missing", registry.RolloutOptions{Now: rolloutNow, Facts: without("F30")}, "no F30"},
		{"wrong unit", registry.RolloutOptions{Now: rolloutNow, Facts: change("F26", func(f *registry.RolloutFact) { f.Unit = "EUR" })}, `F26 is in "EUR"`},
		{"falling figure", registry.RolloutOptions{Now: rolloutNow, Facts: change("F30", func(f *registry.RolloutFact) { f.Value = 1000 })}, "not above"},
		{"dates out of order", registry.RolloutOptions{Now: rolloutNow, Facts: change("F26", func(f *registry.RolloutFact) { f.Date = date("2022-01-01") })}, "not after"},
		{"beyond the fleet", registry.RolloutOptions{Now: rolloutNow, Facts: facts, ReferenceOffices: 4000}, "not below the reference"},
	} {
		if _, err := registry.PlanRollout(r, tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// A small fleet's history, as `polis registry generate` writes it, is kept
// as a golden file: a change to the plan shows in review.
func TestPlanRollout_Golden(t *testing.T) {
	r, _, err := registry.Generate(registry.GenerateOptions{Sites: 4, Coworking: 1, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	r.SetAllPlanned()
	evs, err := registry.PlanRollout(r, registry.RolloutOptions{Now: rolloutNow, Seed: 9, Facts: rolloutFacts(t)})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := lifecycle.WriteImport(&b, evs); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "rollout.golden.ndjson")
	if *update {
		if err := os.WriteFile(golden, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./twin/registry -run Golden -update)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("the history differs from %s (run with -update if the change is intended):\n%s", golden, b.String())
	}
}
