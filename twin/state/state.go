// Package state is the live, in-memory state of every asset and site: the
// newest reported values, desired properties and their delta, derived status
// and per-site aggregates kept incrementally. It is pure: no I/O, no
// goroutines, and time is always a parameter, so the consumer that feeds it
// from Kafka (group "twin") and the tests drive it the same way.
//
// "Latest" means the newest source timestamp, never the last arrival: records
// may arrive out of order or twice (at-least-once delivery, device buffers)
// and the state after any permutation of the same records is the same, except
// for version numbers, which count accepted changes. The rules:
//
//   - A point, reported property, status or event replaces the stored one
//     only if its source time is newer. On equal source times the larger
//     value wins (bytewise for JSON properties, "offline" over "online",
//     the larger event type), so the outcome is the same in any order. An
//     exact duplicate changes nothing but may lower the kept arrival time
//     to the earliest seen, which is also order-independent.
//   - Status, in order of precedence: unknown (never heard from); offline
//     (the newest connection status is offline and no data is newer);
//     stale (connected but silent, by arrival time, for longer than
//     StaleAfter × the type's expected interval); fault (faultRules);
//     online.
//   - Site aggregates are fixed-point sums kept by Apply as the difference
//     of each asset's contribution before and after. Staleness depends on
//     the reading time, so Site takes stale assets out at read time by a
//     scan of that one site.
//
// Lock order: shard locks are never nested; typesMu is taken alone.
package state

import (
	"bytes"
	"encoding/json"
	"math"
	"sync"
	"time"
	_ "time/tzdata" // Europe/Rome must load on hosts without zoneinfo

	"github.com/polis-platform/polis/ingest/record"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// ExpectedInterval is how often an asset of the given type reports;
	// default DefaultExpectedInterval.
	ExpectedInterval func(assetType string) time.Duration
	// StaleAfter is how many expected intervals of silence make an online
	// asset stale; default 3.
	StaleAfter float64
	// Location is where "today" is for daily energy; default Europe/Rome.
	Location *time.Location
}

// DefaultExpectedInterval is one minute for the assets that stream physical
// quantities (env, meter, evc, pv) and five minutes for the others, after
// the simulator's cadence.
func DefaultExpectedInterval(assetType string) time.Duration {
	switch assetType {
	case "env", "meter", "evc", "pv":
		return time.Minute
	}
	return 5 * time.Minute
}

// numShards spreads sites over independent locks. A power of two well above
// the core count keeps two writers on the same lock rare without costing
// memory.
const numShards = 64

// Store holds the state. It is safe for concurrent use; records of one site
// are serialised by the site's shard lock.
type Store struct {
	opts   Options
	loc    *time.Location
	shards [numShards]shard

	typesMu sync.Mutex
	types   map[string]*typeInfo
}

type shard struct {
	mu    sync.Mutex
	sites map[string]*site
	names names

	applied, unknown, invalid, dropped uint64
	_                                  [64]byte // keep neighbouring shards' locks off one cache line
}

type site struct {
	id     string
	assets map[string]*asset
	order  []*asset // registration order, for the read-time stale scan
	agg    aggregates
}

// metric is one telemetry series' latest point: 40 bytes.
type metric struct {
	ts      int64 // source time, Unix ms
	arrival int64 // earliest arrival of this exact point, Unix ms
	val     float64
	ver     uint64 // asset version when it changed
	id      uint16
}

// prop is one reported or desired property.
type prop struct {
	ts      int64
	arrival int64
	ver     uint64
	val     json.RawMessage // compacted JSON
	id      uint16
}

type desired struct {
	version uint64
	props   []prop
}

const (
	connNone uint8 = iota
	connOnline
	connOffline
)

type asset struct {
	id       string
	typ      *typeInfo
	metrics  []metric
	reported []prop
	desired  *desired // nil until the first SetDesired: most assets never get one
	version  uint64
	statusTS int64 // source time of the connection status
	lastSeen int64 // newest arrival of any record, Unix ms
	lastData int64 // newest source time of any data (telemetry, event, reported)
	eventTS  int64
	event    uint16 // interned type of the newest event
	conn     uint8
	seen     bool
	fault    bool    // faultRules hold; recomputed when a relevant metric changes
	contrib  contrib // current contribution to the site aggregates
}

