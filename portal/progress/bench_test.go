package progress

import (
	"context"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/state"
)

// BenchmarkBuild is a build of the whole programme (4,800 post offices in
// real comuni, 250 coworking spaces, about 46,000 assets) with its
// history folded, live statuses from a real twin store and the real
// milestone pack: what Run does every BuildEvery. Sub-benchmarks: steady
// (states as the history left them), live (1% of the sites changed since
// the history was read: they are evaluated again), fold (reading a new
// history).
func BenchmarkBuild(b *testing.B) {
	reg := fullFleet(b)
	ms, facts := realPack(b)
	sites := reg.Sites()
	changes, final := rollout(sites, 1)
	st := state.New(state.Options{})
	nAssets := 0
	for _, s := range sites {
		for _, a := range s.Assets {
			st.AddAsset(s.ID, a.ID, a.Type)
			nAssets++
		}
	}
	now := time.Date(2026, 1, 20, 12, 0, 0, 0, time.UTC)
	c, err := newComputer(ms, facts, SupplementaryTargets, SupplementaryFunding, realComuni(b), DefaultDeadline)
	if err != nil {
		b.Fatal(err)
	}
	h := NewHistory(changes)
	f := fold(h, sites, c.set, now, nil)
	states := func(site, asset string) (lifecycle.State, bool) {
		s, ok := final[assetKey{site, asset}]
		return s, ok
	}
	in := buildInput{now: now, sites: sites, state: states, live: StoreLive(st), hist: f}
	b.Run("steady", func(b *testing.B) {
		c.build(in)
		cpu := cpuTime()
		for b.Loop() {
			c.build(in)
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(nAssets), "assets")
	})
	b.Run("live", func(b *testing.B) {
		// 1% of the sites moved one asset since the history was read.
		moved := map[assetKey]lifecycle.State{}
		for i, s := range sites {
			if i%100 == 0 {
				moved[assetKey{s.ID, s.Assets[0].ID}] = lifecycle.Decommissioned
			}
		}
		in := in
		in.state = func(site, asset string) (lifecycle.State, bool) {
			if s, ok := moved[assetKey{site, asset}]; ok {
				return s, true
			}
			return states(site, asset)
		}
		cpu := cpuTime()
		for b.Loop() {
			c.live = map[string]*liveSite{} // every build sees them for the first time
			c.build(in)
		}
		reportCPU(b, cpu)
	})
	b.Run("fold", func(b *testing.B) {
		cpu := cpuTime()
		for b.Loop() {
			fold(NewHistory(changes), sites, c.set, now, nil)
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(len(changes)), "changes")
	})
	b.Run("refold", func(b *testing.B) {
		// A new history with one more change: the other sites are reused.
		more := append(changes[:len(changes):len(changes)], Change{Site: sites[0].ID, Asset: sites[0].Assets[0].ID,
			From: lifecycle.Operational, To: lifecycle.Faulty, At: now})
		cpu := cpuTime()
		for b.Loop() {
			fold(NewHistory(more), sites, c.set, now, f)
		}
		reportCPU(b, cpu)
	})
}

// cpuTime is the process's CPU time (user and system) so far: on a shared
// machine, wall time says more about the neighbours than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since from (GC included).
func reportCPU(b *testing.B, from time.Duration) {
	b.ReportMetric(float64(cpuTime()-from)/float64(time.Millisecond)/float64(b.N), "cpu-ms/op")
}

