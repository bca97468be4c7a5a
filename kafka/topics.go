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
)

// Cleanup policies of a TopicSpec (Kafka's cleanup.policy).
const (
	CleanupDelete  = "delete"
	CleanupCompact = "compact"
)

// TopicSpec is how one platform topic is made, on the embedded cluster
// (StartEmbedded) as on a real Kafka: TopicSpecs is the one table both
// read, and deploy/README.md lists it (kafka/topics_test.go keeps them
// equal).
type TopicSpec struct {
	Name string
	// Partitions is 0 for the partition count every site-keyed topic
	// shares (EmbeddedOptions.Partitions, or the one chosen for a real
	// cluster: SitePartitioner puts a site in the same partition number
	// on every topic, so they must all have the same count), or a fixed
	// count for a topic read whole by every instance.
	Partitions int32
	// CleanupPolicy is CleanupDelete or CleanupCompact.
	CleanupPolicy string
	// RetentionMs is Kafka's retention.ms: -1 keeps records forever.
	RetentionMs int64
	// RetentionBytes is Kafka's retention.bytes, per partition: -1 is
	// unbounded.
	RetentionBytes int64
}

// Compacted reports whether the topic keeps the latest record per key.
func (s TopicSpec) Compacted() bool { return s.CleanupPolicy == CleanupCompact }

// Configs are the topic configs that make the spec, for CreateTopics and
// AlterConfigs. Every one is always set, retention included on compacted
// topics: Kafka ignores retention under cleanup.policy=compact, but kfake
// applies it to every topic whatever its policy (see StartEmbedded), so a
// compacted topic must say "forever" itself rather than inherit a
// broker-wide default.
func (s TopicSpec) Configs() map[string]*string {
	str := func(s string) *string { return &s }
	return map[string]*string{
		"cleanup.policy":  str(s.CleanupPolicy),
		"retention.ms":    str(strconv.FormatInt(s.RetentionMs, 10)),
		"retention.bytes": str(strconv.FormatInt(s.RetentionBytes, 10)),
	}
}

// TopicOptions are what may be chosen about the platform topics: the
// retention of the stream topics. Nothing here reaches the compacted
// topics or the rules topic, which are kept forever.
type TopicOptions struct {
	// Retention of the stream topics (telemetry, events, alerts, dead
	// letters): 0 is DefaultRetention, negative keeps them forever.
	Retention time.Duration
	// RetentionBytes bounds each partition of the stream topics; 0 or
	// negative is unbounded.
	RetentionBytes int64
}

// TopicSpecs is the table of the platform topics and how each is kept:
//
//   - the stream topics (telemetry, events, alerts, dead letters) are
//     deleted after o's retention: by then the storage writer has put
//     them in ClickHouse;
//   - state, registry and desired state are compacted and never deleted:
//     the latest record per key is the store itself;
//   - rules is the rules' version history: one partition, never deleted,
//     not compacted; lifecycle is every asset's lifecycle history, kept
//     the same way;
//   - alert state (per alert) and silences are compacted and never
//     deleted, like state.
//
// The registry is one partition too, as the embedded cluster has always
// made it: every instance replays it whole.
func TopicSpecs(o TopicOptions) []TopicSpec {
	ms := o.Retention.Milliseconds()
	switch {
	case o.Retention == 0:
		ms = DefaultRetention.Milliseconds()
	case o.Retention < 0:
		ms = -1
	}
	bytes := o.RetentionBytes
	if bytes <= 0 {
		bytes = -1
	}
	stream := func(name string) TopicSpec {
		return TopicSpec{Name: name, CleanupPolicy: CleanupDelete, RetentionMs: ms, RetentionBytes: bytes}
	}
	compacted := func(name string, parts int32) TopicSpec {
		return TopicSpec{Name: name, Partitions: parts, CleanupPolicy: CleanupCompact, RetentionMs: -1, RetentionBytes: -1}
	}
	return []TopicSpec{
		stream(TopicTelemetry),
		stream(TopicEvents),
		compacted(TopicState, 0),
		stream(TopicAlerts),
		stream(TopicDeadLetter),
		compacted(TopicRegistry, 1),
		compacted(TopicDesired, 0),
		{Name: TopicRules, Partitions: 1, CleanupPolicy: CleanupDelete, RetentionMs: -1, RetentionBytes: -1},
		// Every lifecycle change, kept forever: the milestones' history.
		{Name: TopicLifecycle, CleanupPolicy: CleanupDelete, RetentionMs: -1, RetentionBytes: -1},
		compacted(TopicAlertState, 0),
		compacted(TopicSilences, 1),
	}
}

// EnsureTopics creates the topics of TopicSpecs(o) that the cluster lacks
// (a site-keyed topic with the partition count of the others, or
// partitions on an empty cluster; replication -1 is the broker's default)
// and checks that the site-keyed topics share one partition count, which
// the twin's ownership of a site on every topic relies on. Topics that
// exist keep their configs: on a real cluster they are the operator's.
func EnsureTopics(ctx context.Context, brokers []string, log *slog.Logger, o TopicOptions, partitions int32, replication int16) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cl, err := NewClient(brokers, log)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	specs := TopicSpecs(o)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	ts, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return fmt.Errorf("cannot list the platform's topics: %w", err)
	}
	siteKeyed := int32(0)
	for _, s := range specs {
		if t, ok := ts[s.Name]; ok && t.Err == nil && s.Partitions == 0 {
			n := int32(len(t.Partitions))
			if siteKeyed != 0 && n != siteKeyed {
				return fmt.Errorf("topic %s has %d partitions and another site-keyed topic %d: they must match (see deploy/README.md)", s.Name, n, siteKeyed)
			}
			siteKeyed = n
		}
	}
	if siteKeyed == 0 {
		siteKeyed = partitions
	}
	for _, s := range specs {
		if t, ok := ts[s.Name]; ok && t.Err == nil {
			continue
		}
		parts := s.Partitions
		if parts == 0 {
			parts = siteKeyed
		}
		resp, err := adm.CreateTopic(ctx, parts, replication, s.Configs(), s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return fmt.Errorf("cannot create topic %s: %w", s.Name, err)
		}
		log.Info("topic created", "topic", s.Name, "partitions", parts, "cleanup_policy", s.CleanupPolicy)
	}
	return nil
}
