package twin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Live is the twin of the whole fleet as one instance serves it: the state
// of the sites of the partitions it owns (and who owns the others), desired
// state and the assets' lifecycle.
//
// Desired state and lifecycle are written log first (desired.go, and
// Transition and the LifecycleRunner here): a change is checked against
// the state the log has made, produced, and acknowledged by Kafka before
// any store or tracker changes; the stores and trackers change only by
// folding the logs. The writer of a site's changes is the instance owning
// its partition; it writes one change of an asset at a time, after it has
// folded everything the log holds (so it checks against the latest state,
// also right after a restart or a takeover), and produces while holding
// the twin's read lock, so that the partition cannot change hands before
// Kafka has answered (its revocation waits for that lock).
type Live struct {
	reg     *registry.Registry
	svc     *Service
	parts   int
	part    kgo.TopicPartitioner
	prod    *kgo.Client
	tracker *lifecycle.Tracker
	self    string // this instance's API base URL
	log     *slog.Logger
	// timeout bounds a write: catching up, producing, being applied.
	timeout time.Duration

	locks keyLocks

	lcMu   sync.Mutex
	lcNext map[int32]int64 // polis.lifecycle.v1 partition -> next offset to fold
}

// LiveOptions configure a Live.
type LiveOptions struct {
	Registry   *registry.Registry
	Partitions int // of the twin's topics
	Producer   *kgo.Client
	// Tracker is the lifecycle tracker (NewTracker), the fold of
	// polis.lifecycle.v1 (LifecycleFollower).
	Tracker *lifecycle.Tracker
	Self    string // this instance's API base URL (its member id)
	Logger  *slog.Logger
	// WriteTimeout bounds one desired-state or lifecycle write (default 10 s).
	WriteTimeout time.Duration
}

// NewLive returns the fleet's live twin; Attach gives it the service.
func NewLive(o LiveOptions) *Live {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	return &Live{reg: o.Registry, parts: o.Partitions, part: kafka.SitePartitioner().ForTopic(kafka.TopicTelemetry),
		prod: o.Producer, tracker: o.Tracker, self: o.Self, log: o.Logger.With("component", "twin"),
		timeout: o.WriteTimeout, lcNext: map[int32]int64{}}
}

// Attach sets the twin service whose stores Live reads.
func (l *Live) Attach(svc *Service) { l.svc = svc }

// Service is the twin consumer behind Live.
func (l *Live) Service() *Service { return l.svc }

// Tracker is the lifecycle tracker.
func (l *Live) Tracker() *lifecycle.Tracker { return l.tracker }

// PartitionOf is the Kafka partition holding site.
func (l *Live) PartitionOf(site string) int32 {
	return int32(l.part.Partition(&kgo.Record{Key: []byte(site)}, l.parts))
}

// NewPartition returns an empty store with the assets of the partition's
// sites registered (Options.NewPartition).
func (l *Live) NewPartition(part int32) *state.Store {
	st := state.New(state.Options{})
	for _, s := range l.reg.Sites() {
		if l.PartitionOf(s.ID) == part {
			for _, a := range s.Assets {
				st.AddAsset(s.ID, a.ID, a.Type)
			}
		}
	}
	return st
}

// owner is the API address of the instance owning site, or "" when it is
// this one or unknown.
func (l *Live) owner(site string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	o, err := l.svc.Owner(ctx, l.PartitionOf(site))
	if err != nil || o == l.self {
		return ""
	}
	return o
}

// SiteState is the site's twin if this instance owns it, else its owner.
func (l *Live) SiteState(site string, now time.Time) (v state.SiteView, local bool, owner string) {
	local = l.svc.With(l.PartitionOf(site), func(st *state.Store) { v, _ = st.Site(site, now) })
	if !local {
		owner = l.owner(site)
	}
	return v, local, owner
}

// AssetState is the asset's twin if this instance owns it, else its owner.
func (l *Live) AssetState(site, asset string, now time.Time) (v state.AssetView, local bool, owner string) {
	local = l.svc.With(l.PartitionOf(site), func(st *state.Store) { v, _ = st.Asset(site, asset, now) })
	if !local {
		owner = l.owner(site)
	}
	return v, local, owner
}

