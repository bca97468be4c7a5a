package state

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

var rome = func() *time.Location {
	l, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic(err)
	}
	return l
}()

type regAsset struct{ site, asset, typ string }

var allTypes = []string{"atm", "totem", "locker", "showcase", "evc", "pv", "env", "meter", "outdoor", "gateway", "desk", "room"}

// genFleet returns sites with one asset of every type plus a few desks:
// about 17 assets a site.
func genFleet(sites int) []regAsset {
	var out []regAsset
	for i := range sites {
		site := fmt.Sprintf("PO-%06d-1", 1000+i)
		if i%3 == 2 {
			site = fmt.Sprintf("CW-RM-%d", i)
		}
		for _, typ := range allTypes {
			id := typ + "-1"
			if typ == "gateway" {
				id = "gw-1"
			}
			out = append(out, regAsset{site, id, typ})
		}
		for d := 2; d <= 6; d++ {
			out = append(out, regAsset{site, fmt.Sprintf("desk-%d", d), "desk"})
		}
	}
	return out
}

// device is a small per-type simulation after the loadtest models (which
// the tests do not import, to stay independent of the simulator's package):
// the same metric names, codes and daily energy reset.
type device struct {
	typ     string
	rng     *rand.Rand
	state   float64 // connector, inverter or occupancy state
	counter float64 // energy, transactions, sessions
	day     int
}

func (d *device) step(now time.Time, emit func(name string, v float64), event func(string)) {
	r := d.rng
	h := float64(now.In(rome).Hour()) + float64(now.In(rome).Minute())/60
	switch d.typ {
	case "atm":
		if r.IntN(100) == 0 {
			d.state = 1 - d.state
			event("fault")
		}
		d.counter += float64(r.IntN(3))
		emit("available", 1-d.state)
		emit("cassette1_pct", math.Round(100-math.Mod(d.counter, 100)))
		emit("transactions_count", d.counter)
	case "totem", "showcase":
		if r.IntN(150) == 0 {
			d.state = 1 - d.state
		}
		emit("online", 1-d.state)
		emit("paper_pct", float64(r.IntN(100)))
	case "locker":
		d.state = math.Max(0, math.Min(36, d.state+float64(r.IntN(3)-1)))
		emit("free_count", 36-d.state)
		emit("occupied_count", d.state)
		emit("temp_c", math.Round(150+float64(r.IntN(100)))/10)
	case "evc":
		if r.IntN(20) == 0 {
			d.state = float64(r.IntN(4)) // available, charging, suspended, faulted
			event("session_start")
		}
		p := 0.0
		if d.state == 1 {
			p = 11
			d.counter += 11.0 / 60
		}
		emit("connector_state", d.state)
		emit("power_kw", p)
		emit("energy_kwh", math.Round(d.counter*1000)/1000)
	case "pv":
		if day := now.In(rome).YearDay(); day != d.day {
			d.day, d.counter = day, 0
		}
		p := math.Max(0, 10*math.Sin((h-6)/14*math.Pi))
		d.counter += p / 60
		if r.IntN(200) == 0 {
			d.state = 2
			event("inverter_fault")
		} else if p > 0 {
			d.state = 1
		} else {
			d.state = 0
		}
		emit("power_kw", math.Round(p*1000)/1000)
		emit("energy_kwh", math.Round(d.counter*1000)/1000)
		emit("inverter_state", d.state)
	case "env":
		emit("temp_c", math.Round(200+float64(r.IntN(50)))/10)
		emit("humidity_pct", float64(40+r.IntN(20)))
		emit("co2_ppm", float64(420+r.IntN(800)))
		emit("occupancy_count", float64(r.IntN(10)))
	case "meter":
		d.counter += 2.0 / 60
		emit("power_kw", float64(r.IntN(5000))/1000)
		emit("energy_kwh", math.Round(d.counter*1000)/1000)
	case "desk", "room":
		if r.IntN(10) == 0 {
			d.state = 1 - d.state
			event("check_in")
		}
		emit("occupied", d.state)
	default:
		emit("uptime_s", float64(now.Unix()%100000))
	}
}

