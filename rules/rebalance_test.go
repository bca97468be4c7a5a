package rules

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// rebalanceRules: every env sensor of the test fleet reports 35 C, so hot
// is open on every site all along; quiet is a clock rule that would fire
// for any site whose points stop, which is what an instance evaluating a
// site it no longer owns sees.
const rebalanceRules = `groups:
  - name: t
    rules:
      - id: hot
        scope: {asset_types: [env]}
        expr: last("temp_c") > 30
        severity: warning
      - id: quiet
        scope: {asset_types: [env]}
        expr: silent_for() > 0.1
        clear: silent_for() < 0.05
        severity: warning
`

// recorder is a Producer that remembers the alert changes an instance
// writes, and when.
type recorder struct {
	cl *kgo.Client
	mu sync.Mutex
	cs []written
}

type written struct {
	at time.Time
	record.AlertChange
}

func (r *recorder) Produce(ctx context.Context, rec *kgo.Record, promise func(*kgo.Record, error)) {
	if rec.Topic == kafka.TopicAlerts {
		var a record.AlertChange
		if record.UnmarshalAlert(rec.Value, &a) == nil {
			r.mu.Lock()
			r.cs = append(r.cs, written{time.Now(), a})
			r.mu.Unlock()
		}
	}
	r.cl.Produce(ctx, rec, promise)
}

func (r *recorder) changes() []written {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]written(nil), r.cs...)
}

// node is one instance: a twin consumer in group "twin" and the rules on
// it, with a clock ticking fast.
type node struct {
	name  string
	rules *Service
	twin  *twin.Service
	rec   *recorder
	stop  func()

	mu     sync.Mutex
	owners map[string][]ownership // site -> gains and losses, in order
}

type ownership struct {
	at    time.Time
	owned bool
}

// ownedAt reports whether the node owned site at t.
func (n *node) ownedAt(site string, t time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	owned := false
	for _, o := range n.owners[site] {
		if o.at.After(t) {
			break
		}
		owned = o.owned
	}
	return owned
}

func (n *node) mark(stores map[int32]*state.Store, owned bool, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, st := range stores {
		for _, site := range st.Sites() {
			n.owners[site] = append(n.owners[site], ownership{at, owned})
		}
	}
}

