package kafka

import (
	"context"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// deploy/README.md shows the topic table for a 7-day stream retention.
const deployReadme = "../deploy/README.md"

var deployRetention = TopicOptions{Retention: 7 * 24 * time.Hour}

// specCells is how deploy/README.md writes a spec: "all" for the shared
// partition count, numbers as Kafka takes them.
func specCells(s TopicSpec) (parts, policy, ms, bytes string) {
	parts = "all"
	if s.Partitions != 0 {
		parts = strconv.Itoa(int(s.Partitions))
	}
	return parts, s.CleanupPolicy, strconv.FormatInt(s.RetentionMs, 10), strconv.FormatInt(s.RetentionBytes, 10)
}

// The topic table and the topic-creating commands of deploy/README.md are
// TopicSpecs, topic for topic.
func TestTopicSpecs_MatchDeployReadme(t *testing.T) {
	b, err := os.ReadFile(deployReadme)
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("^\\s*\\| `(polis\\.[a-z]+\\.v[0-9]+)` \\|([^|]*)\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|([^|]*)\\|\\s*$")
	cmd := regexp.MustCompile(`^\s*mk (polis\.[a-z]+\.v[0-9]+)\s+(.*)$`)
	table := map[string][4]string{}
	cmds := map[string][4]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if m := row.FindStringSubmatch(line); m != nil {
			if _, dup := table[m[1]]; dup {
				t.Errorf("%s: %s is listed twice in the topic table", deployReadme, m[1])
			}
			table[m[1]] = [4]string{strings.TrimSpace(m[3]), strings.TrimSpace(m[4]), strings.TrimSpace(m[5]), strings.TrimSpace(m[6])}
			continue
		}
		if m := cmd.FindStringSubmatch(line); m != nil {
			var c [4]string
			args := strings.Fields(m[2])
			for i := 0; i+1 < len(args); i += 2 {
				switch v := args[i+1]; {
				case args[i] == "--partitions" && v == "$P":
					c[0] = "all"
				case args[i] == "--partitions":
					c[0] = v
				case args[i] == "--config" && strings.HasPrefix(v, "cleanup.policy="):
					c[1] = strings.TrimPrefix(v, "cleanup.policy=")
				case args[i] == "--config" && strings.HasPrefix(v, "retention.ms="):
					c[2] = strings.TrimPrefix(v, "retention.ms=")
				case args[i] == "--config" && strings.HasPrefix(v, "retention.bytes="):
					c[3] = strings.TrimPrefix(v, "retention.bytes=")
				default:
					t.Errorf("%s: the command for %s has %s %s, which is not in TopicSpecs", deployReadme, m[1], args[i], v)
				}
			}
			cmds[m[1]] = c
		}
	}
	specs := TopicSpecs(deployRetention)
	for _, s := range specs {
		p, c, ms, by := specCells(s)
		want := [4]string{p, c, ms, by}
		if got, ok := table[s.Name]; !ok {
			t.Errorf("%s: the topic table lacks %s", deployReadme, s.Name)
		} else if got != want {
			t.Errorf("%s: the topic table says %s is %q (partitions, cleanup.policy, retention.ms, retention.bytes); TopicSpecs says %q", deployReadme, s.Name, got, want)
		}
		if got, ok := cmds[s.Name]; !ok {
			t.Errorf("%s: no command creates %s", deployReadme, s.Name)
		} else if got != want {
			t.Errorf("%s: the command creates %s as %q (partitions, cleanup.policy, retention.ms, retention.bytes); TopicSpecs says %q", deployReadme, s.Name, got, want)
		}
		delete(table, s.Name)
		delete(cmds, s.Name)
	}
	for name := range table {
		t.Errorf("%s: the topic table lists %s, which is not in TopicSpecs", deployReadme, name)
	}
	for name := range cmds {
		t.Errorf("%s: a command creates %s, which is not in TopicSpecs", deployReadme, name)
	}
}