// New returns an empty store.
func New(opts Options) *Store {
	if opts.ExpectedInterval == nil {
		opts.ExpectedInterval = DefaultExpectedInterval
	}
	if opts.StaleAfter <= 0 {
		opts.StaleAfter = 3
	}
	loc := opts.Location
	if loc == nil {
		var err error
		if loc, err = time.LoadLocation("Europe/Rome"); err != nil {
			panic("BUG: cannot load time zone Europe/Rome: " + err.Error())
		}
	}
	s := &Store{opts: opts, loc: loc, types: map[string]*typeInfo{}}
	for i := range s.shards {
		s.shards[i].reset()
	}
	return s
}

func (sh *shard) reset() {
	sh.sites = map[string]*site{}
	sh.names = newNames()
	sh.applied, sh.unknown, sh.invalid, sh.dropped = 0, 0, 0, 0
}

// shardOf hashes the site id (FNV-1a) without allocating.
func (s *Store) shardOf(siteID string) *shard {
	h := uint32(2166136261)
	for i := 0; i < len(siteID); i++ {
		h ^= uint32(siteID[i])
		h *= 16777619
	}
	return &s.shards[h%numShards]
}

// AddAsset registers an asset; records for unregistered assets are ignored
// and counted. Registering again with another type moves its contribution
// to the site aggregates.
func (s *Store) AddAsset(siteID, assetID, assetType string) {
	ti := s.typeInfo(assetType)
	sh := s.shardOf(siteID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.sites[siteID]
	if st == nil {
		st = &site{id: siteID, assets: map[string]*asset{}}
		sh.sites[siteID] = st
	}
	if a := st.assets[assetID]; a != nil {
		if a.typ == ti {
			return
		}
		st.agg.add(a.contrib, -1)
		st.agg.count(a.typ.role, -1)
		a.typ = ti
		a.fault = a.faulty()
		a.contrib = s.contribOf(a)
		st.agg.count(ti.role, 1)
		st.agg.add(a.contrib, 1)
		return
	}
	a := &asset{id: assetID, typ: ti}
	a.contrib = s.contribOf(a)
	st.assets[assetID] = a
	st.order = append(st.order, a)
	st.agg.count(ti.role, 1)
	st.agg.add(a.contrib, 1)
}

// Change says what one Apply changed, for the SSE stream and the rules
// engine. It does not allocate for telemetry.
type Change struct {
	Known bool // the asset is registered
	// Points has bit i set when r.Points[i] became the latest value of its
	// metric; PointsOver says the same of some point past the 64th.
	Points     uint64
	PointsOver bool
	// Properties lists the reported properties that changed.
	Properties []string
	// Event is set when the record became the asset's latest event.
	Event bool
	// Connection is set when the record became the connection status.
	Connection bool
	// OldStatus and NewStatus are the time-independent status before and
	// after (never StatusStale, which needs a clock).
	OldStatus, NewStatus Status
	// Aggregates are the site aggregates the record moved.
	Aggregates Aggregate
	// Version is the asset's version after the record.
	Version uint64
}

// Changed reports whether the record changed anything.
func (c Change) Changed() bool {
	return c.Points != 0 || c.PointsOver || len(c.Properties) > 0 || c.Event || c.Connection || c.OldStatus != c.NewStatus
}

// Stats counts records by outcome since New or Restore.
type Stats struct {
	Applied uint64 // records of registered assets
	Unknown uint64 // records of unregistered assets, ignored
	Invalid uint64 // records, points or properties that could not be used
	Dropped uint64 // names refused because a shard's name table is full
	Sites   int
	Assets  int
}

// Stats returns the counters.
func (s *Store) Stats() Stats {
	var st Stats
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		st.Applied += sh.applied
		st.Unknown += sh.unknown
		st.Invalid += sh.invalid
		st.Dropped += sh.dropped
		st.Sites += len(sh.sites)
		for _, site := range sh.sites {
			st.Assets += len(site.assets)
		}
		sh.mu.Unlock()
	}
	return st
}