// SetDesired writes the asset's next whole desired state (its current one
// with props merged in, at the next version) to the compacted desired topic
// and answers once Kafka has it and the owning store has applied it from
// there (desired.go). ifVersion 0 is unconditional; any other value must
// be the current version (else state.ErrVersionMismatch with the current
// version). A failed write changes nothing. Every instance publishes the
// record retained to the device (NewDesiredFollower).
func (l *Live) SetDesired(site, asset string, props map[string]json.RawMessage, ifVersion uint64, unconditional bool, now time.Time) (uint64, bool, string, error) {
	p := l.PartitionOf(site)
	if _, ok := l.svc.appliedThrough(p, kafka.TopicDesired); !ok {
		return 0, false, l.owner(site), nil
	}
	unlock := l.locks.lock(site + "/" + asset)
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	if err := l.desiredCaughtUp(ctx, p); errors.Is(err, errNotOwner) {
		return 0, false, l.owner(site), nil
	} else if err != nil {
		return 0, true, "", fmt.Errorf("cannot set desired state of %s/%s: %w", site, asset, err)
	}
	var (
		version uint64
		rec     *kgo.Record
		err     error
	)
	local := l.svc.With(p, func(st *state.Store) {
		cur, ok := st.Asset(site, asset, now)
		if !ok {
			err = fmt.Errorf("cannot set desired of %s/%s: %w", site, asset, state.ErrUnknownAsset)
			return
		}
		if !unconditional && ifVersion != cur.DesiredVersion {
			version = cur.DesiredVersion
			err = fmt.Errorf("cannot set desired of %s/%s: version %d, want %d: %w",
				site, asset, cur.DesiredVersion, ifVersion, state.ErrVersionMismatch)
			return
		}
		next, meta, nerr := nextDesired(cur, props, now)
		if nerr != nil {
			err = fmt.Errorf("cannot set desired of %s/%s: %w", site, asset, nerr)
			return
		}
		if a, ok := l.reg.Asset(site, asset); ok {
			meta.Type = a.Type
		}
		if rec, err = desiredRecord(site, asset, next, meta); err != nil {
			return
		}
		// Under the read lock: the partition stays ours until Kafka answers.
		if perr := l.prod.ProduceSync(ctx, rec).FirstErr(); perr != nil {
			err = fmt.Errorf("cannot write desired state of %s/%s to Kafka; nothing changed: %w", site, asset, perr)
			return
		}
		version = next.Version
	})
	if !local {
		return 0, false, l.owner(site), nil
	}
	if err != nil {
		return version, true, "", err
	}
	// The record is in Kafka: the change is made. Answer once the store
	// shows it, so that a read after the answer sees it too.
	if werr := l.waitFor(ctx, func() (bool, error) {
		next, ok := l.svc.appliedThrough(rec.Partition, kafka.TopicDesired)
		return !ok || next > rec.Offset, nil
	}); werr != nil {
		l.log.Warn("desired state written but not yet applied by the twin", "site", site, "asset", asset, "version", version, "err", werr)
	}
	return version, true, "", nil
}

// desiredCaughtUp waits until the store of partition p has applied every
// record of the desired topic's partition p present now.
func (l *Live) desiredCaughtUp(ctx context.Context, p int32) error {
	ends, err := kadm.NewClient(l.prod).ListEndOffsets(ctx, kafka.TopicDesired)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("cannot read the end of %s: %w", kafka.TopicDesired, err)
	}
	end, ok := ends.Lookup(kafka.TopicDesired, p)
	if !ok {
		return fmt.Errorf("topic %s has no partition %d", kafka.TopicDesired, p)
	}
	return l.waitFor(ctx, func() (bool, error) {
		next, ok := l.svc.appliedThrough(p, kafka.TopicDesired)
		if !ok {
			return false, errNotOwner
		}
		return next >= end.Offset, nil
	})
}

// waitFor polls done until it says true or fails, or ctx ends.
func (l *Live) waitFor(ctx context.Context, done func() (bool, error)) error {
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for {
		ok, err := done()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the twin is catching up: %w", ctx.Err())
		case <-t.C:
		}
	}
}

// keyLocks serialises the writes of one asset (a striped lock: two assets
// may share a stripe, which only makes one wait).
type keyLocks [64]sync.Mutex

func (k *keyLocks) lock(key string) (unlock func()) {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	m := &k[h.Sum32()%uint32(len(k))]
	m.Lock()
	return m.Unlock
}

// Transition moves an asset's lifecycle by an operator's call: the move is
// checked against the tracker, written to polis.lifecycle.v1, and returned
// once Kafka has it and this instance's tracker has folded it.
func (l *Live) Transition(site, asset string, to lifecycle.State, actor, cause string, now time.Time) (lifecycle.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), l.timeout)
	defer cancel()
	return l.commitLifecycle(ctx, site, asset, func() (lifecycle.Event, error) {
		return l.tracker.Propose(site, asset, to, actor, cause, now)
	})
}

// Lifecycle is the tracker's current state of an asset.
func (l *Live) Lifecycle(site, asset string) (lifecycle.State, bool) {
	return l.tracker.State(site, asset)
}

