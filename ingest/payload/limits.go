package payload

import (
	"errors"
	"math"
	"strconv"
	"time"
)

// Limits bound what is accepted. Zero (or negative) fields mean the
// corresponding field of DefaultLimits.
type Limits struct {
	MaxFuture time.Duration // reject timestamps more than this ahead of now (default 5m)
	LateAfter time.Duration // points older than now-LateAfter are accepted but marked Late (default 10m)
	MaxAge    time.Duration // reject points older than this (default 400 days; absurd past)
	MaxPoints int           // max points per message (default 10000)
}

// DefaultLimits are the limits used for zero fields of a Limits.
var DefaultLimits = Limits{
	MaxFuture: 5 * time.Minute,
	LateAfter: 10 * time.Minute,
	MaxAge:    400 * 24 * time.Hour,
	MaxPoints: 10000,
}

// epochSecondsBelow is the epoch-seconds/epoch-milliseconds pivot for numeric
// JSON timestamps: 1e11 ms is 1973-03-03 (no device sends that), while 1e11 s
// is the year 5138, so every plausible time is unambiguous on one side.
const epochSecondsBelow = 1e11

// senmlRelativeBelow is RFC 8428 §4.5.3: SenML times below 2^28 s are
// relative to now.
const senmlRelativeBelow = 1 << 28

// window is Limits resolved against one arrival time, in Unix milliseconds.
type window struct {
	now, min, late, max int64
	maxPoints           int
}

func newWindow(now time.Time, lim Limits) window {
	d := DefaultLimits
	if lim.MaxFuture <= 0 {
		lim.MaxFuture = d.MaxFuture
	}
	if lim.LateAfter <= 0 {
		lim.LateAfter = d.LateAfter
	}
	if lim.MaxAge <= 0 {
		lim.MaxAge = d.MaxAge
	}
	if lim.MaxPoints <= 0 {
		lim.MaxPoints = d.MaxPoints
	}
	n := now.UnixMilli()
	return window{
		now:       n,
		min:       n - lim.MaxAge.Milliseconds(),
		late:      n - lim.LateAfter.Milliseconds(),
		max:       n + lim.MaxFuture.Milliseconds(),
		maxPoints: lim.MaxPoints,
	}
}

// check validates a resolved timestamp; what names it in messages.
func (w *window) check(ts int64, what string) *Error {
	if ts > w.max {
		return fail(CodeFuture, what+" "+fmtMS(ts)+" is more than "+fmtDur(w.max-w.now)+" ahead of the server clock "+fmtMS(w.now)+"; fix the device clock (NTP)")
	}
	if ts < w.min {
		return fail(CodeTooOld, what+" "+fmtMS(ts)+" is older than the maximum age "+fmtDur(w.now-w.min)+"; fix the device clock or drop the backlog")
	}
	return nil
}

// msFromFloat turns a float millisecond count into a checked int64. Floats are
// rounded to the nearest millisecond because decimal seconds such as
// 1276020076.001 have no exact binary form.
func (w *window) msFromFloat(ms float64, what string) (int64, *Error) {
	switch {
	case math.IsNaN(ms):
		return 0, fail(CodeBadTimestamp, what+" is not a number")
	case ms >= 1<<62:
		return 0, fail(CodeFuture, what+" is far in the future; fix the device clock (NTP)")
	case ms <= -(1 << 62):
		return 0, fail(CodeTooOld, what+" is before 1970; fix the device clock")
	}
	ts := int64(math.Round(ms))
	return ts, w.check(ts, what)
}

// epochNumber resolves a numeric JSON timestamp: below 1e11 it is epoch
// seconds, otherwise epoch milliseconds.
func (w *window) epochNumber(v float64, what string) (int64, *Error) {
	if v < epochSecondsBelow {
		v *= 1000
	}
	return w.msFromFloat(v, what)
}

// rfc3339 resolves a string timestamp. Only RFC 3339 is accepted (fractional
// seconds and any zone), so that no locale-dependent format slips in.
func (w *window) rfc3339(s string, what string) (int64, *Error) {
	var t time.Time
	err := errNotRFC3339
	if rfc3339Shape(s) {
		t, err = time.Parse(time.RFC3339Nano, s)
	}
	if err == nil {
		// time.Parse takes offsets of 24h or more; RFC 3339 does not.
		if _, off := t.Zone(); off <= -86400 || off >= 86400 {
			err = errNotRFC3339
		}
	}
	if err != nil {
		return 0, fail(CodeBadTimestamp, what+" "+strconv.Quote(clip(s))+" is not RFC 3339 (e.g. 2025-03-14T09:30:00.123Z) nor epoch milliseconds")
	}
	ts := t.UnixMilli()
	return ts, w.check(ts, what)
}

// rfc3339Shape checks the RFC 3339 grammar that time.Parse is lax about (it
// takes one-digit hours and ',' before the fraction); time.Parse then checks
// the ranges. Upper-case T and Z only, as time.Parse.
func rfc3339Shape(s string) bool {
	const shape = "dddd-dd-ddTdd:dd:dd"
	if len(s) < len(shape)+1 {
		return false
	}
	for i := 0; i < len(shape); i++ {
		if shape[i] == 'd' && !isDigit(s[i]) || shape[i] != 'd' && s[i] != shape[i] {
			return false
		}
	}
	rest := s[len(shape):]
	if rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			n++
		}
		if n == 1 {
			return false
		}
		rest = rest[n:]
	}
	switch {
	case rest == "Z":
		return true
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-'):
		return isDigit(rest[1]) && isDigit(rest[2]) && rest[3] == ':' && isDigit(rest[4]) && isDigit(rest[5])
	}
	return false
}

var errNotRFC3339 = errors.New("not RFC 3339")

func fmtMS(ms int64) string {
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

func fmtDur(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// clip bounds user data quoted in messages, which end up in dead-letter records.
func clip(s string) string {
	const max = 64
	if len(s) > max {
		return s[:max] + "..."
	}
	return s
}
