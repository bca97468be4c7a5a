package twin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// importEnv is one twin instance with its lifecycle tracker and follower
// on a kfake cluster, over a fleet registered as planned.
type importEnv struct {
	cluster *kfake.Cluster
	reg     *registry.Registry
	lv      *Live
}

func newImportEnv(t *testing.T) *importEnv {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn := chtest.Conn(t, addr)
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(partitions, append(Topics, kafka.TopicLifecycle)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.RecordPartitioner(kafka.SitePartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 12, Seed: 5})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			a.Lifecycle, a.InstalledAt = lifecycle.Planned, time.Time{}
		}
	}
	tracker, err := NewTracker(reg)
	if err != nil {
		t.Fatal(err)
	}
	lv := NewLive(LiveOptions{Registry: reg, Partitions: partitions, Producer: prod, Tracker: tracker, Self: "a", WriteTimeout: 5 * time.Second})
	svc, err := New(Options{Brokers: c.ListenAddrs(), Conn: conn, Database: db, NewPartition: lv.NewPartition, SnapshotEvery: time.Hour, InstanceID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	lv.Attach(svc)
	fol := lv.LifecycleFollower(c.ListenAddrs(), nil)
	rctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	for _, run := range []func(context.Context) error{svc.Run, fol.Run} {
		go func() {
			defer func() { done <- struct{}{} }()
			if err := run(rctx); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
	}
	t.Cleanup(func() {
		stop()
		for range 2 {
			<-done
		}
	})
	<-fol.Ready()
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool { return len(svc.Owned()) == partitions },
		"the instance owns every partition")
	return &importEnv{cluster: c, reg: reg, lv: lv}
}

// logged reads every event of the lifecycle log.
func (e *importEnv) logged(t *testing.T) []lifecycle.Event {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.cluster.ListenAddrs()...), kgo.ConsumeTopics(kafka.TopicLifecycle),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []lifecycle.Event
	// Bounded: stop after two empty polls in a row.
	for empty := 0; empty < 2; {
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			empty++
			continue
		}
		empty = 0
		fs.EachRecord(func(r *kgo.Record) {
			var ev lifecycle.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatal(err)
			}
			out = append(out, ev)
		})
	}
	return out
}

// history makes a rollout of n assets: installed, commissioned a week
// later, operational the day after; every third one faulty since.
func (e *importEnv) history(n int, start time.Time) []lifecycle.Event {
	var out []lifecycle.Event
	i := 0
	for _, s := range e.reg.Sites() {
		for _, a := range s.Assets {
			if i == n {
				return out
			}
			at := start.Add(time.Duration(i) * time.Hour)
			add := func(to lifecycle.State, d time.Duration) {
				out = append(out, lifecycle.Event{Site: s.ID, Asset: a.ID, To: to, At: at.Add(d), Actor: "ops", Cause: "test rollout"})
			}
			add(lifecycle.Installed, 0)
			add(lifecycle.Commissioned, 7*24*time.Hour)
			add(lifecycle.Operational, 8*24*time.Hour)
			if i%3 == 0 {
				add(lifecycle.Faulty, 30*24*time.Hour)
			}
			i++
		}
	}
	return out
}

func countKeys(evs []lifecycle.Event) map[string]int {
	m := map[string]int{}
	for _, ev := range evs {
		m[fmt.Sprintf("%s/%s %s %s", ev.Site, ev.Asset, ev.To, ev.At.UTC().Format(time.RFC3339Nano))]++
	}
	return m
}

