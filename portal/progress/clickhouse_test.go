package progress

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chdbtest"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

// energyNow is "now" of the energy tests: 3 March 2026, 12:00 in Rome.
var energyNow = time.Date(2026, 3, 3, 11, 0, 0, 0, time.UTC)

// reading is one sample of a counter.
type reading struct {
	site, asset, metric string
	ts                  time.Time
	value               float64
}

// energyReadings are half-hourly counters from the evening of 28 February
// (Rome) to now:
//   - Ussana's PV plant: energy_kwh, produced since local midnight, 2 kWh
//     per half hour from 07:00 to 16:00 UTC: 36 kWh a day, reset at
//     midnight in Rome. Two whole days of March before now, and the
//     morning of the 3rd: 36 + 36 + 16 = 88.
//   - Ussana's charging point: energy_total_kwh, lifetime, 5 kWh per
//     session at 10:00 and 17:00 UTC every day (the 28th's 17:00 session
//     is February's); on 2 March at 12:30 it was replaced, its counter
//     restarting from 0 with nothing lost. Sessions in March before now:
//     1st 10:00, 1st 17:00, 2nd 10:00, 2nd 17:00, 3rd 10:00 = 25 kWh.
func energyReadings() (out []reading, pv, evc float64) {
	day, total := 0.0, 1000.0
	for t := time.Date(2026, 2, 28, 16, 30, 0, 0, time.UTC); !t.After(energyNow); t = t.Add(30 * time.Minute) {
		if l := t.In(rome); l.Hour() == 0 && l.Minute() == 0 {
			day = 0
		}
		if h := t.Hour(); h > 7 || h == 7 && t.Minute() == 30 {
			if h < 16 || h == 16 && t.Minute() == 0 {
				day += 2
			}
		}
		if t.Minute() == 0 && (t.Hour() == 10 || t.Hour() == 17) {
			total += 5
		}
		if t.Equal(time.Date(2026, 3, 2, 12, 30, 0, 0, time.UTC)) {
			total = 0
		}
		out = append(out, reading{"PO-111093-1", "pv-1", pvCounter, t, day},
			reading{"PO-111093-1", "evc-1", evcCounter, t, total})
	}
	return out, 88, 25
}

// energyFleet is smallFleet with a PV plant and a charging point at
// Ussana, in service since February 2023 by the registry (no stored change).
func energyFleet() []*registry.Site {
	sites := smallFleet()[:2]
	for _, id := range []string{"pv-1", "evc-1"} {
		sites[0].Assets = append(sites[0].Assets, &registry.Asset{ID: id, Type: registry.AssetTypeOf(id),
			Lifecycle: lifecycle.Operational, InstalledAt: time.Date(2023, 2, 1, 9, 0, 0, 0, time.UTC)})
	}
	return sites
}

// pipeline is a Kafka bus and a ClickHouse 18.16 database filled by the
// platform's own writers.
type pipeline struct {
	conn driver.Conn
	db   string
	prod *kgo.Client
}

