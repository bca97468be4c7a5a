package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/state"
)

// importChunk is how many records one produce call of an import carries:
// each is written under the twin's read lock, which a rebalance and the
// API's reads wait for, so it is kept short.
const importChunk = 2000

// ImportLifecycle writes a batch of lifecycle events (an operator's import,
// the demo's rollout history) through the lifecycle log, like Transition
// does one move: the events are checked together against the tracker, after
// it has folded everything the log holds (lifecycle.Tracker.CheckBatch:
// allowed moves, time order per asset, nothing dated in the future, assets
// the registry and tracker know), then produced to polis.lifecycle.v1 with
// their own times, and ImportLifecycle returns once this instance's tracker
// has folded them. Every instance folds them; the lifecycle writer stores
// them in lifecycle_events with those times.
//
// A bad event refuses the whole batch before anything is written: the error
// is a *lifecycle.BatchError with its index. Events the log already holds
// are skipped (counted in skipped), so running the same import again
// writes nothing twice: after a failure part way (Kafka refused, the
// process died), running it again writes exactly the rest. Every site of
// the events written must be served by this instance (else an error
// wrapping lifecycle.ErrElsewhere, before anything is written): the owner
// of a site is the only writer of its lifecycle.
//
// While it runs, other lifecycle moves and desired-state writes of the
// batch's assets wait. ctx bounds the whole import.
func (l *Live) ImportLifecycle(ctx context.Context, events []lifecycle.Event) (applied, skipped int, err error) {
	for i, ev := range events {
		if _, ok := l.reg.Site(ev.Site); !ok {
			return 0, 0, &lifecycle.BatchError{Index: i, Event: ev, Err: fmt.Errorf("%s: %w", ev.Site, lifecycle.ErrUnknownSite)}
		}
		if !l.reg.Known(ev.Site, ev.Asset) {
			return 0, 0, &lifecycle.BatchError{Index: i, Event: ev, Err: fmt.Errorf("%s/%s: %w", ev.Site, ev.Asset, lifecycle.ErrUnknownAsset)}
		}
	}
	unlock := l.locks.lockAll(events)
	defer unlock()
	if err := l.lifecycleCaughtUp(ctx); err != nil {
		return 0, 0, fmt.Errorf("cannot import lifecycle events: %w", err)
	}
	write, skipped, err := l.tracker.CheckBatch(events, time.Now())
	if err != nil {
		return 0, 0, err
	}
	if len(write) == 0 {
		return 0, skipped, nil
	}
	byPart := map[int32][]*kgo.Record{}
	for _, ev := range write {
		body, err := json.Marshal(ev)
		if err != nil {
			return 0, 0, fmt.Errorf("cannot encode lifecycle event: %w", err)
		}
		p := l.PartitionOf(ev.Site)
		byPart[p] = append(byPart[p], &kgo.Record{Topic: kafka.TopicLifecycle, Key: []byte(ev.Site + "/" + ev.Asset), Value: body})
	}
	parts := make([]int32, 0, len(byPart))
	for p := range byPart {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	for _, p := range parts {
		if !l.svc.With(p, func(*state.Store) {}) {
			site := kafka.SiteOf(byPart[p][0].Key)
			return 0, 0, fmt.Errorf("cannot import lifecycle events: site %s (twin partition %d): %w; import on the instance serving it",
				site, p, lifecycle.ErrElsewhere)
		}
	}
	// Written partition by partition, a chunk at a time, each under the
	// twin's read lock so that the partition stays this instance's until
	// Kafka has answered.
	last := map[int32]int64{} // lifecycle partition -> offset of the last record written
	for _, p := range parts {
		recs := byPart[p]
		for len(recs) > 0 {
			chunk := recs[:min(importChunk, len(recs))]
			recs = recs[len(chunk):]
			var perr error
			if !l.svc.With(p, func(*state.Store) { perr = l.prod.ProduceSync(ctx, chunk...).FirstErr() }) {
				perr = fmt.Errorf("twin partition %d: %w", p, lifecycle.ErrElsewhere)
			}
			if perr != nil {
				return applied, skipped, fmt.Errorf("cannot write lifecycle events to %s after %d of %d (running the import again writes the rest): %w",
					kafka.TopicLifecycle, applied, len(write), perr)
			}
			for _, r := range chunk {
				last[r.Partition] = max(last[r.Partition], r.Offset)
			}
			applied += len(chunk)
		}
	}
	if err := l.waitFor(ctx, func() (bool, error) {
		for p, off := range last {
			if l.lifecycleNext(p) <= off {
				return false, nil
			}
		}
		return true, nil
	}); err != nil {
		return applied, skipped, fmt.Errorf("%d lifecycle events written but not yet applied: %w", applied, err)
	}
	return applied, skipped, nil
}

// lockAll takes the stripes of every asset of events, in stripe order (so
// that two batches cannot deadlock, and single writes take one stripe).
func (k *keyLocks) lockAll(events []lifecycle.Event) (unlock func()) {
	var use [len(keyLocks{})]bool
	for _, ev := range events {
		h := fnv.New32a()
		_, _ = h.Write([]byte(ev.Site + "/" + ev.Asset))
		use[h.Sum32()%uint32(len(k))] = true
	}
	for i := range k {
		if use[i] {
			k[i].Lock()
		}
	}
	return func() {
		for i := range k {
			if use[i] {
				k[i].Unlock()
			}
		}
	}
}
