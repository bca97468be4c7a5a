package twin

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// desiredEnv is a kfake cluster (for its fault injection), a ClickHouse
// database and a fleet, on which twin instances with a Live run.
type desiredEnv struct {
	t       *testing.T
	cluster *kfake.Cluster
	prod    *kgo.Client
	reg     *registry.Registry
	chAddr  string
	db      string
}

func newDesiredEnv(t *testing.T) *desiredEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, chtest.Conn(t, addr), db); err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, Topics...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kafka.SitePartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 8, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	return &desiredEnv{t: t, cluster: c, prod: prod, reg: reg, chAddr: addr, db: db}
}

// instance starts a twin and its Live, on a ClickHouse connection of its
// own, and waits until it owns every partition. kill closes that
// connection before stopping it, so it stops without a last snapshot, as a
// killed process does.
func (e *desiredEnv) instance(name string) (lv *Live, kill func()) {
	e.t.Helper()
	conn := chtest.Conn(e.t, e.chAddr)
	lv = NewLive(LiveOptions{Registry: e.reg, Partitions: partitions, Producer: e.prod, Self: name, WriteTimeout: 5 * time.Second})
	svc, err := New(Options{Brokers: e.cluster.ListenAddrs(), Conn: conn, Database: e.db, NewPartition: lv.NewPartition,
		SnapshotEvery: time.Hour, InstanceID: name})
	if err != nil {
		e.t.Fatal(err)
	}
	lv.Attach(svc)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := svc.Run(ctx); err != nil {
			e.t.Errorf("instance %s: %v", name, err)
		}
	}()
	var once sync.Once
	kill = func() {
		once.Do(func() {
			conn.Close()
			cancel()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				e.t.Error("twin service did not stop")
			}
		})
	}
	e.t.Cleanup(kill)
	testutil.Eventually(e.t, 30*time.Second, 20*time.Millisecond, func() bool { return len(svc.Owned()) == partitions },
		"instance %s owns every partition", name)
	return lv, kill
}

// desiredEnd is the sum of the end offsets of the desired topic.
func (e *desiredEnv) desiredEnd() int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(e.prod).ListEndOffsets(ctx, kafka.TopicDesired)
	if err != nil {
		e.t.Fatal(err)
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}

func raw(s string) json.RawMessage { return json.RawMessage(s) }

// desiredOf returns the desired part of an asset's twin.
func desiredOf(t *testing.T, lv *Live, site, asset string) (uint64, map[string]state.PropView) {
	t.Helper()
	v, local, _ := lv.AssetState(site, asset, time.Now())
	if !local {
		t.Fatalf("%s/%s is not served here", site, asset)
	}
	return v.DesiredVersion, v.Desired
}

// A desired state is in Kafka before the store has it, and the store has
// it from Kafka: a twin killed without a snapshot (and one whose last
// snapshot is older than the change) comes back with every version and
// property, and the next change takes the next version, never one handed
// out before.
func TestDesired_KilledTwinKeepsVersions(t *testing.T) {
	e := newDesiredEnv(t)
	sites := e.reg.Sites()
	s1, a1 := sites[0].ID, sites[0].Assets[0].ID
	s2, a2 := sites[1].ID, sites[1].Assets[1].ID
	a, killA := e.instance("a")
	t0 := time.Now().Add(-time.Minute).Truncate(time.Millisecond)

	v, local, _, err := a.SetDesired(s1, a1, map[string]json.RawMessage{"setpoint_c": raw("21"), "mode": raw(` "eco" `)}, 0, false, t0)
	if err != nil || !local || v != 1 {
		t.Fatalf("first PATCH: version %d, local %v, %v", v, local, err)
	}
	if got, props := desiredOf(t, a, s1, a1); got != 1 || string(props["mode"].Value) != `"eco"` {
		t.Fatalf("answered before the store applied it: version %d, %v", got, props)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a.Service().snapshotAll(ctx) // the last snapshot: version 1
	if v, _, _, err = a.SetDesired(s1, a1, map[string]json.RawMessage{"setpoint_c": raw("22"), "mode": raw("null")}, 1, false, t0.Add(time.Second)); err != nil || v != 2 {
		t.Fatalf("second PATCH: version %d, %v", v, err)
	}
	for i := range 3 {
		if v, _, _, err = a.SetDesired(s2, a2, map[string]json.RawMessage{"on": raw("true"), "step": raw(string(rune('0' + i)))}, uint64(i), false, t0.Add(time.Duration(i)*time.Second)); err != nil || v != uint64(i+1) {
			t.Fatalf("PATCH %d of %s/%s: version %d, %v", i, s2, a2, v, err)
		}
	}
	v1, p1 := desiredOf(t, a, s1, a1)
	v2, p2 := desiredOf(t, a, s2, a2)
	killA()

	b, _ := e.instance("b")
	if got := b.Service().restored.Load(); got != partitions {
		t.Fatalf("b restored %d partitions from the snapshot; want %d", got, partitions)
	}
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool {
		got, _ := desiredOf(t, b, s2, a2)
		return got == v2
	}, "b replays the desired topic")
	if got, props := desiredOf(t, b, s1, a1); got != v1 || !reflect.DeepEqual(props, p1) {
		t.Fatalf("%s/%s after the kill: version %d %v; want %d %v", s1, a1, got, props, v1, p1)
	}
	if got, props := desiredOf(t, b, s2, a2); got != v2 || !reflect.DeepEqual(props, p2) {
		t.Fatalf("%s/%s after the kill: version %d %v; want %d %v", s2, a2, got, props, v2, p2)
	}
	if v, _, _, err = b.SetDesired(s1, a1, map[string]json.RawMessage{"setpoint_c": raw("23")}, 2, false, t0.Add(time.Hour)); err != nil || v != 3 {
		t.Fatalf("PATCH after the kill: version %d, %v; want 3", v, err)
	}
	if v, _, _, err = b.SetDesired(s1, a1, map[string]json.RawMessage{"setpoint_c": raw("24")}, 2, false, t0.Add(time.Hour)); !errors.Is(err, state.ErrVersionMismatch) || v != 3 {
		t.Fatalf("PATCH with a used ETag: version %d, %v; want 3 and a mismatch", v, err)
	}
}

