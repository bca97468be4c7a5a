package loadtest

import (
	"hash/fnv"
	"math"
	"math/rand/v2"
	"time"
	_ "time/tzdata" // Europe/Rome must load on hosts without zoneinfo

	"github.com/polis-platform/polis/twin/registry"
)

// Model is one simulated device: a small state machine that is stepped with
// simulated time and reports what the device would publish at that time.
// Models are deterministic for a given seed and sequence of step times, and
// are not safe for concurrent use.
type Model interface {
	// Step advances the device to now and appends its telemetry and any
	// events that happened since the previous step to s. Steps may be
	// milliseconds or hours apart; a step back in time only reports.
	Step(now time.Time, s *Sample)
}

// Metric is one telemetry value; names are snake_case with a unit suffix
// where there is a unit (power_kw, temp_c); 0/1 flags and state codes have none.
type Metric struct {
	Name  string
	Value float64
}

// Event is a discrete happening, published on .../event as
// {"ts":..,"type":..,<fields>}.
type Event struct {
	TS     time.Time
	Type   string
	Fields map[string]any
}

// Sample collects one step's output; reuse it across steps with Reset.
type Sample struct {
	Metrics []Metric
	Events  []Event
}

// maxEvents bounds the events of one step: a long step (hours) summarises
// in the counters instead of flooding the event topic.
const maxEvents = 8

// Reset empties s, keeping its storage.
func (s *Sample) Reset() {
	s.Metrics = s.Metrics[:0]
	clear(s.Events)
	s.Events = s.Events[:0]
}

func (s *Sample) add(name string, v float64) {
	s.Metrics = append(s.Metrics, Metric{name, v})
}

func (s *Sample) event(ts time.Time, typ string, fields map[string]any) {
	if len(s.Events) < maxEvents {
		s.Events = append(s.Events, Event{TS: ts, Type: typ, Fields: fields})
	}
}

// Place is what a model knows of where it stands.
type Place struct {
	Lat, Lon  float64
	Coworking bool // coworking space rather than post office
	Desks     int  // workstations of a coworking space, for occupancy
}

// NewModel returns the model for an asset type (registry.Type*); unknown types
// get a model that only reports online. seed individualises the device.
func NewModel(assetType string, p Place, seed uint64) Model {
	b := base{place: p, rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed: seed}
	switch assetType {
	case registry.TypePV:
		return newPV(b)
	case registry.TypeEVC:
		return newEVC(b)
	case registry.TypeMeter:
		return newMeter(b)
	case registry.TypeLocker:
		return newLocker(b)
	case registry.TypeEnv:
		return newEnv(b)
	case registry.TypeATM:
		return newATM(b)
	case registry.TypeTotem:
		return newTotem(b)
	case registry.TypeShowcase:
		return &showcase{base: b}
	case registry.TypeDesk:
		return &desk{base: b}
	case registry.TypeRoom:
		return &room{base: b}
	case registry.TypeOutdoor:
		return &outdoor{base: b}
	case registry.GatewayType:
		return newGateway(b)
	}
	return &generic{}
}

// SeedFor derives a device seed from its username and a run seed.
func SeedFor(username string, runSeed uint64) uint64 {
	h := fnv.New64a()
	h.Write([]byte(username))
	return splitmix(h.Sum64() ^ runSeed)
}

// base is shared by all models.
type base struct {
	place Place
	rng   *rand.Rand
	seed  uint64
	last  time.Time // time of the previous step; zero before the first
}

// span returns the interval to simulate since the previous step, capped so
// that a device resumed after days does not replay them all.
func (b *base) span(now time.Time) (from time.Time, first bool) {
	const maxSpan = 48 * time.Hour
	if b.last.IsZero() {
		b.last = now
		return now, true
	}
	from = b.last
	if now.Sub(from) > maxSpan {
		from = now.Add(-maxSpan)
	}
	if now.After(b.last) {
		b.last = now
	}
	return from, false
}

// chunks calls f over consecutive slices of (from, to], none longer than
// max, so rates and integrals stay accurate on long steps.
func chunks(from, to time.Time, max time.Duration, f func(t0, t1 time.Time)) {
	for from.Before(to) {
		next := from.Add(max)
		if next.After(to) {
			next = to
		}
		f(from, next)
		from = next
	}
}

type generic struct{}

func (*generic) Step(_ time.Time, s *Sample) { s.add("online", 1) }

// --- shared helpers -------------------------------------------------------

var rome = mustLoadLocation("Europe/Rome")

func mustLoadLocation(name string) *time.Location {
	loc, err := time.LoadLocation(name)
	if err != nil {
		panic("BUG: cannot load time zone " + name + ": " + err.Error())
	}
	return loc
}

