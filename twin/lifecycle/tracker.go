package lifecycle

import (
	"encoding/json"
	"fmt"
	"maps"
	"sort"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultAcceptancePeriod = 72 * time.Hour
	DefaultGrace            = time.Hour
)

// Options tunes the evidence rules.
//
// Acceptance: an installed asset becomes commissioned once it has sent its
// first valid telemetry and then stayed online for AcceptancePeriod. The
// period starts at the first telemetry. Going offline for at most Grace is
// tolerated (a router reboot, a broker restart) and the time counts; an
// offline gap longer than Grace restarts the period at reconnection. An asset
// must be online at the moment it is commissioned. Telemetry counts as being
// online; going offline is known only from ObserveStatus, so the caller (the
// twin, which also derives offline from staleness) must report it.
//
// LogFirst is how the platform runs the tracker: the lifecycle lives in a
// log (polis.lifecycle.v1) and the tracker's states change only by folding
// it (Apply). Evidence (ObserveTelemetry, ObserveStatus, ObserveFault, Tick)
// then proposes moves without making them: it returns the events and marks
// the asset as awaiting its proposal, so that more evidence proposes
// nothing until Apply folds an event of that asset (or Withdraw gives the
// proposal up). Without LogFirst, evidence moves at once.
type Options struct {
	AcceptancePeriod time.Duration // 0 means DefaultAcceptancePeriod
	Grace            time.Duration // 0 means DefaultGrace; negative means no grace
	LogFirst         bool
}

func (o Options) withDefaults() Options {
	if o.AcceptancePeriod <= 0 {
		o.AcceptancePeriod = DefaultAcceptancePeriod
	}
	if o.Grace == 0 {
		o.Grace = DefaultGrace
	}
	if o.Grace < 0 {
		o.Grace = 0
	}
	return o
}

type key struct{ site, asset string }

// asset is one asset's state and the evidence gathered so far.
type asset struct {
	State          State     `json:"state"`
	FirstTelemetry time.Time `json:"first_telemetry,omitzero"`
	AcceptStart    time.Time `json:"accept_start,omitzero"` // start of the running acceptance period
	Online         bool      `json:"online,omitempty"`
	OnlineSince    time.Time `json:"online_since,omitzero"`
	OfflineSince   time.Time `json:"offline_since,omitzero"`
	// proposed is set while an evidence move proposed under LogFirst waits
	// to be folded.
	proposed bool
	// hist is every move the asset made in this tracker, oldest first: what
	// CheckBatch compares a batch with, so that an event already made is
	// skipped rather than made twice. A seeded state (Add) is not a move.
	hist []histStep
}

// histStep is one move in an asset's history, kept small: a fleet of tens of
// thousands of assets with a few moves each holds it all.
type histStep struct {
	from, to uint8 // index in States
	nsec     int32
	sec      int64 // Unix seconds: any time.Time fits, unlike UnixNano
}

func (s histStep) time() time.Time { return time.Unix(s.sec, int64(s.nsec)).UTC() }

func stateIndex(s State) uint8 {
	for i, st := range States {
		if st == s {
			return uint8(i)
		}
	}
	return 0
}

// record appends a move to the asset's history.
func (a *asset) record(from, to State, at time.Time) {
	a.hist = append(a.hist, histStep{from: stateIndex(from), to: stateIndex(to), sec: at.Unix(), nsec: int32(at.Nanosecond())})
}

// Tracker holds the lifecycle state of every asset and applies operator
// calls and field evidence to it. It is safe for concurrent use. Evidence for
// one asset must arrive in time order, as it does from one Kafka partition.
type Tracker struct {
	opts Options

	mu      sync.Mutex
	assets  map[key]*asset
	pending map[key]struct{} // installed assets with an acceptance period running
	counts  map[State]int
	bySite  map[string]map[State]int
}

// NewTracker returns an empty tracker.
func NewTracker(opts Options) *Tracker {
	t := &Tracker{opts: opts.withDefaults()}
	t.reset()
	return t
}

func (t *Tracker) reset() {
	t.assets = map[key]*asset{}
	t.pending = map[key]struct{}{}
	t.counts = map[State]int{}
	t.bySite = map[string]map[State]int{}
}

// Options returns the options in force, defaults filled in.
func (t *Tracker) Options() Options { return t.opts }