// A PATCH whose record Kafka refuses answers an error and changes nothing:
// neither the store nor the topic, nor the version the next PATCH gets.
func TestDesired_RefusedWriteChangesNothing(t *testing.T) {
	e := newDesiredEnv(t)
	s, as := e.reg.Sites()[2].ID, e.reg.Sites()[2].Assets[0].ID
	a, _ := e.instance("a")
	now := time.Now()
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"setpoint_c": raw("21")}, 0, false, now); err != nil || v != 1 {
		t.Fatalf("first PATCH: %d %v", v, err)
	}
	ver, props := desiredOf(t, a, s, as)
	end := e.desiredEnd()

	fault := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.TopicDesired, Err: kerr.InvalidRecord, Count: -1})
	_, local, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"setpoint_c": raw("30")}, 1, false, now.Add(time.Second))
	if err == nil || !local || errors.Is(err, state.ErrVersionMismatch) {
		t.Fatalf("PATCH refused by Kafka: local %v, err %v; want an error", local, err)
	}
	fault.Remove()
	if got, gotProps := desiredOf(t, a, s, as); got != ver || !reflect.DeepEqual(gotProps, props) {
		t.Fatalf("a refused PATCH changed the store: version %d %v; want %d %v", got, gotProps, ver, props)
	}
	if got := e.desiredEnd(); got != end {
		t.Fatalf("a refused PATCH reached the topic: end %d; want %d", got, end)
	}
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"setpoint_c": raw("30")}, 1, false, now.Add(2*time.Second)); err != nil || v != 2 {
		t.Fatalf("PATCH once Kafka takes it: version %d, %v; want 2", v, err)
	}
}

// Concurrent PATCHes with the same If-Match: exactly one wins, the others
// are told the version it made; the topic gets one record.
func TestDesired_ConcurrentSameIfMatchOneWins(t *testing.T) {
	e := newDesiredEnv(t)
	s, as := e.reg.Sites()[3].ID, e.reg.Sites()[3].Assets[0].ID
	a, _ := e.instance("a")
	now := time.Now()
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"n": raw("0")}, 0, false, now); err != nil || v != 1 {
		t.Fatalf("first PATCH: %d %v", v, err)
	}
	end := e.desiredEnd()
	const n = 8
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		wins, mismatches int
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"n": raw(string(rune('1' + i)))}, 1, false, now.Add(time.Second))
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && v == 2:
				wins++
			case errors.Is(err, state.ErrVersionMismatch) && v == 2:
				mismatches++
			default:
				t.Errorf("PATCH %d: version %d, %v", i, v, err)
			}
		}()
	}
	wg.Wait()
	if wins != 1 || mismatches != n-1 {
		t.Fatalf("%d wins, %d mismatches; want 1 and %d", wins, mismatches, n-1)
	}
	if got, _ := desiredOf(t, a, s, as); got != 2 {
		t.Fatalf("version %d after the race; want 2", got)
	}
	if got := e.desiredEnd(); got != end+1 {
		t.Fatalf("the race wrote %d records; want 1", got-end)
	}
}

