package state

import (
	"math"
	"time"
)

// Status is an asset's derived status.
type Status uint8

const (
	StatusUnknown Status = iota // registered, never heard from
	StatusOnline
	StatusOffline // the newest connection status says offline (will message, disconnect)
	StatusStale   // connected, but silent for longer than StaleAfter expected intervals
	StatusFault   // connected and reporting a fault (see faultRules)
	numStatus
)

var statusNames = [numStatus]string{"unknown", "online", "offline", "stale", "fault"}

func (s Status) String() string {
	if s < numStatus {
		return statusNames[s]
	}
	return "invalid"
}

// role says which site aggregate an asset type feeds.
type role uint8

const (
	roleOther role = iota
	roleEVC
	roleLocker
	roleTotem
	roleATM
	rolePV
	roleEnv
	roleDesk
	roleRoom
)

// faultRule says an asset is faulty when metric == value (or != value when
// notEqual).
type faultRule struct {
	metric   uint16
	value    float64
	notEqual bool
}

// faultRules per asset type, from the simulator's (loadtest) codes. Every
// type also faults on a non-zero "fault" metric.
//
//	atm       available == 0
//	totem     online == 0
//	showcase  online == 0
//	pv        inverter_state == 2 (fault; 0 standby, 1 running)
//	evc       connector_state == 3 (faulted; 0 available, 1 charging, 2 suspended)
var faultRules = map[string][]faultRule{
	"atm":      {{metric: idAvailable, value: 0}},
	"totem":    {{metric: idOnline, value: 0}},
	"showcase": {{metric: idOnline, value: 0}},
	"pv":       {{metric: idInverterState, value: 2}},
	"evc":      {{metric: idConnectorState, value: 3}},
}

var genericFault = faultRule{metric: idFault, value: 0, notEqual: true}

var roles = map[string]role{
	"evc": roleEVC, "locker": roleLocker, "totem": roleTotem, "atm": roleATM,
	"pv": rolePV, "env": roleEnv, "desk": roleDesk, "room": roleRoom,
}

// typeInfo is shared by all assets of a type.
type typeInfo struct {
	name    string
	role    role
	staleMS int64
	faults  []faultRule
	// relevant has bit id set for the well-known metrics that contribOf or
	// the fault rules read for this type.
	relevant uint32
}

// roleMetrics are the metrics each role's contribution reads.
var roleMetrics = map[role][]uint16{
	roleEVC:    {idConnectorState},
	roleLocker: {idFreeCount},
	rolePV:     {idPowerKW, idEnergyKWh},
	roleEnv:    {idTempC, idHumidityPct, idCO2ppm},
	roleDesk:   {idOccupied},
	roleRoom:   {idOccupied},
}

func (s *Store) typeInfo(name string) *typeInfo {
	s.typesMu.Lock()
	defer s.typesMu.Unlock()
	if ti := s.types[name]; ti != nil {
		return ti
	}
	iv := s.opts.ExpectedInterval(name)
	if iv <= 0 {
		iv = DefaultExpectedInterval(name)
	}
	ti := &typeInfo{
		name:    name,
		role:    roles[name],
		staleMS: int64(math.Ceil(float64(iv.Milliseconds()) * s.opts.StaleAfter)),
		faults:  append([]faultRule{genericFault}, faultRules[name]...),
	}
	for _, f := range ti.faults {
		ti.relevant |= 1 << f.metric
	}
	for _, id := range roleMetrics[ti.role] {
		ti.relevant |= 1 << id
	}
	s.types[name] = ti
	return ti
}

func (a *asset) faulty() bool {
	for _, f := range a.typ.faults {
		if m, ok := a.metricByID(f.metric); ok && (m.val == f.value) != f.notEqual {
			return true
		}
	}
	return false
}

// base is the status without the clock: offline when the newest connection
// status says so and no data is newer than it; fault per faultRules;
// otherwise online. Staleness is added at read time.
func (a *asset) base() Status {
	switch {
	case !a.seen:
		return StatusUnknown
	case a.conn == connOffline && a.statusTS >= a.lastData:
		return StatusOffline
	case a.fault:
		return StatusFault
	}
	return StatusOnline
}

func (a *asset) stale(nowMS int64) bool {
	return nowMS-a.lastSeen > a.typ.staleMS
}

// status derives the full status at now: offline, then stale, then fault.
// A silent asset's last fault report is no longer news, so stale comes first.
func (a *asset) status(nowMS int64) Status {
	b := a.base()
	if (b == StatusOnline || b == StatusFault) && a.stale(nowMS) {
		return StatusStale
	}
	return b
}

// Aggregate names site aggregates, as a bit set.
type Aggregate uint16

