package rules

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
)

// flaky is a Producer that refuses while down, as kgo does: a refused
// record fails the records of its partition queued after it too (here:
// everything in the call window).
type flaky struct {
	mu      sync.Mutex
	down    bool
	written []*kgo.Record
	refused int
}

func (f *flaky) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	f.mu.Lock()
	var err error
	if f.down {
		err = errors.New("refused")
		f.refused++
	} else {
		f.written = append(f.written, r)
	}
	f.mu.Unlock()
	go promise(r, err)
}

func (f *flaky) set(down bool) {
	f.mu.Lock()
	f.down = down
	f.mu.Unlock()
}

func (f *flaky) topic(t string) []*kgo.Record {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*kgo.Record
	for _, r := range f.written {
		if r.Topic == t {
			out = append(out, r)
		}
	}
	return out
}

// While Kafka refuses, changes wait (adding never blocks) and are retried;
// once it takes them they are written once each, in the order they came;
// of an alert's states, only the newest is written.
func TestOutbox_RetriesInOrderAndCoalescesStates(t *testing.T) {
	p := &flaky{down: true}
	o := newOutbox(p, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); o.run(ctx, 5*time.Second) }()
	defer func() { cancel(); <-done }()

	at := time.Now()
	var fps []string
	for i := range 5 {
		n := engine.Notification{Kind: engine.KindFired, At: at, Alert: engine.Alert{Fingerprint: string(rune('a' + i)), Site: "S", RuleID: "r", Asset: "x"}}
		fps = append(fps, n.Alert.Fingerprint)
		began := time.Now()
		o.change(n)
		if d := time.Since(began); d > 100*time.Millisecond {
			t.Fatalf("queueing took %s", d)
		}
	}
	sv := func(rev uint64, summary string) *engine.Saved {
		return &engine.Saved{Alert: engine.Alert{Fingerprint: "a", RuleID: "r", Site: "S", Asset: "x", Summary: summary}, Rev: rev}
	}
	o.state("S/a", 1, sv(1, "one"))
	o.state("S/a", 3, sv(3, "three"))
	o.state("S/a", 2, sv(2, "two")) // older: ignored
	o.silence("maint", []byte(`{}`))
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.refused >= 14 // two rounds
	}, "the outbox retries")
	if o.Len() == 0 {
		t.Fatal("refused records left the outbox")
	}
	// More while down: they go after the refused ones.
	n := engine.Notification{Kind: engine.KindResolved, At: at, Alert: engine.Alert{Fingerprint: "a", Site: "S", RuleID: "r", Asset: "x"}}
	o.change(n)
	fps = append(fps, "a")
	p.set(false)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, o.idle, "the outbox drains")

	changes := p.topic(kafka.TopicAlerts)
	if len(changes) != len(fps) {
		t.Fatalf("%d changes written; want %d", len(changes), len(fps))
	}
	for i, r := range changes {
		var c struct{ Fingerprint, Kind string }
		if err := json.Unmarshal(r.Value, &c); err != nil || c.Fingerprint != fps[i] {
			t.Fatalf("change %d: %s; want fingerprint %s", i, r.Value, fps[i])
		}
	}
	states := p.topic(kafka.TopicAlertState)
	if len(states) != 1 || string(states[0].Key) != "S/a" {
		t.Fatalf("states written: %d", len(states))
	}
	got, err := decodeAlertState(states[0].Value)
	if err != nil || got.Summary != "three" || got.Rev != 3 {
		t.Fatalf("state written: %+v %v", got, err)
	}
	if s := p.topic(kafka.TopicSilences); len(s) != 1 || string(s[0].Key) != "maint" {
		t.Fatalf("silences written: %d", len(s))
	}
}

// Stopping writes what is queued before Run returns.
func TestOutbox_DrainsAtStop(t *testing.T) {
	p := &flaky{}
	o := newOutbox(p, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // stopped before it started: only the drain runs
	for i := range 3 {
		o.change(engine.Notification{Kind: engine.KindFired, Alert: engine.Alert{Fingerprint: string(rune('a' + i)), Site: "S"}})
	}
	o.run(ctx, 5*time.Second)
	if n := len(p.topic(kafka.TopicAlerts)); n != 3 || o.Len() != 0 {
		t.Fatalf("written %d, left %d", n, o.Len())
	}
}
