package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

const site1 = "PO-001002-1"

var t0 = time.Date(2026, 6, 15, 10, 0, 0, 0, time.UTC)

func ms(d time.Duration) int64 { return t0.Add(d).UnixMilli() }

func tel(asset string, ts, recv time.Duration, kv ...any) *record.Record {
	r := &record.Record{Kind: record.KindTelemetry, Site: site1, Asset: asset, Received: ms(recv)}
	for i := 0; i < len(kv); i += 2 {
		r.Points = append(r.Points, record.Point{Metric: kv[i].(string), TS: ms(ts), Value: toF(kv[i+1])})
	}
	return r
}

func toF(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic("bad value")
}

func status(asset, st string, ts time.Duration) *record.Record {
	return &record.Record{Kind: record.KindStatus, Site: site1, Asset: asset, Status: st, TS: ms(ts), Received: ms(ts)}
}

func reported(asset string, ts time.Duration, body string) *record.Record {
	return &record.Record{Kind: record.KindReported, Site: site1, Asset: asset, TS: ms(ts), Received: ms(ts), Body: json.RawMessage(body)}
}

func newTestStore() *Store {
	s := New(Options{Location: rome})
	for _, typ := range allTypes {
		s.AddAsset(site1, typ+"-1", typ)
	}
	return s
}

func TestApply_NewestSourceTimeWins(t *testing.T) {
	s := newTestStore()
	f := func(r *record.Record, wantChanged bool, wantVal float64, wantTS time.Duration, wantVer uint64) {
		t.Helper()
		ch := s.Apply(r)
		if ch.Changed() != wantChanged {
			t.Fatalf("unexpected change; got %v; want %v (%+v)", ch.Changed(), wantChanged, ch)
		}
		v, _ := s.Asset(site1, "env-1", t0)
		m := v.Metrics["temp_c"]
		if m.Value != wantVal || !m.TS.Equal(t0.Add(wantTS)) || v.Version != wantVer || m.Version != wantVer {
			t.Fatalf("unexpected temp_c; got %v at %v v%d/%d; want %v at %v v%d", m.Value, m.TS, m.Version, v.Version, wantVal, t0.Add(wantTS), wantVer)
		}
	}
	f(tel("env-1", time.Minute, time.Minute, "temp_c", 21.0), true, 21, time.Minute, 1)
	// older point arriving later does not overwrite
	f(tel("env-1", 0, 2*time.Minute, "temp_c", 19.0), false, 21, time.Minute, 1)
	// exact duplicate: no change, no version bump
	f(tel("env-1", time.Minute, 3*time.Minute, "temp_c", 21.0), false, 21, time.Minute, 1)
	// equal time, different value: the larger wins, whatever the order
	f(tel("env-1", time.Minute, 4*time.Minute, "temp_c", 20.0), false, 21, time.Minute, 1)
	f(tel("env-1", time.Minute, 5*time.Minute, "temp_c", 22.0), true, 22, time.Minute, 2)
	f(tel("env-1", 2*time.Minute, 5*time.Minute, "temp_c", 18.0), true, 18, 2*time.Minute, 3)
	// a duplicate that arrived earlier lowers the arrival time, without a new version
	s.Apply(tel("env-1", 2*time.Minute, 2*time.Minute, "temp_c", 18.0))
	v, _ := s.Asset(site1, "env-1", t0)
	if m := v.Metrics["temp_c"]; !m.Arrival.Equal(t0.Add(2*time.Minute)) || m.Version != 3 {
		t.Fatalf("unexpected arrival; got %v v%d; want %v v3", m.Arrival, m.Version, t0.Add(2*time.Minute))
	}
}

func TestApply_ChangePoints(t *testing.T) {
	s := newTestStore()
	s.Apply(tel("env-1", time.Minute, time.Minute, "temp_c", 21.0))
	ch := s.Apply(tel("env-1", time.Minute, time.Minute, "temp_c", 21.0, "co2_ppm", 500, "humidity_pct", 40))
	if ch.Points != 0b110 || !ch.Known || ch.Version != 2 {
		t.Fatalf("unexpected change; got %+v; want points 0b110 version 2", ch)
	}
	if ch := s.Apply(tel("nope-1", 0, 0, "temp_c", 1)); ch.Known || s.Stats().Unknown != 1 {
		t.Fatalf("unexpected change for unknown asset; got %+v, stats %+v", ch, s.Stats())
	}
}

