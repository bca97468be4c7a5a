package loadtest

import (
	"math"
	"time"
)

// solarElevation returns the sun's elevation in degrees at t for a point,
// with NOAA's low-precision formulas (about 0.1° here, plenty for power).
func solarElevation(lat, lon float64, t time.Time) float64 {
	t = t.UTC()
	g := 2 * math.Pi / 365 * (float64(t.YearDay()-1) + (float64(t.Hour())-12)/24)
	decl := 0.006918 - 0.399912*math.Cos(g) + 0.070257*math.Sin(g) - 0.006758*math.Cos(2*g) +
		0.000907*math.Sin(2*g) - 0.002697*math.Cos(3*g) + 0.00148*math.Sin(3*g)
	minutes := float64(t.Hour())*60 + float64(t.Minute()) + float64(t.Second())/60 +
		float64(t.Nanosecond())/6e10
	tst := minutes + equationOfTime(g) + 4*lon
	ha := (tst/4 - 180) * math.Pi / 180
	phi := lat * math.Pi / 180
	cz := math.Sin(phi)*math.Sin(decl) + math.Cos(phi)*math.Cos(decl)*math.Cos(ha)
	return 90 - math.Acos(clamp(cz, -1, 1))*180/math.Pi
}

// equationOfTime is in minutes for the fractional year g (radians).
func equationOfTime(g float64) float64 {
	return 229.18 * (0.000075 + 0.001868*math.Cos(g) - 0.032077*math.Sin(g) -
		0.014615*math.Cos(2*g) - 0.040849*math.Sin(2*g))
}

// solarNoon returns the UTC time of solar noon on t's UTC date at lon.
func solarNoon(lon float64, t time.Time) time.Time {
	t = t.UTC()
	day := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	g := 2 * math.Pi / 365 * float64(t.YearDay()-1)
	min := 720 - 4*lon - equationOfTime(g)
	return day.Add(time.Duration(min * float64(time.Minute)))
}

// clearSkyGHI is Haurwitz's clear-sky global horizontal irradiance, W/m².
func clearSkyGHI(elevDeg float64) float64 {
	if elevDeg <= 0 {
		return 0
	}
	cz := math.Sin(elevDeg * math.Pi / 180)
	return 1098 * cz * math.Exp(-0.057/cz)
}

// Inverter states reported as inverter_state.
const (
	inverterStandby = 0 // night: no DC input
	inverterRunning = 1
	inverterFault   = 2
)

// pv is a rooftop plant of a few kWp. Power follows clear-sky irradiance
// for the site and time, scaled by a per-day weather draw (sunny, broken
// clouds, overcast) with smooth noise; energy_kwh integrates power and
// resets at local midnight, as inverters' daily counters do.
type pv struct {
	base
	kwp        float64
	clouds     bool // false: clear sky, for tests
	faults     bool
	state      int
	faultUntil time.Time
	power      float64 // kW at last
	energy     float64 // kWh since local midnight
	day        int
}

func newPV(b base) *pv {
	return &pv{base: b, kwp: round(uniform(b.rng, 6, 20), 1), clouds: true, faults: true}
}

// clearness is the fraction of clear-sky output reaching the panels at t,
// a deterministic function of the plant's seed and t.
func (m *pv) clearness(t time.Time) float64 {
	if !m.clouds {
		return 1
	}
	days := t.Unix() / 86400
	w := unit(splitmix(m.seed ^ uint64(days)*0x51ed))
	n := valueNoise(m.seed^0xc10d, t, 20*time.Minute)
	switch {
	case w < 0.55: // sunny
		return 0.93 + 0.07*n
	case w < 0.85: // broken clouds
		return 0.35 + 0.6*n
	default: // overcast
		return 0.12 + 0.2*n
	}
}