// genStream simulates the fleet from start for steps minutes: telemetry
// every minute (with jitter), events, status changes (some devices drop
// offline and come back), reported state, and about 10% of records
// delivered twice with a later arrival.
func genStream(fleet []regAsset, seed uint64, start time.Time, steps int) []*record.Record {
	rng := rand.New(rand.NewPCG(seed, 7))
	var recs []*record.Record
	for ai, ra := range fleet {
		dev := &device{typ: ra.typ, rng: rand.New(rand.NewPCG(seed, uint64(ai)))}
		t0 := start.Add(time.Duration(rng.IntN(60000)) * time.Millisecond)
		recs = append(recs, &record.Record{Kind: record.KindStatus, Site: ra.site, Asset: ra.asset,
			Status: "online", TS: t0.UnixMilli(), Received: t0.UnixMilli() + 5})
		offlineAt, backAt := -1, -1
		if rng.IntN(5) == 0 {
			offlineAt = rng.IntN(steps)
			backAt = offlineAt + 1 + rng.IntN(steps)
		}
		for k := range steps {
			now := t0.Add(time.Duration(k) * time.Minute)
			ms := now.UnixMilli()
			recv := ms + int64(rng.IntN(3000))
			switch k {
			case offlineAt:
				recs = append(recs, &record.Record{Kind: record.KindStatus, Site: ra.site, Asset: ra.asset,
					Status: "offline", TS: ms, Received: recv})
				continue
			case backAt:
				recs = append(recs, &record.Record{Kind: record.KindStatus, Site: ra.site, Asset: ra.asset,
					Status: "online", TS: ms, Received: recv})
			}
			if offlineAt >= 0 && k > offlineAt && k < backAt {
				continue
			}
			r := &record.Record{Kind: record.KindTelemetry, Site: ra.site, Asset: ra.asset, Received: recv}
			dev.step(now, func(name string, v float64) {
				r.Points = append(r.Points, record.Point{Metric: name, TS: ms, Value: v})
			}, func(typ string) {
				recs = append(recs, &record.Record{Kind: record.KindEvent, Site: ra.site, Asset: ra.asset,
					Event: typ, TS: ms - int64(rng.IntN(30000)), Body: json.RawMessage(`{}`), Received: recv})
			})
			recs = append(recs, r)
			if rng.IntN(30) == 0 {
				body := fmt.Sprintf(`{"fw": "1.%d.0", "interval_s": %d, "mode": {"eco": %t}}`, k/40, 60*(1+rng.IntN(3)), rng.IntN(2) == 0)
				recs = append(recs, &record.Record{Kind: record.KindReported, Site: ra.site, Asset: ra.asset,
					TS: ms, Body: json.RawMessage(body), Received: recv})
			}
		}
	}
	n := len(recs)
	for range n / 10 {
		d := *recs[rng.IntN(n)]
		d.Received += int64(1 + rng.IntN(60000))
		recs = append(recs, &d)
	}
	return recs
}

func newFleetStore(fleet []regAsset) *Store {
	s := New(Options{Location: rome})
	for _, a := range fleet {
		s.AddAsset(a.site, a.asset, a.typ)
	}
	return s
}

// orderFree is a view without what depends on arrival order: versions.
func orderFree(v AssetView) AssetView {
	v.Version = 0
	ms := map[string]MetricView{}
	for k, m := range v.Metrics {
		m.Version = 0
		ms[k] = m
	}
	v.Metrics = ms
	rs := map[string]PropView{}
	for k, p := range v.Reported {
		p.Version = 0
		rs[k] = p
	}
	v.Reported = rs
	return v
}

func equalStores(t *testing.T, fleet []regAsset, a, b *Store, now time.Time) {
	t.Helper()
	for _, ra := range fleet {
		va, _ := a.Asset(ra.site, ra.asset, now)
		vb, _ := b.Asset(ra.site, ra.asset, now)
		if !reflect.DeepEqual(orderFree(va), orderFree(vb)) {
			t.Fatalf("unexpected asset view %s/%s;\ngot  %+v\nwant %+v", ra.site, ra.asset, orderFree(vb), orderFree(va))
		}
	}
	for _, id := range a.Sites() {
		sa, _ := a.Site(id, now)
		sb, _ := b.Site(id, now)
		if sa != sb {
			t.Fatalf("unexpected site view %s;\ngot  %+v\nwant %+v", id, sb, sa)
		}
	}
}