// Apply applies one record and returns what changed.
func (s *Store) Apply(r *record.Record) Change {
	if r == nil {
		return Change{}
	}
	sh := s.shardOf(r.Site)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	st := sh.sites[r.Site]
	if st == nil {
		sh.unknown++
		return Change{}
	}
	a := st.assets[r.Asset]
	if a == nil {
		sh.unknown++
		return Change{}
	}
	sh.applied++
	before := a.contrib
	ch := Change{Known: true, OldStatus: before.base}
	// Telemetry moves the contribution only through the type's relevant
	// metrics, the first record, or data newer than an offline status;
	// skipping the rest keeps the common update cheap.
	recompute := !a.seen || a.conn == connOffline || r.Kind != record.KindTelemetry
	a.seen = true
	if r.Received > a.lastSeen {
		a.lastSeen = r.Received
	}
	next := a.version + 1
	changed := false
	switch r.Kind {
	case record.KindTelemetry:
		var relevant bool
		changed, relevant = sh.applyPoints(a, r, next, &ch)
		recompute = recompute || relevant
	case record.KindReported:
		changed = sh.applyReported(a, r, next, &ch)
	case record.KindStatus:
		changed = sh.applyStatus(a, r)
		ch.Connection = changed
	case record.KindEvent:
		changed = sh.applyEvent(a, r)
		ch.Event = changed
	default:
		sh.invalid++
	}
	if changed {
		a.version = next
	}
	ch.Version = a.version
	if recompute {
		if after := s.contribOf(a); after != before {
			ch.Aggregates = before.diff(after)
			st.agg.add(before, -1)
			st.agg.add(after, 1)
			a.contrib = after
		}
	}
	ch.NewStatus = a.contrib.base
	return ch
}

// sourceTS is the source time of a non-telemetry record; a device that sent
// none is taken at arrival, as ingest does for telemetry.
func sourceTS(r *record.Record) int64 {
	if r.TS != 0 {
		return r.TS
	}
	return r.Received
}

// applyPoints reports whether a point changed and whether a changed point is
// one the asset's contribution or fault rules read.
func (sh *shard) applyPoints(a *asset, r *record.Record, ver uint64, ch *Change) (changed, relevant bool) {
	for i := range r.Points {
		p := &r.Points[i]
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			sh.invalid++
			continue
		}
		if p.TS > a.lastData {
			a.lastData = p.TS
		}
		id, ok := sh.names.id(p.Metric)
		if !ok {
			sh.dropped++
			continue
		}
		if a.setMetric(id, p.TS, r.Received, p.Value, ver) {
			changed = true
			if id < 32 && a.typ.relevant&(1<<id) != 0 {
				relevant = true
				a.fault = a.faulty()
			}
			if i < 64 {
				ch.Points |= 1 << i
			} else {
				ch.PointsOver = true
			}
		}
	}
	return changed, relevant
}

// setMetric keeps the point with the newest source time. On equal times the
// larger value wins, so that the outcome does not depend on arrival order;
// an exact duplicate only lowers the arrival time to the earliest seen.
func (a *asset) setMetric(id uint16, ts, arrival int64, v float64, ver uint64) bool {
	for i := range a.metrics {
		m := &a.metrics[i]
		if m.id != id {
			continue
		}
		switch {
		case ts > m.ts || ts == m.ts && v > m.val:
			*m = metric{ts: ts, arrival: arrival, val: v, ver: ver, id: id}
			return true
		case ts == m.ts && v == m.val && arrival < m.arrival:
			m.arrival = arrival
		}
		return false
	}
	a.metrics = append(a.metrics, metric{ts: ts, arrival: arrival, val: v, ver: ver, id: id})
	return true
}

func (a *asset) metricByID(id uint16) (*metric, bool) {
	for i := range a.metrics {
		if a.metrics[i].id == id {
			return &a.metrics[i], true
		}
	}
	return nil, false
}