// output is the AC power at t, 14% system losses included.
func (m *pv) output(t time.Time) float64 {
	ghi := clearSkyGHI(solarElevation(m.place.Lat, m.place.Lon, t))
	return m.kwp * ghi / 1000 * 0.86 * m.clearness(t)
}

func (m *pv) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	events := s
	if first {
		// Start with today's yield so far, as a real inverter would report,
		// without replaying the morning's events.
		m.day = dayKey(now)
		from = localMidnight(now)
		m.power = m.output(from)
		events = &Sample{}
	}
	chunks(from, now, 5*time.Minute, func(t0, t1 time.Time) {
		if d := dayKey(t1); d != m.day {
			m.day, m.energy = d, 0
		}
		p := m.output(t1)
		if m.state == inverterFault {
			p = 0
		}
		m.energy += (m.power + p) / 2 * t1.Sub(t0).Hours()
		m.power = p
		m.stepInverter(t0, t1, events)
	})
	s.add("power_kw", round(m.power, 3))
	s.add("energy_kwh", round(m.energy, 3))
	s.add("inverter_state", float64(m.state))
}

func (m *pv) stepInverter(t0, t1 time.Time, s *Sample) {
	switch {
	case m.state == inverterFault:
		if !t1.Before(m.faultUntil) {
			m.state = inverterStandby
			s.event(t1, "inverter_ok", nil)
		}
		return
	case m.faults && m.power > 0 && happens(m.rng, 1.0/(24*60), t1.Sub(t0)): // ~ every 60 days of sun
		m.state = inverterFault
		m.faultUntil = t1.Add(randDuration(m.rng, time.Hour, 30*time.Hour))
		m.power = 0
		s.event(t1, "inverter_fault", map[string]any{"code": "grid_overvoltage"})
		return
	}
	if m.power > 0 {
		m.state = inverterRunning
	} else {
		m.state = inverterStandby
	}
}

func localMidnight(t time.Time) time.Time {
	l := t.In(rome)
	return time.Date(l.Year(), l.Month(), l.Day(), 0, 0, 0, 0, rome)
}

// meter is the site's main electricity meter: a base load (network,
// locker, ATM), office load while open, and heating or cooling that grows
// with the distance of the outdoor temperature from 20 °C.
type meter struct {
	base
	baseKW, officeKW, hvacKW float64
	power, energy            float64
}

func newMeter(b base) *meter {
	m := &meter{base: b, energy: round(uniform(b.rng, 20000, 80000), 1)}
	if b.place.Coworking {
		m.baseKW, m.officeKW, m.hvacKW = uniform(b.rng, 1, 2), uniform(b.rng, 5, 12), 0.35
	} else {
		m.baseKW, m.officeKW, m.hvacKW = uniform(b.rng, 0.6, 1.2), uniform(b.rng, 2, 5), 0.15
	}
	return m
}

func (m *meter) load(t time.Time) float64 {
	kw := m.baseKW
	hvac := math.Abs(outdoorTemp(m.place, m.seed, t)-20) * m.hvacKW
	if m.place.open(t) {
		kw += m.officeKW + hvac
	} else {
		kw += hvac / 5 // frost and overheating protection
	}
	return kw * (0.95 + 0.1*valueNoise(m.seed, t, 10*time.Minute))
}

func (m *meter) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.power = m.load(now)
	}
	chunks(from, now, 5*time.Minute, func(t0, t1 time.Time) {
		p := m.load(t1)
		m.energy += (m.power + p) / 2 * t1.Sub(t0).Hours()
		m.power = p
	})
	s.add("power_kw", round(m.power, 3))
	s.add("energy_kwh", round(m.energy, 3))
	s.add("voltage_v", round(230+3*(valueNoise(m.seed^0x707, now, 3*time.Minute)-0.5), 1))
}

// Connector states of a charging point (after OCPP's status names).
const (
	connAvailable = 0
	connCharging  = 1
	connSuspended = 2 // car full, still plugged in
	connFaulted   = 3
)

