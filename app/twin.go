package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/api"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// live implements api.Live over the twin service of this instance, the
// lifecycle tracker and the broker (for retained desired state).
type live struct {
	reg     *registry.Registry
	svc     *twin.Service
	parts   int
	part    kgo.TopicPartitioner
	prod    *kgo.Client
	tracker *lifecycle.Tracker
	events  *eventSink
	self    string // this instance's API base URL
}

func (l *live) partitionOf(site string) int32 {
	return int32(l.part.Partition(&kgo.Record{Key: []byte(site)}, l.parts))
}

func (l *live) owner(site string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	o, err := l.svc.Owner(ctx, l.partitionOf(site))
	if err != nil || o == l.self {
		return ""
	}
	return o
}

func (l *live) SiteState(site string, now time.Time) (v state.SiteView, local bool, owner string) {
	local = l.svc.With(l.partitionOf(site), func(st *state.Store) { v, _ = st.Site(site, now) })
	if !local {
		owner = l.owner(site)
	}
	return v, local, owner
}

func (l *live) AssetState(site, asset string, now time.Time) (v state.AssetView, local bool, owner string) {
	local = l.svc.With(l.partitionOf(site), func(st *state.Store) { v, _ = st.Asset(site, asset, now) })
	if !local {
		owner = l.owner(site)
	}
	return v, local, owner
}

