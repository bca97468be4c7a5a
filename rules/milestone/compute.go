package milestone

import (
	"fmt"
	"math"
	"slices"
	"time"
	_ "time/tzdata" // Europe/Rome must resolve on hosts without a zoneinfo database

	"github.com/expr-lang/expr/vm"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// Status values of Progress.
const (
	StatusAchieved = "achieved" // current >= target
	StatusOnTrack  = "on_track" // not due yet, at or above the linear pace
	StatusAtRisk   = "at_risk"  // not due yet, below the linear pace
	StatusLate     = "late"     // due and not achieved
)

// UnknownRegion is the by_region key of sites without a region.
const UnknownRegion = "unknown"

// rome is where deadlines fall: a milestone due on a day is due by the
// end of that day in Italy.
var rome = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return loc
}()

// Progress is one milestone's standing, as the portal and the API serve it.
type Progress struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Line     Line    `json:"line"`
	Count    Kind    `json:"count"` // what is counted: assets or sites
	Target   int     `json:"target"`
	Current  int     `json:"current"`
	Expected int     `json:"expected"` // count the linear pace from start asks for now
	Percent  float64 `json:"percent"`  // current/target, 0-100 with one decimal; may exceed 100
	Start    string  `json:"start"`    // YYYY-MM-DD
	Deadline string  `json:"deadline"` // YYYY-MM-DD
	Status   string  `json:"status"`   // achieved, on_track, at_risk or late
	Source   Source  `json:"source"`
	// ByRegion splits Current by the site's region (UnknownRegion when
	// the registry has none).
	ByRegion map[string]int `json:"by_region"`
	// EvalErrors counts items whose where failed at run time (they are not
	// counted); EvalError is the first such failure.
	EvalErrors int    `json:"eval_errors,omitempty"`
	EvalError  string `json:"eval_error,omitempty"`
}

// StateFunc gives an asset's live lifecycle state; false when unknown.
type StateFunc = func(site, asset string) (lifecycle.State, bool)

// evaluator holds what one Compute reuses across sites: the environments,
// whose functions read the current site, and one VM.
type evaluator struct {
	site   SiteEnv
	asset  AssetEnv
	sites  sitesEnv
	assets assetsEnv
	vm     vm.VM
}

func newEvaluator() *evaluator {
	e := &evaluator{}
	// The functions are bound once and read e.site, which Compute moves
	// from site to site: no closure per site.
	assetsIn := func(typ string, states ...string) int {
		n := 0
		for i := range e.site.Assets {
			if a := &e.site.Assets[i]; a.Type == typ && slices.Contains(states, a.Lifecycle) {
				n++
			}
		}
		return n
	}
	allAssetsIn := func(states ...string) bool {
		if len(e.site.Assets) == 0 {
			return false
		}
		for i := range e.site.Assets {
			if !slices.Contains(states, e.site.Assets[i].Lifecycle) {
				return false
			}
		}
		return true
	}
	e.sites = sitesEnv{Site: &e.site, AssetsIn: assetsIn, AllAssetsIn: allAssetsIn}
	e.assets = assetsEnv{Asset: &e.asset, Site: &e.site, AssetsIn: assetsIn, AllAssetsIn: allAssetsIn}
	return e
}

// setSite loads s into the environment, resolving every asset's state once.
func (e *evaluator) setSite(s *registry.Site, state StateFunc) {
	e.site = SiteEnv{
		ID: s.ID, Kind: string(s.Kind), Name: s.Name, Region: s.Region, Province: s.Province,
		Comune: s.Comune, InnerArea: s.InnerArea, Population: s.Population,
		Assets: e.site.Assets[:0],
	}
	for _, a := range s.Assets {
		e.site.Assets = append(e.site.Assets, AssetEnv{
			ID: a.ID, Type: a.Type, Lifecycle: string(stateOf(s.ID, a, state)), Supplier: a.Supplier,
		})
	}
}

// stateOf is the live state, else the registry's, else planned: an asset
// nobody has reported on is still only in the plan.
func stateOf(site string, a *registry.Asset, state StateFunc) lifecycle.State {
	if state != nil {
		if st, ok := state(site, a.ID); ok && st.Valid() {
			return st
		}
	}
	if a.Lifecycle.Valid() {
		return a.Lifecycle
	}
	return lifecycle.Planned
}