// bruteSite recomputes a site's aggregates from the asset views, by the
// documented rules, without any incremental state.
func bruteSite(s *Store, fleet []regAsset, siteID string, now time.Time) SiteView {
	v := SiteView{ID: siteID}
	var temp, hum, co2 float64
	y, m, d := now.In(rome).Date()
	for _, ra := range fleet {
		if ra.site != siteID {
			continue
		}
		av, _ := s.Asset(ra.site, ra.asset, now)
		v.Assets++
		v.ByStatus[av.Status]++
		live := av.Status == StatusOnline || av.Status == StatusFault
		up := av.Status == StatusOnline
		val := func(name string) (float64, bool) {
			mv, ok := av.Metrics[name]
			return mv.Value, ok
		}
		switch av.Type {
		case "evc":
			v.Chargers++
			if x, ok := val("connector_state"); ok && up && x == 0 {
				v.ChargersFree++
			}
		case "locker":
			v.Lockers++
			if x, ok := val("free_count"); ok && live {
				v.LockerFree += x
			}
		case "totem":
			v.Totems++
			if up {
				v.TotemsUp++
			}
		case "atm":
			v.ATMs++
			if up {
				v.ATMsUp++
			}
		case "pv":
			v.PVs++
			if x, ok := val("power_kw"); ok && live {
				v.PVPowerKW += x
			}
			if mv, ok := av.Metrics["energy_kwh"]; ok {
				if y2, m2, d2 := mv.TS.In(rome).Date(); y2 == y && m2 == m && d2 == d {
					v.PVEnergyTodayKWh += mv.Value
				}
			}
		case "env":
			if !live {
				break
			}
			if x, ok := val("temp_c"); ok {
				temp += x
				v.TempN++
			}
			if x, ok := val("humidity_pct"); ok {
				hum += x
				v.HumidityN++
			}
			if x, ok := val("co2_ppm"); ok {
				co2 += x
				v.CO2N++
			}
		case "desk":
			v.Desks++
			if x, ok := val("occupied"); ok && live && x != 0 {
				v.DesksOccupied++
			}
		case "room":
			v.Rooms++
			if x, ok := val("occupied"); ok && live && x != 0 {
				v.RoomsOccupied++
			}
		}
	}
	if v.TempN > 0 {
		v.TempC = temp / float64(v.TempN)
	}
	if v.HumidityN > 0 {
		v.HumidityPct = hum / float64(v.HumidityN)
	}
	if v.CO2N > 0 {
		v.CO2ppm = co2 / float64(v.CO2N)
	}
	return v
}

// checkAggregates compares every site with its brute-force recomputation;
// sums are fixed point in the store, so floats get a small tolerance.
func checkAggregates(t testing.TB, s *Store, fleet []regAsset, now time.Time) {
	t.Helper()
	seen := map[string]bool{}
	for _, ra := range fleet {
		if seen[ra.site] {
			continue
		}
		seen[ra.site] = true
		got, ok := s.Site(ra.site, now)
		if !ok {
			t.Fatalf("site %s missing", ra.site)
		}
		want := bruteSite(s, fleet, ra.site, now)
		near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-3*float64(1+got.Assets) }
		if !near(got.LockerFree, want.LockerFree) || !near(got.PVPowerKW, want.PVPowerKW) ||
			!near(got.PVEnergyTodayKWh, want.PVEnergyTodayKWh) || !near(got.TempC, want.TempC) ||
			!near(got.HumidityPct, want.HumidityPct) || !near(got.CO2ppm, want.CO2ppm) {
			t.Fatalf("unexpected aggregates of %s;\ngot  %+v\nwant %+v", ra.site, got, want)
		}
		got.LockerFree, got.PVPowerKW, got.PVEnergyTodayKWh = want.LockerFree, want.PVPowerKW, want.PVEnergyTodayKWh
		got.TempC, got.HumidityPct, got.CO2ppm = want.TempC, want.HumidityPct, want.CO2ppm
		if got != want {
			t.Fatalf("unexpected aggregates of %s;\ngot  %+v\nwant %+v", ra.site, got, want)
		}
	}
}
