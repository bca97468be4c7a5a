package engine

import (
	"errors"
	"fmt"
	"hash/fnv"
	"sync"
	"sync/atomic"
	"time"
)

// Rule is a compiled rule as the engine sees it.
type Rule struct {
	ID            string
	Severity      string
	Labels        map[string]string
	For           time.Duration
	KeepFiringFor time.Duration
	NoDataAfter   time.Duration // 0: no NoData state
	// Cond says whether the condition holds for this evaluation. Clear
	// (optional) says whether a firing alert may resolve: firing stays until
	// Clear is true, even if Cond is false.
	Cond    func(e Eval) (bool, error)
	Clear   func(e Eval) (bool, error)
	Summary func(e Eval) string
	// SiteDown marks a rule that detects a whole site down: its open alerts
	// inhibit the other alerts of the site.
	SiteDown bool
}

// Eval is one point as given to a rule.
type Eval struct {
	Site, Asset, AssetType, Metric string
	Value                          float64
	TS                             time.Time
	Payload                        any // opaque, for Cond (the language's env)
	// Timer marks an evaluation made by the clock, not by a point: it does
	// not count as a sign of life (NoData), is never late, and does not
	// move the event-time order points are checked against.
	Timer bool
}

// State of an alert.
type State uint8

const (
	StateInactive State = iota
	StatePending
	StateFiring
	StateResolved
	StateNoData
)

var stateNames = [...]string{"inactive", "pending", "firing", "resolved", "nodata"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("state(%d)", s)
}

// ParseState is the inverse of State.String.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if n == s {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("cannot parse state %q", s)
}

// Kind of a notification.
type Kind string

const (
	KindPending   Kind = "pending"
	KindInactive  Kind = "inactive" // pending cancelled before For elapsed
	KindFired     Kind = "fired"
	KindResolved  Kind = "resolved"
	KindNoData    Kind = "nodata"
	KindFlapping  Kind = "flapping"
	KindReminder  Kind = "reminder"
	KindEscalated Kind = "escalated"
	KindAcked     Kind = "acked"
	KindAssigned  Kind = "assigned"
)

// Ack records who acknowledged an alert.
type Ack struct {
	By, Comment string
	At          time.Time
}

// Alert is a copy of one alert's state. Labels and Ack are shared and must
// not be modified.
type Alert struct {
	Fingerprint string
	RuleID      string
	Site, Asset string
	State       State
	Severity    string
	Labels      map[string]string
	Summary     string
	Value       float64 // at the last evaluation
	ActiveAt    time.Time
	FiredAt     time.Time
	ResolvedAt  time.Time
	LastEval    time.Time
	Ack         *Ack
	Assignee    string
	Flapping    bool
	InhibitedBy string // fingerprint of the site-down alert
	Silenced    bool
	Occurrence  int
	Level       int // escalation level reached in this occurrence
}

// Notification is one change; the caller stores all of them and sends the
// ones with Deliver set.
type Notification struct {
	Kind    Kind
	At      time.Time
	Alert   Alert
	Level   int // for KindEscalated
	Deliver bool
	// State is the alert's whole state once the call that made this change
	// returned, for the caller to persist (see Saved). It is set on the
	// last notification of each alert a call returns, nil on the others.
	State *Saved
}

// Options tune the engine. Zero values disable the feature.
type Options struct {
	FlapWindow    time.Duration
	FlapThreshold int // changes within FlapWindow that mark an alert flapping
	ReminderEvery time.Duration
	EscalateAfter time.Duration // each EscalateAfter unacknowledged raises the level
	// MaxLateness: a point older than the newest seen for its asset by more
	// than this is not evaluated (0: points must not go back in time).
	MaxLateness time.Duration
	// MaxAge: a point older than the last Tick by more than this is not
	// evaluated (0: no limit).
	MaxAge time.Duration
	// InhibitGrace: after a site alert resolves, its site's alerts stay held
	// this long, so that assets coming back just after their gateway do not
	// storm (0: released at once).
	InhibitGrace time.Duration
	// Retention: resolved alerts (and cancelled pending ones) are forgotten
	// this long after (default 24h); their history is in the notifications,
	// and Occurrence starts again from 1.
	Retention time.Duration
}

