package rules

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/internal/logthrottle"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
)

// outbox holds what the service must get onto Kafka: every alert change
// (polis.alerts.v1, in the order it happened), the latest state of each
// alert (polis.alertstate.v1) and of each silence (polis.silences.v1).
//
// Adding never blocks and never fails: a mutex and an append, so the twin
// may call the rules under its partition lock. One drainer (run) produces
// what is queued, waits for Kafka's answer, puts back what failed ahead of
// what came since, and retries with backoff; nothing is dropped. The queue
// has no bound: while Kafka refuses, changes wait in memory, counted by
// polis_rules_alert_outbox_records, with a warning past outboxWarnAt. The
// states and silences are coalesced by key (only the newest of each waits),
// so only the change history grows with an outage.
type outbox struct {
	prod Producer
	log  *slog.Logger

	mu       sync.Mutex
	retry    []engine.Notification // refused, older than changes: sent first
	changes  []engine.Notification
	states   map[string]keyedItem // "SITE/FINGERPRINT"
	silences map[string]keyedItem // silence id
	seq      uint64               // orders silence items
	busy     bool                 // a batch is being produced
	running  bool                 // run is draining
	wake     chan struct{}

	onFail func() // counts a failed record
	warn   *logthrottle.Throttle
}

// keyedItem is the newest value of one key of a compacted topic.
type keyedItem struct {
	rev   uint64
	state *engine.Saved // alert state; nil with value nil: a tombstone
	value []byte        // silence; nil: a tombstone
}

// outboxWarnAt is the queue length past which a warning is logged (once a
// minute while it stays there).
const outboxWarnAt = 100_000

func newOutbox(prod Producer, log *slog.Logger) *outbox {
	return &outbox{prod: prod, log: log, states: map[string]keyedItem{}, silences: map[string]keyedItem{},
		wake: make(chan struct{}, 1), warn: logthrottle.New(time.Minute), onFail: func() {}}
}

func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// change queues an alert change for polis.alerts.v1.
func (o *outbox) change(n engine.Notification) {
	o.mu.Lock()
	o.changes = append(o.changes, n)
	l := len(o.retry) + len(o.changes)
	o.mu.Unlock()
	if l > outboxWarnAt {
		if n, ok := o.warn.Allow("backlog"); ok {
			o.log.Warn("alert changes waiting for Kafka, kept in memory", "queued", l, "suppressed", n)
		}
	}
	o.signal()
}

// state queues the state of an alert (nil: it was forgotten) unless a
// newer one is queued already.
func (o *outbox) state(key string, rev uint64, sv *engine.Saved) {
	o.mu.Lock()
	if cur, ok := o.states[key]; !ok || cur.rev <= rev {
		o.states[key] = keyedItem{rev: rev, state: sv}
	}
	o.mu.Unlock()
	o.signal()
}

// silence queues a silence (nil value: removed).
func (o *outbox) silence(id string, value []byte) {
	o.mu.Lock()
	o.seq++
	o.silences[id] = keyedItem{rev: o.seq, value: value}
	o.mu.Unlock()
	o.signal()
}

// Len is how many records wait, not counting a batch in flight.
func (o *outbox) Len() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.lenLocked()
}

func (o *outbox) lenLocked() int {
	return len(o.retry) + len(o.changes) + len(o.states) + len(o.silences)
}

// idle reports whether nothing waits and nothing is in flight.
func (o *outbox) idle() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return !o.busy && o.lenLocked() == 0
}

// waitIdle waits until everything queued so far is on Kafka (and what
// came since too: alert changes are few), or ctx ends. Without a drainer
// running it returns at once.
func (o *outbox) waitIdle(ctx context.Context) bool {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		o.mu.Lock()
		running := o.running
		o.mu.Unlock()
		if o.idle() {
			return true
		}
		if !running {
			return false
		}
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
}

type batch struct {
	changes  []engine.Notification
	states   map[string]keyedItem
	silences map[string]keyedItem
}

func (b *batch) size() int { return len(b.changes) + len(b.states) + len(b.silences) }

func (o *outbox) take() *batch {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lenLocked() == 0 {
		return nil
	}
	from := &o.changes
	if len(o.retry) > 0 {
		from = &o.retry
	}
	n := min(len(*from), maxBatch)
	b := &batch{changes: (*from)[:n:n], states: o.states, silences: o.silences}
	*from = (*from)[n:]
	if len(*from) == 0 {
		*from = nil // let the backing array go
	}
	o.states, o.silences = map[string]keyedItem{}, map[string]keyedItem{}
	o.busy = true
	return b
}

// maxBatch bounds the alert changes of one batch: after an outage the
// backlog goes out in steps, each waited for.
const maxBatch = 10_000

