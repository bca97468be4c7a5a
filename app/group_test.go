package app

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// fake is a component that records when it starts and stops.
type fake struct {
	name  string
	log   *recorder
	ready chan struct{} // nil: no Ready method is exposed (see readyFake)
	fail  chan error    // a value makes Run return it
}

type recorder struct {
	mu     sync.Mutex
	events []string
}

func (r *recorder) add(s string) {
	r.mu.Lock()
	r.events = append(r.events, s)
	r.mu.Unlock()
}

func (r *recorder) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.events...)
}

func (f *fake) Run(ctx context.Context) error {
	f.log.add("start " + f.name)
	select {
	case <-ctx.Done():
		f.log.add("stop " + f.name)
		return nil
	case err := <-f.fail:
		f.log.add("fail " + f.name)
		return err
	}
}

type readyFake struct{ *fake }

func (r readyFake) Ready() <-chan struct{} { return r.ready }

func newFake(name string, rec *recorder) *fake {
	return &fake{name: name, log: rec, fail: make(chan error, 1)}
}

func TestGroup_StopsInReverseOrderOfStart(t *testing.T) {
	rec := &recorder{}
	var logs bytes.Buffer
	g := newGroup(slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	for _, n := range []string{"a", "b", "c"} {
		if err := g.start(ctx, n, newFake(n, rec)); err != nil {
			t.Fatal(err)
		}
		// Each Run has begun before the next start only if it had a Ready;
		// wait for the record so the order below is the starts' order.
		waitEvents(t, rec, "start "+n)
	}
	if err := g.stop(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"start a", "start b", "start c", "stop c", "stop b", "stop a"}
	if got := rec.list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v, want %v", got, want)
	}
	for _, n := range []string{"a", "b", "c"} {
		if !strings.Contains(logs.String(), "component="+n+" took=") {
			t.Errorf("the stop of %s is not timed in the log:\n%s", n, logs.String())
		}
	}
}

func TestGroup_FirstFailureStopsTheRest(t *testing.T) {
	rec := &recorder{}
	g := newGroup(slog.New(slog.DiscardHandler))
	ctx := context.Background()
	a, b, c := newFake("a", rec), newFake("b", rec), newFake("c", rec)
	for _, f := range []*fake{a, b, c} {
		if err := g.start(ctx, f.name, f); err != nil {
			t.Fatal(err)
		}
		waitEvents(t, rec, "start "+f.name)
	}
	boom := errors.New("boom")
	b.fail <- boom
	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a failed component did not fail the group")
	}
	if err := g.Err(); !errors.Is(err, boom) || !strings.Contains(err.Error(), "b: boom") {
		t.Fatalf("Err() = %v, want the failure of b", err)
	}
	_ = g.stop(ctx)
	want := []string{"start a", "start b", "start c", "fail b", "stop c", "stop a"}
	if got := rec.list(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("events = %v, want %v", got, want)
	}
}

func TestGroup_ReturningEarlyIsAFailure(t *testing.T) {
	g := newGroup(slog.New(slog.DiscardHandler))
	if err := g.start(context.Background(), "quitter", funcComponent(func(context.Context) error { return nil })); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.Failed():
	case <-time.After(10 * time.Second):
		t.Fatal("a component that returned on its own did not fail the group")
	}
	if err := g.Err(); err == nil || !strings.Contains(err.Error(), "quitter: stopped on its own") {
		t.Fatalf("Err() = %v", err)
	}
}

func TestGroup_StartWaitsForReady(t *testing.T) {
	rec := &recorder{}
	g := newGroup(slog.New(slog.DiscardHandler))
	slow := readyFake{newFake("slow", rec)}
	slow.ready = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- g.start(context.Background(), "slow", slow) }()
	select {
	case err := <-done:
		t.Fatalf("start returned before the component was ready: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(slow.ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// A component that fails before it is ready fails its start.
	bad := readyFake{newFake("bad", rec)}
	bad.ready = make(chan struct{})
	bad.fail <- errors.New("cannot bind")
	if err := g.start(context.Background(), "bad", bad); err == nil || !strings.Contains(err.Error(), "cannot bind") {
		t.Fatalf("start = %v, want the failure before ready", err)
	}

	// Not ready in time.
	g.readyTimeout = 50 * time.Millisecond
	never := readyFake{newFake("never", rec)}
	never.ready = make(chan struct{})
	if err := g.start(context.Background(), "never", never); err == nil || !strings.Contains(err.Error(), "not ready within") {
		t.Fatalf("start = %v, want a timeout", err)
	}
	_ = g.stop(context.Background())
}

func TestGroup_StopGivesUpOnAStuckComponent(t *testing.T) {
	g := newGroup(slog.New(slog.DiscardHandler))
	g.stopTimeout = 50 * time.Millisecond
	release := make(chan struct{})
	defer close(release)
	if err := g.start(context.Background(), "stuck", funcComponent(func(ctx context.Context) error {
		<-release
		return nil
	})); err != nil {
		t.Fatal(err)
	}
	if err := g.stop(context.Background()); err == nil || !strings.Contains(err.Error(), "stuck did not stop within") {
		t.Fatalf("stop = %v", err)
	}
	if err := g.start(context.Background(), "late", newFake("late", &recorder{})); err == nil {
		t.Fatal("a stopped group started a component")
	}
}

func waitEvents(t *testing.T, rec *recorder, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for _, e := range rec.list() {
			if e == want {
				return
			}
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("no %q in %v", want, rec.list())
}