const (
	AggStatus Aggregate = 1 << iota
	AggChargersFree
	AggLockerFree
	AggTotemsUp
	AggATMsUp
	AggPVPower
	AggPVEnergy
	AggClimate
	AggDesksOccupied
	AggRoomsOccupied
)

// contrib is one asset's contribution to its site's aggregates. Sums are
// fixed point (thousandths) so that adding and removing contributions is
// exact and independent of order, which floating point is not.
type contrib struct {
	base                        Status
	chargerFree, totemUp, atmUp int32
	deskOcc, roomOcc            int32
	lockerFree, pvPower         int64
	energy                      int64
	energyDay                   int32 // 0: no energy reading
	temp, hum, co2              int64
	tempN, humN, co2N           int32
}

const fxScale = 1000

// fx converts to fixed point, clamped so sums of 150,000 assets cannot overflow.
func fx(v float64) int64 {
	const lim = 1e12
	return int64(math.Round(math.Max(-lim, math.Min(lim, v)) * fxScale))
}

func unfx(v int64) float64 { return float64(v) / fxScale }

func (s *Store) dayKey(ms int64) int32 {
	y, m, d := time.UnixMilli(ms).In(s.loc).Date()
	return int32(y*10000 + int(m)*100 + d)
}

// contribOf computes an asset's contribution. Only connected assets (online
// or fault) count, except the day's PV energy, which stays produced when
// the inverter goes quiet.
func (s *Store) contribOf(a *asset) contrib {
	c := contrib{base: a.base()}
	live := c.base == StatusOnline || c.base == StatusFault
	up := c.base == StatusOnline
	val := func(id uint16) (float64, bool) {
		if m, ok := a.metricByID(id); ok {
			return m.val, true
		}
		return 0, false
	}
	switch a.typ.role {
	case roleEVC:
		if v, ok := val(idConnectorState); ok && up && v == 0 {
			c.chargerFree = 1
		}
	case roleLocker:
		if v, ok := val(idFreeCount); ok && live {
			c.lockerFree = fx(v)
		}
	case roleTotem:
		if up {
			c.totemUp = 1
		}
	case roleATM:
		if up {
			c.atmUp = 1
		}
	case rolePV:
		if v, ok := val(idPowerKW); ok && live {
			c.pvPower = fx(v)
		}
		if m, ok := a.metricByID(idEnergyKWh); ok {
			c.energy, c.energyDay = fx(m.val), s.dayKey(m.ts)
		}
	case roleEnv:
		if !live {
			break
		}
		if v, ok := val(idTempC); ok {
			c.temp, c.tempN = fx(v), 1
		}
		if v, ok := val(idHumidityPct); ok {
			c.hum, c.humN = fx(v), 1
		}
		if v, ok := val(idCO2ppm); ok {
			c.co2, c.co2N = fx(v), 1
		}
	case roleDesk:
		if v, ok := val(idOccupied); ok && live && v != 0 {
			c.deskOcc = 1
		}
	case roleRoom:
		if v, ok := val(idOccupied); ok && live && v != 0 {
			c.roomOcc = 1
		}
	}
	return c
}

func (c contrib) diff(o contrib) Aggregate {
	var g Aggregate
	set := func(b bool, a Aggregate) {
		if b {
			g |= a
		}
	}
	set(c.base != o.base, AggStatus)
	set(c.chargerFree != o.chargerFree, AggChargersFree)
	set(c.lockerFree != o.lockerFree, AggLockerFree)
	set(c.totemUp != o.totemUp, AggTotemsUp)
	set(c.atmUp != o.atmUp, AggATMsUp)
	set(c.pvPower != o.pvPower, AggPVPower)
	set(c.energy != o.energy || c.energyDay != o.energyDay, AggPVEnergy)
	set(c.temp != o.temp || c.hum != o.hum || c.co2 != o.co2 || c.tempN != o.tempN ||
		c.humN != o.humN || c.co2N != o.co2N, AggClimate)
	set(c.deskOcc != o.deskOcc, AggDesksOccupied)
	set(c.roomOcc != o.roomOcc, AggRoomsOccupied)
	return g
}

type dayEnergy struct {
	day int32
	n   int32
	sum int64
}

// aggregates of one site, maintained by adding and removing contributions.
type aggregates struct {
	status                      [numStatus]int32
	byRole                      [roleRoom + 1]int32
	chargerFree, totemUp, atmUp int32
	deskOcc, roomOcc            int32
	lockerFree, pvPower         int64
	temp, hum, co2              int64
	tempN, humN, co2N           int32
	energy                      []dayEnergy // one entry per local day still referenced
}

func (g *aggregates) count(r role, sign int32) { g.byRole[r] += sign }

