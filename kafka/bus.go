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
	"github.com/twmb/franz-go/pkg/kgo"
)

// The topics of DESIGN.md.
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

// Topics lists every platform topic.
func Topics() []string {
	return []string{TopicTelemetry, TopicEvents, TopicState, TopicAlerts, TopicDeadLetter, TopicRegistry, TopicDesired, TopicRules}
}

// EmbeddedOptions configure the single-machine cluster.
type EmbeddedOptions struct {
	// Addr is host:port to listen on; port 0 picks a free one.
	Addr string
	// DataDir persists the log; empty keeps it in memory (tests only).
	DataDir string
	// Partitions per topic.
	Partitions int32
	// Retention bounds the disk a long run takes.
	Retention      time.Duration
	RetentionBytes int64 // per partition; <= 0 means unbounded
	// RetentionCheck is how often retention is applied.
	RetentionCheck time.Duration
	// SegmentBytes is the log segment size; retention deletes whole
	// segments only. Default 64 MiB, or a quarter of RetentionBytes.
	SegmentBytes int64
	Logger       *slog.Logger
}

// Embedded is a running single-machine Kafka-protocol cluster.
type Embedded struct {
	c *kfake.Cluster
}

// StartEmbedded starts a kfake cluster with the platform topics.
func StartEmbedded(o EmbeddedOptions) (*Embedded, error) {
	if o.Partitions <= 0 {
		o.Partitions = 8
	}
	if o.Retention <= 0 {
		o.Retention = 24 * time.Hour
	}
	if o.RetentionCheck <= 0 {
		o.RetentionCheck = 5 * time.Minute
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
		"log.retention.ms":       strconv.FormatInt(o.Retention.Milliseconds(), 10),
		"log.cleaner.backoff.ms": strconv.FormatInt(o.RetentionCheck.Milliseconds(), 10),
		"message.max.bytes":      strconv.Itoa(8 << 20),
	}
	if o.SegmentBytes <= 0 {
		o.SegmentBytes = 64 << 20
		if o.RetentionBytes > 0 && o.RetentionBytes/4 < o.SegmentBytes {
			o.SegmentBytes = max(o.RetentionBytes/4, 64<<10)
		}
	}
	cfgs["log.segment.bytes"] = strconv.FormatInt(o.SegmentBytes, 10)
	if o.RetentionBytes > 0 {
		cfgs["log.retention.bytes"] = strconv.FormatInt(o.RetentionBytes, 10)
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(port),
		kfake.ListenFn(loopbackListen),
		kfake.SeedTopics(o.Partitions, TopicTelemetry, TopicEvents, TopicAlerts, TopicDeadLetter),
		kfake.SeedTopics(o.Partitions, TopicState, TopicDesired),
		kfake.SeedTopics(1, TopicRegistry, TopicRules),
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
	// Retention is a topic-level check in kfake: set it on every topic so the
	// cleaner ticker runs, and mark the state topic compacted.
	if err := e.configureTopics(o); err != nil {
		c.Close()
		return nil, err
	}
	return e, nil
}

func (e *Embedded) configureTopics(o EmbeddedOptions) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.Addrs()...))
	if err != nil {
		return fmt.Errorf("cannot connect to embedded Kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// A log persisted by an older version lacks the topics added since:
	// seeds apply to a new cluster only.
	for _, t := range Topics() {
		parts := o.Partitions
		if t == TopicRegistry || t == TopicRules {
			parts = 1
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := adm.CreateTopics(ctx, parts, 1, nil, t)
		cancel()
		if err == nil {
			err = resp.Error()
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", t, err)
		}
	}
	ret := strconv.FormatInt(o.Retention.Milliseconds(), 10)
	var alters []kadm.AlterConfig
	for _, t := range Topics() {
		if t == TopicState || t == TopicRegistry || t == TopicDesired {
			continue
		}
		ret := ret
		if t == TopicRules {
			ret = "-1" // the version history
		}
		alters = append(alters, kadm.AlterConfig{Name: "retention.ms", Value: &ret})
		if o.RetentionBytes > 0 && t != TopicRules {
			rb := strconv.FormatInt(o.RetentionBytes, 10)
			alters = append(alters, kadm.AlterConfig{Name: "retention.bytes", Value: &rb})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := adm.AlterTopicConfigs(ctx, alters, t)
		cancel()
		if err == nil {
			err = firstErr(resp)
		}
		if err != nil {
			return fmt.Errorf("cannot set retention on %s: %w", t, err)
		}
		alters = alters[:0]
	}
	compact := "compact"
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "cleanup.policy", Value: &compact}}, TopicState, TopicRegistry, TopicDesired)
	if err == nil {
		err = firstErr(resp)
	}
	if err != nil {
		return fmt.Errorf("cannot make the compacted topics compacted: %w", err)
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
