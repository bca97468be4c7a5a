package loadtest

import (
	"math"
	"time"
)

// locker is a 24h parcel locker. Couriers load a batch once a day
// (Mon-Sat, mid-morning), citizens collect mostly by day and drop off
// returns; parcels left for three days go back. Every door opening is an
// event. temp_c lags the outdoor air, a little warmer (electronics, sun).
type locker struct {
	base
	capacity    int
	used        []bool // per compartment
	parcels     []parcel
	temp        float64
	nextCourier time.Time
}

type parcel struct {
	comp  int
	since time.Time
}

func newLocker(b base) *locker {
	sizes := [...]int{24, 36, 48, 60}
	c := sizes[b.rng.IntN(len(sizes))]
	return &locker{base: b, capacity: c, used: make([]bool, c)}
}

func (m *locker) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.temp = outdoorTemp(m.place, m.seed, now) + 2.5
		for range m.capacity * (20 + m.rng.IntN(40)) / 100 {
			m.deposit(now.Add(-randDuration(m.rng, 0, 60*time.Hour)), "", nil)
		}
		m.nextCourier = m.courierAfter(now)
	}
	chunks(from, now, 10*time.Minute, func(t0, t1 time.Time) {
		dt := t1.Sub(t0)
		h := localHour(t1)
		pickupRate, dropRate := 0.005, 0.0 // per parcel, per locker; per hour
		if h >= 7 && h < 22 {
			pickupRate, dropRate = 0.06, 0.15
		}
		kept := m.parcels[:0]
		for _, p := range m.parcels {
			switch {
			case happens(m.rng, pickupRate, dt):
				m.release(p, t1, "pickup", s)
			case t1.Sub(p.since) > 72*time.Hour && m.place.open(t1):
				m.release(p, t1, "expired_return", s)
			default:
				kept = append(kept, p)
			}
		}
		m.parcels = kept
		if happens(m.rng, dropRate, dt) {
			m.deposit(t1, "customer_dropoff", s)
		}
		if !m.nextCourier.After(t1) {
			for range poisson(m.rng, float64(m.capacity)*0.2) {
				m.deposit(m.nextCourier, "courier_delivery", s)
			}
			m.nextCourier = m.courierAfter(t1)
		}
		target := outdoorTemp(m.place, m.seed, t1) + 2.5
		m.temp += (target - m.temp) * (1 - math.Exp(-dt.Hours()))
	})
	s.add("free_count", float64(m.capacity-len(m.parcels)))
	s.add("occupied_count", float64(len(m.parcels)))
	s.add("temp_c", round(m.temp, 1))
}

// deposit fills a random free compartment, if any.
func (m *locker) deposit(t time.Time, reason string, s *Sample) {
	if len(m.parcels) == m.capacity {
		return
	}
	c := m.rng.IntN(m.capacity)
	for m.used[c] {
		c = (c + 1) % m.capacity
	}
	m.used[c] = true
	m.parcels = append(m.parcels, parcel{comp: c, since: t})
	if s != nil {
		s.event(t, "door_open", map[string]any{"compartment": c + 1, "reason": reason})
	}
}

func (m *locker) release(p parcel, t time.Time, reason string, s *Sample) {
	m.used[p.comp] = false
	s.event(t, "door_open", map[string]any{"compartment": p.comp + 1, "reason": reason})
}

// courierAfter is the next delivery round after t: Mon-Sat, 10:00-11:30.
func (m *locker) courierAfter(t time.Time) time.Time {
	l := t.In(rome)
	for d := 0; ; d++ {
		day := time.Date(l.Year(), l.Month(), l.Day()+d, 10, 0, 0, 0, rome)
		c := day.Add(randDuration(m.rng, 0, 90*time.Minute))
		if day.Weekday() != time.Sunday && c.After(t) {
			return c
		}
	}
}