// putBack queues what failed ahead of what came since (in retry, which
// holds at most a batch, so this costs a batch, not the backlog); a key
// queued anew meanwhile keeps its newer value.
func (o *outbox) putBack(b *batch) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.busy = false
	if b == nil {
		return
	}
	o.retry = append(b.changes, o.retry...)
	for k, it := range b.states {
		if cur, ok := o.states[k]; !ok || cur.rev < it.rev {
			o.states[k] = it
		}
	}
	for k, it := range b.silences {
		if _, ok := o.silences[k]; !ok {
			o.silences[k] = it
		}
	}
}

// run drains the outbox until ctx ends, then goes on for at most
// drainTimeout to empty it (the producer is still open: the platform stops
// it after the rules).
func (o *outbox) run(ctx context.Context, drainTimeout time.Duration) {
	o.mu.Lock()
	o.running = true
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.running = false
		o.mu.Unlock()
	}()
	b := backoff.New(100*time.Millisecond, 5*time.Second, backoff.Equal)
	for ctx.Err() == nil {
		if o.produce(ctx) {
			b.Reset()
			if o.Len() > 0 {
				continue
			}
			select {
			case <-ctx.Done():
			case <-o.wake:
			}
			continue
		}
		_ = b.Wait(ctx)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), drainTimeout)
	defer cancel()
	for o.Len() > 0 && dctx.Err() == nil {
		if !o.produce(dctx) {
			_ = b.Wait(dctx)
		}
	}
	if n := o.Len(); n > 0 {
		o.log.Error("alert changes not written to Kafka before stopping: they are lost", "records", n, "waited", drainTimeout)
	}
}

// produce sends one batch and waits for every answer; it reports whether
// all of it was written (an empty outbox is).
func (o *outbox) produce(ctx context.Context) bool {
	b := o.take()
	if b == nil {
		return true
	}
	failed := &batch{states: map[string]keyedItem{}, silences: map[string]keyedItem{}}
	var (
		mu       sync.Mutex
		wg       sync.WaitGroup
		firstErr error
		changeOK = make([]bool, len(b.changes))
	)
	fail := func(err error) {
		if firstErr == nil {
			firstErr = err
		}
		o.onFail()
	}
	send := func(r *kgo.Record, done func(error)) {
		wg.Add(1)
		o.prod.Produce(ctx, r, func(_ *kgo.Record, err error) {
			mu.Lock()
			done(err)
			mu.Unlock()
			wg.Done()
		})
	}
	for i, n := range b.changes {
		v, err := record.MarshalAlert(AlertChange(n))
		if err != nil {
			o.log.Warn("cannot encode alert change; it is not written", "fingerprint", n.Alert.Fingerprint, "kind", n.Kind, "err", err)
			changeOK[i] = true
			continue
		}
		send(&kgo.Record{Topic: kafka.TopicAlerts, Key: []byte(n.Alert.Site), Value: v}, func(err error) {
			if err != nil {
				fail(err)
				return
			}
			changeOK[i] = true
		})
	}
	for k, it := range b.states {
		v, err := encodeAlertState(it.state)
		if err != nil {
			o.log.Warn("cannot encode alert state; it is not written", "key", k, "err", err)
			continue
		}
		send(&kgo.Record{Topic: kafka.TopicAlertState, Key: []byte(k), Value: v}, func(err error) {
			if err != nil {
				fail(err)
				failed.states[k] = it
			}
		})
	}
	for id, it := range b.silences {
		send(&kgo.Record{Topic: kafka.TopicSilences, Key: []byte(id), Value: it.value}, func(err error) {
			if err != nil {
				fail(err)
				failed.silences[id] = it
			}
		})
	}
	all := make(chan struct{})
	go func() { wg.Wait(); close(all) }()
	select {
	case <-all:
	case <-ctx.Done():
		// Stopping: kgo fails what it can of a canceled batch at once; a
		// request already sent waits for its answer, a little.
		select {
		case <-all:
		case <-time.After(2 * time.Second):
			o.putBack(nil)
			o.log.Warn("stopping without Kafka's answer for alert records; they stay with the producer, which flushes them when it stops",
				"records", b.size())
			return false
		}
	}
	// kgo fails the rest of a partition's buffered records with the first
	// failure, so what failed is, per partition, a tail: putting it back
	// ahead of newer changes keeps each site's order.
	for i, ok := range changeOK {
		if !ok {
			failed.changes = append(failed.changes, b.changes[i])
		}
	}
	if failed.size() == 0 {
		o.putBack(nil)
		return true
	}
	o.putBack(failed)
	if n, ok := o.warn.Allow("produce"); ok {
		o.log.Warn("cannot write alert changes to Kafka; retrying", "records", failed.size(), "of", b.size(), "err", firstErr, "suppressed", n)
	}
	return false
}