// localHour is the Europe/Rome wall-clock hour as a fraction (13.5 = 13:30).
func localHour(t time.Time) float64 {
	l := t.In(rome)
	return float64(l.Hour()) + float64(l.Minute())/60 + float64(l.Second())/3600
}

// dayKey identifies the local calendar day.
func dayKey(t time.Time) int {
	y, m, d := t.In(rome).Date()
	return y*10000 + int(m)*100 + d
}

// open reports the opening hours: small post offices work mornings
// (Mon-Fri 8:20-13:45, Sat 8:20-12:45); coworking spaces Mon-Fri 8-20.
func (p Place) open(t time.Time) bool {
	l := t.In(rome)
	h := localHour(t)
	wd := l.Weekday()
	if p.Coworking {
		return wd >= time.Monday && wd <= time.Friday && h >= 8 && h < 20
	}
	switch {
	case wd == time.Sunday:
		return false
	case wd == time.Saturday:
		return h >= 8+20.0/60 && h < 12.75
	}
	return h >= 8+20.0/60 && h < 13.75
}

// visitors is the expected number of people inside during opening hours:
// staff plus customers peaking mid-morning (post office) or desk users
// peaking late morning and mid-afternoon (coworking).
func (p Place) visitors(t time.Time) float64 {
	if !p.open(t) {
		return 0
	}
	h := localHour(t)
	if p.Coworking {
		desks := float64(max(p.Desks, 10))
		return desks * (0.25 + 0.35*bell(h, 11, 2) + 0.3*bell(h, 15.5, 2))
	}
	return 2 + 6*bell(h, 10.5, 1.5)
}

func bell(x, mu, sigma float64) float64 {
	d := (x - mu) / sigma
	return math.Exp(-d * d / 2)
}

// dayOfYear is the fractional day of the year in UTC (0 = 1 Jan 00:00).
func dayOfYear(t time.Time) float64 {
	t = t.UTC()
	return float64(t.YearDay()-1) + float64(t.Hour())/24 + float64(t.Minute())/1440
}

// outdoorTemp is a climatological air temperature for Italy: 15.5 °C mean
// at 42°N, -0.6 °C per degree north, a seasonal swing peaking in late July,
// a daily swing peaking at 15:00 and a slow per-site weather offset.
func outdoorTemp(p Place, seed uint64, t time.Time) float64 {
	season := 9.5 * math.Sin(2*math.Pi*(dayOfYear(t)-114)/365)
	daily := 5 * math.Cos(2*math.Pi*(localHour(t)-15)/24)
	weather := 6 * (valueNoise(seed^0xa11, t, 36*time.Hour) - 0.5)
	return 15.5 - 0.6*(p.Lat-42) + season + daily + weather
}

// summer is 1 in late July and -1 in late January.
func summer(t time.Time) float64 {
	return math.Sin(2 * math.Pi * (dayOfYear(t) - 114) / 365)
}

// valueNoise is smooth deterministic noise in [0, 1] as a function of time:
// the same instant gives the same value whatever the step cadence.
func valueNoise(seed uint64, t time.Time, period time.Duration) float64 {
	x := float64(t.UnixNano()) / float64(period)
	i := math.Floor(x)
	f := x - i
	f = f * f * (3 - 2*f)
	a := unit(splitmix(seed ^ uint64(int64(i))))
	b := unit(splitmix(seed ^ uint64(int64(i)+1)))
	return a + (b-a)*f
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

func unit(x uint64) float64 { return float64(x>>11) / (1 << 53) }

// poisson draws a Poisson count with the given mean.
func poisson(r *rand.Rand, mean float64) int {
	if mean <= 0 {
		return 0
	}
	if mean > 30 {
		return max(0, int(math.Round(mean+math.Sqrt(mean)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-mean), 0, 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// happens reports whether an event with the given rate per hour occurs
// within dt.
func happens(r *rand.Rand, perHour float64, dt time.Duration) bool {
	return r.Float64() < 1-math.Exp(-perHour*dt.Hours())
}

func round(v float64, decimals int) float64 {
	p := math.Pow10(decimals)
	return math.Round(v*p) / p
}

func clamp(v, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, v)) }

func boolf(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// uniform returns a value in [lo, hi).
func uniform(r *rand.Rand, lo, hi float64) float64 { return lo + (hi-lo)*r.Float64() }

// randDuration returns a duration in [lo, hi).
func randDuration(r *rand.Rand, lo, hi time.Duration) time.Duration {
	return lo + time.Duration(r.Int64N(int64(hi-lo)))
}
