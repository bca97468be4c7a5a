package rules

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

const serviceRules = `groups:
  - name: t
    rules:
      - id: hot
        scope: {asset_types: [env]}
        expr: last("temp_c") > 30
        severity: warning
        summary: "{{ asset.id }} hot"
      - id: pv_high
        scope: {asset_types: [pv]}
        expr: last("power_kw") > 100
        severity: info
`

// kfakeCluster is a one-broker cluster with the twin's and the rules'
// topics, partitions of them for the site-keyed ones.
func kfakeCluster(t *testing.T, partitions int32) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(partitions, kafka.TopicTelemetry, kafka.TopicEvents, kafka.TopicState, kafka.TopicAlerts),
		kfake.SeedTopics(1, kafka.TopicRules),
		kfake.ListenFn(func(n, a string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(a)
			return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	// The other platform topics (alert state, silences, ...) as polis serve
	// makes them on a cluster that lacks them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, c.ListenAddrs(), nil, kafka.TopicOptions{}, partitions, 1); err != nil {
		t.Fatal(err)
	}
	return c
}

func siteProducer(t *testing.T, brokers []string) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kafka.SitePartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

type instance struct {
	*Service
	stop func()
}

// startService runs a rules service with serviceRules until stop (or the
// test's end) and waits until it is ready.
func startService(t *testing.T, reg *registry.Registry, brokers []string, prod Producer) *instance {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "t.yaml"), []byte(serviceRules), 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := New(Options{Dir: dir, Registry: reg, Producer: prod, Brokers: brokers, HandoverTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("rules service: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	select {
	case <-s.Ready():
	case err := <-done:
		t.Fatalf("rules service stopped before it was ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("rules service not ready")
	}
	return &instance{Service: s, stop: stop}
}

// apply applies a telemetry point to st and hands it to the rules as the
// twin does.
func (s *instance) apply(st *state.Store, site, asset, metric string, v float64, at time.Time) {
	r := &record.Record{Kind: record.KindTelemetry, Site: site, Asset: asset, Received: at.UnixMilli(),
		Points: []record.Point{{Metric: metric, TS: at.UnixMilli(), Value: v}}}
	c := st.Apply(r)
	s.Applied(st, r, c)
}

// alertChanges reads polis.alerts.v1 from the start until it has been
// quiet for quiet.
func alertChanges(t *testing.T, brokers []string, quiet time.Duration) []record.AlertChange {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(kafka.TopicAlerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []record.AlertChange
	for {
		ctx, cancel := context.WithTimeout(context.Background(), quiet)
		fs := cl.PollFetches(ctx)
		cancel()
		if fs.NumRecords() == 0 {
			return out
		}
		fs.EachRecord(func(r *kgo.Record) {
			var a record.AlertChange
			if err := record.UnmarshalAlert(r.Value, &a); err != nil {
				t.Errorf("offset %d: %v", r.Offset, err)
				return
			}
			out = append(out, a)
		})
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

func count(cs []record.AlertChange, fp, kind string) int {
	n := 0
	for _, c := range cs {
		if c.Fingerprint == fp && c.Kind == kind {
			n++
		}
	}
	return n
}

// While Kafka refuses the alert topic, an alert change waits in the outbox
// (the twin's call returns at once) and is retried; once Kafka takes it
// again it is there, once.
func TestOutbox_ProduceFailureDelaysNotLoses(t *testing.T) {
	c := kfakeCluster(t, 1)
	brokers := c.ListenAddrs()
	reg := testFleet(t)
	svc := startService(t, reg, brokers, siteProducer(t, brokers))
	st := twinOf(reg)
	if err := svc.Gained(context.Background(), map[int32]*state.Store{0: st}); err != nil {
		t.Fatal(err)
	}
	// A failure kgo does not retry by itself: the outbox must.
	fault := c.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: kafka.TopicAlerts, Err: kerr.PolicyViolation, Count: -1})
	began := time.Now()
	svc.apply(st, "PO-001001-1", "env-1", "temp_c", 35, began)
	if d := time.Since(began); d > time.Second {
		t.Fatalf("Applied took %s while Kafka refuses", d)
	}
	fp := engine.Fingerprint("hot", "PO-001001-1", "env-1")
	if a, ok := svc.Get(fp); !ok || a.State != engine.StateFiring {
		t.Fatalf("alert %+v %v", a, ok)
	}
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return value(svc.failures) >= 3 },
		"the outbox retries (failures %v)", testutil.Lazy(func() any { return value(svc.failures) }))
	if got := alertChanges(t, brokers, 300*time.Millisecond); len(got) != 0 {
		t.Fatalf("on the topic while it refuses: %+v", got)
	}
	if svc.out.Len() == 0 {
		t.Fatal("the refused change is not in the outbox")
	}
	fault.Remove()
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return svc.out.idle() }, "the outbox drains")
	got := alertChanges(t, brokers, 500*time.Millisecond)
	if count(got, fp, "fired") != 1 || len(got) != 1 {
		t.Fatalf("alert changes after the outage: %+v; want one fired", got)
	}
}