func TestTopicSpecs_Policies(t *testing.T) {
	specs := TopicSpecs(TopicOptions{Retention: time.Hour, RetentionBytes: 1 << 30})
	if got, want := len(specs), len(Topics()); got != want {
		t.Fatalf("TopicSpecs has %d topics, Topics %d", got, want)
	}
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.Name] {
			t.Errorf("%s is specified twice", s.Name)
		}
		seen[s.Name] = true
		switch s.Name {
		case TopicTelemetry, TopicEvents, TopicAlerts, TopicDeadLetter:
			if s.CleanupPolicy != CleanupDelete || s.RetentionMs != time.Hour.Milliseconds() || s.RetentionBytes != 1<<30 || s.Partitions != 0 {
				t.Errorf("stream topic %s: %+v; want deleted after the configured retention, shared partition count", s.Name, s)
			}
		case TopicState, TopicRegistry, TopicDesired:
			if !s.Compacted() || s.RetentionMs != -1 || s.RetentionBytes != -1 {
				t.Errorf("store topic %s: %+v; want compacted, no retention", s.Name, s)
			}
		case TopicAlertState, TopicSilences:
			if !s.Compacted() || s.RetentionMs != -1 || s.RetentionBytes != -1 {
				t.Errorf("alert store topic %s: %+v; want compacted, no retention", s.Name, s)
			}
		case TopicRules:
			if s.CleanupPolicy != CleanupDelete || s.RetentionMs != -1 || s.RetentionBytes != -1 || s.Partitions != 1 {
				t.Errorf("rules topic: %+v; want one partition kept forever, not compacted", s)
			}
		case TopicLifecycle:
			if s.CleanupPolicy != CleanupDelete || s.RetentionMs != -1 || s.RetentionBytes != -1 || s.Partitions != 0 {
				t.Errorf("lifecycle topic: %+v; want kept forever, not compacted, site-keyed", s)
			}
		default:
			t.Errorf("unknown topic %s", s.Name)
		}
	}
	for _, s := range TopicSpecs(TopicOptions{}) {
		if !s.Compacted() && s.Name != TopicRules && s.Name != TopicLifecycle && s.RetentionMs != DefaultRetention.Milliseconds() {
			t.Errorf("%s: retention %d ms with no option; want DefaultRetention", s.Name, s.RetentionMs)
		}
	}
	for _, s := range TopicSpecs(TopicOptions{Retention: -1}) {
		if s.RetentionMs != -1 || s.RetentionBytes != -1 {
			t.Errorf("%s: retention %d ms / %d bytes with a negative retention; want -1 / -1", s.Name, s.RetentionMs, s.RetentionBytes)
		}
	}
}

// On a cluster that lacks them, EnsureTopics makes every platform topic as
// the table says; a cluster whose site-keyed topics disagree is refused.
func TestEnsureTopics(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, TopicTelemetry), kfake.ListenFn(loopback))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := EnsureTopics(ctx, c.ListenAddrs(), nil, TopicOptions{Retention: time.Hour}, 8, 1); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ts, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range TopicSpecs(TopicOptions{Retention: time.Hour}) {
		want := int(s.Partitions)
		if want == 0 {
			want = 3 // the existing telemetry topic's count, not the default 8
		}
		if n := len(ts[s.Name].Partitions); n != want {
			t.Errorf("%s: %d partitions; want %d", s.Name, n, want)
		}
		rc, err := cfgs.On(s.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, kv := range rc.Configs {
			if kv.Key == "cleanup.policy" && s.Name != TopicTelemetry && kv.MaybeValue() != s.CleanupPolicy {
				t.Errorf("%s: cleanup.policy %s; want %s", s.Name, kv.MaybeValue(), s.CleanupPolicy)
			}
		}
	}
	if _, err := adm.CreateTopic(ctx, 5, 1, nil, "ignored"); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.DeleteTopics(ctx, TopicEvents); err != nil {
		t.Fatal(err)
	}
	if _, err := adm.CreateTopic(ctx, 5, 1, nil, TopicEvents); err != nil {
		t.Fatal(err)
	}
	if err := EnsureTopics(ctx, c.ListenAddrs(), nil, TopicOptions{}, 8, 1); err == nil {
		t.Fatal("site-keyed topics with 3 and 5 partitions were accepted")
	}
}

func loopback(n, a string) (net.Listener, error) {
	_, port, _ := net.SplitHostPort(a)
	return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
}
