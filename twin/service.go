// Package twin keeps the live digital twin of the fleet: it consumes the
// ingest topics in consumer group "twin", holds one state store per Kafka
// partition it owns, snapshots each store to ClickHouse with the offsets it
// reflects, and restores from the newest snapshot when it gains a
// partition, so that several instances share the fleet and one can take
// over another's sites with nothing lost.
package twin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/state"
)

// Topics the twin consumes; one partition number covers a site on all of
// them (kafka.SitePartitioner). The desired-state topic is folded into the
// stores like the ingest topics (desired.go): it is where desired state is
// written first.
var Topics = []string{kafka.TopicTelemetry, kafka.TopicEvents, kafka.TopicState, kafka.TopicDesired}

// DefaultSnapshotEvery is how often a Service snapshots its partitions
// unless Options.SnapshotEvery says otherwise.
const DefaultSnapshotEvery = 30 * time.Second

// Options configure a Service.
type Options struct {
	Brokers []string
	// Kafka is how its clients connect (SASL, TLS); zero: plaintext.
	Kafka    kafka.ClientOptions
	Conn     driver.Conn
	Database string
	// NewPartition returns an empty store for partition p with its sites'
	// assets registered.
	NewPartition func(p int32) *state.Store
	// SnapshotEvery is how often owned partitions are snapshotted
	// (default DefaultSnapshotEvery).
	SnapshotEvery time.Duration
	// OnApply, if set, sees every record applied to a store, under that
	// partition's lock (the rules engine evaluates here). It must not keep r.
	OnApply func(st *state.Store, r *record.Record, c state.Change)
	// OnAssigned, if set, is called with the partitions this instance has
	// just gained, their stores restored, before any of their records is
	// applied (the rules restore the alerts of their sites here). An error
	// fails the assignment, as an unreadable snapshot does.
	OnAssigned func(ctx context.Context, stores map[int32]*state.Store) error
	// OnReleased, if set, is called with the partitions this instance has
	// just lost (revoked or lost), once their records are no longer applied
	// (the rules stop evaluating their sites here).
	OnReleased func(ctx context.Context, stores map[int32]*state.Store)
	// InstanceID names this member in logs (default: the Kafka member id).
	InstanceID string
	Logger     *slog.Logger
	// now is the clock for snapshot versions (tests pin it).
	now func() time.Time
}

// Service is the twin consumer.
type Service struct {
	o   Options
	log *slog.Logger

	mu    sync.RWMutex
	parts map[int32]*owned
	// restored counts partitions restored from a snapshot (tests, metrics).
	restored atomic.Int64
	hub      hub
	owners   owners
}

type owned struct {
	p    *state.Store
	next map[string]int64 // topic -> next offset to apply
}

// New validates the options.
func New(o Options) (*Service, error) {
	if len(o.Brokers) == 0 || o.Conn == nil || o.NewPartition == nil {
		return nil, errors.New("cannot create twin service: Brokers, Conn and NewPartition are required")
	}
	if o.Database == "" {
		o.Database = schema.DefaultDatabase
	}
	if o.SnapshotEvery <= 0 {
		o.SnapshotEvery = DefaultSnapshotEvery
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.now == nil {
		o.now = time.Now
	}
	return &Service{o: o, log: o.Logger.With("component", "twin", "instance", o.InstanceID), parts: map[int32]*owned{}}, nil
}

// Owned returns the partitions this instance serves.
func (s *Service) Owned() []int32 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]int32, 0, len(s.parts))
	for p := range s.parts {
		out = append(out, p)
	}
	return out
}

// With runs f on the store of partition p under the service's read lock,
// if this instance owns p.
func (s *Service) With(p int32, f func(*state.Store)) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.parts[p]
	if ok {
		f(o.p)
	}
	return ok
}

// Run consumes until ctx ends, then snapshots what it owns and leaves the
// group so another instance takes over at once.
func (s *Service) Run(ctx context.Context) error {
	cl, err := s.o.Kafka.NewClient(s.o.Brokers, s.log,
		kgo.ConsumerGroup(kafka.GroupTwin),
		// Range gives a member the same partition numbers on every topic
		// (they share one count), so a site is owned whole; the default
		// cooperative-sticky balancer splits them with three members.
		kgo.Balancers(kgo.RangeBalancer()),
		// The client id carries this instance's API address, so any
		// instance can tell who owns a partition (Owner).
		kgo.ClientID(s.o.InstanceID),
		kgo.ConsumeTopics(Topics...),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.AdjustFetchOffsetsFn(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
	)
	if err != nil {
		return fmt.Errorf("cannot create twin consumer: %w", err)
	}
	defer cl.Close() // leaves the group
	defer s.owners.close()
	tick := time.NewTicker(s.o.SnapshotEvery)
	defer tick.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		fs := cl.PollFetches(pctx)
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		s.apply(fs)
		select {
		case <-tick.C:
			s.snapshotAll(context.WithoutCancel(ctx))
		default:
		}
		if ctx.Err() != nil {
			s.snapshotAll(context.Background())
			cl.AllowRebalance()
			return nil
		}
		cl.AllowRebalance()
	}
}

