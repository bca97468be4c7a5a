package dsl

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// History is an asset's recent points, as the history functions read them.
// now is the evaluated point's time: points after now are ignored, so that
// replays and late points give the same answers as live evaluation.
// Window functions return ok=false when no point falls in (now-d, now].
type History interface {
	Avg(metric string, d time.Duration, now time.Time) (float64, bool)
	Min(metric string, d time.Duration, now time.Time) (float64, bool)
	Max(metric string, d time.Duration, now time.Time) (float64, bool)
	// Delta is the newest minus the oldest value in the window (two points at least).
	Delta(metric string, d time.Duration, now time.Time) (float64, bool)
	// Rate is Delta per second between those two points.
	Rate(metric string, d time.Duration, now time.Time) (float64, bool)
	CountOver(metric string, d time.Duration, now time.Time) int
	// SilentFor is now minus the newest point at or before now; a very large
	// duration when there is none.
	SilentFor(now time.Time) time.Duration
}

// Ring is a History in a fixed ring of points shared by all of an asset's
// metrics: memory is bounded by capacity (24 bytes a point plus the metric
// names seen, at most 255), whatever the rate, and the oldest points go first.
// Size it to the longest window times the fastest metric's rate. Not safe
// for concurrent use: the engine owns one per asset under its own lock.
type Ring struct {
	pts   []ringPoint
	next  int // where the next point goes
	full  bool
	names map[string]uint8
	last  int64 // newest ts in ms ever added
}

type ringPoint struct {
	ts    int64 // Unix ms
	value float64
	id    uint8
}

// NewRing returns a Ring of capacity points (at least 1).
func NewRing(capacity int) *Ring {
	return &Ring{pts: make([]ringPoint, max(capacity, 1)), names: map[string]uint8{}, last: math.MinInt64}
}

// Add records a point. Metrics beyond the 255th distinct name are dropped.
func (r *Ring) Add(metric string, ts time.Time, value float64) {
	id, ok := r.names[metric]
	if !ok {
		if len(r.names) >= 255 {
			return
		}
		id = uint8(len(r.names) + 1)
		r.names[metric] = id
	}
	ms := ts.UnixMilli()
	r.pts[r.next] = ringPoint{ts: ms, value: value, id: id}
	r.next++
	if r.next == len(r.pts) {
		r.next, r.full = 0, true
	}
	r.last = max(r.last, ms)
}

// scan calls f for each point of metric in (now-d, now], in no given order
// (late points may sit anywhere in the ring).
func (r *Ring) scan(metric string, d time.Duration, now time.Time, f func(ringPoint)) {
	id, ok := r.names[metric]
	if !ok {
		return
	}
	hi := now.UnixMilli()
	lo := hi - d.Milliseconds()
	n := r.next
	if r.full {
		n = len(r.pts)
	}
	for _, p := range r.pts[:n] {
		if p.id == id && p.ts > lo && p.ts <= hi {
			f(p)
		}
	}
}

func (r *Ring) Avg(metric string, d time.Duration, now time.Time) (float64, bool) {
	var sum float64
	var n int
	r.scan(metric, d, now, func(p ringPoint) { sum += p.value; n++ })
	return sum / float64(n), n > 0
}

func (r *Ring) Min(metric string, d time.Duration, now time.Time) (float64, bool) {
	v, n := math.Inf(1), 0
	r.scan(metric, d, now, func(p ringPoint) { v = math.Min(v, p.value); n++ })
	return v, n > 0
}

func (r *Ring) Max(metric string, d time.Duration, now time.Time) (float64, bool) {
	v, n := math.Inf(-1), 0
	r.scan(metric, d, now, func(p ringPoint) { v = math.Max(v, p.value); n++ })
	return v, n > 0
}

// ends returns the oldest and newest points of the window.
func (r *Ring) ends(metric string, d time.Duration, now time.Time) (first, last ringPoint, n int) {
	r.scan(metric, d, now, func(p ringPoint) {
		if n == 0 || p.ts < first.ts {
			first = p
		}
		if n == 0 || p.ts >= last.ts {
			last = p
		}
		n++
	})
	return first, last, n
}

func (r *Ring) Delta(metric string, d time.Duration, now time.Time) (float64, bool) {
	first, last, n := r.ends(metric, d, now)
	return last.value - first.value, n >= 2
}

func (r *Ring) Rate(metric string, d time.Duration, now time.Time) (float64, bool) {
	first, last, n := r.ends(metric, d, now)
	if n < 2 || last.ts == first.ts {
		return 0, false
	}
	return (last.value - first.value) / (float64(last.ts-first.ts) / 1000), true
}

func (r *Ring) CountOver(metric string, d time.Duration, now time.Time) int {
	n := 0
	r.scan(metric, d, now, func(ringPoint) { n++ })
	return n
}

// SilentFor looks at every metric. A point after now (a replay behind the
// live stream) counts as silence zero.
func (r *Ring) SilentFor(now time.Time) time.Duration {
	if r.last == math.MinInt64 {
		return time.Duration(math.MaxInt64)
	}
	gap := now.UnixMilli() - r.last
	if gap < 0 {
		return 0
	}
	return time.Duration(gap) * time.Millisecond
}

// maxDuration bounds rule durations; far below time.Duration's ~292 years.
const maxDuration = 10 * 365 * 24 * time.Hour

var errDuration = errors.New("want a duration such as 30s, 5m, 1h30m or 1d")

// ParseDuration accepts Go durations ("1h30m", "90s") and the Prometheus
// units d (24h) and w (7d), also combined ("1d12h"). Negative durations
// are refused.
func ParseDuration(s string) (time.Duration, error) {
	if s == "" {
		return 0, errDuration
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return 0, errDuration
		}
		if d > maxDuration {
			return 0, errors.New("duration too long: at most 10 years")
		}
		return d, nil
	}
	var total time.Duration
	for s != "" {
		i := 0
		for i < len(s) && s[i] >= '0' && s[i] <= '9' {
			i++
		}
		if i == 0 || i > 6 {
			return 0, errDuration
		}
		n, _ := strconv.Atoi(s[:i]) // at most 6 digits
		s = s[i:]
		j := 0
		for j < len(s) && (s[j] < '0' || s[j] > '9') {
			j++
		}
		var unit time.Duration
		switch s[:j] {
		case "w":
			unit = 7 * 24 * time.Hour
		case "d":
			unit = 24 * time.Hour
		case "h":
			unit = time.Hour
		case "m":
			unit = time.Minute
		case "s":
			unit = time.Second
		case "ms":
			unit = time.Millisecond
		default:
			return 0, errDuration
		}
		s = s[j:]
		// 999999w overflows time.Duration: refuse rather than wrap negative.
		if time.Duration(n) > (maxDuration-total)/unit {
			return 0, errors.New("duration too long: at most 10 years")
		}
		total += time.Duration(n) * unit
	}
	return total, nil
}