// env is a room sensor. CO2 follows a well-mixed box model: each person
// exhales about 0.019 m³/h, ventilation brings outdoor air at 420 ppm.
// Occupancy follows opening hours, so CO2 rises by day and decays at night.
type env struct {
	base
	volume, ach float64 // m³; air changes per hour while open
	temp, rh    float64
	co2         float64
	occ         int
}

func newEnv(b base) *env {
	m := &env{base: b, co2: 420 + uniform(b.rng, 0, 40), rh: 45}
	if b.place.Coworking {
		m.volume = 3 * float64(max(b.place.Desks, 10)) * uniform(b.rng, 6, 9)
		m.ach = uniform(b.rng, 2, 3.5)
	} else {
		m.volume = uniform(b.rng, 120, 250)
		m.ach = uniform(b.rng, 1.5, 3)
	}
	return m
}

func (m *env) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.temp = m.setpoint(now)
	}
	chunks(from, now, 5*time.Minute, func(t0, t1 time.Time) {
		dt := t1.Sub(t0).Hours()
		open := m.place.open(t1)
		m.occ = 0
		ach, tau := 0.3, 10.0 // closed: infiltration only, building drifts
		if open {
			m.occ = poisson(m.rng, m.place.visitors(t1))
			ach, tau = m.ach, 0.7
		}
		ss := 420 + float64(m.occ)*0.019e6/(m.volume*ach)
		m.co2 = ss + (m.co2-ss)*math.Exp(-ach*dt)
		target := m.setpoint(t1)
		if !open {
			target = (target + outdoorTemp(m.place, m.seed, t1)) / 2
		}
		m.temp += (target + 0.05*float64(m.occ) - m.temp) * (1 - math.Exp(-dt/tau))
		rhTarget := 47 + 9*summer(t1) + 0.4*float64(m.occ) + 6*(valueNoise(m.seed^0x44, t1, 6*time.Hour)-0.5)
		m.rh += (rhTarget - m.rh) * (1 - math.Exp(-dt/2))
	})
	s.add("temp_c", round(m.temp, 1))
	s.add("humidity_pct", round(clamp(m.rh, 20, 80), 1))
	s.add("co2_ppm", math.Round(m.co2))
	s.add("occupancy_count", float64(m.occ))
}

// setpoint is the HVAC target: heat to 20.5 °C, cool to 25.5 °C.
func (m *env) setpoint(t time.Time) float64 {
	return clamp(outdoorTemp(m.place, m.seed, t), 20.5, 25.5)
}

// atm is an advanced ATM with four cassettes (50, 20, 20 and 10 euro
// notes). Withdrawals drain them, a cash-in-transit crew refills on weekday
// mornings when one runs low or a week has passed; rare faults take it out
// of service for hours.
type atm struct {
	base
	notes      [4]int
	fault      bool
	faultUntil time.Time
	tx         int
	lowSent    bool
	lastRefill time.Time
	refillDay  int
}

var (
	atmDenoms   = [4]int{50, 20, 20, 10}
	atmAmounts  = [...]int{20, 50, 50, 100, 100, 100, 150, 200, 200, 250, 300, 500}
	atmFaults   = [...]string{"dispenser_jam", "card_reader", "network", "receipt_printer"}
	atmCapacity = 2000 // notes per cassette
)

func newATM(b base) *atm {
	m := &atm{base: b, tx: b.rng.IntN(200000)}
	for i := range m.notes {
		m.notes[i] = atmCapacity * (30 + b.rng.IntN(70)) / 100
	}
	return m
}

