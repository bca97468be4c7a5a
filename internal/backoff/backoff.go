// Package backoff paces retries: exponential pauses, doubling from a
// minimum up to a cap, with jitter so that many clients retrying the same
// outage (writers, sinks, instances) do not knock in step.
//
//	b := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Equal)
//	for {
//		if err := try(); err == nil {
//			return nil
//		}
//		if err := b.Wait(ctx); err != nil {
//			return err // ctx ended
//		}
//	}
package backoff

import (
	"context"
	"math"
	"math/rand/v2"
	"time"
)

// Jitter says how much of each pause is random.
type Jitter int

const (
	// None pauses exactly Min, 2×Min, 4×Min, ... up to Max.
	None Jitter = iota
	// Equal pauses a random time in [d/2, d] for the step d: at least half
	// of the exponential pause, so a retry is never immediate.
	Equal
	// Full pauses a random time in [0, d]: the widest spread.
	Full
)

func (j Jitter) String() string {
	switch j {
	case None:
		return "none"
	case Equal:
		return "equal"
	case Full:
		return "full"
	}
	return "unknown"
}

// Backoff hands out the pauses between the attempts of one operation. It
// is not safe for concurrent use: each retry loop has its own.
type Backoff struct {
	min, max time.Duration
	jitter   Jitter
	step     time.Duration // the next pause before jitter; 0: Min
	// rnd returns a random int64 in [0, n); tests pin it.
	rnd func(n int64) int64
}

// New returns a backoff whose pauses double from min up to max. A max
// below min is taken as min; min <= 0 means no pause at all.
func New(min, max time.Duration, j Jitter) *Backoff {
	if min < 0 {
		min = 0
	}
	if max < min {
		max = min
	}
	return &Backoff{min: min, max: max, jitter: j, rnd: rand.Int64N}
}

// Min and Max are the bounds New was given (Max at least Min).
func (b *Backoff) Min() time.Duration { return b.min }
func (b *Backoff) Max() time.Duration { return b.max }

// Next returns the pause before the next attempt and doubles the step for
// the one after, up to Max.
func (b *Backoff) Next() time.Duration {
	d := b.step
	if d == 0 {
		d = b.min
	}
	if d >= b.max/2 {
		b.step = b.max
	} else {
		b.step = d * 2
	}
	return b.jittered(d)
}

func (b *Backoff) jittered(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	switch b.jitter {
	case Equal:
		half := d / 2
		return d - half + time.Duration(b.rnd(int64(half)+1))
	case Full:
		n := int64(d)
		if n < math.MaxInt64 {
			n++ // d itself is a possible pause
		}
		return time.Duration(b.rnd(n))
	}
	return d
}

// Reset starts again from Min, after an attempt succeeded.
func (b *Backoff) Reset() { b.step = 0 }

// Wait sleeps for Next(), or until ctx ends, and then returns ctx.Err().
// An ended ctx returns at once, without taking a step.
func (b *Backoff) Wait(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	t := time.NewTimer(b.Next())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
