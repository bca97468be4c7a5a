package progress

import (
	"math"
	"slices"
	"time"
)

// beforeRecords is the time of the counts an asset holds before anything
// about it is recorded (an asset with no lifecycle event and no
// installation date): it counts from the start, and no date is reported
// for it.
const beforeRecords = math.MinInt64

// delta is a change of a count at a time (Unix ms).
type delta struct {
	at int64
	d  int32
}

// series is a count over time: the changes in time order and their
// running sums.
type series struct {
	at  []int64
	sum []int64 // sum[i]: the count just after change i
}

func newSeries(ds []delta) series {
	slices.SortStableFunc(ds, func(a, b delta) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	s := series{at: make([]int64, 0, len(ds)), sum: make([]int64, 0, len(ds))}
	var run int64
	for _, d := range ds {
		if d.d == 0 {
			continue
		}
		run += int64(d.d)
		if n := len(s.at); n > 0 && s.at[n-1] == d.at {
			s.sum[n-1] = run // same instant: one change
			continue
		}
		s.at = append(s.at, d.at)
		s.sum = append(s.sum, run)
	}
	return s
}

// value is the count at t (changes at t included).
func (s series) value(t int64) int64 {
	i, found := slices.BinarySearch(s.at, t)
	if found {
		for i+1 < len(s.at) && s.at[i+1] == t {
			i++
		}
		return s.sum[i]
	}
	if i == 0 {
		return 0
	}
	return s.sum[i-1]
}

// current is the count after every change.
func (s series) current() int64 {
	if len(s.sum) == 0 {
		return 0
	}
	return s.sum[len(s.sum)-1]
}

// reachedOn is when the count took its current value: the last change
// that left it different from before. Zero when it has not changed since
// before records, or never.
func (s series) reachedOn() time.Time {
	for i := len(s.at) - 1; i >= 0; i-- {
		prev := int64(0)
		if i > 0 {
			prev = s.sum[i-1]
		}
		if s.sum[i] != prev {
			return msTime(s.at[i])
		}
	}
	return time.Time{}
}

// firstReach is when the count first reached target; zero if never or
// before records.
func (s series) firstReach(target int64) time.Time {
	for i, v := range s.sum {
		if v >= target {
			return msTime(s.at[i])
		}
	}
	return time.Time{}
}

// firstChange is the first dated change; zero if none.
func (s series) firstChange() int64 {
	for _, at := range s.at {
		if at != beforeRecords {
			return at
		}
	}
	return 0
}

func msTime(ms int64) time.Time {
	if ms == beforeRecords {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// pace is the count's growth per day over the PaceWindow before now
// (changes at its start included), or since the first dated change when
// that is more recent (a count that started two months ago is not
// averaged over six). Zero without a dated change.
func (s series) pace(now time.Time) float64 {
	first := s.firstChange()
	if first == 0 {
		return 0
	}
	from := now.Add(-PaceWindow).UnixMilli()
	if first > from {
		from = first
	}
	days := float64(now.UnixMilli()-from) / float64(24*time.Hour/time.Millisecond)
	if days < 1 {
		days = 1 // a count that started today is not extrapolated from minutes
	}
	return float64(s.value(now.UnixMilli())-s.value(from-1)) / days
}

// projected is the day the count reaches target at pace per day from now,
// as midnight UTC of that day in Europe/Rome; zero when reached or the
// pace is not positive, and zero past year 9999 (never, in practice).
func projected(current, target int, pace float64, now time.Time) time.Time {
	if current >= target || pace <= 0 || math.IsNaN(pace) {
		return time.Time{}
	}
	days := math.Ceil(float64(target-current) / pace)
	if days > 365*3000 {
		return time.Time{}
	}
	d := now.In(rome)
	return time.Date(d.Year(), d.Month(), d.Day()+int(days), 0, 0, 0, 0, time.UTC)
}

// monthEnds are the instants the trend points are counted at: the end of
// every month (Europe/Rome) from the month of start to the month before
// now's, then now.
func monthEnds(start, now time.Time) []time.Time {
	s, n := start.In(rome), now.In(rome)
	var out []time.Time
	for m := time.Date(s.Year(), s.Month(), 1, 0, 0, 0, 0, rome); ; m = m.AddDate(0, 1, 0) {
		end := m.AddDate(0, 1, 0).Add(-time.Millisecond)
		if !end.Before(n) {
			break
		}
		out = append(out, end)
	}
	return append(out, now)
}

// points samples s at every time of at.
func (s series) points(at []time.Time) []Point {
	out := make([]Point, len(at))
	for i, t := range at {
		out[i] = Point{Date: t, Value: float64(s.value(t.UnixMilli()))}
	}
	return out
}

// endOfDay is the last instant of d's calendar day (d is a date: midnight
// UTC of the day, as facts and deadlines are) in Europe/Rome.
func endOfDay(d time.Time) time.Time {
	return time.Date(d.Year(), d.Month(), d.Day()+1, 0, 0, 0, 0, rome).Add(-time.Millisecond)
}
