// Command e2e is the end-to-end load test of the ingest spine (`make
// loadtest ARGS=...`). It prints a Markdown report to stdout and to -out;
// progress goes to stderr. See loadtest/e2e for what it measures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/polis-platform/polis/loadtest/e2e"
	"github.com/polis-platform/polis/storage"
)

func main() {
	problems, err := run()
	if err != nil {
		slog.Error("load test failed", "err", err)
		os.Exit(1)
	}
	if problems > 0 {
		fmt.Fprintf(os.Stderr, "e2e: %d problem(s) found; see the report\n", problems)
		os.Exit(2)
	}
}

// run returns how many problems the report lists.
func run() (int, error) {
	fs := flag.NewFlagSet("e2e", flag.ContinueOnError)
	var cfg e2e.Config
	fs.IntVar(&cfg.Sites, "sites", 500, "post offices in the generated fleet")
	fs.IntVar(&cfg.Coworking, "coworking", 20, "coworking spaces in the generated fleet")
	fs.DurationVar(&cfg.Duration, "duration", 30*time.Second, "publishing time of each simulator run")
	fs.StringVar(&cfg.ClickHouse, "clickhouse", "", "host:port of a running ClickHouse (native protocol); empty starts a private one on free loopback ports")
	fs.StringVar(&cfg.Database, "database", "", `database of the Polis phase (default "polis" on the private server, "polis_loadtest" on an external one)`)
	out := fs.String("out", "loadtest/out/report.md", "where to write the Markdown report (cpu.pprof goes next to it)")
	fs.BoolVar(&cfg.SkipMosquitto, "skip-mosquitto", false, "skip the mosquitto baseline")
	fs.BoolVar(&cfg.SkipBulk, "skip-bulk", false, "skip the bulk insert baseline")
	fs.IntVar(&cfg.BulkRows, "bulk-rows", 1000000, "rows of the bulk insert baseline")
	fs.StringVar(&cfg.RulesDir, "rules", "", "directory of alert rules the twin evaluates (e.g. rules/pack); empty: none")
	fs.DurationVar(&cfg.WriterMaxWait, "writer-max-wait", storage.DefaultMaxWait, "storage writer: flush a batch this long after its first record")
	fs.IntVar(&cfg.WriterMaxRows, "writer-max-rows", storage.DefaultMaxRows, "storage writer: flush a batch at this many rows")
	fs.DurationVar(&cfg.KafkaLinger, "kafka-linger", 0, "ingest's Kafka producer linger")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", e2e.DefaultDrainTimeout, "how long to wait for every published point to be queryable")
	fs.Float64Var(&cfg.Speed, "speed", 60, "simulated seconds per real second (the device models vary over simulated time)")
	qos := fs.Int("qos", 1, "MQTT QoS of the simulator (0 or 1)")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", e2e.DefaultMosquitto, "mosquitto binary for the baseline")
	level := fs.String("log-level", "warn", "log level (debug, info, warn, error)")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 0, err
	}
	if fs.NArg() > 0 {
		return 0, fmt.Errorf("cannot parse arguments: unexpected %q", fs.Args())
	}
	if *qos < 0 || *qos > 1 {
		return 0, fmt.Errorf("cannot use -qos %d: want 0 or 1", *qos)
	}
	cfg.QoS = byte(*qos)
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return 0, fmt.Errorf("cannot parse -log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	cfg.Progress = os.Stderr
	cfg.CommandLine = strings.TrimSpace("go run ./loadtest/cmd/e2e " + shellJoin(os.Args[1:]))
	cfg.ProfilePath = filepath.Join(filepath.Dir(*out), "cpu.pprof")
	if err := os.MkdirAll(filepath.Dir(*out), 0o755); err != nil {
		return 0, fmt.Errorf("cannot create report directory: %w", err)
	}

	// Every phase has its own bound; this is the backstop.
	limit := 3*cfg.Duration + 30*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := e2e.Run(ctx, cfg)
	if err != nil {
		return 0, err
	}
	report := res.Markdown()
	fmt.Print(report)
	if err := os.WriteFile(*out, []byte(report), 0o644); err != nil {
		return 0, fmt.Errorf("cannot write report: %w", err)
	}
	fmt.Fprintf(os.Stderr, "e2e: report written to %s, CPU profile to %s\n", *out, cfg.ProfilePath)
	return len(res.Problems), nil
}

// shellJoin quotes arguments that a shell would split.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$`\\*?[]{}()<>|&;#~") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}