func TestApply_AllocsTelemetry(t *testing.T) {
	s := newTestStore()
	r := tel("evc-1", 0, 0, "connector_state", 0, "power_kw", 0, "energy_kwh", 0)
	s.Apply(r)
	n := testing.AllocsPerRun(1000, func() {
		for i := range r.Points {
			r.Points[i].TS += 1000
			r.Points[i].Value++
		}
		s.Apply(r)
	})
	if n != 0 {
		t.Fatalf("unexpected allocations per telemetry Apply; got %v; want 0", n)
	}
}

func TestApply_Reported(t *testing.T) {
	s := newTestStore()
	ch := s.Apply(reported("pv-1", time.Minute, `{"fw": "1.0", "limit_kw": 10}`))
	if len(ch.Properties) != 2 {
		t.Fatalf("unexpected properties; got %v", ch.Properties)
	}
	if ch := s.Apply(reported("pv-1", 0, `{"fw":"0.9"}`)); ch.Changed() {
		t.Fatalf("older reported state changed %v", ch.Properties)
	}
	if ch := s.Apply(reported("pv-1", time.Minute, `{"fw":"1.0"}`)); ch.Changed() {
		t.Fatalf("duplicate reported state changed %v", ch.Properties)
	}
	s.Apply(reported("pv-1", 2*time.Minute, `{"fw":"1.1"}`))
	v, _ := s.Asset(site1, "pv-1", t0)
	if got := string(v.Reported["fw"].Value); got != `"1.1"` || string(v.Reported["limit_kw"].Value) != "10" {
		t.Fatalf("unexpected reported; got %+v", v.Reported)
	}
	if ch := s.Apply(reported("pv-1", 3*time.Minute, `[1,2]`)); ch.Changed() || s.Stats().Invalid != 1 {
		t.Fatalf("non-object body accepted; stats %+v", s.Stats())
	}
}

func TestDesired_Lifecycle(t *testing.T) {
	s := newTestStore()
	set := func(props string, at time.Duration, ifv uint64) (uint64, error) {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(props), &m); err != nil {
			t.Fatal(err)
		}
		return s.SetDesired(site1, "pv-1", m, t0.Add(at), ifv)
	}
	delta := func(want string) {
		t.Helper()
		d, ok := s.Delta(site1, "pv-1")
		b, _ := json.Marshal(d)
		if !ok || string(b) != want {
			t.Fatalf("unexpected delta; got %s; want %s", b, want)
		}
	}
	s.Apply(reported("pv-1", 0, `{"limit_kw": 10, "mode": "auto"}`))
	delta(`{}`)
	v, err := set(`{"limit_kw": 8}`, time.Minute, 0)
	if err != nil || v != 1 {
		t.Fatalf("unexpected SetDesired; got %d, %v; want 1", v, err)
	}
	delta(`{"limit_kw":8}`)
	if _, err := set(`{"limit_kw": 7}`, time.Minute, 5); !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("unexpected error; got %v; want ErrVersionMismatch", err)
	}
	if v, err = set(`{"limit_kw": 7, "mode": "eco"}`, 2*time.Minute, 1); err != nil || v != 2 {
		t.Fatalf("unexpected SetDesired; got %d, %v; want 2", v, err)
	}
	delta(`{"limit_kw":7,"mode":"eco"}`)
	// the device confirms one property
	s.Apply(reported("pv-1", 3*time.Minute, `{"limit_kw": 7}`))
	delta(`{"mode":"eco"}`)
	// a report older than the desire, even with the same value, does not close it
	s.Apply(reported("pv-1", time.Minute+30*time.Second, `{"mode": "eco"}`))
	delta(`{"mode":"eco"}`)
	s.Apply(reported("pv-1", 4*time.Minute, `{"mode": "eco"}`))
	delta(`{}`)
	// null removes a desired property
	if v, err = set(`{"mode": null}`, 5*time.Minute, 2); err != nil || v != 3 {
		t.Fatalf("unexpected SetDesired; got %d, %v; want 3", v, err)
	}
	av, _ := s.Asset(site1, "pv-1", t0)
	if _, ok := av.Desired["mode"]; ok || av.DesiredVersion != 3 || len(av.Desired) != 1 {
		t.Fatalf("unexpected desired; got %+v v%d", av.Desired, av.DesiredVersion)
	}
	if _, err := s.SetDesired(site1, "nope-1", nil, t0, 0); !errors.Is(err, ErrUnknownAsset) {
		t.Fatalf("unexpected error; got %v; want ErrUnknownAsset", err)
	}
}

