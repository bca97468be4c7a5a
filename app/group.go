package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// A component is a long-running part of the platform: it runs until its
// context ends and then returns nil, or fails with an error.
type component interface {
	Run(ctx context.Context) error
}

// readier is a component that must finish something (replaying a topic,
// binding a listener) before the components after it may start.
type readier interface {
	Ready() <-chan struct{}
}

// group runs the platform's components. They start one after the other,
// each once the one before it is ready; the first to fail (or to return
// before it was asked to stop) stops the group with its error, and the
// rest stop in reverse order of start, each stop timed in the log.
type group struct {
	log          *slog.Logger
	readyTimeout time.Duration
	stopTimeout  time.Duration

	mu      sync.Mutex
	members []*member
	stopped bool

	failOnce sync.Once
	failed   chan struct{} // closed by the first failure
	err      error         // the first failure, set before failed closes
}

type member struct {
	name   string
	cancel context.CancelFunc
	done   chan struct{}
	err    error // set before done closes
}

func newGroup(log *slog.Logger) *group {
	return &group{log: log, readyTimeout: 2 * time.Minute, stopTimeout: 30 * time.Second, failed: make(chan struct{})}
}

// start runs c and returns once it is ready (at once if it has no Ready),
// or with an error if it fails first, ctx ends, or it is not ready within
// readyTimeout.
func (g *group) start(ctx context.Context, name string, c component) error {
	g.mu.Lock()
	if g.stopped {
		g.mu.Unlock()
		return fmt.Errorf("cannot start %s: the platform is stopping", name)
	}
	// Components do not stop with the caller's context: they stop in
	// order, when the group stops.
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &member{name: name, cancel: cancel, done: make(chan struct{})}
	g.members = append(g.members, m)
	g.mu.Unlock()

	go func() {
		defer close(m.done)
		m.err = c.Run(cctx)
		if cctx.Err() != nil {
			return // asked to stop
		}
		if m.err == nil {
			m.err = errors.New("stopped on its own")
		}
		g.fail(fmt.Errorf("%s: %w", name, m.err))
	}()
	r, ok := c.(readier)
	if !ok {
		return nil
	}
	began := time.Now()
	t := time.NewTimer(g.readyTimeout)
	defer t.Stop()
	select {
	case <-r.Ready():
		g.log.Debug("component ready", "component", name, "took", time.Since(began).Round(time.Millisecond))
		return nil
	case <-m.done:
		return fmt.Errorf("%s stopped before it was ready: %w", name, m.err)
	case <-t.C:
		return fmt.Errorf("%s not ready within %s", name, g.readyTimeout)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", name, ctx.Err())
	}
}

func (g *group) fail(err error) {
	g.failOnce.Do(func() {
		g.err = err
		g.log.Error("component failed; stopping the platform", "err", err)
		close(g.failed)
	})
}

// Failed is closed when a component has failed; Err then says why.
func (g *group) Failed() <-chan struct{} { return g.failed }

// Err is the first failure, or nil.
func (g *group) Err() error {
	select {
	case <-g.failed:
		return g.err
	default:
		return nil
	}
}

// stop stops every component in reverse order of start, each within
// stopTimeout (or ctx), and returns the errors they stopped with.
func (g *group) stop(ctx context.Context) error {
	g.mu.Lock()
	g.stopped = true
	ms := g.members
	g.members = nil
	g.mu.Unlock()
	var errs []error
	for i := len(ms) - 1; i >= 0; i-- {
		m := ms[i]
		began := time.Now()
		m.cancel()
		t := time.NewTimer(g.stopTimeout)
		select {
		case <-m.done:
			if m.err != nil && !errors.Is(m.err, context.Canceled) {
				errs = append(errs, fmt.Errorf("%s: %w", m.name, m.err))
			}
			g.log.Info("stopped", "component", m.name, "took", time.Since(began).Round(time.Millisecond))
		case <-t.C:
			errs = append(errs, fmt.Errorf("%s did not stop within %s", m.name, g.stopTimeout))
			g.log.Error("component did not stop in time; leaving it", "component", m.name, "waited", g.stopTimeout)
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("%s did not stop: %w", m.name, ctx.Err()))
		}
		t.Stop()
	}
	return errors.Join(errs...)
}

// funcComponent adapts a function to a component.
type funcComponent func(ctx context.Context) error

func (f funcComponent) Run(ctx context.Context) error { return f(ctx) }

// closer runs until its context ends, then closes a resource (a client, a
// connection, the embedded cluster) so that it is released in reverse
// order of start like everything else.
func closer(close func() error) component {
	return funcComponent(func(ctx context.Context) error {
		<-ctx.Done()
		return close()
	})
}