// errStale is returned when a proposed evidence move no longer starts from
// the asset's state.
var errStale = errors.New("the asset's lifecycle moved meanwhile")

// commitLifecycle writes one lifecycle move of an asset of a site this
// instance owns: after folding everything the lifecycle log holds, propose
// returns the move (checked against the tracker), which is produced and
// returned once this instance's tracker has folded it.
func (l *Live) commitLifecycle(ctx context.Context, site, asset string, propose func() (lifecycle.Event, error)) (lifecycle.Event, error) {
	unlock := l.locks.lock(site + "/" + asset)
	defer unlock()
	if err := l.lifecycleCaughtUp(ctx); err != nil {
		return lifecycle.Event{}, fmt.Errorf("cannot move asset %s/%s: %w", site, asset, err)
	}
	ev, err := propose()
	if err != nil {
		return ev, err
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return ev, fmt.Errorf("cannot encode lifecycle event: %w", err)
	}
	rec := &kgo.Record{Topic: kafka.TopicLifecycle, Key: []byte(site + "/" + asset), Value: body}
	var perr error
	if !l.svc.With(l.PartitionOf(site), func(*state.Store) { perr = l.prod.ProduceSync(ctx, rec).FirstErr() }) {
		return ev, fmt.Errorf("cannot move asset %s/%s: %w", site, asset, errNotOwner)
	}
	if perr != nil {
		return ev, fmt.Errorf("cannot write the lifecycle move of %s/%s to Kafka; nothing changed: %w", site, asset, perr)
	}
	if err := l.waitFor(ctx, func() (bool, error) { return l.lifecycleNext(rec.Partition) > rec.Offset, nil }); err != nil {
		return ev, fmt.Errorf("lifecycle move of %s/%s written (partition %d, offset %d) but not yet applied: %w",
			site, asset, rec.Partition, rec.Offset, err)
	}
	return ev, nil
}

func (l *Live) lifecycleNext(p int32) int64 {
	l.lcMu.Lock()
	defer l.lcMu.Unlock()
	return l.lcNext[p]
}

// lifecycleCaughtUp waits until the tracker has folded every record the
// lifecycle log holds now.
func (l *Live) lifecycleCaughtUp(ctx context.Context) error {
	ends, err := kadm.NewClient(l.prod).ListEndOffsets(ctx, kafka.TopicLifecycle)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("cannot read the end of %s: %w", kafka.TopicLifecycle, err)
	}
	return l.waitFor(ctx, func() (bool, error) {
		done := true
		ends.Each(func(o kadm.ListedOffset) {
			if l.lifecycleNext(o.Partition) < o.Offset {
				done = false
			}
		})
		return done, nil
	})
}

// LifecycleFollower replays polis.lifecycle.v1 into the tracker (Ready once
// it has) and follows it: every instance folds the same log, so all serve
// the same lifecycle. opts (kafka.ClientOptions.Opts: SASL, TLS) go to its
// client.
func (l *Live) LifecycleFollower(brokers []string, log *slog.Logger, opts ...kgo.Opt) *kafka.Follower {
	return kafka.NewFollower(brokers, kafka.TopicLifecycle, log, func(r *kgo.Record) {
		var ev lifecycle.Event
		if err := json.Unmarshal(r.Value, &ev); err != nil {
			l.log.Warn("skipping a lifecycle event the twin cannot decode", "partition", r.Partition, "offset", r.Offset, "err", err)
		} else if !l.tracker.Apply(ev) {
			l.log.Debug("lifecycle event applied from another state", "site", ev.Site, "asset", ev.Asset, "from", ev.From, "to", ev.To)
		}
		l.lcMu.Lock()
		l.lcNext[r.Partition] = r.Offset + 1
		l.lcMu.Unlock()
	}, opts...)
}

// MigrateLifecycle writes, to an empty lifecycle log, the latest states
// stored in ClickHouse before the log existed (latest, from
// storage.LatestLifecycle) that differ from the tracker's, as events with
// cause lifecycle.CauseMigrated, and returns once the tracker has folded
// them. It returns how many it wrote.
func (l *Live) MigrateLifecycle(ctx context.Context, latest map[[2]string]lifecycle.State, now time.Time) (int, error) {
	var recs []*kgo.Record
	for k, to := range latest {
		from, ok := l.tracker.State(k[0], k[1])
		if !ok || from == to || !to.Valid() {
			continue
		}
		ev := lifecycle.Event{Site: k[0], Asset: k[1], From: from, To: to, At: now, Actor: lifecycle.ActorSystem, Cause: lifecycle.CauseMigrated}
		body, err := json.Marshal(ev)
		if err != nil {
			return 0, fmt.Errorf("cannot encode lifecycle event: %w", err)
		}
		recs = append(recs, &kgo.Record{Topic: kafka.TopicLifecycle, Key: []byte(k[0] + "/" + k[1]), Value: body})
	}
	if len(recs) == 0 {
		return 0, nil
	}
	if err := l.prod.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return 0, fmt.Errorf("cannot write the stored lifecycle states to %s: %w", kafka.TopicLifecycle, err)
	}
	return len(recs), l.lifecycleCaughtUp(ctx)
}