func TestStatus_Derivation(t *testing.T) {
	min := func(n int) time.Duration { return time.Duration(n) * time.Minute }
	f := func(name, asset string, recs []*record.Record, now time.Duration, want Status) {
		t.Helper()
		s := newTestStore()
		for _, r := range recs {
			s.Apply(r)
		}
		v, _ := s.Asset(site1, asset, t0.Add(now))
		if v.Status != want {
			t.Fatalf("%s: unexpected status; got %v; want %v", name, v.Status, want)
		}
	}
	f("never heard", "env-1", nil, 0, StatusUnknown)
	f("online", "env-1", []*record.Record{status("env-1", "online", 0)}, 0, StatusOnline)
	f("data without status", "env-1", []*record.Record{tel("env-1", 0, 0, "temp_c", 20)}, min(1), StatusOnline)
	f("will", "env-1", []*record.Record{status("env-1", "online", 0), status("env-1", "offline", min(1))}, min(1), StatusOffline)
	f("will arrives first", "env-1", []*record.Record{status("env-1", "offline", min(1)), status("env-1", "online", 0)}, min(1), StatusOffline)
	f("same-time tie is offline", "env-1", []*record.Record{status("env-1", "online", min(1)), status("env-1", "offline", min(1))}, min(1), StatusOffline)
	f("data after offline", "env-1", []*record.Record{status("env-1", "offline", 0), tel("env-1", min(1), min(1), "temp_c", 20)}, min(1), StatusOnline)
	// env: 1 min interval, stale after 3
	f("fresh env", "env-1", []*record.Record{tel("env-1", 0, 0, "temp_c", 20)}, min(3), StatusOnline)
	f("stale env", "env-1", []*record.Record{tel("env-1", 0, 0, "temp_c", 20)}, min(3)+time.Millisecond, StatusStale)
	f("atm 5 min interval", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 1)}, min(14), StatusOnline)
	f("stale atm", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 1)}, min(16), StatusStale)
	f("offline wins over stale", "atm-1", []*record.Record{status("atm-1", "offline", 0)}, min(60), StatusOffline)
	f("atm unavailable", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 0)}, 0, StatusFault)
	f("atm back", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 0), tel("atm-1", min(1), min(1), "available", 1)}, min(1), StatusOnline)
	f("stale fault is stale", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 0)}, min(16), StatusStale)
	f("pv inverter fault", "pv-1", []*record.Record{tel("pv-1", 0, 0, "inverter_state", 2)}, 0, StatusFault)
	f("pv standby", "pv-1", []*record.Record{tel("pv-1", 0, 0, "inverter_state", 0)}, 0, StatusOnline)
	f("evc faulted", "evc-1", []*record.Record{tel("evc-1", 0, 0, "connector_state", 3)}, 0, StatusFault)
	f("evc charging", "evc-1", []*record.Record{tel("evc-1", 0, 0, "connector_state", 1)}, 0, StatusOnline)
	f("totem down", "totem-1", []*record.Record{tel("totem-1", 0, 0, "online", 0)}, 0, StatusFault)
	f("generic fault", "meter-1", []*record.Record{tel("meter-1", 0, 0, "fault", 1)}, 0, StatusFault)
	f("offline fault is offline", "atm-1", []*record.Record{tel("atm-1", 0, 0, "available", 0), status("atm-1", "offline", min(1))}, min(1), StatusOffline)
}

func TestOptions_StaleAfter(t *testing.T) {
	s := New(Options{ExpectedInterval: func(string) time.Duration { return time.Hour }, StaleAfter: 2, Location: rome})
	s.AddAsset(site1, "env-1", "env")
	s.Apply(tel("env-1", 0, 0, "temp_c", 20))
	for _, c := range []struct {
		now  time.Duration
		want Status
	}{{119 * time.Minute, StatusOnline}, {121 * time.Minute, StatusStale}} {
		if v, _ := s.Asset(site1, "env-1", t0.Add(c.now)); v.Status != c.want {
			t.Fatalf("unexpected status at %v; got %v; want %v", c.now, v.Status, c.want)
		}
	}
}