// BenchmarkHistoryQuery reads the whole programme's lifecycle history
// (about 125,000 changes) from ClickHouse 18.16: the rows the Builder
// streams and folds in Go (stream), against the alternative of one row
// per asset with its first time at each level, aggregated in SQL
// (aggregated), which would lose the order of operational/faulty
// toggles and decommissioning.
func BenchmarkHistoryQuery(b *testing.B) {
	addr := chtest.Shared(b)
	db := chtest.Database(b, addr)
	conn := chtest.Conn(b, addr)
	ctx := context.Background()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	reg := fullFleet(b)
	changes, _ := rollout(reg.Sites(), 1)
	evs := make([]lifecycle.Event, len(changes))
	for i, c := range changes {
		evs[i] = lifecycle.Event{Site: c.Site, Asset: c.Asset, From: c.From, To: c.To, At: c.At, Actor: "bench", Cause: "api"}
	}
	for i := 0; i < len(evs); i += 20000 {
		if err := storage.InsertLifecycle(ctx, conn, db, schema.Legacy, evs[i:min(i+20000, len(evs))]); err != nil {
			b.Fatal(err)
		}
	}
	store, _ := NewClickHouseStore(conn, db, schema.Legacy)
	b.Run("stream", func(b *testing.B) {
		for b.Loop() {
			h, err := store.History(ctx)
			if err != nil || len(h) != len(changes) {
				b.Fatalf("%d rows, %v", len(h), err)
			}
		}
		b.ReportMetric(float64(len(changes)), "rows")
	})
	b.Run("aggregated", func(b *testing.B) {
		t := tsMillis(schema.Legacy)
		q := fmt.Sprintf(`SELECT site, asset,
  minIf(%[1]s, to_state IN ('installed', 'commissioned', 'operational', 'faulty')) AS installed,
  minIf(%[1]s, to_state IN ('commissioned', 'operational', 'faulty')) AS commissioned,
  minIf(%[1]s, to_state = 'operational') AS operational,
  argMax(to_state, %[1]s) AS last
FROM %[2]s.lifecycle_events GROUP BY site, asset`, t, db)
		for b.Loop() {
			rows, err := conn.Query(ctx, q)
			if err != nil {
				b.Fatal(err)
			}
			n := 0
			for rows.Next() {
				var site, asset, last string
				var i, c, o int64
				if err := rows.Scan(&site, &asset, &i, &c, &o, &last); err != nil {
					b.Fatal(err)
				}
				n++
			}
			rows.Close()
		}
	})
}

// BenchmarkEnergyQuery reads a whole month of energy for the whole
// programme from ClickHouse 18.16: 6,000 counters (1,000 PV plants, 5,000
// charging points) with one hourly rollup row each for 30 days, 4.3 M rows.
func BenchmarkEnergyQuery(b *testing.B) {
	addr := chtest.Shared(b)
	db := chtest.Database(b, addr)
	conn := chtest.Conn(b, addr)
	ctx := context.Background()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	from := time.Date(2026, 3, 1, 0, 0, 0, 0, rome)
	const counters, hours = 6000, 30 * 24
	// Counter i: a PV plant if i%6 == 0, else a charging point; its
	// reading rises by i%7 kWh an hour.
	if err := conn.Exec(ctx, fmt.Sprintf(`INSERT INTO %s.telemetry_1h
SELECT concat('PO-', toString(intDiv(number, %[2]d))) AS site,
  if(intDiv(number, %[2]d) %% 6 = 0, 'pv-1', 'evc-1') AS asset,
  if(intDiv(number, %[2]d) %% 6 = 0, 'energy_kwh', 'energy_total_kwh') AS metric,
  toDateTime(%[3]d + (number %% %[2]d) * 3600) AS bucket,
  toFloat64((number %% %[2]d) * (intDiv(number, %[2]d) %% 7)) AS min, min + (intDiv(number, %[2]d) %% 7) AS max,
  0 AS sum, toUInt64(2) AS count, max AS last, toUInt64(0) AS last_ts, toUInt16(0) AS kpart, toUInt64(number) AS upto, toUInt64(0) AS seen
FROM system.numbers LIMIT %[4]d`, db, hours, from.Unix(), counters*hours)); err != nil {
		b.Fatal(err)
	}
	store, _ := NewClickHouseStore(conn, db, schema.Legacy)
	for b.Loop() {
		e, err := store.Energy(ctx, from, from.AddDate(0, 1, 0))
		if err != nil || len(e) != counters {
			b.Fatalf("%d sites, %v", len(e), err)
		}
	}
	b.ReportMetric(counters*hours, "rows")
}
