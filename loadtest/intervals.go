package loadtest

import (
	"container/heap"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// DefaultInterval is the reporting interval of an asset type the table
// below does not know.
const DefaultInterval = time.Minute

// intervals is how often each kind of device reports telemetry in the
// field, the one place these figures live (Options.Intervals, Interval,
// RealisticRate). Events (a deposit, a charging session, a fault) go when
// they happen, whatever the interval.
//
//	type      interval  why
//	gateway   60 s      link and uptime heartbeat
//	totem     60 s      sessions and paper, watched by the help desk
//	atm       60 s      cash levels and faults
//	locker    120 s     compartments fill slowly; deposits are events
//	showcase  300 s     screen on/off and interaction counters
//	env       60 s      temperature, humidity, CO2 for the building controls
//	meter     60 s      power and energy, the minute rollups' resolution
//	evc       30 s      power during a charging session
//	pv        60 s      inverter output
//	outdoor   60 s      people counter and lights
//	desk      300 s     occupancy; check-ins are events
//	room      120 s     occupancy; meetings are events
var intervals = map[string]time.Duration{
	registry.GatewayType:  60 * time.Second,
	registry.TypeTotem:    60 * time.Second,
	registry.TypeATM:      60 * time.Second,
	registry.TypeLocker:   120 * time.Second,
	registry.TypeShowcase: 300 * time.Second,
	registry.TypeEnv:      60 * time.Second,
	registry.TypeMeter:    60 * time.Second,
	registry.TypeEVC:      30 * time.Second,
	registry.TypePV:       60 * time.Second,
	registry.TypeOutdoor:  60 * time.Second,
	registry.TypeDesk:     300 * time.Second,
	registry.TypeRoom:     120 * time.Second,
}

// Interval is how often a device of the asset type (registry.Type*,
// registry.GatewayType) reports telemetry in the field: the table above,
// DefaultInterval for a type it does not know.
func Interval(assetType string) time.Duration {
	if iv, ok := intervals[assetType]; ok {
		return iv
	}
	return DefaultInterval
}

// RealisticRate is the telemetry messages per second the devices opts
// would run send at their reporting intervals: those of the connections
// it would open (Credentials, Registry, Connections, UseGateways), on site
// now if it has a Lifecycle, at Interval scaled by IntervalScale. Events
// and status messages come on top (a few per cent); Rate does not cap it.
func RealisticRate(opts Options) float64 {
	r := &runner{opts: opts}
	var sum float64
	for _, c := range plan(opts) {
		for _, d := range c.devices {
			if _, on := r.state(d); on {
				sum += 1 / scaledInterval(d.typ, opts.IntervalScale).Seconds()
			}
		}
	}
	return sum
}

// minInterval keeps a tiny IntervalScale from making a device report
// continuously.
const minInterval = time.Millisecond

func scaledInterval(assetType string, scale float64) time.Duration {
	iv := Interval(assetType)
	if scale > 0 {
		iv = time.Duration(float64(iv) * scale)
	}
	return max(iv, minInterval)
}

// intervalRate is rate for the devices a run publishes for.
func intervalRate(devs []*device, scale float64) float64 {
	var sum float64
	for _, d := range devs {
		sum += 1 / scaledInterval(d.typ, scale).Seconds()
	}
	return sum
}

// schedule is one worker's devices in the order they are due (a min-heap
// on next). Each device reports once per interval at a fixed phase
// within it, drawn from its seed, so that the fleet does not publish in
// bursts.
type schedule []*slot

type slot struct {
	d        *device
	interval time.Duration
	next     time.Time
}

func newSchedule(devs []*device, start time.Time, scale float64) *schedule {
	s := make(schedule, len(devs))
	for i, d := range devs {
		iv := scaledInterval(d.typ, scale)
		phase := time.Duration(unit(splitmix(d.seed^0x5ca1ab1e)) * float64(iv))
		s[i] = &slot{d: d, interval: iv, next: start.Add(phase)}
	}
	heap.Init(&s)
	return &s
}

// due pops the device due first if it is due at now.
func (s *schedule) due(now time.Time) (*slot, bool) {
	if len(*s) == 0 || (*s)[0].next.After(now) {
		return nil, false
	}
	return (*s)[0], true
}

// advance moves the slot returned by due to its next report after now:
// one interval on, or, for a device that fell behind (a Rate cap, a
// stall), to the first slot of its phase after now, so it reports once
// rather than catching up in a burst.
func (s *schedule) advance(sl *slot, now time.Time) {
	sl.next = sl.next.Add(sl.interval)
	if behind := now.Sub(sl.next); behind >= 0 {
		sl.next = sl.next.Add((behind/sl.interval + 1) * sl.interval)
	}
	heap.Fix(s, 0)
}

// next is when the first device is due; ok is false without devices.
func (s *schedule) next() (time.Time, bool) {
	if len(*s) == 0 {
		return time.Time{}, false
	}
	return (*s)[0].next, true
}

func (s schedule) Len() int           { return len(s) }
func (s schedule) Less(i, j int) bool { return s[i].next.Before(s[j].next) }
func (s schedule) Swap(i, j int)      { s[i], s[j] = s[j], s[i] }
func (s *schedule) Push(x any)        { *s = append(*s, x.(*slot)) }
func (s *schedule) Pop() any {
	old := *s
	x := old[len(old)-1]
	old[len(old)-1] = nil
	*s = old[:len(old)-1]
	return x
}