// SetDesired stores the desired properties in the owning twin and writes
// the asset's whole desired state to the compacted desired topic; every
// instance's broker publishes it retained on the device's state/desired
// topic (followDesired), so the device gets it on whichever instance it is
// connected to, and again after a restart.
func (l *live) SetDesired(site, asset string, props map[string]json.RawMessage, ifVersion uint64, now time.Time) (uint64, bool, string, error) {
	var (
		version uint64
		err     error
		desired map[string]json.RawMessage
	)
	local := l.svc.With(l.partitionOf(site), func(st *state.Store) {
		if version, err = st.SetDesired(site, asset, props, now, ifVersion); err != nil {
			return
		}
		if v, ok := st.Asset(site, asset, now); ok {
			desired = map[string]json.RawMessage{}
			for k, p := range v.Desired {
				desired[k] = p.Value
			}
		}
	})
	if !local {
		return 0, false, l.owner(site), nil
	}
	if err != nil {
		return 0, true, "", err
	}
	body, err := json.Marshal(map[string]any{"version": version, "ts": now.UnixMilli(), "props": desired})
	if err != nil {
		return 0, true, "", fmt.Errorf("cannot encode desired state: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r := &kgo.Record{Topic: kafka.TopicDesired, Key: []byte(site + "/" + asset), Value: body}
	if err := l.prod.ProduceSync(ctx, r).FirstErr(); err != nil {
		return version, true, "", fmt.Errorf("cannot publish desired state of %s/%s: %w", site, asset, err)
	}
	return version, true, "", nil
}

func (l *live) Transition(site, asset string, to lifecycle.State, actor, cause string, now time.Time) (lifecycle.Event, error) {
	ev, err := l.tracker.Transition(site, asset, to, actor, cause, now)
	if err != nil {
		return ev, err
	}
	l.events.add(ev)
	return ev, nil
}

func (l *live) Subscribe(buffer int) (<-chan api.Update, func()) {
	in, cancel := l.svc.Subscribe(buffer)
	out := make(chan api.Update, buffer)
	go func() {
		defer close(out)
		for u := range in {
			au := api.Update{Site: u.Site, Asset: u.Asset, Kind: u.Kind, Status: u.Status, Metrics: u.Metrics, At: u.At}
			if a, ok := l.reg.Asset(u.Site, u.Asset); ok {
				au.AssetType = a.Type
			}
			if s, ok := l.reg.Site(u.Site); ok {
				au.Region = s.Region
			}
			select {
			case out <- au:
			default: // the API reader is slow: drop, like the hub does
			}
		}
	}()
	return out, cancel
}

// fleet implements api.Fleet over the registry.
type fleet struct{ reg *registry.Registry }

func (f fleet) Sites() []*registry.Site               { return f.reg.Sites() }
func (f fleet) Site(id string) (*registry.Site, bool) { return f.reg.Site(id) }

// history implements api.History with the raw table or the rollups.
type history struct {
	conn   driver.Conn
	db     string
	flavor schema.Flavor
}

func (h history) History(ctx context.Context, q api.HistoryQuery) (api.HistoryResult, error) {
	res := api.HistoryResult{Resolution: api.ChooseResolution(q.From, q.To, q.Step)}
	if res.Resolution == "raw" {
		ss, err := storage.Raw(ctx, h.conn, h.db, h.flavor, q.Site, q.Asset, q.Metric, q.From, q.To)
		if err != nil {
			return res, err
		}
		for _, s := range ss {
			res.Points = append(res.Points, api.HistoryPoint{TS: s.TS, Value: s.Value, Min: s.Value, Max: s.Value, Count: 1})
		}
		return res, nil
	}
	r := storage.Minute
	if res.Resolution == "1h" {
		r = storage.Hour
	}
	bs, err := storage.Rollup(ctx, h.conn, h.db, r, storage.RollupQuery{Site: q.Site, Asset: q.Asset, Metric: q.Metric, From: q.From, To: q.To})
	if err != nil {
		return res, err
	}
	for _, b := range bs {
		res.Points = append(res.Points, api.HistoryPoint{TS: b.Start, Value: b.Avg, Min: b.Min, Max: b.Max, Count: b.Count})
	}
	return res, nil
}

// topicPartitions reads how many partitions the twin's topics have.
func topicPartitions(ctx context.Context, brokers []string) (int, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return 0, fmt.Errorf("cannot connect to Kafka: %w", err)
	}
	defer cl.Close()
	ts, err := kadm.NewClient(cl).ListTopics(ctx, kafka.TopicTelemetry)
	if err != nil {
		return 0, fmt.Errorf("cannot read topic %s: %w", kafka.TopicTelemetry, err)
	}
	t, ok := ts[kafka.TopicTelemetry]
	if !ok || t.Err != nil || len(t.Partitions) == 0 {
		return 0, fmt.Errorf("topic %s is missing: create it (see deploy/README.md)", kafka.TopicTelemetry)
	}
	return len(t.Partitions), nil
}

// eventSink stores lifecycle events in ClickHouse in small batches.
type eventSink struct {
	conn   driver.Conn
	db     string
	flavor schema.Flavor
	mu     sync.Mutex
	buf    []lifecycle.Event
}

func (e *eventSink) add(evs ...lifecycle.Event) {
	e.mu.Lock()
	e.buf = append(e.buf, evs...)
	e.mu.Unlock()
}

// flush inserts what was added; on failure the events stay for the next try.
func (e *eventSink) flush(ctx context.Context) error {
	e.mu.Lock()
	evs := e.buf
	e.buf = nil
	e.mu.Unlock()
	if len(evs) == 0 {
		return nil
	}
	legacy := e.flavor != schema.Modern
	cols := "site, asset, from_state, to_state, ts, actor, cause"
	if legacy {
		cols = "site, asset, from_state, to_state, ts, ts_ms, actor, cause"
	}
	b, err := e.conn.PrepareBatch(ctx, "INSERT INTO "+e.db+"."+schema.TableLifecycle+" ("+cols+")")
	if err == nil {
		for _, ev := range evs {
			args := []any{ev.Site, ev.Asset, string(ev.From), string(ev.To), ev.At.UTC()}
			if legacy {
				args = append(args, uint16(ev.At.UnixMilli()%1000))
			}
			if err = b.Append(append(args, ev.Actor, ev.Cause)...); err != nil {
				break
			}
		}
		if err == nil {
			err = b.Send()
		} else {
			_ = b.Abort()
		}
	}
	if err != nil {
		e.add(evs...)
		return fmt.Errorf("cannot store %d lifecycle events: %w", len(evs), err)
	}
	return nil
}

// runLifecycle feeds the tracker with the twin's evidence and ticks it,
// storing every change. It ends with ctx.
func runLifecycle(ctx context.Context, svc *twin.Service, t *lifecycle.Tracker, sink *eventSink, onErr func(error)) {
	in, cancel := svc.Subscribe(8192)
	defer cancel()
	tick := time.NewTicker(time.Minute)
	defer tick.Stop()
	flush := time.NewTicker(2 * time.Second)
	defer flush.Stop()
	for {
		select {
		case <-ctx.Done():
			if err := sink.flush(context.WithoutCancel(ctx)); err != nil {
				onErr(err)
			}
			return
		case u, ok := <-in:
			if !ok {
				return
			}
			switch u.Kind {
			case "telemetry":
				sink.add(t.ObserveTelemetry(u.Site, u.Asset, u.At)...)
			case "status":
				sink.add(t.ObserveStatus(u.Site, u.Asset, u.Online, u.At)...)
			}
			if u.Status == state.StatusFault.String() {
				sink.add(t.ObserveFault(u.Site, u.Asset, u.At)...)
			}
		case now := <-tick.C:
			sink.add(t.Tick(now)...)
		case <-flush.C:
			if err := sink.flush(ctx); err != nil && !errors.Is(err, context.Canceled) {
				onErr(err)
			}
		}
	}
}

// newTracker builds the lifecycle tracker: each asset starts in the state of
// its latest stored lifecycle event, else the registry's, else planned.
func newTracker(ctx context.Context, reg *registry.Registry, conn driver.Conn, db string, f schema.Flavor) (*lifecycle.Tracker, error) {
	order := "toUInt64(toUnixTimestamp(ts)) * 1000 + ts_ms"
	if f == schema.Modern {
		order = "ts"
	}
	rows, err := conn.Query(ctx, "SELECT site, asset, argMax(to_state, "+order+") FROM "+db+"."+schema.TableLifecycle+" GROUP BY site, asset")
	if err != nil {
		return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
	}
	latest := map[[2]string]lifecycle.State{}
	for rows.Next() {
		var site, asset, st string
		if err := rows.Scan(&site, &asset, &st); err != nil {
			rows.Close()
			return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
		}
		latest[[2]string{site, asset}] = lifecycle.State(st)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
	}
	t := lifecycle.NewTracker(lifecycle.Options{})
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			st, ok := latest[[2]string{s.ID, a.ID}]
			if !ok {
				st = a.Lifecycle
			}
			if st == "" {
				st = lifecycle.Planned
			}
			if err := t.Add(s.ID, a.ID, st); err != nil {
				return nil, err
			}
		}
	}
	return t, nil
}