func (g *aggregates) add(c contrib, sign int32) {
	s64 := int64(sign)
	g.status[c.base] += sign
	g.chargerFree += sign * c.chargerFree
	g.totemUp += sign * c.totemUp
	g.atmUp += sign * c.atmUp
	g.deskOcc += sign * c.deskOcc
	g.roomOcc += sign * c.roomOcc
	g.lockerFree += s64 * c.lockerFree
	g.pvPower += s64 * c.pvPower
	g.temp += s64 * c.temp
	g.hum += s64 * c.hum
	g.co2 += s64 * c.co2
	g.tempN += sign * c.tempN
	g.humN += sign * c.humN
	g.co2N += sign * c.co2N
	if c.energyDay == 0 {
		return
	}
	for i := range g.energy {
		e := &g.energy[i]
		if e.day != c.energyDay {
			continue
		}
		e.n += sign
		e.sum += s64 * c.energy
		if e.n == 0 {
			g.energy = append(g.energy[:i], g.energy[i+1:]...)
		}
		return
	}
	g.energy = append(g.energy, dayEnergy{day: c.energyDay, n: sign, sum: s64 * c.energy})
}

func (g *aggregates) energyOn(day int32) int64 {
	for _, e := range g.energy {
		if e.day == day {
			return e.sum
		}
	}
	return 0
}

// SiteView is a site's aggregates at a given time.
type SiteView struct {
	ID     string
	Assets int
	// ByStatus counts assets by derived status, indexed by Status.
	ByStatus [numStatus]int

	Chargers, ChargersFree int // EV charging points; free: online with connector available
	Lockers                int
	LockerFree             float64 // free compartments over online lockers
	Totems, TotemsUp       int
	ATMs, ATMsUp           int
	PVs                    int
	PVPowerKW              float64 // now, over fresh plants
	PVEnergyTodayKWh       float64 // local day of now, over every plant's last reading of that day
	// Indoor climate: means over fresh env sensors; N is how many had a value.
	TempC, HumidityPct, CO2ppm float64
	TempN, HumidityN, CO2N     int
	Desks, DesksOccupied       int
	Rooms, RoomsOccupied       int
}

// Site returns the site's aggregates at now. The aggregates are kept by
// Apply; only staleness, which depends on now, is evaluated here, over the
// site's own assets (tens), by taking stale assets' contributions out.
func (s *Store) Site(siteID string, now time.Time) (SiteView, bool) {
	sh := s.shardOf(siteID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.sites[siteID]
	if st == nil {
		return SiteView{}, false
	}
	g := st.agg
	g.energy = nil // read-only use below: energyOn on st.agg
	nowMS := now.UnixMilli()
	for _, a := range st.order {
		if !a.seen || !a.stale(nowMS) {
			continue
		}
		c := a.contrib
		if c.base != StatusOnline && c.base != StatusFault {
			continue
		}
		c.energyDay = 0 // energy produced today stays produced
		g.add(c, -1)
		g.status[StatusStale]++
	}
	v := SiteView{
		ID:               st.id,
		Assets:           len(st.order),
		Chargers:         int(g.byRole[roleEVC]),
		ChargersFree:     int(g.chargerFree),
		Lockers:          int(g.byRole[roleLocker]),
		LockerFree:       unfx(g.lockerFree),
		Totems:           int(g.byRole[roleTotem]),
		TotemsUp:         int(g.totemUp),
		ATMs:             int(g.byRole[roleATM]),
		ATMsUp:           int(g.atmUp),
		PVs:              int(g.byRole[rolePV]),
		PVPowerKW:        unfx(g.pvPower),
		PVEnergyTodayKWh: unfx(st.agg.energyOn(s.dayKey(nowMS))),
		TempN:            int(g.tempN),
		HumidityN:        int(g.humN),
		CO2N:             int(g.co2N),
		Desks:            int(g.byRole[roleDesk]),
		DesksOccupied:    int(g.deskOcc),
		Rooms:            int(g.byRole[roleRoom]),
		RoomsOccupied:    int(g.roomOcc),
	}
	for i, n := range g.status {
		v.ByStatus[i] = int(n)
	}
	if g.tempN > 0 {
		v.TempC = unfx(g.temp) / float64(g.tempN)
	}
	if g.humN > 0 {
		v.HumidityPct = unfx(g.hum) / float64(g.humN)
	}
	if g.co2N > 0 {
		v.CO2ppm = unfx(g.co2) / float64(g.co2N)
	}
	return v, true
}

// Sites returns the registered site ids, unordered.
func (s *Store) Sites() []string {
	var out []string
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for id := range sh.sites {
			out = append(out, id)
		}
		sh.mu.Unlock()
	}
	return out
}
