package svg

import (
	"math"
	"strconv"
	"time"
)

// niceTicks returns round tick values covering [lo, hi] with about n
// intervals (steps of 1, 2 or 5 times a power of ten), and the decimals
// their labels need. With integer set the step is at least 1, so counts
// never get ticks like 0,2.
func niceTicks(lo, hi float64, n int, integer bool) (ticks []float64, dec int) {
	if n < 1 {
		n = 1
	}
	if !(hi-lo > 1e-6) { // also catches NaN
		hi = lo + 1
	}
	raw := (hi - lo) / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	step := 10 * mag
	for _, m := range []float64{1, 2, 5} {
		if m*mag >= raw*(1-1e-9) {
			step = m * mag
			break
		}
	}
	if integer && step < 1 {
		step = 1
	}
	if step < 1 {
		dec = int(math.Ceil(-math.Log10(step) - 1e-9))
	}
	scale := math.Pow(10, float64(dec))
	first := math.Floor(lo/step + 1e-9)
	last := math.Ceil(hi/step - 1e-9)
	for i := first; i <= last; i++ {
		v := math.Round(i*step*scale) / scale // 0.6, not 0.6000000000000001
		if v == 0 {
			v = 0 // no -0
		}
		ticks = append(ticks, v)
	}
	return ticks, dec
}

// timeTick is one tick of a time axis.
type timeTick struct {
	At    time.Time
	Label string
}

// monthIndex counts months from year 0.
func monthIndex(t time.Time) int { return t.Year()*12 + int(t.Month()) - 1 }

// monthSteps are the candidate spacings of month ticks; beyond the list the
// step grows by years 1, 2, 5, 10, 20, 50...
var monthSteps = []int{1, 2, 3, 6}

// timeTicks returns ticks for [from, to] (from before to), at most max
// of them: first days of months (labelled "feb 2023"), first days of years
// ("2023") when months would crowd, or days ("15/02/2023") for spans of
// under two months. Ticks are at midnight in from's location.
func timeTicks(from, to time.Time, max int) []timeTick {
	if max < 2 {
		max = 2
	}
	loc := from.Location()
	// Month starts within [from, to].
	m0 := monthIndex(from)
	if !from.Equal(time.Date(from.Year(), from.Month(), 1, 0, 0, 0, 0, loc)) {
		m0++
	}
	m1 := monthIndex(to)
	if m1-m0+1 < 2 {
		return dayTicks(from, to, max)
	}
	count := func(step int) int { return floorDiv(m1, step) - ceilDiv(m0, step) + 1 }
	step := 0
	for _, s := range monthSteps {
		if count(s) <= max {
			step = s
			break
		}
	}
	for years := 1; step == 0; years *= 10 {
		for _, m := range []int{1, 2, 5} {
			if s := 12 * years * m; count(s) <= max {
				step = s
				break
			}
		}
	}
	var ticks []timeTick
	for m := ceilDiv(m0, step) * step; m <= m1; m += step {
		t := time.Date(m/12, time.Month(m%12+1), 1, 0, 0, 0, 0, loc)
		label := FormatMonth(t)
		if step >= 12 {
			label = strconv.Itoa(t.Year())
		}
		ticks = append(ticks, timeTick{At: t, Label: label})
	}
	return ticks
}

// dayTicks ticks a span of under two months every 1, 2, 7 or 14 days.
func dayTicks(from, to time.Time, max int) []timeTick {
	loc := from.Location()
	d0 := time.Date(from.Year(), from.Month(), from.Day(), 0, 0, 0, 0, loc)
	if d0.Before(from) {
		d0 = d0.AddDate(0, 0, 1)
	}
	days := int(to.Sub(d0).Hours()/24) + 1
	step := 28
	for _, s := range []int{1, 2, 7, 14} {
		if (days+s-1)/s <= max {
			step = s
			break
		}
	}
	var ticks []timeTick
	for d := d0; !d.After(to) && len(ticks) < 64; d = d.AddDate(0, 0, step) {
		ticks = append(ticks, timeTick{At: d, Label: FormatDate(d)})
	}
	return ticks
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func ceilDiv(a, b int) int { return -floorDiv(-a, b) }
