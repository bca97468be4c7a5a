package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/bus"
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
		prod.Produce(ctx, &kgo.Record{Topic: bus.TopicRegistry, Key: []byte(s.ID), Value: b}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("cannot publish registry changes: %w", err)
	}
	return nil
}

// FollowRegistry replays the registry topic from its start and then follows
// it until ctx ends, calling apply for every site (a later record of a site
// replaces an earlier one). caughtUp is called once, with the number of
// sites replayed, when the records present at the start have been applied.
func FollowRegistry(ctx context.Context, brokers []string, apply func(*registry.Site), caughtUp func(n int)) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(bus.TopicRegistry),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxBytes(64<<20))
	if err != nil {
		return fmt.Errorf("cannot follow the registry topic: %w", err)
	}
	defer cl.Close()
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	ends, err := kadm.NewClient(cl).ListEndOffsets(lctx, bus.TopicRegistry)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot read the end of %s: %w", bus.TopicRegistry, err)
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
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		fs.EachRecord(func(r *kgo.Record) {
			var s registry.Site
			if err := json.Unmarshal(r.Value, &s); err == nil && s.ID != "" {
				apply(&s)
			}
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
