package twin

import (
	"context"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

const partitions = 4

type fixture struct {
	t       *testing.T
	reg     *registry.Registry
	cluster *kafka.Embedded
	prod    *kgo.Client
	opts    Options
	ref     *state.Store // applied every record in produce order
	partOf  map[string]int32
	clock   int64
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
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
	prod, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.RecordPartitioner(kafka.SitePartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 16, Coworking: 2, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, reg: reg, cluster: k, prod: prod, partOf: map[string]int32{}, clock: time.Now().Add(-time.Hour).UnixMilli()}
	part := kafka.SitePartitioner().ForTopic(kafka.TopicTelemetry)
	f.ref = state.New(state.Options{})
	for _, s := range reg.Sites() {
		f.partOf[s.ID] = int32(part.Partition(&kgo.Record{Key: []byte(s.ID)}, partitions))
		for _, a := range s.Assets {
			f.ref.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	f.opts = Options{Brokers: k.Addrs(), Conn: conn, Database: db, SnapshotEvery: 100 * time.Millisecond,
		NewPartition: func(p int32) *state.Store {
			st := state.New(state.Options{})
			for _, s := range reg.Sites() {
				if f.partOf[s.ID] == p {
					for _, a := range s.Assets {
						st.AddAsset(s.ID, a.ID, a.Type)
					}
				}
			}
			return st
		}}
	return f
}

// produce sends n rounds of telemetry, status and reported state for every
// site, applying each record to the reference store in the same order.
func (f *fixture) produce(rounds int) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range rounds {
		f.clock += 1000
		for _, s := range f.reg.Sites() {
			for i, a := range s.Assets {
				if i > 3 {
					break
				}
				recs := []*record.Record{{Kind: record.KindTelemetry, Site: s.ID, Asset: a.ID, Received: f.clock,
					Points: []record.Point{{Metric: "temp_c", TS: f.clock, Value: float64(f.clock%1000) / 10}, {Metric: "power_kw", TS: f.clock, Value: float64(i)}}}}
				if f.clock%3000 == 0 {
					recs = append(recs, &record.Record{Kind: record.KindStatus, Site: s.ID, Asset: a.ID, Status: "online", TS: f.clock, Received: f.clock})
				}
				if f.clock%5000 == 0 {
					recs = append(recs, &record.Record{Kind: record.KindReported, Site: s.ID, Asset: a.ID, TS: f.clock, Received: f.clock,
						Body: []byte(fmt.Sprintf(`{"fw":"1.%d"}`, f.clock/5000%10))})
				}
				for _, r := range recs {
					v, err := record.Marshal(r)
					if err != nil {
						f.t.Fatal(err)
					}
					topic, key := kafka.TopicTelemetry, s.ID
					switch r.Kind {
					case record.KindStatus:
						topic = kafka.TopicEvents
					case record.KindReported:
						topic, key = kafka.TopicState, s.ID+"/"+a.ID
					}
					if err := f.prod.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(key), Value: v}).FirstErr(); err != nil {
						f.t.Fatal(err)
					}
					f.ref.Apply(r)
				}
			}
		}
	}
}

// start runs an instance; the returned channel is closed when it stopped.
func (f *fixture) start(name string) (*Service, context.CancelFunc, chan struct{}) {
	f.t.Helper()
	return f.startOn(name, f.opts.Conn)
}

// startOn runs an instance that reaches ClickHouse through conn.
func (f *fixture) startOn(name string, conn driver.Conn) (*Service, context.CancelFunc, chan struct{}) {
	f.t.Helper()
	o := f.opts
	o.InstanceID = name
	o.Conn = conn
	s, err := New(o)
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(ctx); err != nil {
			f.t.Errorf("instance %s: %v", name, err)
		}
	}()
	f.t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			f.t.Error("twin service did not stop")
		}
	})
	return s, cancel, done
}

// caughtUp reports whether the services together own every partition and
// have applied every record produced so far.
func (f *fixture) caughtUp(svcs ...*Service) bool {
	cl, err := kgo.NewClient(kgo.SeedBrokers(f.cluster.Addrs()...))
	if err != nil {
		f.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, Topics...)
	if err != nil {
		return false
	}
	owned := map[int32]bool{}
	for _, s := range svcs {
		s.mu.RLock()
		for p, o := range s.parts {
			owned[p] = true
			for _, t := range Topics {
				end, _ := ends.Lookup(t, p)
				if o.next[t] < end.Offset {
					s.mu.RUnlock()
					return false
				}
			}
		}
		s.mu.RUnlock()
	}
	return len(owned) == partitions
}