func (m *atm) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.lastRefill = now.Add(-randDuration(m.rng, 0, 6*24*time.Hour))
	}
	chunks(from, now, 10*time.Minute, func(t0, t1 time.Time) {
		dt := t1.Sub(t0)
		if m.fault {
			if !t1.Before(m.faultUntil) {
				m.fault = false
				s.event(t1, "fault_cleared", nil)
			}
		} else if happens(m.rng, 1.0/(24*30), dt) {
			m.fault = true
			m.faultUntil = t1.Add(randDuration(m.rng, time.Hour, 12*time.Hour))
			s.event(t1, "fault", map[string]any{"code": atmFaults[m.rng.IntN(len(atmFaults))]})
		}
		m.maybeRefill(t1, s)
		if m.fault {
			return
		}
		h := localHour(t1)
		rate := 0.4
		if h >= 7 && h < 23 {
			rate = 1 + 5*bell(h, 11, 2) + 4*bell(h, 18, 1.5)
		}
		n := poisson(m.rng, rate*dt.Hours())
		for i := range n {
			at := t0.Add(dt * time.Duration(i+1) / time.Duration(n+1))
			amount := atmAmounts[m.rng.IntN(len(atmAmounts))]
			result := "ok"
			if m.dispense(amount) {
				m.tx++
			} else {
				result = "declined"
			}
			s.event(at, "transaction", map[string]any{"amount_eur": amount, "result": result})
		}
		if !m.lowSent && m.minPct() < 15 {
			m.lowSent = true
			s.event(t1, "cash_low", map[string]any{"min_cassette_pct": round(m.minPct(), 1)})
		}
	})
	cash := 0
	for i, n := range m.notes {
		cash += n * atmDenoms[i]
	}
	s.add("available", boolf(!m.fault && cash > 0))
	s.add("cassette1_pct", m.pct(0))
	s.add("cassette2_pct", m.pct(1))
	s.add("cassette3_pct", m.pct(2))
	s.add("cassette4_pct", m.pct(3))
	s.add("transactions_count", float64(m.tx))
	s.add("cash_eur", float64(cash))
}

func (m *atm) pct(i int) float64 { return round(100*float64(m.notes[i])/float64(atmCapacity), 1) }

func (m *atm) minPct() float64 {
	return min(m.pct(0), m.pct(1), m.pct(2), m.pct(3))
}

// dispense pays amount in 50s, then 20s from the fuller 20 cassette, then
// 10s; half the time it holds back a 50 for smaller notes, as ATMs mix
// denominations. False if the notes cannot make the amount.
func (m *atm) dispense(amount int) bool {
	n := m.notes
	fifties := min(amount/50, n[0])
	if fifties > 0 && m.rng.IntN(2) == 0 {
		fifties--
	}
	rest := amount - 50*fifties
	if rest%20 == 10 && fifties > 0 && n[3] == 0 {
		fifties-- // 50+10 cannot be paid: try 20s
		rest += 50
	}
	for rest >= 20 && n[1]+n[2] > 0 {
		if n[1] >= n[2] {
			n[1]--
		} else {
			n[2]--
		}
		rest -= 20
	}
	tens := rest / 10
	if rest%10 != 0 || tens > n[3] {
		return false
	}
	n[0] -= fifties
	n[3] -= tens
	m.notes = n
	return true
}

func (m *atm) maybeRefill(t time.Time, s *Sample) {
	l := t.In(rome)
	h := localHour(t)
	if l.Weekday() == time.Saturday || l.Weekday() == time.Sunday || h < 9 || h >= 12 || dayKey(t) == m.refillDay {
		return
	}
	if m.minPct() >= 25 && t.Sub(m.lastRefill) < 7*24*time.Hour {
		return
	}
	for i := range m.notes {
		m.notes[i] = atmCapacity
	}
	m.lastRefill, m.refillDay, m.lowSent = t, dayKey(t), false
	s.event(t, "refill", nil)
}

// totem is a self-service kiosk inside the office: sessions while open,
// each printing a page or three, paper refilled by staff when low.
type totem struct {
	base
	online    bool
	downUntil time.Time
	sessions  int
	paper     int // pages left on the roll
	paperOut  bool
}

const totemRoll = 400 // pages per roll