// Add registers an asset in state s without an event: it is how the tracker
// learns the fleet from the registry at start. Adding an asset twice is an error.
func (t *Tracker) Add(site, asset string, s State) error {
	if !s.Valid() {
		return fmt.Errorf("cannot add asset %s/%s: invalid state %q", site, asset, s)
	}
	if site == "" || asset == "" {
		return fmt.Errorf("cannot add asset %q/%q: empty id", site, asset)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{site, asset}
	if _, ok := t.assets[k]; ok {
		return fmt.Errorf("cannot add asset %s/%s: already tracked", site, asset)
	}
	t.assets[k] = newAsset(s)
	t.count(site, s, +1)
	return nil
}

func newAsset(s State) *asset { return &asset{State: s} }

func (t *Tracker) count(site string, s State, d int) {
	t.counts[s] += d
	if t.counts[s] == 0 {
		delete(t.counts, s)
	}
	m := t.bySite[site]
	if m == nil {
		m = map[State]int{}
		t.bySite[site] = m
	}
	m[s] += d
	if m[s] == 0 {
		delete(m, s)
	}
	if len(m) == 0 {
		delete(t.bySite, site)
	}
}

// State returns an asset's current state.
func (t *Tracker) State(site, asset string) (State, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.assets[key{site, asset}]
	if !ok {
		return "", false
	}
	return a.State, true
}

// Counts returns how many assets are in each state, fleet-wide. States with
// no asset are absent.
func (t *Tracker) Counts() map[State]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return maps.Clone(t.counts)
}

// SiteCounts returns how many assets of one site are in each state.
func (t *Tracker) SiteCounts(site string) map[State]int {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := maps.Clone(t.bySite[site])
	if out == nil {
		out = map[State]int{}
	}
	return out
}

// Transition applies an operator's call. It is refused, with a
// *TransitionError wrapping ErrNotAllowed, unless the table allows from → to.
// An empty cause is recorded as CauseAPI.
func (t *Tracker) Transition(site, asset string, to State, actor, cause string, at time.Time) (Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k, a, ev, err := t.propose(site, asset, to, actor, cause, at)
	if err != nil {
		return Event{}, err
	}
	return t.move(k, a, ev.To, ev.Actor, ev.Cause, ev.At), nil
}

// Propose checks an operator's call as Transition does and returns the
// event it would record, without moving: under LogFirst the event is
// written to the log, and Apply makes the move.
func (t *Tracker) Propose(site, asset string, to State, actor, cause string, at time.Time) (Event, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _, ev, err := t.propose(site, asset, to, actor, cause, at)
	return ev, err
}

func (t *Tracker) propose(site, asset string, to State, actor, cause string, at time.Time) (key, *asset, Event, error) {
	if actor == "" {
		return key{}, nil, Event{}, fmt.Errorf("cannot move asset %s/%s to %s: no actor", site, asset, to)
	}
	if cause == "" {
		cause = CauseAPI
	}
	k := key{site, asset}
	a, ok := t.assets[k]
	if !ok {
		return k, nil, Event{}, fmt.Errorf("cannot move asset %s/%s to %s: %w", site, asset, to, ErrUnknownAsset)
	}
	if !Allowed(a.State, to) {
		err := &TransitionError{Site: site, Asset: asset, From: a.State, To: to, Allowed: Next(a.State)}
		return k, a, Event{}, fmt.Errorf("cannot move asset: %w", err)
	}
	return k, a, Event{Site: site, Asset: asset, From: a.State, To: to, At: at, Actor: actor, Cause: cause}, nil
}