func (s *Service) apply(fs kgo.Fetches) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rec record.Record
	publish := s.hub.active()
	fs.EachRecord(func(kr *kgo.Record) {
		o, ok := s.parts[kr.Partition]
		if !ok {
			return // revoked between fetch and apply
		}
		if kr.Offset < o.next[kr.Topic] {
			return // already in the restored snapshot
		}
		o.next[kr.Topic] = kr.Offset + 1
		if kr.Topic == kafka.TopicDesired {
			s.applyDesired(o.p, kr)
			return
		}
		if err := record.Unmarshal(kr.Value, &rec); err != nil {
			s.log.Warn("skipping a record the twin cannot decode", "topic", kr.Topic, "offset", kr.Offset, "err", err)
			return
		}
		c := o.p.Apply(&rec)
		if s.o.OnApply != nil {
			s.o.OnApply(o.p, &rec, c)
		}
		if publish {
			if u, ok := updateOf(&rec, c); ok {
				s.hub.publish(u)
			}
		}
	})
}

// assigned restores each newly assigned partition from its newest snapshot
// and starts fetching where that snapshot left off.
func (s *Service) assigned(ctx context.Context, offs map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
	parts := map[int32]bool{}
	for _, ps := range offs {
		for p := range ps {
			parts[p] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	gained := map[int32]*state.Store{}
	for p := range parts {
		o := &owned{p: s.o.NewPartition(p), next: map[string]int64{}}
		next, data, err := s.loadSnapshot(ctx, p)
		if err != nil {
			return nil, err
		}
		if data != nil {
			if err := o.p.Restore(data); err != nil {
				return nil, fmt.Errorf("cannot restore twin partition %d: %w", p, err)
			}
			o.next = next
			s.restored.Add(1)
		}
		s.parts[p] = o
		gained[p] = o.p
		for t := range offs {
			if _, ok := offs[t][p]; !ok {
				continue
			}
			if n, ok := o.next[t]; ok {
				offs[t][p] = kgo.NewOffset().At(n).WithEpoch(-1)
			} else {
				offs[t][p] = kgo.NewOffset().AtStart()
			}
		}
		s.log.Info("twin partition assigned", "partition", p, "restored", data != nil, "offsets", o.next)
	}
	if s.o.OnAssigned != nil && len(gained) > 0 {
		if err := s.o.OnAssigned(ctx, gained); err != nil {
			for p := range gained {
				delete(s.parts, p)
			}
			return nil, err
		}
	}
	return offs, nil
}

func (s *Service) revoked(ctx context.Context, _ *kgo.Client, r map[string][]int32) {
	s.drop(ctx, r, true)
}

func (s *Service) lost(ctx context.Context, _ *kgo.Client, r map[string][]int32) {
	s.drop(ctx, r, false)
}

// drop hands partitions over: snapshot first when they were revoked
// cleanly, so the next owner replays little.
func (s *Service) drop(ctx context.Context, r map[string][]int32, snapshot bool) {
	parts := map[int32]bool{}
	for _, ps := range r {
		for _, p := range ps {
			parts[p] = true
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	released := map[int32]*state.Store{}
	for p := range parts {
		o, ok := s.parts[p]
		if !ok {
			continue
		}
		released[p] = o.p
		if snapshot {
			if err := s.saveSnapshot(ctx, p, o); err != nil {
				s.log.Warn("cannot snapshot a revoked twin partition; its next owner replays more", "partition", p, "err", err)
			}
		}
		delete(s.parts, p)
		s.log.Info("twin partition released", "partition", p)
	}
	if s.o.OnReleased != nil && len(released) > 0 {
		s.o.OnReleased(ctx, released)
	}
}

func (s *Service) snapshotAll(ctx context.Context) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for p, o := range s.parts {
		if err := s.saveSnapshot(ctx, p, o); err != nil {
			s.log.Warn("cannot snapshot twin partition", "partition", p, "err", err)
		}
	}
}
