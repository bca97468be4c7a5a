package loadtest

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestPacer_Rate(t *testing.T) {
	p := newPacer(1000)
	start := time.Now()
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 100 {
				if err := p.wait(context.Background(), 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	// 400 messages at 1,000/s take at least 0.4 s less the 100 ms burst.
	if d := time.Since(start); d < 290*time.Millisecond {
		t.Errorf("400 messages at 1000/s went out in %s", d)
	}
}

func TestPacer_Cancel(t *testing.T) {
	p := newPacer(1)
	ctx, cancel := context.WithCancel(context.Background())
	if err := p.wait(ctx, 1); err != nil { // the first message is due now
		t.Fatalf("unexpected error: %v", err)
	}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if err := p.wait(ctx, 5); err == nil {
		t.Errorf("wait did not end with the context")
	}
	if err := newPacer(0).wait(context.Background(), 1000); err != nil {
		t.Errorf("unpaced wait failed: %v", err)
	}
}

func TestBudget(t *testing.T) {
	b := newBudget(1000)
	var got atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for {
				n := b.take(3)
				if n == 0 {
					return
				}
				got.Add(int64(n))
			}
		})
	}
	wg.Wait()
	if got.Load() != 1000 {
		t.Errorf("budget handed out %d messages; want 1000", got.Load())
	}
	if n := newBudget(0).take(7); n != 7 {
		t.Errorf("unlimited budget gave %d; want 7", n)
	}
}
