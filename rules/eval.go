package rules

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Twin is the live state a rule reads; *state.Store is one.
type Twin interface {
	Asset(site, asset string, now time.Time) (state.AssetView, bool)
	Site(site string, now time.Time) (state.SiteView, bool)
}

// Evaluator dispatches points to the rules that can be changed by them and
// runs the alert lifecycle. It does no I/O: the Service sends what it
// returns to Kafka; `polis rules test` and backtests read it directly.
type Evaluator struct {
	reg      *registry.Registry
	eng      *engine.Engine
	idx      atomic.Pointer[index]
	ringSize int
	prov     provinceStats

	mu     sync.Mutex
	assets map[string]*tracked // "site/asset"

	evals atomic.Uint64 // rule evaluations (a point times the rules it reached)
}

// tracked is what the evaluator keeps of an asset that has reported.
type tracked struct {
	mu   sync.Mutex // guards ring; points and the clock evaluate concurrently
	ring *dsl.Ring
	env  *dsl.Env // reused for every evaluation of the asset
	twin Twin     // the store that last applied the asset's record
	site *registry.Site
	a    *registry.Asset
	// dropped: the asset's site left this evaluator (its partition moved to
	// another instance); an evaluation that raced with that does nothing.
	dropped bool
	// scratch for Point, reused under mu
	cands   []*engine.Rule
	matched []*dsl.Rule
	sc      engine.Scratch
}

// index is the dispatch table, swapped whole when the rules change.
type index struct {
	rules []*dsl.Rule
	byID  map[string]*dsl.Rule
	// point[type][metric]: rules a point of that metric on an asset of that
	// type may change; "" keys hold the rules for any type or any metric.
	point map[string]map[string][]*dsl.Rule
	// timer[type]: rules evaluated on the clock and on status changes.
	timer map[string][]*dsl.Rule
	// province is every metric some rule reads through province_avg.
	province map[string]bool

	// set is the engine's rules the plans hold handles of.
	set *engine.RuleSet
	// plans[type][metric] is candidates(type, metric), resolved once per
	// rule change rather than per point; other holds the plans of the
	// types no rule names. A metric without a plan reads the "" plan.
	plans map[string]map[string]*plan
	other map[string]*plan
}

// plan is the rules a point of one (asset type, metric) may change, in
// dispatch order, with their engine handles. Their asset types match by
// construction; only the rules with a site condition (regions, sites,
// site labels) are matched per point.
type plan struct {
	rules []*dsl.Rule
	eng   []*engine.Rule
	// bySite[i]: rules[i] has a site condition. siteFree: none has, so
	// eng is the list as is.
	bySite   []bool
	siteFree bool
}

// newPlan resolves rules into a plan with set's handles. A rule that set lacks
// (a concurrent SetRules installed other rules) gets a handle with its id
// only, and complete is false.
func newPlan(rules []*dsl.Rule, set *engine.RuleSet) (p *plan, complete bool) {
	p = &plan{rules: rules, eng: make([]*engine.Rule, len(rules)), bySite: make([]bool, len(rules)), siteFree: true}
	complete = true
	for i, r := range rules {
		er, ok := set.Rule(r.ID)
		if !ok {
			er, complete = &engine.Rule{ID: r.ID}, false
		}
		p.eng[i] = er
		s := &r.Scope
		p.bySite[i] = len(s.Regions) > 0 || len(s.Sites) > 0 || len(s.SiteLabels) > 0
		p.siteFree = p.siteFree && !p.bySite[i]
	}
	return p, complete
}

// buildPlans fills x.plans and x.other from x.point with set's handles.
func (x *index) buildPlans(set *engine.RuleSet) {
	x.set, x.plans, x.other = set, map[string]map[string]*plan{}, map[string]*plan{}
	complete := true
	add := func(dst map[string]*plan, typ string, metrics map[string][]*dsl.Rule) {
		for _, m := range append(slices.Collect(maps.Keys(metrics)), "") {
			if dst[m] == nil {
				p, ok := newPlan(x.candidates(nil, typ, m), set)
				dst[m], complete = p, complete && ok
			}
		}
	}
	// A type no rule names gets the rules of any type: the candidates of
	// a type absent from x.point (not of "", which would list them twice).
	const unnamed = "\x00"
	add(x.other, unnamed, x.point[""])
	for typ, metrics := range x.point {
		if typ == "" {
			continue
		}
		dst := map[string]*plan{}
		add(dst, typ, metrics)
		add(dst, typ, x.point[""])
		x.plans[typ] = dst
	}
	if !complete {
		// Not the engine's current rules: a set that is never current
		// makes ObserveRules look every handle up by id.
		x.set = &engine.RuleSet{}
	}
}