// tally is one milestone's running count.
type tally struct {
	m        *Milestone
	current  int
	byRegion map[string]int
	errs     int
	firstErr string
}

func (t *tally) fail(where string, err error) {
	if t.errs == 0 {
		t.firstErr = fmt.Sprintf("%s: %v", where, err)
	}
	t.errs++
}

// Compute counts every milestone over sites at time now. state gives the
// live lifecycle state of an asset (it may be nil); when it returns false
// the registry's Asset.Lifecycle is used, and planned when that is empty.
// state is called once per asset, from the calling goroutine only. The
// result is in the order of ms. Compute does not modify its inputs.
func Compute(ms []*Milestone, sites []*registry.Site, state func(site, asset string) (lifecycle.State, bool), now time.Time) []Progress {
	tallies := make([]tally, len(ms))
	var siteMs, assetMs []*tally
	for i, m := range ms {
		t := &tallies[i]
		t.m, t.byRegion = m, map[string]int{}
		switch {
		case m.prog == nil:
			t.errs, t.firstErr = 1, "milestone was not compiled by Load"
		case m.Count == CountSites:
			siteMs = append(siteMs, t)
		default:
			assetMs = append(assetMs, t)
		}
	}
	// Per-site counts of asset milestones, added to by_region once per
	// site rather than once per asset.
	perSite := make([]int, len(assetMs))
	e := newEvaluator()
	for _, s := range sites {
		e.setSite(s, state)
		region := s.Region
		if region == "" {
			region = UnknownRegion
		}
		for _, t := range siteMs {
			ok, err := e.run(t.m.prog, &e.sites)
			if err != nil {
				t.fail(s.ID, err)
			} else if ok {
				t.current++
				t.byRegion[region]++
			}
		}
		if len(assetMs) == 0 {
			continue
		}
		clear(perSite)
		for i := range e.site.Assets {
			e.asset = e.site.Assets[i]
			for j, t := range assetMs {
				ok, err := e.run(t.m.prog, &e.assets)
				if err != nil {
					t.fail(s.ID+"/"+e.asset.ID, err)
				} else if ok {
					perSite[j]++
				}
			}
		}
		for j, t := range assetMs {
			if perSite[j] > 0 {
				t.current += perSite[j]
				t.byRegion[region] += perSite[j]
			}
		}
	}
	out := make([]Progress, len(ms))
	for i := range tallies {
		out[i] = tallies[i].progress(now)
	}
	return out
}

func (e *evaluator) run(p *vm.Program, env any) (bool, error) {
	v, err := e.vm.Run(p, env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool) // AsBool at compile time makes this a bool
	return b, nil
}

func (t *tally) progress(now time.Time) Progress {
	m := t.m
	p := Progress{
		ID: m.ID, Title: m.Title, Line: m.Line, Count: m.Count, Target: m.Target,
		Current: t.current, Start: m.Start.Format(time.DateOnly), Deadline: m.Deadline.Format(time.DateOnly),
		Source: m.Source, ByRegion: t.byRegion, EvalErrors: t.errs, EvalError: t.firstErr,
	}
	if m.Target <= 0 { // not from Load; nothing sensible to say
		p.Status = StatusLate
		return p
	}
	p.Percent = math.Round(float64(t.current)*1000/float64(m.Target)) / 10
	start := dayStart(m.Start)
	due := dayStart(m.Deadline).AddDate(0, 0, 1) // end of the deadline day
	// The pace is linear from start to the end of the deadline day.
	frac := 1.0
	if span := due.Sub(start); span > 0 {
		frac = min(max(float64(now.Sub(start))/float64(span), 0), 1)
	}
	// Ceil: current < ceil(x) exactly when current < x, so Expected and
	// Status never disagree.
	p.Expected = int(math.Ceil(frac*float64(m.Target) - 1e-9)) // float noise must not add one
	switch {
	case t.current >= m.Target:
		p.Status = StatusAchieved
	case !now.Before(due):
		p.Status = StatusLate
	case t.current < p.Expected:
		p.Status = StatusAtRisk
	default:
		p.Status = StatusOnTrack
	}
	return p
}

// dayStart is midnight in Rome of the calendar day of d.
func dayStart(d time.Time) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day(), 0, 0, 0, 0, rome)
}
