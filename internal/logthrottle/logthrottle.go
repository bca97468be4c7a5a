// Package logthrottle keeps a repeated log line from flooding the log: it
// lets one line per key through per interval and counts the ones it held
// back, so the next line can say how many there were.
//
//	var refusals = logthrottle.New(time.Second)
//	if n, ok := refusals.Allow(reason); ok {
//		log.Warn("refused", "reason", reason, "suppressed", n)
//	}
package logthrottle

import (
	"sync"
	"time"
)

// Throttle allows one log line per key per interval. It is safe for
// concurrent use. It keeps one entry per key it has seen: keys are meant to
// be a small set (reasons, message kinds), not ids from the outside.
type Throttle struct {
	every time.Duration

	mu   sync.Mutex
	keys map[string]*entry
}

type entry struct {
	last       time.Time
	suppressed int
}

// New returns a throttle letting through one line per key every interval.
func New(every time.Duration) *Throttle {
	return &Throttle{every: every, keys: map[string]*entry{}}
}

// Every is the interval.
func (t *Throttle) Every() time.Duration { return t.every }

// Allow reports whether a line for key may be logged now and, if so, how
// many lines for key it held back since the last one it let through.
func (t *Throttle) Allow(key string) (suppressed int, ok bool) {
	return t.AllowAt(key, time.Now())
}

// AllowAt is Allow at the time now (tests; callers that already read the
// clock).
func (t *Throttle) AllowAt(key string, now time.Time) (suppressed int, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.keys[key]
	if e == nil {
		t.keys[key] = &entry{last: now}
		return 0, true
	}
	if now.Sub(e.last) < t.every {
		e.suppressed++
		return 0, false
	}
	n := e.suppressed
	e.last, e.suppressed = now, 0
	return n, true
}
