package backoff

import (
	"context"
	"errors"
	"testing"
	"time"
)

func steps(b *Backoff, n int) []time.Duration {
	out := make([]time.Duration, n)
	for i := range out {
		out[i] = b.Next()
	}
	return out
}

func equal(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestNext_GrowsAndCaps(t *testing.T) {
	ms := time.Millisecond
	b := New(100*ms, time.Second, None)
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, time.Second, time.Second, time.Second}
	if got := steps(b, len(want)); !equal(got, want) {
		t.Fatalf("unexpected pauses; got %v; want %v", got, want)
	}
}

func TestNext_CapNotPowerOfTwoAndNoOverflow(t *testing.T) {
	b := New(3*time.Millisecond, 10*time.Millisecond, None)
	want := []time.Duration{3 * time.Millisecond, 6 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond}
	if got := steps(b, len(want)); !equal(got, want) {
		t.Fatalf("unexpected pauses; got %v; want %v", got, want)
	}
	huge := New(time.Second, time.Duration(1<<62), None)
	prev := time.Duration(0)
	for i := range 100 {
		d := huge.Next()
		if d < prev || d > time.Duration(1<<62) {
			t.Fatalf("step %d: pause %d after %d: overflow or shrink", i, d, prev)
		}
		prev = d
	}
	if prev != time.Duration(1<<62) {
		t.Fatalf("pauses never reached the cap; last %d", prev)
	}
}

func TestNext_DegenerateBounds(t *testing.T) {
	if got := steps(New(time.Second, time.Millisecond, None), 3); !equal(got, []time.Duration{time.Second, time.Second, time.Second}) {
		t.Fatalf("max below min: got %v; want min every time", got)
	}
	if got := steps(New(0, time.Second, Full), 3); !equal(got, []time.Duration{0, 0, 0}) {
		t.Fatalf("zero min: got %v; want no pause", got)
	}
	if b := New(-time.Second, -time.Hour, Equal); b.Min() != 0 || b.Max() != 0 || b.Next() != 0 {
		t.Fatalf("negative bounds: min %s, max %s", b.Min(), b.Max())
	}
}

func TestJitter_Bounds(t *testing.T) {
	ms := time.Millisecond
	for _, j := range []Jitter{Equal, Full} {
		t.Run(j.String(), func(t *testing.T) {
			for range 200 {
				b := New(10*ms, 80*ms, j)
				for step := time.Duration(10 * ms); step <= 80*ms; step *= 2 {
					d := b.Next()
					lo := time.Duration(0)
					if j == Equal {
						lo = step / 2
					}
					if d < lo || d > step {
						t.Fatalf("pause %s out of [%s, %s]", d, lo, step)
					}
				}
				if d := b.Next(); d > 80*ms {
					t.Fatalf("pause %s above the cap", d)
				}
			}
		})
	}
}

// The jitter draws from [0, n] of the step, with both ends reachable.
func TestJitter_Extremes(t *testing.T) {
	for _, tt := range []struct {
		j        Jitter
		pick     func(n int64) int64
		min, max time.Duration
		want     time.Duration
	}{
		{Equal, func(int64) int64 { return 0 }, 100, 1000, 50},
		{Equal, func(n int64) int64 { return n - 1 }, 100, 1000, 100},
		{Full, func(int64) int64 { return 0 }, 100, 1000, 0},
		{Full, func(n int64) int64 { return n - 1 }, 100, 1000, 100},
		{Equal, func(int64) int64 { return 0 }, 101, 1000, 51}, // odd: never below half
	} {
		b := New(tt.min, tt.max, tt.j)
		b.rnd = tt.pick
		if got := b.Next(); got != tt.want {
			t.Errorf("%s jitter of %d: got %d; want %d", tt.j, tt.min, got, tt.want)
		}
	}
}

// Jitter must spread the pauses, not just bound them.
func TestJitter_Spreads(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 50 {
		seen[New(time.Second, time.Second, Full).Next()] = true
	}
	if len(seen) < 10 {
		t.Fatalf("50 full-jitter pauses took only %d values", len(seen))
	}
}

func TestReset(t *testing.T) {
	b := New(time.Millisecond, time.Second, None)
	steps(b, 5)
	b.Reset()
	if d := b.Next(); d != time.Millisecond {
		t.Fatalf("after Reset: got %s; want Min", d)
	}
	if d := b.Next(); d != 2*time.Millisecond {
		t.Fatalf("second pause after Reset: got %s; want 2×Min", d)
	}
}

func TestWait(t *testing.T) {
	b := New(5*time.Millisecond, 5*time.Millisecond, None)
	began := time.Now()
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took < 5*time.Millisecond {
		t.Fatalf("Wait returned after %s; want at least 5ms", took)
	}
}

func TestWait_ContextCancel(t *testing.T) {
	b := New(time.Hour, time.Hour, None)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Wait(ctx) }()
	time.Sleep(10 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait returned %v; want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Wait did not return within 5s of the cancel")
	}

	// An ended ctx returns at once and does not take a step.
	b = New(time.Hour, 4*time.Hour, None)
	if err := b.Wait(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait on a cancelled ctx: %v", err)
	}
	if d := b.Next(); d != time.Hour {
		t.Fatalf("a cancelled Wait took a step: next pause %s; want 1h", d)
	}

	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if err := New(time.Hour, time.Hour, Equal).Wait(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Wait past the deadline: %v", err)
	}
}
