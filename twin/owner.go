package twin

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
)

// owners caches which instance (its InstanceID, the API base URL) owns each
// partition, read from the consumer group's description: the group is the
// one source of truth about ownership, so nothing else has to be kept.
type owners struct {
	mu      sync.Mutex
	adm     *kadm.Client
	cl      *kgo.Client
	byPart  map[int32]string
	fetched time.Time
}

// Owner returns the InstanceID of the instance that owns partition p, or ""
// when nobody does (a rebalance in progress).
func (s *Service) Owner(ctx context.Context, p int32) (string, error) {
	o := &s.owners
	o.mu.Lock()
	defer o.mu.Unlock()
	if time.Since(o.fetched) < time.Second {
		return o.byPart[p], nil
	}
	if o.adm == nil {
		cl, err := s.o.Kafka.NewClient(s.o.Brokers, s.log)
		if err != nil {
			return "", fmt.Errorf("cannot connect to Kafka: %w", err)
		}
		o.cl, o.adm = cl, kadm.NewClient(cl)
	}
	groups, err := o.adm.DescribeGroups(ctx, kafka.GroupTwin)
	if err != nil {
		return "", fmt.Errorf("cannot describe group %s: %w", kafka.GroupTwin, err)
	}
	byPart := map[int32]string{}
	g := groups[kafka.GroupTwin]
	for _, m := range g.Members {
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, t := range a.Topics {
			if t.Topic != Topics[0] {
				continue
			}
			for _, part := range t.Partitions {
				byPart[part] = m.ClientID
			}
		}
	}
	o.byPart, o.fetched = byPart, time.Now()
	return byPart[p], nil
}

func (o *owners) close() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.cl != nil {
		o.cl.Close()
	}
}