// evc is an AC charging point with sessions: cars arrive (more often by
// day), charge at their on-board limit (7.4, 11 or 22 kW) until they have
// what they need, then stay plugged until they leave.
type evc struct {
	base
	state     int
	nextEvent time.Time // arrival when available, end of fault when faulted
	kw        float64
	need      float64 // kWh the car wants
	leaveAt   time.Time
	energy    float64 // kWh of the current session
	total     float64 // kWh delivered over the point's life
}

func newEVC(b base) *evc {
	return &evc{base: b, total: round(uniform(b.rng, 500, 15000), 1)}
}

// arrivalRate is cars per hour at local hour h.
func arrivalRate(h float64) float64 {
	if h < 7 || h >= 22 {
		return 0.02
	}
	return 0.12 + 0.15*bell(h, 10, 1.5) + 0.12*bell(h, 18, 1.5)
}

// nextArrival samples an inhomogeneous Poisson process by thinning.
func (m *evc) nextArrival(from time.Time) time.Time {
	const peak = 0.3
	t := from
	for range 10000 {
		t = t.Add(time.Duration(m.rng.ExpFloat64() / peak * float64(time.Hour)))
		if m.rng.Float64()*peak < arrivalRate(localHour(t)) {
			return t
		}
	}
	return t
}

func (m *evc) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.nextEvent = m.nextArrival(now)
	}
	t := from
	for t.Before(now) {
		switch m.state {
		case connAvailable, connFaulted:
			if m.nextEvent.After(now) {
				t = now
				break
			}
			t = m.nextEvent
			if m.state == connFaulted {
				m.state = connAvailable
				m.nextEvent = m.nextArrival(t)
				s.event(t, "fault_cleared", nil)
			} else if m.rng.Float64() < 0.004 { // ~3 arrivals a day: a fault every ~3 months
				m.state = connFaulted
				m.nextEvent = t.Add(randDuration(m.rng, 2*time.Hour, 24*time.Hour))
				s.event(t, "connector_fault", map[string]any{"code": "ground_failure"})
			} else {
				m.startSession(t, s)
			}
		case connCharging, connSuspended:
			end := minTime(now, m.leaveAt)
			if m.state == connCharging {
				full := t.Add(time.Duration((m.need - m.energy) / m.kw * float64(time.Hour)))
				end = minTime(end, full)
				m.energy += m.kw * end.Sub(t).Hours()
				if !end.Before(full) {
					m.energy = m.need
					m.state = connSuspended
				}
			}
			t = end
			if !t.Before(m.leaveAt) {
				m.stopSession(t, s)
			}
		}
	}
	power := 0.0
	if m.state == connCharging {
		power = m.kw * (0.97 + 0.03*valueNoise(m.seed, now, time.Minute))
	}
	s.add("connector_state", float64(m.state))
	s.add("power_kw", round(power, 2))
	s.add("energy_kwh", round(m.energy, 3))
	s.add("energy_total_kwh", round(m.total+m.energy, 3))
}

func (m *evc) startSession(t time.Time, s *Sample) {
	m.state = connCharging
	switch r := m.rng.Float64(); {
	case r < 0.4:
		m.kw = 7.4
	case r < 0.8:
		m.kw = 11
	default:
		m.kw = 22
	}
	m.need = uniform(m.rng, 6, 40)
	m.leaveAt = t.Add(randDuration(m.rng, 40*time.Minute, 4*time.Hour))
	m.energy = 0
	s.event(t, "session_start", map[string]any{"connector": 1, "max_power_kw": m.kw})
}

func (m *evc) stopSession(t time.Time, s *Sample) {
	s.event(t, "session_stop", map[string]any{"connector": 1, "energy_kwh": round(m.energy, 3)})
	m.total += m.energy
	m.energy = 0
	m.state = connAvailable
	m.nextEvent = m.nextArrival(t)
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