// Apply folds one event of the lifecycle log into the tracker: the asset
// moves to ev.To, whatever state it is in (the log is the truth; the writer
// of the log checked the move against the state the log had made), and an
// asset the tracker does not hold yet is added in ev.To. It reports whether
// the event found the asset in ev.From (false: the tracker had started from
// another state, or the event was stale). It clears a pending proposal of
// the asset. An event to an invalid state is ignored.
func (t *Tracker) Apply(ev Event) bool {
	if !ev.To.Valid() || ev.Site == "" || ev.Asset == "" {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{ev.Site, ev.Asset}
	a, ok := t.assets[k]
	if !ok {
		a = newAsset(ev.To)
		a.record(ev.From, ev.To, ev.At)
		t.assets[k] = a
		t.count(k.site, ev.To, +1)
		return false
	}
	a.proposed = false
	matched := a.State == ev.From
	if a.State == ev.To {
		a.record(ev.From, ev.To, ev.At) // folded all the same: a batch must not write it again
		return matched
	}
	t.move(k, a, ev.To, ev.Actor, ev.Cause, ev.At)
	// The evidence that proposed the installation starts the acceptance
	// period, on the instance that saw it (which has FirstTelemetry).
	if t.opts.LogFirst && ev.To == Installed && ev.Cause == CauseFirstTelemetry &&
		!a.FirstTelemetry.IsZero() && a.AcceptStart.IsZero() {
		a.AcceptStart = ev.At
		t.pending[k] = struct{}{}
	}
	return matched
}

// Withdraw gives up the pending proposal of an asset (LogFirst): its
// evidence may propose again.
func (t *Tracker) Withdraw(site, asset string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if a, ok := t.assets[key{site, asset}]; ok {
		a.proposed = false
	}
}

// ForgetEvidence drops what was observed of an asset (its connection, its
// running acceptance period, a pending proposal), keeping its state: this
// instance no longer watches it.
func (t *Tracker) ForgetEvidence(site, asset string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{site, asset}
	if a, ok := t.assets[k]; ok {
		n := newAsset(a.State)
		n.hist = a.hist
		t.assets[k] = n
		delete(t.pending, k)
	}
}

// evidence moves an asset on evidence, or under LogFirst proposes the move
// (false when a proposal is already pending).
func (t *Tracker) evidence(k key, a *asset, to State, cause string, at time.Time) (Event, bool) {
	if !t.opts.LogFirst {
		return t.move(k, a, to, ActorSystem, cause, at), true
	}
	if a.proposed {
		return Event{}, false
	}
	a.proposed = true
	return Event{Site: k.site, Asset: k.asset, From: a.State, To: to, At: at, Actor: ActorSystem, Cause: cause}, true
}

// move changes state, keeping counts and the pending set in step.
func (t *Tracker) move(k key, a *asset, to State, actor, cause string, at time.Time) Event {
	e := Event{Site: k.site, Asset: k.asset, From: a.State, To: to, At: at, Actor: actor, Cause: cause}
	a.record(a.State, to, at)
	t.count(k.site, a.State, -1)
	t.count(k.site, to, +1)
	a.State = to
	if to != Installed {
		// Acceptance only matters while installed; a later move by hand
		// (or a fault) ends it.
		a.AcceptStart = time.Time{}
		delete(t.pending, k)
	}
	return e
}

// ObserveTelemetry records that the asset sent valid telemetry at at (the
// caller has validated it). A planned asset that reports is on site, so it
// becomes installed; an installed asset starts its acceptance period.
func (t *Tracker) ObserveTelemetry(site, asset string, at time.Time) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{site, asset}
	a, ok := t.assets[k]
	if !ok {
		return nil
	}
	var out []Event
	t.online(a, at)
	if a.State == Planned {
		if e, ok := t.evidence(k, a, Installed, CauseFirstTelemetry, at); ok {
			out = append(out, e)
		}
		if t.opts.LogFirst {
			// The acceptance period starts when the move is folded (Apply).
			if a.FirstTelemetry.IsZero() {
				a.FirstTelemetry = at
			}
			return out
		}
	}
	if a.State == Installed && a.AcceptStart.IsZero() {
		if a.FirstTelemetry.IsZero() {
			a.FirstTelemetry = at
		}
		a.AcceptStart = at
		t.pending[k] = struct{}{}
	}
	if e, ok := t.check(k, a, at); ok {
		out = append(out, e)
	}
	return out
}

// ObserveStatus records the asset going online or offline at at.
func (t *Tracker) ObserveStatus(site, asset string, online bool, at time.Time) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{site, asset}
	a, ok := t.assets[k]
	if !ok {
		return nil
	}
	if !online {
		if a.Online {
			a.Online = false
			a.OfflineSince = at
		}
		return nil
	}
	t.online(a, at)
	if e, ok := t.check(k, a, at); ok {
		return []Event{e}
	}
	return nil
}

// online marks the asset online, restarting a running acceptance period if
// the asset was offline for longer than the grace period.
func (t *Tracker) online(a *asset, at time.Time) {
	if a.Online {
		return
	}
	if !a.AcceptStart.IsZero() && at.Sub(a.OfflineSince) > t.opts.Grace {
		a.AcceptStart = at
	}
	a.Online = true
	a.OnlineSince = at
}

// ObserveFault records a fault reported by the device itself (an ATM's
// fault event, an inverter error). An asset in service (commissioned or
// operational) becomes faulty; repair is confirmed by an operator call.
func (t *Tracker) ObserveFault(site, asset string, at time.Time) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := key{site, asset}
	a, ok := t.assets[k]
	if !ok || (a.State != Commissioned && a.State != Operational) {
		return nil
	}
	if e, ok := t.evidence(k, a, Faulty, CauseFault, at); ok {
		return []Event{e}
	}
	return nil
}

