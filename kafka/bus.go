// Package kafka names the Kafka topics of the platform and starts the embedded
// Kafka-protocol cluster (franz-go's kfake) used in single-machine mode and
// in tests.
package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
)

// The topics of docs/design.md.
const (
	TopicTelemetry  = "polis.telemetry.v1"
	TopicEvents     = "polis.events.v1"
	TopicState      = "polis.state.v1" // compacted, key = site/asset
	TopicAlerts     = "polis.alerts.v1"
	TopicDeadLetter = "polis.deadletter.v1"
	// TopicRegistry carries every registry change, compacted, key = site:
	// each instance replays it at start and follows it, so a bulk import
	// on one instance reaches all of them.
	TopicRegistry = "polis.registry.v1"
	// TopicDesired carries desired state, compacted, key = site/asset: every
	// instance's broker publishes it retained, so a device gets it on
	// whichever instance it is connected to, and after a restart.
	TopicDesired = "polis.desired.v1"
	// TopicRules carries the rules written through the API, one record per
	// version, key = rule id, kept forever (one partition, no retention, not
	// compacted): it is the rules' version history.
	TopicRules = "polis.rules.v1"
)

// Consumer groups.
const (
	GroupStorage = "storage"
	GroupTwin    = "twin"
)

// Topics lists every platform topic, in the order of TopicSpecs.
func Topics() []string {
	specs := TopicSpecs(TopicOptions{})
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.Name
	}
	return out
}

// DefaultAddr is where `polis serve` runs the embedded cluster unless told
// otherwise (an empty EmbeddedOptions.Addr picks a free port).
const DefaultAddr = "127.0.0.1:9092"

// Defaults of EmbeddedOptions, used for a zero field.
const (
	DefaultPartitions     = 8
	DefaultRetention      = 24 * time.Hour
	DefaultRetentionCheck = 5 * time.Minute
	DefaultSegmentBytes   = 64 << 20
)

// EmbeddedOptions configure the single-machine cluster.
type EmbeddedOptions struct {
	// Addr is host:port to listen on; port 0 (or empty) picks a free one.
	Addr string
	// DataDir persists the log; empty keeps it in memory (tests only).
	DataDir string
	// Partitions per topic (default DefaultPartitions).
	Partitions int32
	// Retention and RetentionBytes (per partition; <= 0 means unbounded)
	// bound the disk a long run takes: they are the retention of the
	// stream topics (TopicOptions; default DefaultRetention). The
	// compacted topics and the rules topic are kept forever whatever
	// they say.
	Retention      time.Duration
	RetentionBytes int64
	// RetentionCheck is how often retention and compaction run (default
	// DefaultRetentionCheck).
	RetentionCheck time.Duration
	// SegmentBytes is the log segment size: retention moves the log start
	// a batch at a time but frees disk a whole segment at a time. Default
	// DefaultSegmentBytes, or a quarter of RetentionBytes when that is
	// smaller (at least 64 KiB).
	SegmentBytes int64
	Logger       *slog.Logger
}