func TestSite_Aggregates(t *testing.T) {
	s := newTestStore()
	s.AddAsset(site1, "evc-2", "evc")
	s.AddAsset(site1, "env-2", "env")
	s.AddAsset(site1, "pv-2", "pv")
	// 23:50 and 00:10 in Rome (UTC+2 in June)
	before := time.Date(2026, 6, 15, 21, 50, 0, 0, time.UTC)
	after := before.Add(20 * time.Minute)
	at := func(asset string, ts time.Time, kv ...any) *record.Record {
		r := &record.Record{Kind: record.KindTelemetry, Site: site1, Asset: asset, Received: ts.UnixMilli()}
		for i := 0; i < len(kv); i += 2 {
			r.Points = append(r.Points, record.Point{Metric: kv[i].(string), TS: ts.UnixMilli(), Value: toF(kv[i+1])})
		}
		return r
	}
	for _, r := range []*record.Record{
		at("evc-1", before, "connector_state", 0),
		at("evc-2", before, "connector_state", 1),
		at("locker-1", before, "free_count", 12, "occupied_count", 24),
		at("atm-1", before, "available", 1),
		at("totem-1", before, "online", 1),
		at("pv-1", before, "power_kw", 0.5, "energy_kwh", 40),
		at("pv-2", before, "power_kw", 0.25, "energy_kwh", 30),
		at("env-1", before, "temp_c", 21, "co2_ppm", 600, "humidity_pct", 50),
		at("env-2", before, "temp_c", 23, "co2_ppm", 800),
		at("desk-1", before, "occupied", 1),
		at("room-1", before, "occupied", 0),
	} {
		s.Apply(r)
	}
	v, _ := s.Site(site1, before)
	if v.ChargersFree != 1 || v.Chargers != 2 || v.LockerFree != 12 || v.ATMsUp != 1 || v.TotemsUp != 1 ||
		v.PVPowerKW != 0.75 || v.PVEnergyTodayKWh != 70 || v.TempC != 22 || v.CO2ppm != 700 || v.CO2N != 2 ||
		v.HumidityPct != 50 || v.HumidityN != 1 || v.DesksOccupied != 1 || v.RoomsOccupied != 0 {
		t.Fatalf("unexpected site view; got %+v", v)
	}
	// after midnight, yesterday's energy is not today's
	ch := s.Apply(at("pv-1", after, "power_kw", 0, "energy_kwh", 0.5))
	if ch.Aggregates&AggPVEnergy == 0 || ch.Aggregates&AggPVPower == 0 {
		t.Fatalf("unexpected aggregates touched; got %b", ch.Aggregates)
	}
	v, _ = s.Site(site1, after)
	if v.PVEnergyTodayKWh != 0.5 {
		t.Fatalf("unexpected energy today; got %v; want 0.5", v.PVEnergyTodayKWh)
	}
	// a late point of yesterday does not touch today
	s.Apply(at("pv-2", before.Add(time.Minute), "energy_kwh", 30.5))
	if v, _ = s.Site(site1, after); v.PVEnergyTodayKWh != 0.5 {
		t.Fatalf("unexpected energy today; got %v; want 0.5", v.PVEnergyTodayKWh)
	}
	// ATM fault and a charger going offline
	s.Apply(at("atm-1", after, "available", 0))
	s.Apply(&record.Record{Kind: record.KindStatus, Site: site1, Asset: "evc-1", Status: "offline", TS: after.UnixMilli(), Received: after.UnixMilli()})
	v, _ = s.Site(site1, after)
	if v.ATMsUp != 0 || v.ChargersFree != 0 || v.ByStatus[StatusFault] != 1 || v.ByStatus[StatusOffline] != 1 {
		t.Fatalf("unexpected site view; got %+v", v)
	}
	// an hour later everything that did not speak is stale and drops out
	v, _ = s.Site(site1, after.Add(time.Hour))
	if v.ByStatus[StatusStale] != 10 || v.TempN != 0 || v.PVPowerKW != 0 || v.PVEnergyTodayKWh != 0.5 || v.LockerFree != 0 {
		t.Fatalf("unexpected stale site view; got %+v", v)
	}
}

// TestApply_ShuffledReplay is the test: the same records applied in
// order and in several shuffled orders give the same state.
func TestApply_ShuffledReplay(t *testing.T) {
	t.Run("midnight", func(t *testing.T) { testShuffledReplay(t, time.Date(2026, 6, 15, 23, 0, 0, 0, rome)) })
	t.Run("noon", func(t *testing.T) { testShuffledReplay(t, time.Date(2026, 6, 15, 12, 0, 0, 0, rome)) })
}

