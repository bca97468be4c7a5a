package loadtest

import (
	"math"
	"regexp"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

var rome0 = Place{Lat: 41.9, Lon: 12.5}

// drive steps m every step for n steps from start and hands each sample to f.
func drive(m Model, start time.Time, step time.Duration, n int, f func(now time.Time, s *Sample)) {
	var s Sample
	for i := range n {
		now := start.Add(time.Duration(i) * step)
		s.Reset()
		m.Step(now, &s)
		if f != nil {
			f(now, &s)
		}
	}
}

func val(t *testing.T, s *Sample, name string) float64 {
	t.Helper()
	for _, m := range s.Metrics {
		if m.Name == name {
			return m.Value
		}
	}
	t.Fatalf("metric %s missing from %+v", name, s.Metrics)
	return 0
}

func local(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, rome)
}

func TestSolarElevation(t *testing.T) {
	f := func(at time.Time, lat, lon, want, tol float64) {
		t.Helper()
		if got := solarElevation(lat, lon, at); math.Abs(got-want) > tol {
			t.Errorf("unexpected elevation at %s (%g, %g); got %.2f; want %.2f±%.1f", at, lat, lon, got, want, tol)
		}
	}
	june := time.Date(2024, 6, 20, 0, 0, 0, 0, time.UTC)
	dec := time.Date(2024, 12, 21, 0, 0, 0, 0, time.UTC)
	f(solarNoon(12.5, june), 41.9, 12.5, 90-41.9+23.44, 0.3) // summer solstice
	f(solarNoon(12.5, dec), 41.9, 12.5, 90-41.9-23.44, 0.3)  // winter solstice
	f(solarNoon(9.19, dec), 45.46, 9.19, 90-45.46-23.44, 0.3)
	f(june, 41.9, 12.5, -24.6, 1) // local 02:00, sun well below the horizon
}

func TestPV_ClearDay(t *testing.T) {
	f := func(day time.Time, p Place, minYield, maxYield float64) {
		t.Helper()
		m := NewModel(registry.TypePV, p, 1).(*pv)
		m.clouds, m.faults = false, false
		var peak float64
		var peakAt time.Time
		prevEnergy := -1.0
		drive(m, localMidnight(day).Add(time.Minute), time.Minute, 24*60-2, func(now time.Time, s *Sample) {
			power, energy := val(t, s, "power_kw"), val(t, s, "energy_kwh")
			elev := solarElevation(p.Lat, p.Lon, now)
			if elev <= 0 && (power != 0 || val(t, s, "inverter_state") != inverterStandby) {
				t.Fatalf("power %g kW at %s with the sun %.1f° below the horizon", power, now, -elev)
			}
			if power > m.kwp {
				t.Fatalf("power %g kW above the plant's %g kWp", power, m.kwp)
			}
			if energy < prevEnergy {
				t.Fatalf("energy went down within a day at %s: %g -> %g", now, prevEnergy, energy)
			}
			prevEnergy = energy
			if power > peak {
				peak, peakAt = power, now
			}
		})
		if d := peakAt.Sub(solarNoon(p.Lon, peakAt)); d.Abs() > 10*time.Minute {
			t.Errorf("peak at %s, %s from solar noon", peakAt.In(rome).Format("15:04"), d)
		}
		if y := prevEnergy / m.kwp; y < minYield || y > maxYield {
			t.Errorf("daily yield %.2f kWh/kWp on %s; want %g..%g", y, day.Format("Jan 2"), minYield, maxYield)
		}
	}
	f(local(2024, 6, 21, 0, 0), rome0, 5, 8)
	f(local(2024, 12, 21, 0, 0), rome0, 1, 3)
	f(local(2024, 3, 20, 0, 0), Place{Lat: 37.5, Lon: 15.1}, 3.5, 6.5) // Catania, equinox
}