// Citizen services of the one-stop shop (docs/design.md).
var totemServices = [...]string{
	"passport", "cie", "tax_code", "driving_licence", "civil_certificate",
	"judicial_certificate", "pension_certificate", "cup_booking", "income_self_declaration",
	"tax_debt_statement", "cadastral_survey", "isee", "rai_exemption", "delegation",
}

func newTotem(b base) *totem {
	return &totem{base: b, online: true, sessions: b.rng.IntN(5000), paper: 40 + b.rng.IntN(totemRoll-40)}
}

func (m *totem) Step(now time.Time, s *Sample) {
	from, _ := m.span(now)
	chunks(from, now, 10*time.Minute, func(t0, t1 time.Time) {
		dt := t1.Sub(t0)
		if !m.online {
			if !t1.Before(m.downUntil) {
				m.online = true
				s.event(t1, "fault_cleared", nil)
			}
			return
		}
		if happens(m.rng, 1.0/(24*60), dt) {
			m.online = false
			m.downUntil = t1.Add(randDuration(m.rng, time.Hour, 6*time.Hour))
			s.event(t1, "fault", map[string]any{"code": "app_crash"})
			return
		}
		if !m.place.open(t1) {
			return
		}
		if m.paper < totemRoll*15/100 && happens(m.rng, 2, dt) {
			m.paper, m.paperOut = totemRoll, false
			s.event(t1, "paper_refill", nil)
		}
		h := localHour(t1)
		for range poisson(m.rng, (1+3*bell(h, 10.5, 1.5))*dt.Hours()) {
			m.sessions++
			s.event(t1, "service_used", map[string]any{"service": totemServices[m.rng.IntN(len(totemServices))]})
			if m.rng.Float64() < 0.7 {
				m.paper -= 1 + m.rng.IntN(3)
				if m.paper <= 0 {
					m.paper = 0
					if !m.paperOut {
						m.paperOut = true
						s.event(t1, "paper_out", nil)
					}
				}
			}
		}
	})
	s.add("online", boolf(m.online))
	s.add("session_count", float64(m.sessions))
	s.add("paper_pct", round(100*float64(m.paper)/totemRoll, 1))
}

// showcase is the interactive info screen in the window: screen on 7-23,
// touch interactions from passers-by.
type showcase struct {
	base
	screenOn     bool
	interactions int
}

func (m *showcase) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.interactions = m.rng.IntN(20000)
		m.screenOn = screenHours(now)
	}
	chunks(from, now, 10*time.Minute, func(t0, t1 time.Time) {
		if on := screenHours(t1); on != m.screenOn {
			m.screenOn = on
			if on {
				s.event(t1, "screen_on", nil)
			} else {
				s.event(t1, "screen_off", nil)
			}
		}
		if m.screenOn {
			h := localHour(t1)
			m.interactions += poisson(m.rng, (0.5+4*bell(h, 11, 2)+2*bell(h, 17.5, 2))*t1.Sub(t0).Hours())
		}
	})
	s.add("online", 1)
	s.add("screen_on", boolf(m.screenOn))
	s.add("interactions_count", float64(m.interactions))
}

func screenHours(t time.Time) bool {
	h := localHour(t)
	return h >= 7 && h < 23
}

// desk is a coworking workstation: check-ins while the space is open,
// stays of one to five hours, everyone out at closing.
type desk struct {
	base
	occupied bool
	until    time.Time
}

func (m *desk) Step(now time.Time, s *Sample) {
	from, _ := m.span(now)
	chunks(from, now, 5*time.Minute, func(t0, t1 time.Time) {
		open := m.place.open(t1)
		if m.occupied && (!open || !t1.Before(m.until)) {
			m.occupied = false
			s.event(t1, "check_out", nil)
		}
		h := localHour(t1)
		if open && !m.occupied && happens(m.rng, 0.25+0.5*bell(h, 9.5, 1)+0.3*bell(h, 14.5, 1), t1.Sub(t0)) {
			m.occupied = true
			m.until = t1.Add(randDuration(m.rng, time.Hour, 5*time.Hour))
			s.event(t1, "check_in", nil)
		}
	})
	s.add("occupied", boolf(m.occupied))
}

