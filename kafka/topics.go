package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
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
// It connects without SASL or TLS: Ensure takes ClientOptions.
func EnsureTopics(ctx context.Context, brokers []string, log *slog.Logger, o TopicOptions, partitions int32, replication int16) error {
	_, err := Ensure(ctx, brokers, EnsureOptions{Topics: o, Partitions: partitions, Replication: replication, Logger: log})
	return err
}

// EnsureOptions say how Ensure makes the topics it creates.
type EnsureOptions struct {
	// Topics choose the stream topics' retention.
	Topics TopicOptions
	// Partitions of each site-keyed topic on a cluster that has none of
	// them yet (otherwise the count they have).
	Partitions int32
	// Replication of every topic created; -1 is the broker's default.
	Replication int16
	// Conn is how to connect (SASL, TLS).
	Conn   ClientOptions
	Logger *slog.Logger
}

// EnsuredTopic is what Ensure found or did about one topic of the table.
type EnsuredTopic struct {
	Spec TopicSpec
	// Partitions the topic has (or was created with).
	Partitions int32
	// Created is true when Ensure made the topic.
	Created bool
	// Differs lists how an existing topic's configs differ from the spec
	// ("cleanup.policy is delete; the table says compact"); Ensure leaves
	// them as they are.
	Differs []string
}

// Ensure creates the topics of TopicSpecs(o.Topics) that the cluster
// lacks, as EnsureTopics says, and reports on every topic of the table, in
// its order: its partitions, whether it was created, and how the configs of
// one that existed differ from the table.
func Ensure(ctx context.Context, brokers []string, o EnsureOptions) ([]EnsuredTopic, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.Replication == 0 {
		o.Replication = -1
	}
	cl, err := o.Conn.NewClient(brokers, log)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	specs := TopicSpecs(o.Topics)
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	ts, err := adm.ListTopics(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("cannot list the platform's topics: %w", err)
	}
	exists := func(name string) bool { t, ok := ts[name]; return ok && t.Err == nil }
	siteKeyed := int32(0)
	for _, s := range specs {
		if exists(s.Name) && s.Partitions == 0 {
			n := int32(len(ts[s.Name].Partitions))
			if siteKeyed != 0 && n != siteKeyed {
				return nil, fmt.Errorf("topic %s has %d partitions and another site-keyed topic %d: they must match (see deploy/README.md)", s.Name, n, siteKeyed)
			}
			siteKeyed = n
		}
	}
	if siteKeyed == 0 {
		siteKeyed = o.Partitions
	}
	var existing []string
	for _, s := range specs {
		if exists(s.Name) {
			existing = append(existing, s.Name)
		}
	}
	var described kadm.ResourceConfigs
	if len(existing) > 0 {
		// Only to report differences: a cluster that will not describe
		// its configs is still usable.
		if described, err = adm.DescribeTopicConfigs(ctx, existing...); err != nil {
			log.Warn("cannot read the configs of the existing topics", "err", err)
		}
	}
	out := make([]EnsuredTopic, 0, len(specs))
	for _, s := range specs {
		if exists(s.Name) {
			e := EnsuredTopic{Spec: s, Partitions: int32(len(ts[s.Name].Partitions))}
			if rc, err := described.On(s.Name, nil); err == nil {
				e.Differs = configDiffs(s, rc.Configs)
			}
			if s.Partitions != 0 && e.Partitions != s.Partitions {
				e.Differs = append(e.Differs, fmt.Sprintf("has %d partitions; the table says %d", e.Partitions, s.Partitions))
			}
			out = append(out, e)
			continue
		}
		parts := s.Partitions
		if parts == 0 {
			parts = siteKeyed
		}
		resp, err := adm.CreateTopic(ctx, parts, o.Replication, s.Configs(), s.Name)
		if err == nil {
			err = resp.Err
		}
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return out, fmt.Errorf("cannot create topic %s: %w", s.Name, err)
		}
		log.Info("topic created", "topic", s.Name, "partitions", parts, "cleanup_policy", s.CleanupPolicy)
		out = append(out, EnsuredTopic{Spec: s, Partitions: parts, Created: err == nil})
	}
	return out, nil
}

// configDiffs says where a topic's configs differ from its spec.
func configDiffs(s TopicSpec, have []kadm.Config) []string {
	got := map[string]string{}
	for _, kv := range have {
		got[kv.Key] = kv.MaybeValue()
	}
	var out []string
	for _, k := range []string{"cleanup.policy", "retention.ms", "retention.bytes"} {
		want := *s.Configs()[k]
		v, ok := got[k]
		if !ok {
			continue // the broker did not say
		}
		if k == "cleanup.policy" {
			// "compact,delete" holds "compact" but also deletes.
			v = strings.ReplaceAll(v, " ", "")
		}
		if v != want {
			out = append(out, fmt.Sprintf("%s is %s; the table says %s", k, v, want))
		}
	}
	return out
}
