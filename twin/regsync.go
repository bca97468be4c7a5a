package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

// PublishSites writes sites to the compacted registry topic, where every
// instance follows them (FollowRegistry).
func PublishSites(ctx context.Context, prod *kgo.Client, sites []*registry.Site) error {
	for _, s := range sites {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("cannot encode site %s: %w", s.ID, err)
		}
		prod.Produce(ctx, &kgo.Record{Topic: kafka.TopicRegistry, Key: []byte(s.ID), Value: b}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("cannot publish registry changes: %w", err)
	}
	return nil
}

// FollowRegistry replays the registry topic and follows it (see Follow),
// calling apply for every site.
func FollowRegistry(ctx context.Context, brokers []string, apply func(*registry.Site), caughtUp func(n int)) error {
	return Follow(ctx, brokers, kafka.TopicRegistry, func(r *kgo.Record) {
		var s registry.Site
		if err := json.Unmarshal(r.Value, &s); err == nil && s.ID != "" {
			apply(&s)
		}
	}, caughtUp)
}

// Follow replays a topic (every partition, no consumer group: each instance
// wants all of it) from its start and then follows it until ctx ends.
// caughtUp is called once, with the number of records replayed, when the
// records present at the start have been applied.
func Follow(ctx context.Context, brokers []string, topic string, apply func(*kgo.Record), caughtUp func(n int)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return fmt.Errorf("cannot follow %s: %w", topic, err)
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := kadm.NewClient(cl).ListEndOffsets(lctx, topic)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot read the end of %s: %w", topic, err)
	}
	pending := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			pending[o.Partition] = o.Offset
		}
	})
	replayed := 0
	if len(pending) == 0 {
		caughtUp(0)
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
		if fs.NumRecords() == 0 && len(pending) > 0 {
			pending = nil
			caughtUp(replayed)
		}
		fs.EachRecord(func(r *kgo.Record) {
			apply(r)
			if end, ok := pending[r.Partition]; ok {
				replayed++
				if r.Offset+1 >= end {
					delete(pending, r.Partition)
					if len(pending) == 0 {
						caughtUp(replayed)
					}
				}
			}
		})
	}
}