// Lifecycle is the tracker's current state of an asset (api.LifecycleReader).
func (l *live) Lifecycle(site, asset string) (lifecycle.State, bool) {
	return l.tracker.State(site, asset)
}

// registrar implements api.Registrar: bulk import into the registry (so the
// broker accepts the new devices at once), the twin stores this instance
// owns and the lifecycle tracker, and export.
type registrar struct {
	live *live
	prod *kgo.Client
	path string // registry file, rewritten after an import
	mu   sync.Mutex
}

func (g *registrar) Import(r io.Reader, strict bool) (*registry.ImportReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.live
	before := map[string]*registry.Site{}
	for _, s := range l.reg.Sites() {
		before[s.ID] = s
	}
	rep, err := registry.ImportCSV(l.reg, r, registry.ImportOptions{Strict: strict})
	if err != nil {
		return rep, err
	}
	// ImportCSV replaces the sites it imports: a new pointer is a change.
	var changed []*registry.Site
	for _, s := range l.reg.Sites() {
		if before[s.ID] != s {
			changed = append(changed, s)
			if err := l.siteAdded(s); err != nil {
				return rep, err
			}
		}
	}
	if g.path != "" {
		if err := l.reg.Save(g.path); err != nil {
			return rep, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := twin.PublishSites(ctx, g.prod, changed); err != nil {
		return rep, err
	}
	return rep, nil
}

// siteAdded registers a new or changed site's assets with the twin stores
// this instance owns and with the lifecycle tracker.
func (l *live) siteAdded(s *registry.Site) error {
	l.svc.With(l.partitionOf(s.ID), func(st *state.Store) {
		for _, a := range s.Assets {
			st.AddAsset(s.ID, a.ID, a.Type)
		}
	})
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

func (g *registrar) Export(w io.Writer) error { return registry.ExportCSV(w, g.live.reg) }

// scanner replays ClickHouse history for rule backtests.
func scanner(conn driver.Conn, db string, f schema.Flavor) rules.Scanner {
	return func(ctx context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error) {
		return storage.Scan(ctx, conn, db, f, q, fn)
	}
}

// milestones computes the programme's milestones from the registry and the
// lifecycle tracker, at most every milestoneEvery: the endpoint is public.
type milestones struct {
	ms   []*milestone.Milestone
	reg  *registry.Registry
	life *lifecycle.Tracker

	mu   sync.Mutex
	at   time.Time
	last []milestone.Progress
}

const milestoneEvery = 30 * time.Second

func (m *milestones) Milestones(now time.Time) []milestone.Progress {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.last == nil || now.Sub(m.at) >= milestoneEvery || now.Before(m.at) {
		m.last, m.at = milestone.Compute(m.ms, m.reg.Sites(), m.life.State, now), now
	}
	return m.last
}