type alertKey struct{ rule, site, asset string }
type assetKey struct{ site, asset string }
type seriesKey struct{ site, asset, metric string }

type alert struct {
	Alert
	notified   bool      // the opening of this occurrence was delivered
	openSince  time.Time // when it was delivered: escalation counts from here
	lastNotify time.Time
	clearSince time.Time // since when Clear has held; zero if not clearing
	underFire  bool      // the state without flap damping
	changes    []time.Time
	dirty      bool // changed since the shard last collected (persist.go)
}

// Engine holds rules, alerts and silences.
type Engine struct {
	opts     Options
	rules    atomic.Pointer[RuleSet]
	silences atomic.Pointer[map[string]*silence] // copied on write
	smu      sync.Mutex                          // serialises silence writers
	shards   []*shard

	rmu     sync.Mutex
	retired []Notification // resolutions of removed rules' alerts, for the next Tick

	rev atomic.Uint64 // orders the Saved states and Forgotten alerts (persist.go)
}

// shard holds the sites hashed to it. Inhibition is within a site, so a
// shard never looks at another; the lock is per shard so that points of
// different sites are applied in parallel.
type shard struct {
	e      *Engine
	mu     sync.Mutex
	alerts map[alertKey]*alert
	byFP   map[string]*alert
	assets map[assetKey]time.Time  // newest event time per asset
	series map[seriesKey]time.Time // newest event time per asset and metric
	// perAsset: the asset's alerts by rule id. Most assets have none, which
	// spares a lookup per rule; the others look a rule up by its id alone,
	// cheaper to hash than the three strings of an alertKey.
	perAsset  map[assetKey]map[string]*alert
	siteDown  map[string]string // site -> fingerprint of the site-down alert
	grace     map[string]grace  // site -> site alert resolved, holding for InhibitGrace
	watermark time.Time         // last Tick
	dirty     []*alert          // alerts that emitted since the last collect
	forgotten []Forgotten       // for TakeForgotten
}

type grace struct {
	fp    string
	until time.Time
}

const numShards = 64

// New returns an engine with no rules.
func New(opts Options) *Engine {
	if opts.Retention <= 0 {
		opts.Retention = 24 * time.Hour
	}
	opts.MaxLateness = max(opts.MaxLateness, 0)
	opts.MaxAge = max(opts.MaxAge, 0)
	e := &Engine{opts: opts, shards: make([]*shard, numShards)}
	for i := range e.shards {
		e.shards[i] = &shard{
			e:        e,
			alerts:   make(map[alertKey]*alert),
			byFP:     make(map[string]*alert),
			assets:   make(map[assetKey]time.Time),
			series:   make(map[seriesKey]time.Time),
			perAsset: make(map[assetKey]map[string]*alert),
			siteDown: make(map[string]string),
			grace:    make(map[string]grace),
		}
	}
	noSilences := map[string]*silence{}
	e.rules.Store(&RuleSet{byID: map[string]*Rule{}})
	e.silences.Store(&noSilences)
	return e
}

func (e *Engine) shardOf(site string) *shard {
	h := uint32(2166136261) // FNV-1a, inline to avoid an allocation
	for i := 0; i < len(site); i++ {
		h = (h ^ uint32(site[i])) * 16777619
	}
	return e.shards[h%numShards]
}

// Fingerprint is the stable id of the alert of a rule on an asset.
func Fingerprint(ruleID, site, asset string) string {
	h := fnv.New64a()
	h.Write([]byte(ruleID))
	h.Write([]byte{0})
	h.Write([]byte(site))
	h.Write([]byte{0})
	h.Write([]byte(asset))
	return fmt.Sprintf("%016x", h.Sum64())
}