// plan returns the plan of a point of metric on an asset of type typ.
func (x *index) plan(typ, metric string) *plan {
	byMetric, ok := x.plans[typ]
	if !ok || typ == "" {
		byMetric = x.other
	}
	if p, ok := byMetric[metric]; ok {
		return p
	}
	return byMetric[""]
}

func newIndex(rules []*dsl.Rule) *index {
	x := &index{rules: rules, byID: map[string]*dsl.Rule{}, point: map[string]map[string][]*dsl.Rule{},
		timer: map[string][]*dsl.Rule{}, province: map[string]bool{}}
	types := func(r *dsl.Rule) []string {
		if len(r.Scope.AssetTypes) == 0 {
			return []string{""}
		}
		return r.Scope.AssetTypes
	}
	for _, r := range rules {
		x.byID[r.ID] = r
		metrics := r.Uses.Metrics
		// A rule that names no metric reads the twin or the clock, which any
		// point may have moved; a NoData rule must see every point to know
		// the asset is alive.
		if r.Uses.AnyMetric || len(metrics) == 0 || r.NoDataAfter > 0 {
			metrics = []string{""}
		}
		for _, t := range types(r) {
			if x.point[t] == nil {
				x.point[t] = map[string][]*dsl.Rule{}
			}
			for _, m := range metrics {
				x.point[t][m] = append(x.point[t][m], r)
			}
			if r.Uses.Timer {
				x.timer[t] = append(x.timer[t], r)
			}
		}
		for _, m := range r.Uses.ProvinceMetrics {
			x.province[m] = true
		}
	}
	return x
}

// candidates appends the rules a point of metric on an asset of type typ
// may change. A rule is listed once per (type, metric) key it is under, and
// the four keys are disjoint for one rule, so there are no duplicates.
func (x *index) candidates(dst []*dsl.Rule, typ, metric string) []*dsl.Rule {
	for _, t := range [2]string{typ, ""} {
		if m := x.point[t]; m != nil {
			dst = append(dst, m[metric]...)
			if metric != "" {
				dst = append(dst, m[""]...)
			}
		}
	}
	return dst
}

// NewEvaluator returns an evaluator of rules over the assets of reg.
// ringSize is how many recent points per asset the history functions see.
func NewEvaluator(reg *registry.Registry, rules []*dsl.Rule, o engine.Options, ringSize int) (*Evaluator, error) {
	if ringSize <= 0 {
		ringSize = 256
	}
	e := &Evaluator{reg: reg, eng: engine.New(o), ringSize: ringSize, assets: map[string]*tracked{},
		prov: provinceStats{m: map[provKey]map[string]provVal{}}}
	if err := e.SetRules(rules); err != nil {
		return nil, err
	}
	return e, nil
}

// SetRules replaces the rules; alerts of rules that keep their id keep
// their state.
func (e *Evaluator) SetRules(rules []*dsl.Rule) error {
	ers := make([]engine.Rule, len(rules))
	for i, r := range rules {
		ers[i] = engineRule(r)
	}
	if err := e.eng.SetRules(ers); err != nil {
		return fmt.Errorf("cannot load rules: %w", err)
	}
	x := newIndex(rules)
	x.buildPlans(e.eng.RuleSet())
	e.idx.Store(x)
	return nil
}

// Rules returns the rules, in load order.
func (e *Evaluator) Rules() []*dsl.Rule { return e.idx.Load().rules }

// Rule returns one rule by id.
func (e *Evaluator) Rule(id string) (*dsl.Rule, bool) {
	r, ok := e.idx.Load().byID[id]
	return r, ok
}

// Engine is the alert lifecycle behind the evaluator (alerts, acks, silences).
func (e *Evaluator) Engine() *engine.Engine { return e.eng }

// Evaluations returns how many rule evaluations points and the clock made.
func (e *Evaluator) Evaluations() uint64 { return e.evals.Load() }