// If-Match "0" is a version like any other: a second writer who also saw
// nothing set loses; "*" (unconditional) overwrites.
func TestDesired_IfMatchZeroIsAVersion(t *testing.T) {
	e := newDesiredEnv(t)
	s, as := e.reg.Sites()[2].ID, e.reg.Sites()[2].Assets[0].ID
	a, _ := e.instance("a")
	now := time.Now()
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"n": raw("0")}, 0, false, now); err != nil || v != 1 {
		t.Fatalf("first PATCH: %d %v", v, err)
	}
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"n": raw("9")}, 0, false, now); !errors.Is(err, state.ErrVersionMismatch) || v != 1 {
		t.Fatalf("a second If-Match 0: %d %v; want a mismatch at version 1", v, err)
	}
	if v, _, _, err := a.SetDesired(s, as, map[string]json.RawMessage{"n": raw("7")}, 0, true, now); err != nil || v != 2 {
		t.Fatalf("an unconditional PATCH: %d %v; want version 2", v, err)
	}
}

// The fold rebuilds a store exactly, record by record or from the last
// record alone (what compaction leaves), as the store's own SetDesired
// made it; a record the store already has changes nothing.
func TestFoldDesired_EqualsDirect(t *testing.T) {
	const site, asset = "PO-001002-1", "env-1"
	mk := func() *state.Store {
		st := state.New(state.Options{})
		st.AddAsset(site, asset, "env")
		return st
	}
	direct, folded, compacted, old := mk(), mk(), mk(), mk()
	t0 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	patches := []map[string]json.RawMessage{
		{"a": raw("1"), "b": raw(`"x"`)},
		{"b": raw(`"y"`), "c": raw("[1, 2]")},
		{"a": raw("null")},
		{"d": raw("{}")},
		{"c": raw("[1,2]")}, // the same value again: set at this version
	}
	var last DesiredRecord
	var lastMeta desiredMeta
	for i, p := range patches {
		at := t0.Add(time.Duration(i) * time.Minute)
		if _, err := direct.SetDesired(site, asset, p, at, 0); err != nil {
			t.Fatal(err)
		}
		cur, _ := folded.Asset(site, asset, at)
		rec, meta, err := nextDesired(cur, p, at)
		if err != nil {
			t.Fatal(err)
		}
		if err := foldDesired(folded, site, asset, rec, meta); err != nil {
			t.Fatal(err)
		}
		if i == 1 {
			if err := foldDesired(old, site, asset, rec, meta); err != nil {
				t.Fatal(err)
			}
		}
		last, lastMeta = rec, meta
	}
	if err := foldDesired(compacted, site, asset, last, lastMeta); err != nil {
		t.Fatal(err)
	}
	// A store restored from a snapshot at version 2 takes the last record.
	if err := foldDesired(old, site, asset, last, lastMeta); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(time.Hour)
	want, _ := direct.Asset(site, asset, now)
	for name, st := range map[string]*state.Store{"folded": folded, "compacted": compacted, "from version 2": old} {
		got, _ := st.Asset(site, asset, now)
		if got.DesiredVersion != want.DesiredVersion || !reflect.DeepEqual(got.Desired, want.Desired) {
			t.Fatalf("%s: version %d %v; want %d %v", name, got.DesiredVersion, got.Desired, want.DesiredVersion, want.Desired)
		}
	}
	// Replayed over a snapshot that has it: nothing changes.
	if err := foldDesired(folded, site, asset, last, lastMeta); err != nil {
		t.Fatal(err)
	}
	if got, _ := folded.Asset(site, asset, now); got.DesiredVersion != want.DesiredVersion {
		t.Fatalf("a replayed record moved the version to %d", got.DesiredVersion)
	}
	// A record without the header (written before it) gives the same
	// properties and version.
	bare := mk()
	if err := foldDesired(bare, site, asset, last, desiredMeta{}); err != nil {
		t.Fatal(err)
	}
	got, _ := bare.Asset(site, asset, now)
	if got.DesiredVersion != want.DesiredVersion || len(got.Desired) != len(want.Desired) {
		t.Fatalf("without the header: version %d %v", got.DesiredVersion, got.Desired)
	}
	for k, p := range want.Desired {
		if string(got.Desired[k].Value) != string(p.Value) {
			t.Fatalf("without the header, %s = %s; want %s", k, got.Desired[k].Value, p.Value)
		}
	}
	// An asset the store does not hold yet is added with the header's type.
	late := state.New(state.Options{})
	if err := foldDesired(late, site, asset, last, desiredMeta{Type: "env", Props: lastMeta.Props}); err != nil {
		t.Fatal(err)
	}
	if got, ok := late.Asset(site, asset, now); !ok || got.DesiredVersion != want.DesiredVersion || got.Type != "env" {
		t.Fatalf("an unknown asset: %v %+v", ok, got)
	}
}