// A restart of the rules service restores an open, acknowledged and
// assigned alert and a silence from Kafka: the condition, still true, does
// not fire it again, and the silence holds on the new service.
func TestRestart_RestoresAlertAndSilence(t *testing.T) {
	c := kfakeCluster(t, 2)
	brokers := c.ListenAddrs()
	reg := testFleet(t)
	prod := siteProducer(t, brokers)
	now := time.Now()

	a := startService(t, reg, brokers, prod)
	st := twinOf(reg)
	stores := map[int32]*state.Store{0: st} // one store for every site: the test needs no twin
	if err := a.Gained(context.Background(), stores); err != nil {
		t.Fatal(err)
	}
	a.apply(st, "PO-001001-1", "env-1", "temp_c", 35, now)
	fp := engine.Fingerprint("hot", "PO-001001-1", "env-1")
	if _, err := a.Ack(fp, "ops", "on it", now.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Assign(fp, "maria", now.Add(2*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := a.Silence(engine.Silence{ID: "maint", Matchers: []engine.Matcher{{Label: "site", Value: "PO-001002-1"}},
		Start: now.Add(-time.Minute), End: now.Add(time.Hour), CreatedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	a.stop() // writes what it has queued before returning

	b := startService(t, reg, brokers, prod)
	if sl := b.Silences(); len(sl) != 1 || sl[0].ID != "maint" || sl[0].CreatedBy != "ops" || !sl[0].End.Equal(now.Add(time.Hour).Truncate(time.Millisecond)) {
		t.Fatalf("silences after restart: %+v", sl)
	}
	st2 := twinOf(reg)
	if err := b.Gained(context.Background(), map[int32]*state.Store{0: st2}); err != nil {
		t.Fatal(err)
	}
	got, ok := b.Get(fp)
	if !ok || got.State != engine.StateFiring || got.Occurrence != 1 || got.Ack == nil || got.Ack.By != "ops" ||
		got.Ack.Comment != "on it" || got.Assignee != "maria" {
		t.Fatalf("alert after restart: %+v (found %v)", got, ok)
	}
	b.apply(st2, "PO-001001-1", "env-1", "temp_c", 36, now.Add(time.Minute)) // still hot
	b.apply(st2, "PO-001002-1", "pv-1", "power_kw", 150, now.Add(time.Minute))
	pv := engine.Fingerprint("pv_high", "PO-001002-1", "pv-1")
	if al, ok := b.Get(pv); !ok || al.State != engine.StateFiring || !al.Silenced {
		t.Fatalf("an alert under the restored silence: %+v", al)
	}
	b.stop()
	cs := alertChanges(t, brokers, 500*time.Millisecond)
	if n := count(cs, fp, "fired"); n != 1 {
		t.Fatalf("%d fired changes for the restored alert; want 1: %+v", n, cs)
	}
	if count(cs, fp, "acked") != 1 || count(cs, fp, "assigned") != 1 {
		t.Fatalf("alert changes: %+v", cs)
	}
	for _, ch := range cs {
		if ch.Fingerprint == pv && ch.Deliver {
			t.Fatalf("a silenced alert was delivered: %+v", ch)
		}
	}
}

// A partition moving from one instance to another carries its open
// alerts; the old owner forgets its sites (no evaluation, no clock), the
// new one goes on with the alert without firing it again.
func TestHandover_CarriesOpenAlerts(t *testing.T) {
	const parts = 2
	c := kfakeCluster(t, parts)
	brokers := c.ListenAddrs()
	reg := testFleet(t)
	prod := siteProducer(t, brokers)
	part := kafka.SitePartitioner().ForTopic(kafka.TopicTelemetry)
	partOf := func(site string) int32 { return int32(part.Partition(&kgo.Record{Key: []byte(site)}, parts)) }
	newStores := func() map[int32]*state.Store {
		m := map[int32]*state.Store{}
		for p := range int32(parts) {
			m[p] = state.New(state.Options{})
		}
		for _, s := range reg.Sites() {
			for _, as := range s.Assets {
				m[partOf(s.ID)].AddAsset(s.ID, as.ID, as.Type)
			}
		}
		return m
	}
	now := time.Now()
	a, b := startService(t, reg, brokers, prod), startService(t, reg, brokers, prod)
	sa, sb := newStores(), newStores()
	if err := a.Gained(context.Background(), sa); err != nil {
		t.Fatal(err)
	}
	moved := partOf("PO-001001-1")
	a.apply(sa[moved], "PO-001001-1", "env-1", "temp_c", 35, now)
	fp := engine.Fingerprint("hot", "PO-001001-1", "env-1")
	if _, err := a.Ack(fp, "ops", "", now); err != nil {
		t.Fatal(err)
	}

	a.Released(context.Background(), map[int32]*state.Store{moved: sa[moved]})
	if _, ok := a.Get(fp); ok {
		t.Fatal("the old owner still holds the moved site's alert")
	}
	if err := b.Gained(context.Background(), map[int32]*state.Store{moved: sb[moved]}); err != nil {
		t.Fatal(err)
	}
	got, ok := b.Get(fp)
	if !ok || got.State != engine.StateFiring || got.Ack == nil || got.Occurrence != 1 {
		t.Fatalf("the new owner's alert: %+v (found %v)", got, ok)
	}
	b.apply(sb[moved], "PO-001001-1", "env-1", "temp_c", 36, now.Add(time.Minute))
	// The old owner's clock no longer sees the moved site.
	a.Tick(now.Add(time.Hour))
	if as := a.Alerts(engine.Filter{Site: "PO-001001-1"}); len(as) != 0 {
		t.Fatalf("old owner's alerts of the moved site: %+v", as)
	}
	a.stop()
	b.stop()
	if n := count(alertChanges(t, brokers, 500*time.Millisecond), fp, "fired"); n != 1 {
		t.Fatalf("%d fired changes; want 1", n)
	}
}