func engineRule(r *dsl.Rule) engine.Rule {
	er := engine.Rule{ID: r.ID, Severity: r.Severity, Labels: r.Labels, For: r.For, KeepFiringFor: r.KeepFiringFor,
		NoDataAfter: r.NoDataAfter, SiteDown: r.SiteDown,
		Cond: func(e engine.Eval) (bool, error) { return r.Cond.Eval(e.Payload.(*dsl.Env)) },
		Summary: func(e engine.Eval) string {
			s, err := r.Summary.Render(e.Payload.(*dsl.Env))
			if err != nil {
				return r.ID + ": " + err.Error()
			}
			return s
		}}
	if r.Clear != nil {
		er.Clear = func(e engine.Eval) (bool, error) { return r.Clear.Eval(e.Payload.(*dsl.Env)) }
	}
	return er
}

// track returns the asset's entry, creating it on its first report.
func (e *Evaluator) track(site, asset string) *tracked {
	key := site + "/" + asset
	e.mu.Lock()
	defer e.mu.Unlock()
	t, ok := e.assets[key]
	if !ok {
		s, ok1 := e.reg.Site(site)
		a, ok2 := e.reg.Asset(site, asset)
		if !ok1 || !ok2 {
			return nil
		}
		t = &tracked{ring: dsl.NewRing(e.ringSize), site: s, a: a}
		e.assets[key] = t
	}
	return t
}

// Applied evaluates what a record the twin applied (with change c) can
// have changed: the rules its telemetry points reach, or the clock rules
// of an asset whose connection status or reported properties changed.
func (e *Evaluator) Applied(tw Twin, r *record.Record, c state.Change) ([]engine.Notification, error) {
	switch {
	case !c.Known:
		return nil, nil
	case r.Kind == record.KindTelemetry && len(r.Points) > 0:
		return e.Point(tw, r)
	case c.Connection || c.OldStatus != c.NewStatus || len(c.Properties) > 0:
		at := r.TS
		if at == 0 {
			at = r.Received
		}
		return e.Status(tw, r.Site, r.Asset, time.UnixMilli(at))
	}
	return nil, nil
}

// Point evaluates a telemetry record the twin applied (tw holds the
// asset's state after it) against the rules its points can change.
// Errors of single rules are joined; the other rules still ran.
func (e *Evaluator) Point(tw Twin, r *record.Record) ([]engine.Notification, error) {
	if r.Kind != record.KindTelemetry || len(r.Points) == 0 {
		return nil, nil
	}
	t := e.track(r.Site, r.Asset)
	if t == nil {
		return nil, nil
	}
	x := e.idx.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return nil, nil
	}
	t.twin = tw
	for _, p := range r.Points {
		ts := time.UnixMilli(p.TS)
		t.ring.Add(p.Metric, ts, p.Value)
		if x.province[p.Metric] {
			e.prov.add(provKey{t.site.Province, t.a.Type, p.Metric}, t.a.ID+"@"+t.site.ID, p.Value, ts)
		}
	}
	var (
		out   []engine.Notification
		errs  []error
		env   *dsl.Env
		scope = dsl.SiteEnv{ID: t.site.ID, Region: t.site.Region, Province: t.site.Province, Kind: string(t.site.Kind), Labels: t.site.Labels}
	)
	for _, p := range r.Points {
		pl := x.plan(t.a.Type, p.Metric)
		rules, matched := pl.eng, pl.rules
		if !pl.siteFree {
			t.cands, t.matched = t.cands[:0], t.matched[:0]
			for i, rule := range pl.rules {
				if !pl.bySite[i] || rule.Scope.Match(t.a.Type, &scope) {
					t.cands, t.matched = append(t.cands, pl.eng[i]), append(t.matched, rule)
				}
			}
			rules, matched = t.cands, t.matched
		}
		if len(rules) == 0 {
			continue
		}
		ts := time.UnixMilli(p.TS)
		if env == nil {
			env = e.env(t, tw, ts, matched)
		} else if len(x.province) > 0 {
			e.fillProvince(env, t, ts, matched)
		}
		env.Metric, env.Value, env.TS = p.Metric, p.Value, ts
		e.evals.Add(uint64(len(rules)))
		ns, err := e.eng.ObserveRules(engine.Eval{Site: r.Site, Asset: r.Asset, AssetType: t.a.Type, Metric: p.Metric,
			Value: p.Value, TS: ts, Payload: env}, x.set, rules, &t.sc)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, ns...)
	}
	return out, joinErrs(errs)
}