// room is a meeting room booked in half-hour slots.
type room struct {
	base
	people int
	until  time.Time
}

func (m *room) Step(now time.Time, s *Sample) {
	from, _ := m.span(now)
	chunks(from, now, 5*time.Minute, func(t0, t1 time.Time) {
		if m.people > 0 && (!t1.Before(m.until) || !m.place.open(t1)) {
			m.people = 0
			s.event(t1, "meeting_end", nil)
		}
		slot := t0.Truncate(30 * time.Minute).Add(30 * time.Minute) // Rome is a whole-hour offset from UTC
		if slot.After(t1) || m.people > 0 || !m.place.open(slot) || m.rng.Float64() >= 0.3 {
			return
		}
		m.people = 2 + m.rng.IntN(7)
		m.until = slot.Add(time.Duration(1+m.rng.IntN(4)) * 30 * time.Minute)
		s.event(slot, "meeting_start", map[string]any{"people": m.people})
	})
	s.add("occupied", boolf(m.people > 0))
	s.add("occupancy_count", float64(m.people))
}

// outdoor is the equipped outdoor space: people by day, more in summer and
// at weekends, the odd public event on weekend evenings, lights after dark.
type outdoor struct {
	base
	people  int
	inEvent bool
}

func (m *outdoor) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.inEvent = m.eventAt(now)
	}
	chunks(from, now, 10*time.Minute, func(t0, t1 time.Time) {
		if e := m.eventAt(t1); e != m.inEvent {
			m.inEvent = e
			if e {
				s.event(t1, "event_start", nil)
			} else {
				s.event(t1, "event_end", nil)
			}
		}
	})
	h := localHour(now)
	mean := 0.0
	if h >= 8 && h < 22 {
		mean = (2 + 6*math.Max(0, summer(now))) * bell(h, 17, 3)
		if wd := now.In(rome).Weekday(); wd == time.Saturday || wd == time.Sunday {
			mean *= 1.5
		}
	}
	if m.inEvent {
		mean += 30 + 70*unit(splitmix(m.seed^uint64(dayKey(now))))
	}
	m.people = poisson(m.rng, mean)
	s.add("occupancy_count", float64(m.people))
	s.add("lights_on", boolf(solarElevation(m.place.Lat, m.place.Lon, now) < -2))
}

// eventAt reports a public event: some weekend evenings, 17:00-22:00.
func (m *outdoor) eventAt(t time.Time) bool {
	wd := t.In(rome).Weekday()
	h := localHour(t)
	return (wd == time.Saturday || wd == time.Sunday) && h >= 17 && h < 22 &&
		unit(splitmix(m.seed^uint64(dayKey(t))*0x2545f491)) < 0.15
}

// gateway is the site's MQTT gateway: uptime since its last (rare) reboot
// and the cellular signal strength.
type gateway struct {
	base
	boot time.Time
	rssi float64 // mean signal of the site, dBm
}

func newGateway(b base) *gateway {
	return &gateway{base: b, rssi: uniform(b.rng, -95, -60)}
}

func (m *gateway) Step(now time.Time, s *Sample) {
	from, first := m.span(now)
	if first {
		m.boot = now.Add(-randDuration(m.rng, time.Hour, 30*24*time.Hour))
	}
	chunks(from, now, time.Hour, func(t0, t1 time.Time) {
		if happens(m.rng, 1.0/(24*45), t1.Sub(t0)) {
			m.boot = t1
			s.event(t1, "reboot", map[string]any{"reason": "watchdog"})
		}
	})
	s.add("uptime_s", math.Floor(now.Sub(m.boot).Seconds()))
	s.add("rssi_dbm", math.Round(m.rssi+8*(valueNoise(m.seed, now, 15*time.Minute)-0.5)))
}
