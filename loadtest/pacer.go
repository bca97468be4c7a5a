package loadtest

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// pacer spaces messages evenly at a fixed rate shared by all workers. It
// keeps the time the next message is due; a worker that falls behind may
// catch up, but by at most burst, so a stall does not become a flood.
type pacer struct {
	mu       sync.Mutex
	interval time.Duration // per message; 0 = unpaced
	next     time.Time
	burst    time.Duration
	now      func() time.Time
}

func newPacer(perSecond float64) *pacer {
	p := &pacer{now: time.Now}
	if perSecond > 0 {
		p.interval = time.Duration(float64(time.Second) / perSecond)
		p.burst = 100 * time.Millisecond
	}
	return p
}

// wait blocks until n more messages may go, or ctx ends.
func (p *pacer) wait(ctx context.Context, n int) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := p.now()
	if p.next.Before(now.Add(-p.burst)) {
		p.next = now.Add(-p.burst)
	}
	at := p.next
	p.next = p.next.Add(time.Duration(n) * p.interval)
	p.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// budget hands out the remaining messages of a run bounded by Options.Messages.
type budget struct {
	left      atomic.Int64
	unlimited bool
}

func newBudget(n int) *budget {
	b := &budget{unlimited: n <= 0}
	b.left.Store(int64(n))
	return b
}

// take grants up to n messages; 0 means the run is done.
func (b *budget) take(n int) int {
	if b.unlimited {
		return n
	}
	for {
		left := b.left.Load()
		if left <= 0 {
			return 0
		}
		g := min(int64(n), left)
		if b.left.CompareAndSwap(left, left-g) {
			return int(g)
		}
	}
}