// equalToReference compares every site and asset view the services serve
// with the reference store.
func (f *fixture) equalToReference(svcs ...*Service) {
	f.t.Helper()
	now := time.UnixMilli(f.clock)
	for _, site := range f.reg.Sites() {
		served := 0
		for _, s := range svcs {
			s.With(f.partOf[site.ID], func(st *state.Store) {
				served++
				got, ok := st.Site(site.ID, now)
				want, _ := f.ref.Site(site.ID, now)
				if !ok || !reflect.DeepEqual(got, want) {
					f.t.Fatalf("site %s differs from the reference:\n got %+v\nwant %+v", site.ID, got, want)
				}
				for _, a := range site.Assets {
					got, _ := st.Asset(site.ID, a.ID, now)
					want, _ := f.ref.Asset(site.ID, a.ID, now)
					if !reflect.DeepEqual(got, want) {
						f.t.Fatalf("asset %s/%s differs from the reference:\n got %+v\nwant %+v", site.ID, a.ID, got, want)
					}
				}
			})
		}
		if served != 1 {
			f.t.Fatalf("site %s served by %d instances; want exactly 1", site.ID, served)
		}
	}
}

// A twin killed mid-stream (no last snapshot) and started again equals one
// that never stopped: it restores the newest snapshot and replays the rest.
func TestRecovery_KilledMidStreamEqualsNeverStopped(t *testing.T) {
	f := newFixture(t)
	// a has a ClickHouse connection of its own: closing it under a running
	// instance takes away its last snapshot, as a kill would.
	connA := chtest.Conn(t, chtest.Shared(t))
	a, cancelA, doneA := f.startOn("a", connA)
	f.produce(10)
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return f.caughtUp(a) }, "instance a catches up")
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool {
		var n uint64
		q := "SELECT uniqExact(partition) FROM " + f.opts.Database + ".twin_snapshots"
		if err := f.opts.Conn.QueryRow(context.Background(), q).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n == partitions
	}, "instance a snapshots every partition")
	// From here a snapshots nothing more: the records it applies next are
	// lost with it when it dies, without a last snapshot, mid-stream.
	connA.Close()
	f.produce(5)
	cancelA()
	<-doneA
	f.produce(10)
	b, _, _ := f.start("b")
	testutil.Eventually(t, 30*time.Second, 50*time.Millisecond, func() bool { return f.caughtUp(b) }, "instance b catches up")
	if got := b.restored.Load(); got != partitions {
		t.Fatalf("b restored %d partitions from snapshots; want %d (else it only replayed from the start)", got, partitions)
	}
	f.equalToReference(b)
}

// Two instances split the partitions; when one stops, the other takes over
// its sites with nothing lost.
func TestSharding_TakeoverLosesNothing(t *testing.T) {
	f := newFixture(t)
	a, cancelA, doneA := f.start("a")
	b, _, _ := f.start("b")
	f.produce(10)
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() bool {
		return len(a.Owned()) > 0 && len(b.Owned()) > 0 && f.caughtUp(a, b)
	}, "both instances own partitions and catch up (a %v, b %v)", a.Owned(), b.Owned())
	f.equalToReference(a, b)
	cancelA()
	<-doneA
	f.produce(10)
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() bool {
		return len(b.Owned()) == partitions && f.caughtUp(b)
	}, "b takes over every partition (b owns %v)", b.Owned())
	f.equalToReference(b)
}

func TestOwner_FromGroupDescription(t *testing.T) {
	f := newFixture(t)
	a, _, _ := f.start("http://127.0.0.1:1")
	b, _, _ := f.start("http://127.0.0.1:2")
	f.produce(2)
	testutil.Eventually(t, 60*time.Second, 50*time.Millisecond, func() bool {
		return len(a.Owned()) > 0 && len(b.Owned()) > 0 && len(a.Owned())+len(b.Owned()) == partitions
	}, "both instances own partitions")
	// The owner cache lives a second; the group's view converges.
	testutil.Eventually(t, 10*time.Second, 100*time.Millisecond, func() bool {
		for _, p := range a.Owned() {
			if got, err := b.Owner(context.Background(), p); err != nil || got != "http://127.0.0.1:1" {
				return false
			}
		}
		return true
	}, "b sees a as the owner of a's partitions %v", a.Owned())
}
