package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/polis-platform/polis/kafka"
)

// kafkaConnFlags binds the flags of how every Kafka client connects
// (`polis serve`, `polis kafka init`).
func kafkaConnFlags(fs *flag.FlagSet, c *kafka.ConnConfig) {
	fs.StringVar(&c.SASLMechanism, "kafka-sasl-mechanism", c.SASLMechanism, "SASL mechanism of every Kafka client: SCRAM-SHA-256, SCRAM-SHA-512, or PLAIN (TLS only); empty: no authentication")
	fs.StringVar(&c.SASLUser, "kafka-sasl-username", c.SASLUser, "SASL user of every Kafka client")
	fs.StringVar(&c.SASLPassword, "kafka-sasl-password", c.SASLPassword, "SASL password of every Kafka client (prefer POLIS_KAFKA_SASL_PASSWORD to the command line)")
	fs.BoolVar(&c.TLS, "kafka-tls", c.TLS, "connect to Kafka over TLS")
	fs.StringVar(&c.TLSCAFile, "kafka-tls-ca", c.TLSCAFile, "PEM CA bundle the brokers' certificates are checked against (empty: the system's; implies --kafka-tls)")
	fs.StringVar(&c.TLSCertFile, "kafka-tls-cert", c.TLSCertFile, "PEM client certificate for brokers that require one (with --kafka-tls-key; implies --kafka-tls)")
	fs.StringVar(&c.TLSKeyFile, "kafka-tls-key", c.TLSKeyFile, "PEM key of --kafka-tls-cert")
	fs.StringVar(&c.TLSServerName, "kafka-tls-server-name", c.TLSServerName, "name the brokers' certificates are checked against (empty: each broker's host; implies --kafka-tls)")
}

func runKafka(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(os.Stderr, "usage: polis kafka init [flags]   create the platform's topics on a Kafka cluster (polis kafka init -h lists the flags)")
		return flag.ErrHelp
	}
	switch args[0] {
	case "init":
		return runKafkaInit(ctx, args[1:], stdout)
	default:
		return fmt.Errorf("unknown kafka command %q: want init", args[0])
	}
}

// runKafkaInit creates every topic of kafka.TopicSpecs that the cluster
// lacks, with its partitions, cleanup policy and retention, and checks
// those it has: what `polis serve --kafka-brokers` does at start, for an
// operator who prefers to make the topics first (with a replication
// factor of their choice) and to give the platform's user no right to
// create topics.
func runKafkaInit(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("kafka init", flag.ContinueOnError)
	brokers := fs.String("kafka-brokers", "", "comma-separated seed brokers of the cluster (required)")
	partitions := fs.Int("kafka-partitions", kafka.DefaultPartitions, "partitions of each site-keyed topic, on a cluster that has none of them yet (one count for all: a site sits in the same partition number on every topic)")
	replication := fs.Int("kafka-replication", -1, "replication factor of each topic created (-1: the brokers' default.replication.factor; 3 for production)")
	retention := fs.Duration("kafka-retention", kafka.DefaultRetention, "retention.ms of the stream topics (telemetry, events, alerts, dead letters); compacted and kept-forever topics are never trimmed")
	retentionBytes := fs.Int64("kafka-retention-bytes", 0, "retention.bytes per partition of the stream topics (0: unbounded)")
	var conn kafka.ConnConfig
	kafkaConnFlags(fs, &conn)
	if err := parse(fs, args); err != nil {
		return err
	}
	seeds := splitList(*brokers)
	var errs []error
	if len(seeds) == 0 {
		errs = append(errs, errors.New("--kafka-brokers (POLIS_KAFKA_BROKERS) is required"))
	}
	if *partitions < 1 {
		errs = append(errs, fmt.Errorf("--kafka-partitions %d: must be at least 1", *partitions))
	}
	if *replication == 0 || *replication < -1 || *replication > 32767 {
		errs = append(errs, fmt.Errorf("--kafka-replication %d: want -1 or a positive count", *replication))
	}
	co, err := conn.Load()
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	res, err := kafka.Ensure(ctx, seeds, kafka.EnsureOptions{
		Topics:     kafka.TopicOptions{Retention: *retention, RetentionBytes: *retentionBytes},
		Partitions: int32(*partitions), Replication: int16(*replication), Conn: co,
	})
	if len(res) > 0 {
		printEnsured(stdout, res)
	}
	if err != nil {
		return fmt.Errorf("%w (Kafka at %s, %s)", err, strings.Join(seeds, ","), co)
	}
	created, differ := 0, 0
	for _, r := range res {
		if r.Created {
			created++
		}
		if len(r.Differs) > 0 {
			differ++
		}
	}
	fmt.Fprintf(stdout, "%d topics created, %d checked", created, len(res)-created)
	if differ > 0 {
		fmt.Fprintf(stdout, "; %d differ from the table and were left as they are (change them with kafka-configs, see deploy/README.md)", differ)
	}
	fmt.Fprintln(stdout)
	return nil
}

func printEnsured(w io.Writer, res []kafka.EnsuredTopic) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range res {
		what := "exists"
		if r.Created {
			what = "created"
		}
		s := r.Spec
		fmt.Fprintf(tw, "%s\t%s\tpartitions %d\tcleanup.policy=%s retention.ms=%d retention.bytes=%d\n",
			s.Name, what, r.Partitions, s.CleanupPolicy, s.RetentionMs, s.RetentionBytes)
		for _, d := range r.Differs {
			fmt.Fprintf(tw, "\t\t\tdiffers: %s\n", d)
		}
	}
	_ = tw.Flush()
}