// A day's energy must not depend on how often the device is stepped, and
// the counter restarts at local midnight.
func TestPV_EnergyCadenceAndReset(t *testing.T) {
	day := local(2024, 7, 10, 0, 0)
	total := func(step time.Duration) float64 {
		m := NewModel(registry.TypePV, rome0, 9).(*pv)
		m.faults = false
		var e float64
		drive(m, day, step, int(24*time.Hour/step), func(_ time.Time, s *Sample) { e = val(t, s, "energy_kwh") })
		var s Sample
		m.Step(day.Add(24*time.Hour+time.Minute), &s)
		if after := val(t, &s, "energy_kwh"); after != 0 {
			t.Errorf("energy not reset after midnight: %g", after)
		}
		return e
	}
	a, b := total(time.Minute), total(time.Hour)
	if a <= 0 || math.Abs(a-b)/a > 0.02 {
		t.Errorf("daily energy depends on the step: %.3f kWh (1 min) vs %.3f kWh (1 h)", a, b)
	}
}

func TestPV_Clouds(t *testing.T) {
	clear := NewModel(registry.TypePV, rome0, 3).(*pv)
	clear.clouds, clear.faults = false, false
	cloudy := NewModel(registry.TypePV, rome0, 3).(*pv)
	cloudy.faults = false
	sum := func(m *pv) (e float64) {
		last := 0.0
		drive(m, local(2024, 5, 1, 0, 1), 10*time.Minute, 30*144, func(_ time.Time, s *Sample) {
			cur := val(t, s, "energy_kwh")
			if cur < last {
				e += last
			}
			last = cur
		})
		return e + last
	}
	c, k := sum(clear), sum(cloudy)
	if ratio := k / c; ratio < 0.4 || ratio > 0.95 {
		t.Errorf("a month of weather gives %.0f%% of the clear-sky yield; want 40-95%%", 100*ratio)
	}
}

func TestEVC_Sessions(t *testing.T) {
	m := NewModel(registry.TypeEVC, rome0, 5)
	open, starts, stops := false, 0, 0
	lastTotal := 0.0
	drive(m, local(2024, 4, 8, 0, 0), time.Minute, 7*24*60, func(now time.Time, s *Sample) {
		for _, e := range s.Events {
			switch e.Type {
			case "session_start":
				if open {
					t.Fatalf("session_start at %s inside a session", e.TS)
				}
				open = true
				starts++
			case "session_stop":
				if !open {
					t.Fatalf("session_stop at %s without a session", e.TS)
				}
				open = false
				stops++
			}
		}
		power, state := val(t, s, "power_kw"), val(t, s, "connector_state")
		if (state == connCharging) != (power > 0) || (power > 0 && (power < 7 || power > 22)) {
			t.Fatalf("state %g with power %g kW at %s", state, power, now)
		}
		if open != (state == connCharging || state == connSuspended) {
			t.Fatalf("connector state %g does not match the session events at %s", state, now)
		}
		if !open && val(t, s, "energy_kwh") != 0 {
			t.Fatalf("session energy %g outside a session", val(t, s, "energy_kwh"))
		}
		total := val(t, s, "energy_total_kwh")
		if total < lastTotal {
			t.Fatalf("lifetime energy went down: %g -> %g", lastTotal, total)
		}
		lastTotal = total
	})
	if starts < 7 || stops < starts-1 {
		t.Errorf("unexpected sessions in a week; got %d starts and %d stops", starts, stops)
	}
}

func TestLocker_Capacity(t *testing.T) {
	for seed := range uint64(5) {
		m := NewModel(registry.TypeLocker, rome0, seed).(*locker)
		doors := 0
		step := 7 * time.Minute
		if seed%2 == 1 {
			step = 3 * time.Hour // long steps summarise
		}
		seen := map[float64]bool{}
		drive(m, local(2024, 2, 5, 0, 0), step, int(10*24*time.Hour/step), func(now time.Time, s *Sample) {
			free, occ := val(t, s, "free_count"), val(t, s, "occupied_count")
			if free+occ != float64(m.capacity) || free < 0 || occ < 0 {
				t.Fatalf("free %g + occupied %g != capacity %d at %s", free, occ, m.capacity, now)
			}
			if temp := val(t, s, "temp_c"); temp < -10 || temp > 45 {
				t.Fatalf("implausible locker temperature %g", temp)
			}
			seen[occ] = true
			for _, e := range s.Events {
				if e.Type == "door_open" {
					doors++
				}
			}
		})
		if doors < 20 || len(seen) < 5 {
			t.Errorf("seed %d: locker barely moved: %d door events, %d occupancy levels", seed, doors, len(seen))
		}
	}
}

