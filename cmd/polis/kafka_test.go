package main

import (
	"bytes"
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/polis-platform/polis/kafka"
)

// `polis kafka init` makes every topic of kafka.TopicSpecs on a cluster
// that requires SASL/SCRAM (the password from the environment), with the
// site-keyed topics' partition count of the one that exists, each with its
// cleanup policy and retention; it reports a topic that differs and leaves
// it; a second run creates nothing; a wrong password is an error.
func TestKafkaInit_CreatesEveryTopicOnASASLCluster(t *testing.T) {
	const user, pass = "polis-admin", "kafka-init-s3cret"
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(kafka.SASLScramSHA512, user, pass),
		kfake.ListenFn(func(n, a string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(a)
			return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	// An existing site-keyed topic with 3 partitions and the wrong policy.
	del := "delete"
	if _, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"cleanup.policy": &del}, kafka.TopicState); err != nil {
		t.Fatal(err)
	}

	brokers := strings.Join(c.ListenAddrs(), ",")
	t.Setenv("POLIS_KAFKA_SASL_PASSWORD", pass)
	args := []string{"kafka", "init", "--kafka-brokers", brokers, "--kafka-partitions", "5", "--kafka-retention", "2h",
		"--kafka-sasl-mechanism", "SCRAM-SHA-512", "--kafka-sasl-username", user}
	var out bytes.Buffer
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("kafka init: %v\n%s", err, out.String())
	}
	t.Logf("polis kafka init:\n%s", out.String())
	specs := kafka.TopicSpecs(kafka.TopicOptions{Retention: 2 * time.Hour})
	for _, s := range specs {
		what := "created"
		if s.Name == kafka.TopicState {
			what = "exists"
		}
		if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(s.Name) + `\s+` + what + `\s`).MatchString(out.String()) {
			t.Errorf("the report does not say %s %s", s.Name, what)
		}
	}
	for _, want := range []string{"cleanup.policy is delete; the table says compact", "10 topics created, 1 checked; 1 differ"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the report lacks %q", want)
		}
	}
	if strings.Contains(out.String(), pass) {
		t.Error("the report shows the SASL password")
	}

	ts, err := adm.ListTopics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := adm.DescribeTopicConfigs(ctx, kafka.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		want := int(s.Partitions)
		if want == 0 {
			want = 3 // the existing site-keyed topic's count, not --kafka-partitions
		}
		if n := len(ts[s.Name].Partitions); n != want {
			t.Errorf("%s: %d partitions; want %d", s.Name, n, want)
		}
		if s.Name == kafka.TopicState {
			continue // the operator's, left as it was
		}
		rc, err := cfgs.On(s.Name, nil)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, kv := range rc.Configs {
			got[kv.Key] = kv.MaybeValue()
		}
		for k, v := range s.Configs() {
			if got[k] != *v {
				t.Errorf("%s: %s = %q; want %q", s.Name, k, got[k], *v)
			}
		}
	}

	out.Reset()
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("second kafka init: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "0 topics created, 11 checked") {
		t.Errorf("a second run changed something:\n%s", out.String())
	}

	t.Setenv("POLIS_KAFKA_SASL_PASSWORD", "wrong")
	out.Reset()
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	err = run(wctx, args, &out)
	if err == nil {
		t.Fatalf("kafka init with a wrong password succeeded:\n%s", out.String())
	}
	if strings.Contains(err.Error(), "wrong") {
		t.Errorf("the error shows the password: %v", err)
	}
	t.Logf("wrong password: %v", err)
}

func TestKafkaInit_RefusesBadFlags(t *testing.T) {
	var out bytes.Buffer
	err := run(context.Background(), []string{"kafka", "init", "--kafka-partitions", "0", "--kafka-sasl-mechanism", "MD5"}, &out)
	if err == nil {
		t.Fatal("kafka init accepted no brokers, 0 partitions and an unknown mechanism")
	}
	for _, want := range []string{"--kafka-brokers", "--kafka-partitions", "--kafka-sasl-mechanism"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}