// SetRules replaces the rules. Alerts of rules that still exist keep their
// state; the others are dropped, the open ones resolved: the next Tick
// returns those resolutions.
func (e *Engine) SetRules(rules []Rule) error {
	m := make(map[string]*Rule, len(rules))
	for i := range rules {
		r := rules[i]
		switch {
		case r.ID == "":
			return fmt.Errorf("cannot set rules: rule %d has no id", i)
		case r.Cond == nil:
			return fmt.Errorf("cannot set rules: rule %q has no condition", r.ID)
		case m[r.ID] != nil:
			return fmt.Errorf("cannot set rules: duplicate rule id %q", r.ID)
		}
		m[r.ID] = &r
	}
	old := e.rules.Swap(&RuleSet{byID: m}).byID
	var retired []Notification
	for _, s := range e.shards {
		s.mu.Lock()
		for k, a := range s.alerts {
			r := m[k.rule]
			if r == nil {
				// An open alert of a removed rule is resolved, so that its
				// history and its sinks do not keep it open for ever; at the
				// shard's clock (the last Tick), the engine has no other.
				if or := old[k.rule]; or != nil && (isOpen(a.State) || a.State == StatePending) {
					t := s.watermark
					if t.Before(a.LastEval) {
						t = a.LastEval
					}
					s.close(or, a, t, &retired)
				}
				s.forget(k, a)
				continue
			}
			a.Severity = r.Severity
			a.Labels = alertLabels(r, a.Site, a.Asset)
		}
		// A removed site-down rule stops inhibiting.
		for site, fp := range s.siteDown {
			if s.byFP[fp] == nil {
				delete(s.siteDown, site)
			}
		}
		s.collect(nil) // the alerts closed here are forgotten: nothing to save
		s.mu.Unlock()
	}
	if len(retired) > 0 {
		e.rmu.Lock()
		e.retired = append(e.retired, retired...)
		e.rmu.Unlock()
	}
	return nil
}

func alertLabels(r *Rule, site, asset string) map[string]string {
	l := make(map[string]string, len(r.Labels)+4)
	for k, v := range r.Labels {
		l[k] = v
	}
	l["rule"] = r.ID
	l["site"] = site
	l["asset"] = asset
	l["severity"] = r.Severity
	return l
}

// RuleSet is the rules one SetRules installed. Its *Rule handles let a
// caller that evaluates the same rules on every point (the rules service)
// pass them to ObserveRules without a lookup by id per rule and point.
type RuleSet struct {
	byID map[string]*Rule
}

// Rule returns the handle of the rule with that id.
func (s *RuleSet) Rule(id string) (*Rule, bool) {
	r, ok := s.byID[id]
	return r, ok
}

// RuleSet returns the current rules; it is replaced, not changed, by the
// next SetRules.
func (e *Engine) RuleSet() *RuleSet { return e.rules.Load() }

// Scratch is memory that ObserveRules reuses between calls instead of
// allocating per point. A Scratch must not be used by two calls at once.
type Scratch struct {
	res []result
}

type result struct {
	r            *Rule
	cond, clears bool
}

// Observe evaluates a point against the given rules (those whose scope
// matched it; with none, it only records that the asset is alive, for
// NoData). A late point changes nothing and gives ErrLate (see the package
// doc). An error from Cond or Clear skips that rule; the others still run
// and the errors come back joined.
func (e *Engine) Observe(ev Eval, ruleIDs ...string) ([]Notification, error) {
	rules := e.rules.Load().byID
	var buf [4]result
	res := buf[:0]
	var errs []error
	for _, id := range ruleIDs {
		r := rules[id]
		if r == nil {
			errs = append(errs, fmt.Errorf("cannot observe: unknown rule %q", id))
			continue
		}
		res, errs = evaluate(ev, r, res, errs)
	}
	return e.apply(ev, res, errs)
}