// env builds the environment of an asset at ts. Views are copied out of the
// twin once per record: every point of the record sees the state after it.
//
// The Env is the asset's own, reused under t.mu: its functions are bound
// once and its maps are refilled, which halves the clock's cost per asset.
func (e *Evaluator) env(t *tracked, tw Twin, ts time.Time, rules []*dsl.Rule) *dsl.Env {
	if t.env == nil {
		t.env = &dsl.Env{History: t.ring}
	}
	env := t.env
	var av state.AssetView
	var sv state.SiteView
	if tw != nil {
		av, _ = tw.Asset(t.site.ID, t.a.ID, ts)
		sv, _ = tw.Site(t.site.ID, ts)
	}
	metrics, props, prov := env.Asset.Metrics, env.Asset.Props, env.Site.ProvinceAvg
	clear(metrics)
	clear(props)
	clear(prov)
	env.Asset = assetEnv(t.a, av, metrics, props)
	env.Site = siteEnv(t.site, sv, ts)
	env.Site.ProvinceAvg = prov
	env.Metric, env.Value, env.TS = "", 0, ts
	e.fillProvince(env, t, ts, rules)
	return env
}

func (e *Evaluator) fillProvince(env *dsl.Env, t *tracked, ts time.Time, rules []*dsl.Rule) {
	for _, r := range rules {
		for _, m := range r.Uses.ProvinceMetrics {
			if env.Site.ProvinceAvg == nil {
				env.Site.ProvinceAvg = map[string]float64{}
			}
			if v, ok := e.prov.avg(provKey{t.site.Province, t.a.Type, m}, t.a.ID+"@"+t.site.ID, ts); ok {
				env.Site.ProvinceAvg[m] = v
			} else {
				delete(env.Site.ProvinceAvg, m)
			}
		}
	}
}

// Status evaluates the clock rules (asset.status, asset.props, silent_for,
// opening hours) of an asset whose connection status or reported
// properties the twin just changed, so that an ATM going offline is
// noticed without waiting for the next tick.
func (e *Evaluator) Status(tw Twin, site, asset string, at time.Time) ([]engine.Notification, error) {
	t := e.track(site, asset)
	if t == nil {
		return nil, nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.dropped {
		return nil, nil
	}
	t.twin = tw
	return e.timer(e.idx.Load(), t, at)
}

// timer runs the asset's clock rules at now; t.mu is held.
func (e *Evaluator) timer(x *index, t *tracked, now time.Time) ([]engine.Notification, error) {
	var matched []string
	var rules []*dsl.Rule
	scope := dsl.SiteEnv{ID: t.site.ID, Region: t.site.Region, Province: t.site.Province, Kind: string(t.site.Kind), Labels: t.site.Labels}
	for _, list := range [2][]*dsl.Rule{x.timer[t.a.Type], x.timer[""]} {
		for _, r := range list {
			if r.Scope.Match(t.a.Type, &scope) {
				matched, rules = append(matched, r.ID), append(rules, r)
			}
		}
	}
	if len(matched) == 0 {
		return nil, nil
	}
	env := e.env(t, t.twin, now, rules)
	env.TS = now
	e.evals.Add(uint64(len(matched)))
	return e.eng.Observe(engine.Eval{Site: t.site.ID, Asset: t.a.ID, AssetType: t.a.Type, TS: now, Payload: env, Timer: true}, matched...)
}

// Tick evaluates the clock rules of every asset that has reported, then
// advances the alert lifecycle to now (for elapsing, NoData, reminders).
func (e *Evaluator) Tick(now time.Time) ([]engine.Notification, error) {
	x := e.idx.Load()
	var out []engine.Notification
	var errs []error
	if len(x.timer) > 0 {
		e.mu.Lock()
		ts := make([]*tracked, 0, len(e.assets))
		for _, t := range e.assets {
			if len(x.timer[t.a.Type]) > 0 || len(x.timer[""]) > 0 {
				ts = append(ts, t)
			}
		}
		e.mu.Unlock()
		for _, t := range ts {
			t.mu.Lock()
			if t.dropped {
				t.mu.Unlock()
				continue
			}
			ns, err := e.timer(x, t, now)
			t.mu.Unlock()
			out = append(out, ns...)
			if err != nil && len(errs) < 10 {
				errs = append(errs, err)
			}
		}
	}
	return append(out, e.eng.Tick(now)...), joinErrs(errs)
}

// AddSites makes the sites this evaluator's, read from tw (the twin of
// the partition just gained): each registered asset is tracked at once, so
// the clock evaluates the assets that send nothing (an offline totem, a
// silent gateway), and tw replaces the twin an earlier owner's records
// were read from. The assets' recent history starts empty: the history
// functions (avg, silent_for, ...) see the points applied from now on.
func (e *Evaluator) AddSites(tw Twin, sites []string) (assets int) {
	for _, id := range sites {
		site, ok := e.reg.Site(id)
		if !ok {
			continue
		}
		for _, a := range site.Assets {
			t := e.track(id, a.ID)
			if t == nil {
				continue
			}
			t.mu.Lock()
			t.twin = tw
			t.mu.Unlock()
			assets++
		}
	}
	return assets
}

// DropSites forgets the sites: their assets' history and clock
// evaluations, their values in province_avg, and their alerts in the
// engine, without a notification (another instance owns them now and
// restores their alerts). It returns how many assets and alerts it dropped.
// An evaluation of one of their assets running meanwhile finishes first;
// none starts after.
func (e *Evaluator) DropSites(sites []string) (assets, alerts int) {
	set := make(map[string]bool, len(sites))
	for _, s := range sites {
		set[s] = true
	}
	var gone []*tracked
	e.mu.Lock()
	for key, t := range e.assets {
		if set[t.site.ID] {
			delete(e.assets, key)
			gone = append(gone, t)
		}
	}
	e.mu.Unlock()
	for _, t := range gone {
		t.mu.Lock()
		t.dropped, t.twin = true, nil
		t.mu.Unlock()
	}
	e.prov.dropSites(set)
	return len(gone), e.eng.DropSites(sites)
}

func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return fmt.Errorf("%w (and %d more)", errs[0], len(errs)-1)
}