// Tick commissions the installed assets whose acceptance period completed by
// now. Call it periodically (once a minute is plenty): the event time is when
// the evidence completed, not when Tick noticed, so the tick rate does not
// change the record.
func (t *Tracker) Tick(now time.Time) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []Event
	for k := range t.pending {
		if e, ok := t.check(k, t.assets[k], now); ok {
			out = append(out, e)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Site != out[j].Site {
			return out[i].Site < out[j].Site
		}
		return out[i].Asset < out[j].Asset
	})
	return out
}

// check commissions the asset if, at now, its acceptance period is complete
// and it is online. The event is dated when the period completed, or when
// the asset came back within the grace period, whichever is later.
func (t *Tracker) check(k key, a *asset, now time.Time) (Event, bool) {
	if a.State != Installed || a.AcceptStart.IsZero() || !a.Online {
		return Event{}, false
	}
	done := a.AcceptStart.Add(t.opts.AcceptancePeriod)
	if now.Before(done) {
		return Event{}, false
	}
	at := done
	if a.OnlineSince.After(at) {
		at = a.OnlineSince
	}
	return t.evidence(k, a, Commissioned, CauseAcceptance, at)
}

type snapshotAsset struct {
	Site  string `json:"site"`
	Asset string `json:"asset"`
	asset
	History []snapshotStep `json:"history,omitempty"`
}

// snapshotStep is a move of the history as JSON.
type snapshotStep struct {
	From State     `json:"from"`
	To   State     `json:"to"`
	At   time.Time `json:"at"`
}

type snapshot struct {
	Version int             `json:"version"`
	Assets  []snapshotAsset `json:"assets"`
}

// Snapshot returns the tracker's state as JSON, for recovery after a restart.
func (t *Tracker) Snapshot() ([]byte, error) {
	t.mu.Lock()
	s := snapshot{Version: 1, Assets: make([]snapshotAsset, 0, len(t.assets))}
	for k, a := range t.assets {
		sa := snapshotAsset{Site: k.site, Asset: k.asset, asset: *a}
		for _, st := range a.hist {
			sa.History = append(sa.History, snapshotStep{From: States[st.from], To: States[st.to], At: st.time()})
		}
		s.Assets = append(s.Assets, sa)
	}
	t.mu.Unlock()
	sort.Slice(s.Assets, func(i, j int) bool {
		if s.Assets[i].Site != s.Assets[j].Site {
			return s.Assets[i].Site < s.Assets[j].Site
		}
		return s.Assets[i].Asset < s.Assets[j].Asset
	})
	b, err := json.Marshal(s)
	if err != nil {
		return nil, fmt.Errorf("cannot encode lifecycle snapshot: %w", err)
	}
	return b, nil
}

// Restore replaces the tracker's state with a Snapshot. On error the tracker
// is left unchanged.
func (t *Tracker) Restore(b []byte) error {
	var s snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("cannot restore lifecycle snapshot: %w", err)
	}
	if s.Version != 1 {
		return fmt.Errorf("cannot restore lifecycle snapshot: version %d, want 1", s.Version)
	}
	n := &Tracker{opts: t.opts}
	n.reset()
	for i, sa := range s.Assets {
		k := key{sa.Site, sa.Asset}
		switch {
		case sa.Site == "" || sa.Asset == "":
			return fmt.Errorf("cannot restore lifecycle snapshot: asset %d: empty id", i)
		case !sa.State.Valid():
			return fmt.Errorf("cannot restore lifecycle snapshot: asset %s/%s: invalid state %q", sa.Site, sa.Asset, sa.State)
		case n.assets[k] != nil:
			return fmt.Errorf("cannot restore lifecycle snapshot: asset %s/%s listed twice", sa.Site, sa.Asset)
		case sa.State != Installed && !sa.AcceptStart.IsZero():
			return fmt.Errorf("cannot restore lifecycle snapshot: asset %s/%s: acceptance running in state %s", sa.Site, sa.Asset, sa.State)
		}
		a := sa.asset
		a.hist = nil
		for j, st := range sa.History {
			if !st.From.Valid() || !st.To.Valid() {
				return fmt.Errorf("cannot restore lifecycle snapshot: asset %s/%s: history step %d has an invalid state", sa.Site, sa.Asset, j)
			}
			a.record(st.From, st.To, st.At)
		}
		n.assets[k] = &a
		n.count(k.site, a.State, +1)
		if !a.AcceptStart.IsZero() {
			n.pending[k] = struct{}{}
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.assets, t.pending, t.counts, t.bySite = n.assets, n.pending, n.counts, n.bySite
	return nil
}