func newPipeline(t *testing.T) *pipeline {
	t.Helper()
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	conn := chtest.Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	bus, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(bus.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(bus.Addrs()...), kgo.RecordPartitioner(kafka.SitePartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	p := &pipeline{conn: conn, db: db, prod: prod}
	f, err := schema.Detect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	lw, err := storage.NewLifecycleWriter(storage.LifecycleWriterOptions{Brokers: bus.Addrs(), Conn: conn, Database: db, Flavor: f})
	if err != nil {
		t.Fatal(err)
	}
	w, err := storage.NewWriter(storage.WriterOptions{Brokers: bus.Addrs(), Conn: conn, Database: db, Flavor: f,
		RollupEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run, stop := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- lw.Run(run) }()
	go func() { done <- w.Run(run) }()
	t.Cleanup(func() {
		stop()
		for range 2 {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("writer: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("a writer did not stop")
			}
		}
	})
	return p
}

// lifecycle produces changes to polis.lifecycle.v1 as the twin does.
func (p *pipeline) lifecycle(t *testing.T, changes []Change) {
	t.Helper()
	var rs []*kgo.Record
	for _, c := range changes {
		b, err := json.Marshal(lifecycle.Event{Site: c.Site, Asset: c.Asset, From: c.From, To: c.To, At: c.At, Actor: "test", Cause: lifecycle.CauseAPI})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, &kgo.Record{Topic: kafka.TopicLifecycle, Key: []byte(c.Site + "/" + c.Asset), Value: b})
	}
	p.produce(t, rs)
}

// telemetry produces readings to polis.telemetry as ingest does.
func (p *pipeline) telemetry(t *testing.T, rs []reading) {
	t.Helper()
	var out []*kgo.Record
	for _, r := range rs {
		b, err := record.Marshal(&record.Record{Kind: record.KindTelemetry, Site: r.site, Asset: r.asset,
			Received: r.ts.UnixMilli() + 50, Points: []record.Point{{Metric: r.metric, TS: r.ts.UnixMilli(), Value: r.value}}})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, &kgo.Record{Topic: kafka.TopicTelemetry, Key: []byte(r.site), Value: b})
	}
	p.produce(t, out)
}

func (p *pipeline) produce(t *testing.T, rs []*kgo.Record) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.prod.ProduceSync(ctx, rs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

// The Builder on Debian's ClickHouse 18.16, its tables filled by the
// platform's writers from Kafka: dates from the stored history, the
// month's energy, and Run picking up a change stored later.
func TestBuilder_ClickHouse(t *testing.T) {
	p := newPipeline(t)
	_, _, changes := historyCase(t)
	sites := energyFleet()
	reg := registry.New()
	if err := reg.Add(sites...); err != nil {
		t.Fatal(err)
	}
	readings, wantPV, wantEVC := energyReadings()
	p.lifecycle(t, changes)
	p.telemetry(t, readings)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	f, err := schema.Detect(ctx, p.conn)
	if err != nil || f != schema.Legacy {
		t.Fatalf("flavor %v, %v: this test is for ClickHouse 18.16", f, err)
	}
	store, err := NewClickHouseStore(p.conn, p.db, f)
	if err != nil {
		t.Fatal(err)
	}
	distinct := NewHistory(changes).Len()
	testutil.Eventually(t, time.Minute, 100*time.Millisecond, func() bool {
		v, err := store.HistoryVersion(ctx)
		return err == nil && strings.HasPrefix(v, fmt.Sprint(len(changes))+"/")
	}, "lifecycle_events never had the %d rows produced", len(changes))
	testutil.Eventually(t, time.Minute, 100*time.Millisecond, func() bool {
		e, err := store.Energy(ctx, monthStart(energyNow), energyNow.Add(time.Hour))
		return err == nil && math.Abs(e["PO-111093-1"].PVkWh-wantPV) < 1e-6 && math.Abs(e["PO-111093-1"].EVCkWh-wantEVC) < 1e-6
	}, "the month's energy never became PV %v kWh, EVC %v kWh", wantPV, wantEVC)

	// The lifecycle tracker, seeded from the registry and fed the log, as
	// the platform runs it.
	tracker := lifecycle.NewTracker(lifecycle.Options{LogFirst: true})
	if err := reg.SeedTracker(tracker); err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		tracker.Apply(lifecycle.Event{Site: c.Site, Asset: c.Asset, From: c.From, To: c.To, At: c.At})
	}
	ms, _ := milestone.Load("small.yaml", []byte(smallPack))
	now := energyNow
	b, err := NewBuilder(Options{Registry: reg, Lifecycle: tracker.State, Milestones: ms, Store: store,
		Supplementary: []Supplementary{}, SupplementaryFunding: []Funding{},
		Now: func() time.Time { return now }, BuildEvery: 20 * time.Millisecond, HistoryEvery: 20 * time.Millisecond,
		EnergyEvery: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if s := b.Snapshot(); s == nil || !s.HistoryAt.IsZero() || s.Office("PO-111093-1").PVkWhMonth != -1 {
		t.Fatal("the first snapshot must exist, without history or energy")
	}
	if err := b.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	s := b.Snapshot()
	if !s.HistoryAt.Equal(now) || !s.EnergyAt.Equal(now) {
		t.Errorf("history at %v, energy at %v; want %v", s.HistoryAt, s.EnergyAt, now)
	}
	us := s.Office("PO-111093-1")
	if us.PVkWhMonth != wantPV || us.EVCkWhMonth != wantEVC {
		t.Errorf("Ussana this month: PV %v kWh, EVC %v kWh; want %v, %v", us.PVkWhMonth, us.EVCkWhMonth, wantPV, wantEVC)
	}
	if ge := s.Office("PO-111027-1"); ge.PVkWhMonth != 0 || ge.EVCkWhMonth != 0 {
		t.Errorf("Gesturi has no plant: %v, %v", ge.PVkWhMonth, ge.EVCkWhMonth)
	}
	// The dates come from the stored rows, to the millisecond (18.16
	// keeps them in ts_ms).
	one := targetByID(t, s, "offices_completed_1_2023")
	if !one.AchievedOn.Equal(at("2023-03-01T12:00:00Z")) || !us.Assets[1].InstalledOn.Equal(at("2023-01-12T22:30:00Z")) {
		t.Errorf("achieved %v, ATM installed %v", one.AchievedOn, us.Assets[1].InstalledOn)
	}
	if got := b.hist.Load().changes; got != distinct {
		t.Errorf("%d changes folded, want %d", got, distinct)
	}

	// Run reads a change stored later, with its stored time.
	done := make(chan error, 1)
	rctx, stop := context.WithCancel(ctx)
	go func() { done <- b.Run(rctx) }()
	later := at("2026-03-02T09:15:00.250Z")
	var more []Change
	for _, a := range []string{"atm-1", "totem-1", "gw-1"} {
		more = append(more, Change{Site: "PO-111027-1", Asset: a, From: lifecycle.Installed, To: lifecycle.Commissioned, At: later})
	}
	for _, c := range more {
		tracker.Apply(lifecycle.Event{Site: c.Site, Asset: c.Asset, From: c.From, To: c.To, At: c.At})
	}
	p.lifecycle(t, more)
	testutil.Eventually(t, time.Minute, 20*time.Millisecond, func() bool {
		two := targetByID(t, b.Snapshot(), "offices_completed_2")
		return two.Current == 2 && two.AchievedOn.Equal(later)
	}, "Run never showed the target achieved at the stored time %v", later)
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return")
	}
}

// ClickHouse unreachable: the Builder still serves from the registry and
// the tracker, and Refresh says why the rest is missing.
func TestBuilder_NoClickHouse(t *testing.T) {
	reg := registry.New()
	if err := reg.Add(smallFleet()...); err != nil {
		t.Fatal(err)
	}
	conn := chtest.Conn(t, "127.0.0.1:1") // nothing listens there
	store, err := NewClickHouseStore(conn, "polis", schema.Legacy)
	if err != nil {
		t.Fatal(err)
	}
	ms, _ := milestone.Load("small.yaml", []byte(smallPack))
	b, err := NewBuilder(Options{Registry: reg, Milestones: ms, Store: store, QueryTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := b.Refresh(ctx); err == nil || !strings.Contains(err.Error(), "lifecycle history") || !strings.Contains(err.Error(), "energy") {
		t.Errorf("Refresh = %v, want both reads to fail", err)
	}
	s := b.Snapshot()
	if s.Italy.Offices != 2 || !s.HistoryAt.IsZero() || !s.EnergyAt.IsZero() || s.Office("PO-111093-1").PVkWhMonth != -1 {
		t.Errorf("snapshot without ClickHouse: %+v", s.Italy)
	}
	if _, err := NewBuilder(Options{}); err == nil {
		t.Error("a builder without registry")
	}
	if _, err := NewClickHouseStore(conn, "bad-name", schema.Legacy); err == nil {
		t.Error("a bad database name is accepted")
	}
}

// The same queries on current ClickHouse (chDB), over rows in the columns
// the writers insert.
func TestQueries_Modern(t *testing.T) {
	s := chdbtest.Open(t)
	db := schema.DefaultDatabase
	s.Exec(t, schema.Statements(schema.Modern, db, schema.Options{})...)
	_, _, changes := historyCase(t)
	var rows []string
	for _, c := range changes {
		rows = append(rows, fmt.Sprintf("('%s', '%s', '%s', '%s', toDateTime64('%s', 3, 'UTC'), 'test', 'api')",
			c.Site, c.Asset, c.From, c.To, c.At.UTC().Format("2006-01-02 15:04:05.000")))
	}
	s.Exec(t, "INSERT INTO "+db+"."+schema.TableLifecycle+" (site, asset, from_state, to_state, ts, actor, cause) VALUES "+strings.Join(rows, ", "))

	// The hourly rollup as the writer keeps it: min, max, last per hour.
	readings, wantPV, wantEVC := energyReadings()
	type key struct {
		asset, metric string
		bucket        int64
	}
	agg := map[key][3]float64{} // min, max, last
	var order []key
	for _, r := range readings {
		k := key{r.asset, r.metric, r.ts.Truncate(time.Hour).Unix()}
		a, ok := agg[k]
		if !ok {
			a = [3]float64{r.value, r.value, r.value}
			order = append(order, k)
		}
		a[0], a[1], a[2] = math.Min(a[0], r.value), math.Max(a[1], r.value), r.value
		agg[k] = a
	}
	rows = rows[:0]
	for i, k := range order {
		a := agg[k]
		rows = append(rows, fmt.Sprintf("('PO-111093-1', '%s', '%s', toDateTime(%d, 'UTC'), %v, %v, 0, 2, %v, toDateTime64(%d, 3, 'UTC'), 0, %d, 0)",
			k.asset, k.metric, k.bucket, a[0], a[1], a[2], k.bucket+1800, i+1))
	}
	s.Exec(t, "INSERT INTO "+db+"."+schema.TableTelemetry1h+
		" (site, asset, metric, bucket, min, max, sum, count, last, last_ts, kpart, upto, seen) VALUES "+strings.Join(rows, ", "))

	got, err := s.Rows(HistoryVersionSQL(db, schema.Modern))
	if err != nil {
		t.Fatal(err)
	}
	// One INSERT with a duplicate row: current ClickHouse collapses it
	// on insert (optimize_on_insert), 18.16 on a later merge.
	distinct := int64(NewHistory(changes).Len())
	if n := got[0].Int("n"); n != distinct && n != int64(len(changes)) || got[0].Int("newest") != at("2024-02-11T09:00:00Z").UnixMilli() {
		t.Errorf("history version %v", got)
	}
	hrows, err := s.Rows(HistorySQL(db, schema.Modern))
	if err != nil {
		t.Fatal(err)
	}
	var back []Change
	for _, r := range hrows {
		back = append(back, Change{Site: r.String("site"), Asset: r.String("asset"), From: lifecycle.State(r.String("from_state")),
			To: lifecycle.State(r.String("to_state")), At: time.UnixMilli(r.Int("t")).UTC()})
	}
	if a, b := NewHistory(back), NewHistory(changes); a.Len() != b.Len() || fmt.Sprint(a.steps) != fmt.Sprint(b.steps) {
		t.Errorf("history read back differs:\n%v\nwant\n%v", a.steps, b.steps)
	}
	erows, err := s.Rows(EnergySQL(db, monthStart(energyNow), energyNow.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	var pv, evc float64
	for _, r := range erows {
		switch r.String("asset") {
		case "pv-1":
			pv += r.Float("kwh")
		case "evc-1":
			evc += r.Float("kwh")
		}
	}
	if pv != wantPV || evc != wantEVC {
		t.Errorf("energy on current ClickHouse: PV %v, EVC %v; want %v, %v", pv, evc, wantPV, wantEVC)
	}
}