// assetEnv fills the asset's part of the environment into the (empty)
// maps given, or new ones when nil.
func assetEnv(a *registry.Asset, v state.AssetView, metrics map[string]float64, props map[string]any) dsl.AssetEnv {
	if metrics == nil {
		metrics = make(map[string]float64, len(v.Metrics))
	}
	e := dsl.AssetEnv{ID: a.ID, Type: a.Type, Status: v.Status.String(), Metrics: metrics, Props: props}
	for name, m := range v.Metrics {
		e.Metrics[name] = m.Value
	}
	if len(v.Reported) > 0 {
		if e.Props == nil {
			e.Props = make(map[string]any, len(v.Reported))
		}
		for name, p := range v.Reported {
			var x any
			if json.Unmarshal(p.Value, &x) == nil {
				e.Props[name] = x
			}
		}
	}
	return e
}

func siteEnv(s *registry.Site, v state.SiteView, now time.Time) dsl.SiteEnv {
	e := dsl.SiteEnv{ID: s.ID, Region: s.Region, Province: s.Province, Kind: string(s.Kind), Labels: s.Labels}
	if s.OpeningHours != nil {
		e.OpenNow = s.OpeningHours.OpenAt(now)
	}
	fillAggregates(&e, v)
	return e
}

// provinceStats keeps, per province, asset type and metric, each asset's
// latest value, for province_avg: "the other plants of the province at
// this hour" is the mean of the others' values of the last hour.
type provinceStats struct {
	mu sync.Mutex
	m  map[provKey]map[string]provVal
}

type provKey struct{ province, typ, metric string }

type provVal struct {
	v  float64
	ts time.Time
}

// provinceWindow is how recent a peer's value must be to count.
const provinceWindow = time.Hour

func (p *provinceStats) add(k provKey, asset string, v float64, ts time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.m[k]
	if m == nil {
		m = map[string]provVal{}
		p.m[k] = m
	}
	if old, ok := m[asset]; !ok || !ts.Before(old.ts) {
		m[asset] = provVal{v, ts}
	}
}

// dropSites removes the values of the sites' assets (keys "asset@site").
func (p *provinceStats) dropSites(sites map[string]bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.m {
		for key := range m {
			if i := strings.LastIndexByte(key, '@'); i >= 0 && sites[key[i+1:]] {
				delete(m, key)
			}
		}
	}
}

// avg is the mean over the other assets with a value in (now-1h, now+1h):
// peers report on their own schedule, a little ahead or behind.
func (p *provinceStats) avg(k provKey, self string, now time.Time) (float64, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var sum float64
	n := 0
	for asset, v := range p.m[k] {
		if asset == self || v.ts.Before(now.Add(-provinceWindow)) || v.ts.After(now.Add(provinceWindow)) {
			continue
		}
		sum += v.v
		n++
	}
	if n == 0 {
		return 0, false
	}
	return sum / float64(n), true
}
