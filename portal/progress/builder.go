package progress

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// Defaults of Options.
const (
	// DefaultBuildEvery: a build of the whole programme (5,050 sites,
	// about 46,000 assets) takes about 125 ms of CPU (docs/benchmarks.md,
	// BenchmarkBuild); every 30 s keeps "working now" current for a
	// public page at a few thousandths of a core (every 5 s it was 11% of
	// an idle platform's CPU in the full-fleet load test).
	DefaultBuildEvery   = 30 * time.Second
	DefaultHistoryEvery = time.Minute
	DefaultEnergyEvery  = 5 * time.Minute
	DefaultQueryTimeout = 30 * time.Second
)

// DefaultDeadline is the programme's deadline: "by 2026" (the last year of
// PNC funding, fact F06), due by the end of the year.
var DefaultDeadline = date(2026, 12, 31)

// Options are the Builder's inputs.
type Options struct {
	// Registry is the fleet (required).
	Registry *registry.Registry
	// Lifecycle is each asset's current lifecycle state: the lifecycle
	// tracker's State (twin.Live.Tracker().State). Nil, or false for an
	// asset, means the registry's state.
	Lifecycle func(site, asset string) (lifecycle.State, bool)
	// Live is the live twin (LiveOf); nil: nothing is known to be working
	// now, and coworking availability is unknown.
	Live Live
	// Milestones are the programme's targets (milestone.LoadFile of
	// rules/milestones/polis.yaml).
	Milestones []*milestone.Milestone
	// Facts is the public facts table (milestone.LoadFactsFile): the
	// sources of the targets, the published progress and the funding.
	Facts []milestone.Fact
	// Comuni (registry.LoadComuni), if set, names the provinces and comuni
	// of sites whose registry entry lacks them.
	Comuni []registry.Comune
	// Store is ClickHouse (NewClickHouseStore); nil: no history (dates,
	// trends, paces) and no energy.
	Store Store
	// Supplementary targets and funding beside the milestones and facts;
	// nil means SupplementaryTargets and SupplementaryFunding, an empty
	// non-nil slice none.
	Supplementary        []Supplementary
	SupplementaryFunding []Funding

	Logger   *slog.Logger
	Now      func() time.Time // default time.Now
	Deadline time.Time        // default DefaultDeadline
	// How often Run rebuilds the snapshot, re-reads the history (when it
	// changed) and the month's energy; and how long one query may take.
	BuildEvery, HistoryEvery, EnergyEvery, QueryTimeout time.Duration
}

// Builder keeps the portal's Snapshot current: Run rebuilds it from the
// live inputs every BuildEvery and reads ClickHouse in the background;
// Snapshot returns the latest from memory.
type Builder struct {
	o   Options
	log *slog.Logger

	mu   sync.Mutex // one build at a time: comp carries state between builds
	comp *computer

	snap atomic.Pointer[Snapshot]

	hist   atomic.Pointer[folded]
	energy atomic.Pointer[energyRead]

	readMu     sync.Mutex // one history read at a time; guards the fields below
	histVer    string
	histFailed bool // the last read failed (an outage is logged once)
	enMu       sync.Mutex
	enFailed   bool
}

type energyRead struct {
	at    time.Time
	month time.Time // start of the month read
	sites map[string]SiteEnergy
}