func testShuffledReplay(t *testing.T, start time.Time) {
	fleet := genFleet(12)
	recs := genStream(fleet, 1, start, 90)
	end := start.Add(92 * time.Minute)
	a := newFleetStore(fleet)
	for _, r := range recs {
		a.Apply(r)
	}
	checkAggregates(t, a, fleet, end)
	checkAggregates(t, a, fleet, start.Add(30*time.Minute))
	// the stream must exercise what it is meant to
	var total SiteView
	for _, id := range a.Sites() {
		v, _ := a.Site(id, end)
		for i, n := range v.ByStatus {
			total.ByStatus[i] += n
		}
		total.ChargersFree += v.ChargersFree
		total.DesksOccupied += v.DesksOccupied
		total.CO2N += v.CO2N
		total.PVEnergyTodayKWh += v.PVEnergyTodayKWh
	}
	if total.ByStatus[StatusOffline] == 0 || total.ByStatus[StatusFault] == 0 || total.ByStatus[StatusOnline] == 0 ||
		total.DesksOccupied == 0 || total.CO2N == 0 || start.Hour() == 12 && total.PVEnergyTodayKWh == 0 {
		t.Fatalf("stream too tame: %+v", total)
	}
	for seed := uint64(1); seed <= 4; seed++ {
		shuffled := append([]*record.Record(nil), recs...)
		rand.New(rand.NewPCG(seed, 99)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		b := newFleetStore(fleet)
		for _, r := range shuffled {
			b.Apply(r)
		}
		equalStores(t, fleet, a, b, end)
		equalStores(t, fleet, a, b, end.Add(10*time.Minute))
		checkAggregates(t, b, fleet, end)
	}
	st := a.Stats()
	if st.Assets != len(fleet) || st.Applied != uint64(len(recs)) || st.Unknown != 0 {
		t.Fatalf("unexpected stats; got %+v; want %d assets, %d applied", st, len(fleet), len(recs))
	}
}

// TestSite_AggregatesProperty applies random records (random types, values,
// times, statuses) and checks the incremental aggregates against a
// recomputation after every few records.
func TestSite_AggregatesProperty(t *testing.T) {
	fleet := genFleet(3)
	metrics := []string{"connector_state", "free_count", "available", "online", "inverter_state", "power_kw",
		"energy_kwh", "temp_c", "humidity_pct", "co2_ppm", "occupied", "fault"}
	for seed := uint64(1); seed <= 5; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		s := newFleetStore(fleet)
		base := time.Date(2026, 3, 29, 0, 30, 0, 0, rome) // DST change day
		for i := range 3000 {
			ra := fleet[rng.IntN(len(fleet))]
			ts := base.Add(time.Duration(rng.IntN(240)) * time.Minute).UnixMilli()
			r := &record.Record{Site: ra.site, Asset: ra.asset, Received: ts + int64(rng.IntN(5000))}
			switch rng.IntN(10) {
			case 0:
				r.Kind, r.TS = record.KindStatus, ts
				r.Status = []string{"online", "offline"}[rng.IntN(2)]
			case 1:
				r.Kind, r.TS, r.Event = record.KindEvent, ts, "x"
			default:
				r.Kind = record.KindTelemetry
				for range 1 + rng.IntN(3) {
					r.Points = append(r.Points, record.Point{Metric: metrics[rng.IntN(len(metrics))], TS: ts, Value: float64(rng.IntN(5))})
				}
			}
			s.Apply(r)
			if i%100 == 0 {
				checkAggregates(t, s, fleet, base.Add(time.Duration(rng.IntN(300))*time.Minute))
			}
		}
		checkAggregates(t, s, fleet, base.Add(4*time.Hour))
	}
}

func TestAddAsset_TypeChange(t *testing.T) {
	s := newTestStore()
	s.Apply(tel("atm-1", 0, 0, "available", 1))
	s.AddAsset(site1, "atm-1", "totem") // re-registered as something else
	v, _ := s.Site(site1, t0)
	if v.ATMs != 0 || v.ATMsUp != 0 || v.Totems != 2 {
		t.Fatalf("unexpected site view; got %+v", v)
	}
}