// An import is checked whole, written to the log with its own times,
// folded before it returns, and skipped when run again.
func TestImportLifecycle_AppliedOnceSkippedAfter(t *testing.T) {
	e := newImportEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	batch := e.history(40, time.Date(2023, 3, 1, 9, 0, 0, 0, time.UTC))

	// A bad event anywhere refuses the whole batch, naming it.
	bad := append([]lifecycle.Event(nil), batch...)
	bad[5].To = lifecycle.Decommissioned
	_, _, err := e.lv.ImportLifecycle(ctx, bad)
	var be *lifecycle.BatchError
	if !errors.As(err, &be) || be.Index != 6 || !errors.Is(err, lifecycle.ErrNotAllowed) {
		t.Fatalf("got %v; want a refusal of event 6 (decommissioned → operational)", err)
	}
	unknown := append([]lifecycle.Event(nil), batch[:3]...)
	unknown = append(unknown, lifecycle.Event{Site: "PO-999999-1", Asset: "atm-1", To: lifecycle.Installed, At: batch[0].At, Actor: "ops"})
	if _, _, err := e.lv.ImportLifecycle(ctx, unknown); !errors.As(err, &be) || be.Index != 3 || !errors.Is(err, lifecycle.ErrUnknownSite) {
		t.Fatalf("got %v; want a refusal of event 3 (unknown site)", err)
	}
	future := append([]lifecycle.Event(nil), batch...)
	future[len(future)-1].At = time.Now().Add(time.Hour)
	if _, _, err := e.lv.ImportLifecycle(ctx, future); !errors.As(err, &be) || be.Index != len(future)-1 || !errors.Is(err, lifecycle.ErrInFuture) {
		t.Fatalf("got %v; want a refusal of the last event (in the future)", err)
	}
	if got := e.logged(t); len(got) != 0 {
		t.Fatalf("refused batches wrote %d events", len(got))
	}

	applied, skipped, err := e.lv.ImportLifecycle(ctx, batch)
	if err != nil || applied != len(batch) || skipped != 0 {
		t.Fatalf("import: %d applied, %d skipped, %v; want %d applied", applied, skipped, err, len(batch))
	}
	// Folded before the answer, with the final states.
	for _, ev := range batch {
		if st, _ := e.lv.Lifecycle(ev.Site, ev.Asset); ev.To == lifecycle.Faulty && st != lifecycle.Faulty {
			t.Fatalf("%s/%s is %s after the import; want faulty", ev.Site, ev.Asset, st)
		}
	}
	counts := e.lv.Tracker().Counts()
	if counts[lifecycle.Faulty] != 14 || counts[lifecycle.Operational] != 26 {
		t.Fatalf("unexpected counts %v", counts)
	}
	logged := e.logged(t)
	if len(logged) != len(batch) {
		t.Fatalf("%d events in the log; want %d", len(logged), len(batch))
	}
	want := countKeys(batch)
	for k, n := range countKeys(logged) {
		if n != 1 || want[k] != 1 {
			t.Fatalf("%s is %d times in the log, %d times in the batch", k, n, want[k])
		}
	}
	for _, ev := range logged {
		if ev.Actor != "ops" || ev.Cause != "test rollout" || ev.From == "" {
			t.Fatalf("event logged without actor, cause or from: %+v", ev)
		}
	}
	applied, skipped, err = e.lv.ImportLifecycle(ctx, batch)
	if err != nil || applied != 0 || skipped != len(batch) {
		t.Fatalf("second import: %d applied, %d skipped, %v; want all skipped", applied, skipped, err)
	}
	if got := e.logged(t); len(got) != len(batch) {
		t.Fatalf("the second import wrote: %d events in the log", len(got))
	}
}

// Kafka refusing part of an import: what was written stays, and running
// the import again writes exactly the rest.
func TestImportLifecycle_FailurePartWayThenRerun(t *testing.T) {
	e := newImportEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	batch := e.history(60, time.Date(2024, 1, 8, 9, 0, 0, 0, time.UTC))
	// Refuse the last twin partition's writes: the others go first.
	parts := map[int32]bool{}
	for _, ev := range batch {
		parts[e.lv.PartitionOf(ev.Site)] = true
	}
	var lastPart int32 = -1
	for p := range parts {
		lastPart = max(lastPart, p)
	}
	if len(parts) < 2 {
		t.Fatalf("the batch covers %d partition(s); want at least 2", len(parts))
	}
	fault := e.cluster.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.TopicLifecycle, Partitions: []int32{lastPart},
		Err: kerr.InvalidRecord, Count: -1})
	applied, _, err := e.lv.ImportLifecycle(ctx, batch)
	if err == nil || applied == 0 || applied == len(batch) {
		t.Fatalf("import with one partition refused: %d applied, %v; want an error part way", applied, err)
	}
	fault.Remove()
	if got := e.logged(t); len(got) != applied {
		t.Fatalf("%d events in the log after %d were reported applied", len(got), applied)
	}
	again, skipped, err := e.lv.ImportLifecycle(ctx, batch)
	if err != nil || again+applied != len(batch) || skipped != applied {
		t.Fatalf("rerun: %d applied, %d skipped, %v; want %d applied, %d skipped", again, skipped, err, len(batch)-applied, applied)
	}
	for k, n := range countKeys(e.logged(t)) {
		if n != 1 {
			t.Fatalf("%s is %d times in the log", k, n)
		}
	}
}