// NewBuilder checks the options and builds a first snapshot from the
// registry and the live inputs (no history yet), so that Snapshot never
// returns nil.
func NewBuilder(o Options) (*Builder, error) {
	if o.Registry == nil {
		return nil, errors.New("cannot build the portal's figures: no registry")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Deadline.IsZero() {
		o.Deadline = DefaultDeadline
	}
	if o.Supplementary == nil {
		o.Supplementary = SupplementaryTargets
	}
	if o.SupplementaryFunding == nil {
		o.SupplementaryFunding = SupplementaryFunding
	}
	o.BuildEvery = orDefault(o.BuildEvery, DefaultBuildEvery)
	o.HistoryEvery = orDefault(o.HistoryEvery, DefaultHistoryEvery)
	o.EnergyEvery = orDefault(o.EnergyEvery, DefaultEnergyEvery)
	o.QueryTimeout = orDefault(o.QueryTimeout, DefaultQueryTimeout)
	c, err := newComputer(o.Milestones, o.Facts, o.Supplementary, o.SupplementaryFunding, o.Comuni, o.Deadline)
	if err != nil {
		return nil, fmt.Errorf("cannot build the portal's figures: %w", err)
	}
	b := &Builder{o: o, log: o.Logger.With("component", "portal progress"), comp: c}
	b.Build()
	return b, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// Snapshot returns the latest snapshot. It never blocks on ClickHouse and
// never returns nil; the snapshot must not be modified.
func (b *Builder) Snapshot() *Snapshot { return b.snap.Load() }

// Build computes a snapshot now from the live inputs and what was last
// read from ClickHouse, makes it the latest and returns it.
func (b *Builder) Build() *Snapshot {
	b.mu.Lock()
	defer b.mu.Unlock()
	in := buildInput{now: b.o.Now(), sites: b.o.Registry.Sites(), state: b.o.Lifecycle, live: b.o.Live,
		hist: b.hist.Load()}
	if e := b.energy.Load(); e != nil && e.month.Equal(monthStart(in.now)) {
		in.energy, in.energyAt = e.sites, e.at
	}
	s := b.comp.build(in)
	b.snap.Store(s)
	return s
}

// Refresh reads the history (if it changed) and the month's energy now,
// then builds. Run does the same periodically; Refresh is for a first
// snapshot with history before serving, and for tests.
func (b *Builder) Refresh(ctx context.Context) error {
	err := errors.Join(b.readHistory(ctx), b.readEnergy(ctx))
	b.Build()
	return err
}

// Run keeps the snapshot current until ctx ends: it rebuilds every
// BuildEvery and reads ClickHouse every HistoryEvery and EnergyEvery in
// goroutines of its own, so that a slow ClickHouse delays only the
// figures that need it. Read errors are logged; it returns nil when ctx
// ends.
func (b *Builder) Run(ctx context.Context) error {
	built := make(chan struct{}, 1)
	kick := func() {
		select {
		case built <- struct{}{}:
		default:
		}
	}
	var wg sync.WaitGroup
	if b.o.Store != nil {
		loop := func(every time.Duration, read func(context.Context) error) {
			defer wg.Done()
			t := time.NewTicker(every)
			defer t.Stop()
			for {
				if err := read(ctx); err == nil {
					kick()
				}
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		}
		wg.Add(2)
		go loop(b.o.HistoryEvery, b.readHistory)
		go loop(b.o.EnergyEvery, b.readEnergy)
	}
	t := time.NewTicker(b.o.BuildEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			wg.Wait()
			return nil
		case <-t.C:
		case <-built:
		}
		start := time.Now()
		b.Build()
		b.log.Debug("portal figures built", "took", time.Since(start))
	}
}

// readHistory reads lifecycle_events again if it changed and folds it.
func (b *Builder) readHistory(ctx context.Context) error {
	if b.o.Store == nil {
		return nil
	}
	b.readMu.Lock()
	defer b.readMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.o.QueryTimeout)
	defer cancel()
	start := time.Now()
	ver, err := b.o.Store.HistoryVersion(ctx)
	// A registry that grew is folded again too (its new sites' dates).
	nSites, nAssets := b.o.Registry.Len()
	ver += fmt.Sprintf("/%d/%d", nSites, nAssets)
	if err == nil && ver == b.histVer && b.hist.Load() != nil {
		// Unchanged: only its freshness moves.
		f := *b.hist.Load()
		f.readAt = b.o.Now()
		b.hist.Store(&f)
		return nil
	}
	var changes []Change
	if err == nil {
		changes, err = b.o.Store.History(ctx)
	}
	if err != nil {
		b.failed(&b.histFailed, "cannot read the lifecycle history; the portal keeps the last one read", err)
		return err
	}
	read := time.Since(start)
	f := fold(NewHistory(changes), b.o.Registry.Sites(), b.comp.set, b.o.Now(), b.hist.Load())
	b.histVer = ver
	b.hist.Store(f)
	b.recovered(&b.histFailed, "lifecycle history read again")
	b.log.Debug("lifecycle history read", "changes", f.changes, "read", read, "folded", time.Since(start)-read)
	return nil
}

// readEnergy reads this month's energy.
func (b *Builder) readEnergy(ctx context.Context) error {
	if b.o.Store == nil {
		return nil
	}
	b.enMu.Lock()
	defer b.enMu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, b.o.QueryTimeout)
	defer cancel()
	now := b.o.Now()
	from := monthStart(now)
	sites, err := b.o.Store.Energy(ctx, from, now.Add(time.Hour)) // the current hour's bucket included
	if err != nil {
		b.failed(&b.enFailed, "cannot read this month's energy; the portal keeps the last figures read", err)
		return err
	}
	b.energy.Store(&energyRead{at: now, month: from, sites: sites})
	b.recovered(&b.enFailed, "this month's energy read again")
	return nil
}

// failed logs an outage once, then quietly until it ends. The caller
// holds the mutex guarding flag.
func (b *Builder) failed(flag *bool, msg string, err error) {
	first := !*flag
	*flag = true
	if first {
		b.log.Warn(msg, "err", err)
	} else {
		b.log.Debug(msg, "err", err)
	}
}

func (b *Builder) recovered(flag *bool, msg string) {
	was := *flag
	*flag = false
	if was {
		b.log.Info(msg)
	}
}