func TestSnapshot_RoundTrip(t *testing.T) {
	fleet := genFleet(4)
	start := time.Date(2026, 6, 15, 12, 0, 0, 0, rome)
	a := newFleetStore(fleet)
	for _, r := range genStream(fleet, 2, start, 30) {
		a.Apply(r)
	}
	if _, err := a.SetDesired(fleet[5].site, fleet[5].asset, map[string]json.RawMessage{"limit_kw": json.RawMessage("7")}, start, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := a.Snapshot(&buf); err != nil {
		t.Fatalf("cannot snapshot: %v", err)
	}
	b := New(Options{Location: rome})
	b.AddAsset(site1, "junk-1", "junk") // replaced by Restore
	if err := b.Restore(bytes.NewReader(buf.Bytes())); err != nil {
		t.Fatalf("cannot restore: %v", err)
	}
	for _, now := range []time.Time{start.Add(31 * time.Minute), start.Add(2 * time.Hour)} {
		for _, ra := range fleet {
			va, _ := a.Asset(ra.site, ra.asset, now)
			vb, ok := b.Asset(ra.site, ra.asset, now)
			if !ok || !reflect.DeepEqual(va, vb) {
				t.Fatalf("unexpected restored asset %s/%s;\ngot  %+v\nwant %+v", ra.site, ra.asset, vb, va)
			}
		}
		for _, id := range a.Sites() {
			sa, _ := a.Site(id, now)
			sb, _ := b.Site(id, now)
			if sa != sb {
				t.Fatalf("unexpected restored site %s;\ngot  %+v\nwant %+v", id, sb, sa)
			}
		}
	}
	if _, ok := b.Asset(site1, "junk-1", start); ok || b.Stats().Assets != len(fleet) {
		t.Fatalf("restore kept old state: %+v", b.Stats())
	}
	// every truncation and a flipped byte are refused, and leave the store as it was
	raw := buf.Bytes()
	for _, n := range []int{0, 5, len(raw) / 2, len(raw) - 1} {
		if err := b.Restore(bytes.NewReader(raw[:n])); !errors.Is(err, ErrSnapshot) {
			t.Fatalf("unexpected error for %d of %d bytes; got %v; want ErrSnapshot", n, len(raw), err)
		}
	}
	bad := append([]byte(nil), raw...)
	bad[len(bad)/3] ^= 0x40
	if err := b.Restore(bytes.NewReader(bad)); err == nil {
		t.Fatal("corrupted snapshot restored")
	}
	if b.Stats().Assets != len(fleet) {
		t.Fatalf("failed restore changed the store: %+v", b.Stats())
	}
}

func TestApply_StatusChange(t *testing.T) {
	s := newTestStore()
	ch := s.Apply(status("evc-1", "online", 0))
	if ch.OldStatus != StatusUnknown || ch.NewStatus != StatusOnline || ch.Aggregates&AggStatus == 0 {
		t.Fatalf("unexpected change; got %+v", ch)
	}
	s.Apply(tel("evc-1", 0, 0, "connector_state", 0))
	ch = s.Apply(status("evc-1", "offline", time.Minute))
	if ch.OldStatus != StatusOnline || ch.NewStatus != StatusOffline || ch.Aggregates != AggStatus|AggChargersFree {
		t.Fatalf("unexpected change; got %+v", ch)
	}
	if ch = s.Apply(status("evc-1", "online", 2*time.Minute)); !ch.Connection || ch.NewStatus != StatusOnline {
		t.Fatalf("unexpected change; got %+v", ch)
	}
	if ch = s.Apply(status("evc-1", "online", 30*time.Second)); ch.Changed() {
		t.Fatalf("older status changed state: %+v", ch)
	}
}

// TestStore_Concurrent runs writers, readers and snapshots together for the
// race detector, then checks the aggregates.
func TestStore_Concurrent(t *testing.T) {
	fleet := genFleet(8)
	recs := genStream(fleet, 5, time.Date(2026, 6, 15, 12, 0, 0, 0, rome), 30)
	s := newFleetStore(fleet)
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := w; i < len(recs); i += 4 {
				s.Apply(recs[i])
				if i%500 == 0 {
					s.Site(recs[i].Site, time.Now())
					s.Asset(recs[i].Site, recs[i].Asset, time.Now())
					var buf bytes.Buffer
					if err := s.Snapshot(&buf); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	for range 4 {
		<-done
	}
	checkAggregates(t, s, fleet, time.Date(2026, 6, 15, 12, 31, 0, 0, rome))
}