func (sh *shard) applyReported(a *asset, r *record.Record, ver uint64, ch *Change) bool {
	var body map[string]json.RawMessage
	if err := json.Unmarshal(r.Body, &body); err != nil || body == nil {
		sh.invalid++
		return false
	}
	ts := sourceTS(r)
	if ts > a.lastData {
		a.lastData = ts
	}
	changed := false
	for name, raw := range body {
		val, ok := compactJSON(raw)
		if !ok {
			sh.invalid++
			continue
		}
		id, ok := sh.names.id(name)
		if !ok {
			sh.dropped++
			continue
		}
		var p prop
		p, a.reported, ok = setProp(a.reported, id, ts, r.Received, val, ver)
		if ok {
			changed = true
			ch.Properties = append(ch.Properties, sh.names.list[p.id])
		}
	}
	return changed
}

// setProp applies the metric rule to a property: newest source time wins,
// on equal times the bytewise larger value.
func setProp(ps []prop, id uint16, ts, arrival int64, val json.RawMessage, ver uint64) (prop, []prop, bool) {
	for i := range ps {
		p := &ps[i]
		if p.id != id {
			continue
		}
		c := bytes.Compare(val, p.val)
		switch {
		case ts > p.ts || ts == p.ts && c > 0:
			*p = prop{ts: ts, arrival: arrival, ver: ver, val: val, id: id}
			return *p, ps, true
		case ts == p.ts && c == 0 && arrival < p.arrival:
			p.arrival = arrival
		}
		return *p, ps, false
	}
	p := prop{ts: ts, arrival: arrival, ver: ver, val: val, id: id}
	return p, append(ps, p), true
}

func compactJSON(raw json.RawMessage) (json.RawMessage, bool) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || b.Len() == 0 {
		return nil, false
	}
	return b.Bytes(), true
}

// applyStatus keeps the newest connection status; on equal times offline
// wins, the cautious reading.
func (sh *shard) applyStatus(a *asset, r *record.Record) bool {
	var c uint8
	switch r.Status {
	case "online":
		c = connOnline
	case "offline":
		c = connOffline
	default:
		sh.invalid++
		return false
	}
	ts := sourceTS(r)
	if a.conn != connNone && (ts < a.statusTS || ts == a.statusTS && c <= a.conn) {
		return false
	}
	a.conn, a.statusTS = c, ts
	return true
}

// applyEvent keeps the newest event; on equal times the larger type name.
func (sh *shard) applyEvent(a *asset, r *record.Record) bool {
	if r.Event == "" {
		sh.invalid++
		return false
	}
	ts := sourceTS(r)
	if ts > a.lastData {
		a.lastData = ts
	}
	if a.event != idNone && (ts < a.eventTS || ts == a.eventTS && r.Event <= sh.names.list[a.event]) {
		return false
	}
	id, ok := sh.names.id(r.Event)
	if !ok {
		sh.dropped++
		return false
	}
	a.eventTS, a.event = ts, id
	return true
}

// names interns metric, property and event names per shard (under the
// shard lock, so lookups need no other synchronisation). Ids below
// len(wellKnown) are the same in every shard, which lets type rules refer
// to them as constants.
type names struct {
	ids  map[string]uint16
	list []string
}

// maxNames bounds a shard's table: names come from devices, and a device
// inventing names must not grow memory without bound.
const maxNames = math.MaxUint16

const (
	idNone uint16 = iota // reserved: "no event yet"
	idAvailable
	idInverterState
	idConnectorState
	idOnline
	idFault
	idFreeCount
	idPowerKW
	idEnergyKWh
	idTempC
	idHumidityPct
	idCO2ppm
	idOccupied
)

var wellKnown = []string{
	"", "available", "inverter_state", "connector_state", "online", "fault", "free_count",
	"power_kw", "energy_kwh", "temp_c", "humidity_pct", "co2_ppm", "occupied",
}

func newNames() names {
	n := names{ids: make(map[string]uint16, 64), list: make([]string, 0, 64)}
	for _, w := range wellKnown {
		n.id(w)
	}
	return n
}

func (n *names) id(name string) (uint16, bool) {
	if id, ok := n.ids[name]; ok {
		return id, true
	}
	if len(n.list) >= maxNames {
		return 0, false
	}
	name = string([]byte(name)) // do not pin the record's buffer
	id := uint16(len(n.list))
	n.ids[name] = id
	n.list = append(n.list, name)
	return id, true
}