// SiteAdded registers a new or changed site's assets with the stores this
// instance owns and with the lifecycle tracker.
func (l *Live) SiteAdded(s *registry.Site) error {
	if l.svc != nil {
		l.svc.With(l.PartitionOf(s.ID), func(st *state.Store) {
			for _, a := range s.Assets {
				st.AddAsset(s.ID, a.ID, a.Type)
			}
		})
	}
	for _, a := range s.Assets {
		if _, ok := l.tracker.State(s.ID, a.ID); ok {
			continue
		}
		st := a.Lifecycle
		if st == "" {
			st = lifecycle.Planned
		}
		if err := l.tracker.Add(s.ID, a.ID, st); err != nil {
			return err
		}
	}
	return nil
}

// NewTracker builds the lifecycle tracker, log first: each asset starts in
// the registry's state (else planned), and LifecycleFollower folds the
// lifecycle log into it.
func NewTracker(reg *registry.Registry) (*lifecycle.Tracker, error) {
	t := lifecycle.NewTracker(lifecycle.Options{LogFirst: true})
	if err := reg.SeedTracker(t); err != nil {
		return nil, err
	}
	return t, nil
}

// LifecycleRunner feeds the tracker with the twin's evidence (first
// telemetry, time online, faults) and ticks it; each move it proposes is
// written to the lifecycle log before it counts (commitLifecycle). The twin
// tells an instance only of the sites it owns, so each evidence move is
// written once, by the owner of the site's partition.
type LifecycleRunner struct {
	live  *Live
	onErr func(error)
}

// LifecycleRunner returns the runner of l's lifecycle evidence.
func (l *Live) LifecycleRunner(onErr func(error)) *LifecycleRunner {
	return &LifecycleRunner{live: l, onErr: onErr}
}

// Run follows the twin until ctx ends.
func (r *LifecycleRunner) Run(ctx context.Context) error {
	t := r.live.tracker
	in, cancel := r.live.svc.Subscribe(8192)
	defer cancel()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-in:
			if !ok {
				return nil
			}
			switch u.Kind {
			case "telemetry":
				r.commit(ctx, t.ObserveTelemetry(u.Site, u.Asset, u.At))
			case "status":
				r.commit(ctx, t.ObserveStatus(u.Site, u.Asset, u.Online, u.At))
			}
			if u.Status == state.StatusFault.String() {
				r.commit(ctx, t.ObserveFault(u.Site, u.Asset, u.At))
			}
		case now := <-tick.C:
			r.commit(ctx, t.Tick(now))
		}
	}
}

// commit writes proposed evidence moves, retrying while Kafka refuses:
// evidence is not dropped. A proposal that no longer applies (the asset
// moved meanwhile) is withdrawn; one for a site this instance no longer
// owns is left to the new owner, with what was observed of the asset.
func (r *LifecycleRunner) commit(ctx context.Context, evs []lifecycle.Event) {
	t := r.live.tracker
	for _, ev := range evs {
		b := backoff.New(200*time.Millisecond, 5*time.Second, backoff.Equal)
		for {
			wctx, cancel := context.WithTimeout(ctx, r.live.timeout)
			_, err := r.live.commitLifecycle(wctx, ev.Site, ev.Asset, func() (lifecycle.Event, error) {
				if s, ok := t.State(ev.Site, ev.Asset); !ok || s != ev.From {
					return ev, errStale
				}
				return ev, nil
			})
			cancel()
			switch {
			case err == nil:
			case errors.Is(err, errStale):
				t.Withdraw(ev.Site, ev.Asset)
			case errors.Is(err, errNotOwner):
				t.ForgetEvidence(ev.Site, ev.Asset)
			default:
				r.onErr(fmt.Errorf("lifecycle evidence %s/%s %s → %s: %w", ev.Site, ev.Asset, ev.From, ev.To, err))
				if b.Wait(ctx) == nil {
					continue
				}
				t.Withdraw(ev.Site, ev.Asset) // stopping
			}
			break
		}
	}
}
