package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Follower replays a topic from its start (every partition, no consumer
// group: each instance wants all of it) and then follows it until its
// context ends. It is how every instance reads the log-first stores: the
// registry, desired state and the API's rules.
type Follower struct {
	brokers []string
	topic   string
	apply   func(*kgo.Record)
	log     *slog.Logger
	opts    []kgo.Opt

	ready     chan struct{}
	replayed  int
	caughtUpF func(replayed int)
}

// NewFollower returns a follower of topic that calls apply for every
// record, in partition order, from one goroutine.
func NewFollower(brokers []string, topic string, log *slog.Logger, apply func(*kgo.Record), opts ...kgo.Opt) *Follower {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Follower{brokers: brokers, topic: topic, apply: apply, log: log, opts: opts, ready: make(chan struct{})}
}

// Ready is closed once the records present at the start have been applied.
func (f *Follower) Ready() <-chan struct{} { return f.ready }

// Replayed is the number of records applied before Ready; read it after
// Ready is closed.
func (f *Follower) Replayed() int { return f.replayed }

// OnCaughtUp sets fn to be called, from the goroutine that applies the
// records, once the records present at the start are applied and before
// Ready is closed. Call it before Run.
func (f *Follower) OnCaughtUp(fn func(replayed int)) *Follower {
	f.caughtUpF = fn
	return f
}

// Name is the topic followed.
func (f *Follower) Name() string { return "follower " + f.topic }

// Run replays and follows the topic until ctx ends, then returns nil.
func (f *Follower) Run(ctx context.Context) error {
	opts := append([]kgo.Opt{kgo.ConsumeTopics(f.topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxBytes(64 << 20)}, f.opts...)
	cl, err := NewClient(f.brokers, f.log, opts...)
	if err != nil {
		return fmt.Errorf("cannot follow %s: %w", f.topic, err)
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := kadm.NewClient(cl).ListEndOffsets(lctx, f.topic)
	cancel()
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("cannot read the end of %s: %w", f.topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	caughtUp := func() {
		pending = nil
		if f.caughtUpF != nil {
			f.caughtUpF(f.replayed)
		}
		close(f.ready)
	}
	if len(pending) == 0 {
		caughtUp()
	}
	for {
		// A quiet topic while records are still expected means the tail
		// of a partition was compacted away: what is there has been read.
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		if fs.NumRecords() == 0 && pending != nil {
			caughtUp()
		}
		fs.EachRecord(func(r *kgo.Record) {
			f.apply(r)
			if pending == nil {
				return
			}
			if end, ok := pending[r.Partition]; ok {
				f.replayed++
				if r.Offset+1 >= end {
					delete(pending, r.Partition)
					if len(pending) == 0 {
						caughtUp()
					}
				}
			}
		})
	}
}