// Embedded is a running single-machine Kafka-protocol cluster.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts a kfake cluster with the platform topics, each made
// and kept as TopicSpecs says.
//
// What kfake does with those configs (pkg/kfake data.go, cluster.go) is not
// quite what Kafka does, and the configs are chosen for it:
//
//   - Retention (applyRetention) runs on every topic whatever its
//     cleanup.policy: "compact" behaves as Kafka's "compact,delete". A
//     topic without its own retention.ms or retention.bytes falls back to
//     the broker's log.retention.ms (kfake's default: 7 days) and
//     log.retention.bytes. So every topic sets both itself (TopicSpec.Configs:
//     -1 on the compacted topics and rules), and the broker-wide defaults
//     say "forever", so that no topic loses records unless its spec says so.
//   - Retention moves the log start past whole batches whose newest
//     timestamp is older than retention.ms, or oldest first until the
//     partition is under retention.bytes, and deletes a segment file once
//     all of it is behind the log start.
//   - Compaction (compact) exists: it keeps the latest record per key and
//     drops tombstones older than delete.retention.ms (default 24 h). It
//     runs with retention every RetentionCheck (log.cleaner.backoff.ms),
//     on every batch of a partition but its last one (kfake's "active
//     segment"), reading the whole partition and rewriting all its
//     segment files on each pass; Kafka's min.cleanable.dirty.ratio and
//     min/max.compaction.lag.ms do not exist in kfake. Between passes a
//     compacted topic holds every record written since the last one.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Partitions <= 0 {
		o.Partitions = DefaultPartitions
	}
	if o.Retention <= 0 {
		o.Retention = DefaultRetention
	}
	if o.RetentionCheck <= 0 {
		o.RetentionCheck = DefaultRetentionCheck
	}
	port := 0
	if o.Addr != "" {
		_, p, err := splitPort(o.Addr)
		if err != nil {
			return nil, err
		}
		port = p
	}
	cfgs := map[string]string{
		// Retention is per topic (TopicSpecs); kfake would apply these
		// defaults to compacted topics too (see above).
		"log.retention.ms":       "-1",
		"log.retention.bytes":    "-1",
		"log.cleaner.backoff.ms": strconv.FormatInt(o.RetentionCheck.Milliseconds(), 10),
		"message.max.bytes":      strconv.Itoa(8 << 20),
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = DefaultSegmentBytes
		if o.RetentionBytes > 0 && o.RetentionBytes/4 < o.SegmentBytes {
			o.SegmentBytes = max(o.RetentionBytes/4, 64<<10)
		}
	}
	cfgs["log.segment.bytes"] = strconv.FormatInt(o.SegmentBytes, 10)
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(loopbackListen),
		kfake.BrokerConfigs(cfgs),
		kfake.ClusterID("polis-embedded"),
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("cannot start embedded Kafka: %w", err)
	}
	e := &Embedded{c: c}
	if err := e.configureTopics(o); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

// configureTopics creates the topics of TopicSpecs that do not exist yet
// and sets every spec's configs on every topic, so that a log persisted by
// an older version (which lacked a topic, or a config) is brought to the
// table too. A topic's partition count is never changed.
func (e *Embedded) configureTopics(o EmbeddedOptions) error {
	cl, err := NewClient(e.Addrs(), o.Logger)
	if err != nil {
		return fmt.Errorf("cannot connect to embedded Kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for _, s := range TopicSpecs(TopicOptions{Retention: o.Retention, RetentionBytes: o.RetentionBytes}) {
		parts := s.Partitions
		if parts == 0 {
			parts = o.Partitions
		}
		configs := s.Configs()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := adm.CreateTopic(ctx, parts, 1, configs, s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			cancel()
			return fmt.Errorf("cannot create topic %s: %w", s.Name, err)
		}
		alters := make([]kadm.AlterConfig, 0, len(configs))
		for k, v := range configs {
			alters = append(alters, kadm.AlterConfig{Name: k, Value: v})
		}
		ar, err := adm.AlterTopicConfigs(ctx, alters, s.Name)
		cancel()
		if err == nil {
			err = firstErr(ar)
		}
		if err != nil {
			return fmt.Errorf("cannot configure topic %s: %w", s.Name, err)
		}
	}
	return nil
}

func firstErr(rs kadm.AlterConfigsResponses) error {
	for _, r := range rs {
		if r.Err != nil {
			return fmt.Errorf("%s: %w (%s)", r.Name, r.Err, r.ErrMessage)
		}
	}
	return nil
}

// Addrs returns the seed addresses of the cluster.
func (e *Embedded) Addrs() []string { return e.c.ListenAddrs() }

// ApplyRetention runs retention now (tests; the cluster also runs it on a timer).
func (e *Embedded) ApplyRetention() { e.c.ApplyRetention() }

// Close stops the cluster, syncing its log to disk.
func (e *Embedded) Close() { e.c.Close() }