// Partitions move between two instances while every site reports: the
// instance that lost a site says nothing more about it (the clock rule
// that would see its points stop does not fire there), and the one that
// gained it carries its open alert on without firing it again.
func TestRebalance_NoAlertFromOldOwner(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	const partitions = 4
	addr := chtest.Shared(t)
	conn := chtest.Conn(t, addr)
	db := chtest.Database(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	k, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: partitions})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	brokers := k.Addrs()
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 12, Coworking: 2, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	part := kafka.SitePartitioner().ForTopic(kafka.TopicTelemetry)
	partOf := func(site string) int32 { return int32(part.Partition(&kgo.Record{Key: []byte(site)}, partitions)) }
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(rebalanceRules), 0o600); err != nil {
		t.Fatal(err)
	}

	start := func(name string) *node {
		cl := siteProducer(t, brokers)
		n := &node{name: name, rec: &recorder{cl: cl}, owners: map[string][]ownership{}}
		log := slog.New(slog.DiscardHandler)
		if testing.Verbose() {
			log = slog.New(slog.NewTextHandler(os.Stderr, nil)).With("instance", name)
		}
		n.rules, err = New(Options{Dir: dir, Registry: reg, Producer: n.rec, Brokers: brokers, Logger: log})
		if err != nil {
			t.Fatal(err)
		}
		n.twin, err = twin.New(twin.Options{Brokers: brokers, Conn: conn, Database: db, SnapshotEvery: 500 * time.Millisecond,
			InstanceID: name, Logger: log, OnApply: n.rules.Applied,
			OnAssigned: func(ctx context.Context, stores map[int32]*state.Store) error {
				if err := n.rules.Gained(ctx, stores); err != nil {
					return err
				}
				n.mark(stores, true, time.Now())
				return nil
			},
			OnReleased: func(ctx context.Context, stores map[int32]*state.Store) {
				n.rules.Released(ctx, stores)
				n.mark(stores, false, time.Now())
			},
			NewPartition: func(p int32) *state.Store {
				st := state.New(state.Options{})
				for _, s := range reg.Sites() {
					if partOf(s.ID) == p {
						for _, a := range s.Assets {
							st.AddAsset(s.ID, a.ID, a.Type)
						}
					}
				}
				return st
			}})
		if err != nil {
			t.Fatal(err)
		}
		rctx, rcancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		run := func(what string, f func(context.Context) error) {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := f(rctx); err != nil {
					t.Errorf("%s %s: %v", name, what, err)
				}
			}()
		}
		run("rules", n.rules.Run)
		select {
		case <-n.rules.Ready():
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: rules not ready", name)
		}
		run("clock", func(ctx context.Context) error { return n.rules.RunClock(ctx, 100*time.Millisecond) })
		// The platform's order: the twin stops before the rules, the rules
		// before their producer.
		tctx, tcancel := context.WithCancel(context.Background())
		tdone := make(chan struct{})
		go func() {
			defer close(tdone)
			if err := n.twin.Run(tctx); err != nil {
				t.Errorf("%s twin: %v", name, err)
			}
		}()
		var once sync.Once
		n.stop = func() {
			once.Do(func() {
				tcancel()
				<-tdone
				rcancel()
				wg.Wait()
			})
		}
		t.Cleanup(n.stop)
		return n
	}

	// Every site's env sensor reports 35 C every 100 ms until the end.
	pctx, pcancel := context.WithCancel(context.Background())
	pdone := make(chan struct{})
	prod := siteProducer(t, brokers)
	go func() {
		defer close(pdone)
		tk := time.NewTicker(100 * time.Millisecond)
		defer tk.Stop()
		for {
			now := time.Now().UnixMilli()
			for _, s := range reg.Sites() {
				v, err := record.Marshal(&record.Record{Kind: record.KindTelemetry, Site: s.ID, Asset: "env-1", Received: now,
					Points: []record.Point{{Metric: "temp_c", TS: now, Value: 35}}})
				if err != nil {
					t.Error(err)
					return
				}
				prod.Produce(pctx, &kgo.Record{Topic: kafka.TopicTelemetry, Key: []byte(s.ID), Value: v}, nil)
			}
			select {
			case <-pctx.Done():
				return
			case <-tk.C:
			}
		}
	}()
	defer func() { pcancel(); <-pdone }()

	sites := reg.Sites()
	hot := func(s *registry.Site) string { return engine.Fingerprint("hot", s.ID, "env-1") }
	a := start("a")
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() bool {
		return len(a.twin.Owned()) == partitions && len(a.rules.Alerts(engine.Filter{RuleID: "hot", States: []engine.State{engine.StateFiring}})) == len(sites)
	}, "a owns every partition and hot fires on every site")

	b := start("b")
	var moved []*registry.Site
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() bool {
		if len(a.twin.Owned()) == 0 || len(b.twin.Owned()) == 0 || len(a.twin.Owned())+len(b.twin.Owned()) != partitions {
			return false
		}
		moved = moved[:0]
		for _, s := range sites {
			p := partOf(s.ID)
			for _, q := range b.twin.Owned() {
				if p == q {
					moved = append(moved, s)
				}
			}
		}
		for _, s := range moved {
			if al, ok := b.rules.Get(hot(s)); !ok || al.State != engine.StateFiring {
				return false
			}
		}
		return len(moved) > 0
	}, "a and b share the partitions and b holds the moved sites' alerts")
	// Long enough for quiet (6 s without points) to fire wherever a moved
	// site's points stopped.
	time.Sleep(9 * time.Second)
	for _, s := range moved {
		if _, ok := a.rules.Get(hot(s)); ok {
			t.Errorf("a still holds the alert of %s, which b owns", s.ID)
		}
		al, _ := b.rules.Get(hot(s))
		if al.State != engine.StateFiring || al.Occurrence != 1 {
			t.Errorf("b's alert of %s: %+v; want firing, first occurrence", s.ID, al)
		}
	}
	b.stop()
	a.stop()

	// A change is written while its site is owned: the twin applies a
	// gained partition's records only once Gained returned, and Released
	// returns once the changes queued before it are written.
	for _, n := range []*node{a, b} {
		for _, c := range n.rec.changes() {
			if !n.ownedAt(c.Site, c.at) {
				t.Errorf("%s wrote %s %s for %s/%s at %s, when it did not own the site", n.name, c.Kind, c.RuleID, c.Site, c.Asset,
					c.at.Format(time.RFC3339Nano))
			}
			if c.RuleID == "quiet" {
				t.Errorf("%s: %s %s for %s (every site reported all along)", n.name, c.Kind, c.RuleID, c.Site)
			}
		}
	}
	for _, s := range moved {
		for _, c := range b.rec.changes() {
			if c.Fingerprint == hot(s) && c.Kind == string(engine.KindFired) {
				t.Errorf("b fired the carried alert of %s again", s.ID)
			}
		}
	}
	ids := make([]string, len(moved))
	for i, s := range moved {
		ids[i] = s.ID
	}
	sort.Strings(ids)
	t.Logf("moved to b: %v", ids)
}