// ObserveRules is Observe with the rules given as handles of set (from
// RuleSet) and with sc's memory reused: what Observe(ev, ids...) does,
// without a map lookup per rule. If SetRules replaced set meanwhile, each
// rule is looked up again by id, as Observe would.
func (e *Engine) ObserveRules(ev Eval, set *RuleSet, rules []*Rule, sc *Scratch) ([]Notification, error) {
	res := sc.res[:0]
	var errs []error
	if cur := e.rules.Load(); cur != set {
		for _, old := range rules {
			r := cur.byID[old.ID]
			if r == nil {
				errs = append(errs, fmt.Errorf("cannot observe: unknown rule %q", old.ID))
				continue
			}
			res, errs = evaluate(ev, r, res, errs)
		}
	} else {
		for _, r := range rules {
			if r.Cond == nil { // not a handle of set: SetRules refuses such a rule
				errs = append(errs, fmt.Errorf("cannot observe: unknown rule %q", r.ID))
				continue
			}
			res, errs = evaluate(ev, r, res, errs)
		}
	}
	sc.res = res[:0]
	return e.apply(ev, res, errs)
}

// evaluate runs a rule's Cond (and Clear when Cond is false) on ev.
func evaluate(ev Eval, r *Rule, res []result, errs []error) ([]result, []error) {
	cond, err := r.Cond(ev)
	if err != nil {
		return res, append(errs, fmt.Errorf("cannot evaluate rule %q on %s/%s: %w", r.ID, ev.Site, ev.Asset, err))
	}
	clears := !cond
	if !cond && r.Clear != nil {
		if clears, err = r.Clear(ev); err != nil {
			return res, append(errs, fmt.Errorf("cannot evaluate clear of rule %q on %s/%s: %w", r.ID, ev.Site, ev.Asset, err))
		}
	}
	return append(res, result{r, cond, clears}), errs
}

// apply steps the alerts of the evaluated rules, in order, under the
// site's shard lock.
func (e *Engine) apply(ev Eval, res []result, errs []error) ([]Notification, error) {
	s := e.shardOf(ev.Site)
	s.mu.Lock()
	defer s.mu.Unlock()
	ak, sk := assetKey{ev.Site, ev.Asset}, seriesKey{ev.Site, ev.Asset, ev.Metric}
	newest, seen := s.assets[ak]
	newestSeries, seenSeries := s.series[sk]
	if !ev.Timer {
		if seen && ev.TS.Before(newest.Add(-e.opts.MaxLateness)) ||
			seenSeries && ev.TS.Before(newestSeries) ||
			e.opts.MaxAge > 0 && !s.watermark.IsZero() && ev.TS.Before(s.watermark.Add(-e.opts.MaxAge)) {
			return nil, ErrLate
		}
		if !seen || ev.TS.After(newest) {
			s.assets[ak] = ev.TS
		}
		s.series[sk] = ev.TS
	}
	var out []Notification
	late := false
	byRule := s.perAsset[ak]
	for _, x := range res {
		if byRule == nil && !x.cond && x.r.NoDataAfter == 0 {
			continue // the common case: nothing to remember
		}
		a := byRule[x.r.ID]
		if a == nil {
			if !x.cond && x.r.NoDataAfter == 0 {
				continue
			}
			a = &alert{Alert: Alert{
				Fingerprint: Fingerprint(x.r.ID, ev.Site, ev.Asset),
				RuleID:      x.r.ID, Site: ev.Site, Asset: ev.Asset,
				Severity: x.r.Severity, Labels: alertLabels(x.r, ev.Site, ev.Asset),
			}}
			byRule = s.add(alertKey{x.r.ID, ev.Site, ev.Asset}, a)
		}
		if ev.Timer {
			// A point from the future (a device clock ahead) already decided;
			// NoData ends with data, not with the clock.
			if ev.TS.Before(a.LastEval) || a.State == StateNoData {
				continue
			}
		} else if ev.TS.Before(a.LastEval) {
			late = true
			continue
		} else {
			a.LastEval, a.Value = ev.TS, ev.Value
		}
		s.step(x, a, ev, &out)
	}
	if late {
		errs = append(errs, ErrLate)
	}
	s.collect(out)
	return out, errors.Join(errs...)
}

func prune(ts []time.Time, since time.Time) []time.Time {
	i := 0
	for i < len(ts) && ts[i].Before(since) {
		i++
	}
	return append(ts[:0], ts[i:]...)
}

func isOpen(s State) bool { return s == StateFiring || s == StateNoData }