func TestEnv_CO2FollowsOfficeHours(t *testing.T) {
	for _, p := range []Place{rome0, {Lat: 45.1, Lon: 7.7, Coworking: true, Desks: 25}} {
		m := NewModel(registry.TypeEnv, p, 11)
		var day, night []float64
		drive(m, local(2024, 10, 7, 0, 0), 5*time.Minute, 14*288, func(now time.Time, s *Sample) {
			co2, occ := val(t, s, "co2_ppm"), val(t, s, "occupancy_count")
			if !p.open(now) && occ != 0 {
				t.Fatalf("%g people in a closed office at %s", occ, now)
			}
			if co2 < 400 || co2 > 2500 {
				t.Fatalf("implausible CO2 %g ppm at %s", co2, now)
			}
			if h := val(t, s, "humidity_pct"); h < 20 || h > 80 {
				t.Fatalf("implausible humidity %g%%", h)
			}
			if temp := val(t, s, "temp_c"); temp < 10 || temp > 32 {
				t.Fatalf("implausible indoor temperature %g °C at %s", temp, now)
			}
			h := localHour(now)
			switch wd := now.In(rome).Weekday(); {
			case wd >= time.Monday && wd <= time.Friday && h >= 10.5 && h < 12.5:
				day = append(day, co2)
			case h >= 2 && h < 5:
				night = append(night, co2)
			}
		})
		md, mn := mean(day), mean(night)
		if md < mn+150 || mn > 480 {
			t.Errorf("coworking=%v: CO2 %.0f ppm in office hours vs %.0f ppm at night; want higher by day and ~420 at night", p.Coworking, md, mn)
		}
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func TestMeter(t *testing.T) {
	m := NewModel(registry.TypeMeter, rome0, 2)
	last := 0.0
	var open, closed []float64
	drive(m, local(2024, 1, 15, 0, 0), 15*time.Minute, 7*96, func(now time.Time, s *Sample) {
		e := val(t, s, "energy_kwh")
		if e < last {
			t.Fatalf("meter went backwards: %g -> %g", last, e)
		}
		last = e
		if rome0.open(now) {
			open = append(open, val(t, s, "power_kw"))
		} else {
			closed = append(closed, val(t, s, "power_kw"))
		}
	})
	if mean(open) < 2*mean(closed) {
		t.Errorf("office load %.2f kW not well above the night load %.2f kW", mean(open), mean(closed))
	}
}

func TestATM_Cash(t *testing.T) {
	m := NewModel(registry.TypeATM, rome0, 4)
	var prev [4]float64
	var prevTx float64
	refills, tx := 0, 0
	drive(m, local(2024, 3, 4, 0, 0), 10*time.Minute, 21*144, func(now time.Time, s *Sample) {
		refilled := false
		for _, e := range s.Events {
			switch e.Type {
			case "refill":
				refills++
				refilled = true
			case "transaction":
				tx++
			}
		}
		for i, name := range []string{"cassette1_pct", "cassette2_pct", "cassette3_pct", "cassette4_pct"} {
			v := val(t, s, name)
			if v < 0 || v > 100 || (!refilled && prev[i] != 0 && v > prev[i]) {
				t.Fatalf("%s went %g -> %g at %s without a refill", name, prev[i], v, now)
			}
			prev[i] = v
		}
		if c := val(t, s, "transactions_count"); c < prevTx {
			t.Fatalf("transactions_count went down")
		} else {
			prevTx = c
		}
	})
	if refills < 2 || tx < 21*40 {
		t.Errorf("three weeks gave %d refills and %d transactions", refills, tx)
	}
}

func TestTotem(t *testing.T) {
	m := NewModel(registry.TypeTotem, rome0, 8)
	var prev float64 = -1
	services := 0
	drive(m, local(2024, 5, 6, 0, 0), 10*time.Minute, 14*144, func(now time.Time, s *Sample) {
		c := val(t, s, "session_count")
		if prev >= 0 && c != prev && !rome0.open(now) && !rome0.open(now.Add(-10*time.Minute)) {
			t.Fatalf("sessions while closed at %s", now)
		}
		if c < prev {
			t.Fatalf("session_count went down")
		}
		prev = c
		if p := val(t, s, "paper_pct"); p < 0 || p > 100 {
			t.Fatalf("paper %g%%", p)
		}
		for _, e := range s.Events {
			if e.Type == "service_used" {
				services++
			}
		}
	})
	if services < 50 {
		t.Errorf("only %d services used in two weeks", services)
	}
}

func TestDeskAndRoom_OfficeHours(t *testing.T) {
	cw := Place{Lat: 45.46, Lon: 9.19, Coworking: true, Desks: 20}
	for _, typ := range []string{registry.TypeDesk, registry.TypeRoom} {
		m := NewModel(typ, cw, 6)
		busy := 0
		drive(m, local(2024, 9, 2, 0, 0), 5*time.Minute, 7*288, func(now time.Time, s *Sample) {
			occ := val(t, s, "occupied")
			if occ == 1 && !cw.open(now) {
				t.Fatalf("%s occupied while the space is closed at %s", typ, now)
			}
			busy += int(occ)
		})
		if busy < 50 {
			t.Errorf("%s occupied in only %d five-minute slots of a week", typ, busy)
		}
	}
}

func TestGatewayAndOutdoor(t *testing.T) {
	g := NewModel(registry.GatewayType, rome0, 1)
	o := NewModel(registry.TypeOutdoor, rome0, 1)
	last := -1.0
	drive(g, local(2024, 8, 1, 0, 0), time.Minute, 600, func(_ time.Time, s *Sample) {
		u, r := val(t, s, "uptime_s"), val(t, s, "rssi_dbm")
		if (u < last && len(s.Events) == 0) || r < -110 || r > -50 {
			t.Fatalf("uptime %g after %g, rssi %g", u, last, r)
		}
		last = u
	})
	drive(o, local(2024, 8, 3, 0, 0), 10*time.Minute, 144, func(now time.Time, s *Sample) {
		lights := val(t, s, "lights_on")
		if h := localHour(now); (h > 11 && h < 17 && lights != 0) || (h < 4 && lights != 1) {
			t.Fatalf("lights %g at %s", lights, now)
		}
	})
}

var metricName = regexp.MustCompile(`^[a-z][a-z0-9]*(_[a-z0-9]+)*$`)

// Every model is deterministic for a seed, reports finite snake_case metrics,
// and survives steps of any size, including a jump of days and one back.
func TestModels_Contract(t *testing.T) {
	types := []string{registry.TypePV, registry.TypeEVC, registry.TypeMeter, registry.TypeLocker, registry.TypeEnv,
		registry.TypeATM, registry.TypeTotem, registry.TypeShowcase, registry.TypeDesk, registry.TypeRoom,
		registry.TypeOutdoor, registry.GatewayType, "unknown"}
	steps := []time.Duration{time.Second, 17 * time.Minute, 0, -time.Hour, 10 * 24 * time.Hour, time.Millisecond, 3 * time.Hour}
	for _, typ := range types {
		run := func() []Sample {
			m := NewModel(typ, Place{Lat: 44.5, Lon: 11.3, Coworking: typ == registry.TypeDesk, Desks: 12}, 77)
			now := local(2024, 11, 3, 18, 0)
			var out []Sample
			for i := range 50 {
				now = now.Add(steps[i%len(steps)])
				var s Sample
				m.Step(now, &s)
				out = append(out, s)
			}
			return out
		}
		a, b := run(), run()
		for i := range a {
			if len(a[i].Metrics) == 0 {
				t.Fatalf("%s: no metrics", typ)
			}
			for j, m := range a[i].Metrics {
				if !metricName.MatchString(m.Name) || math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
					t.Fatalf("%s: bad metric %s = %g", typ, m.Name, m.Value)
				}
				if b[i].Metrics[j] != m {
					t.Fatalf("%s: not deterministic at step %d: %v vs %v", typ, i, m, b[i].Metrics[j])
				}
			}
			if len(a[i].Events) != len(b[i].Events) || len(a[i].Events) > maxEvents {
				t.Fatalf("%s: events differ or overflow at step %d", typ, i)
			}
		}
	}
}
