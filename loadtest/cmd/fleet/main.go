// Command fleet is the full-fleet load test (`make loadtest`, `make
// loadtest-full`): the platform, the simulator, Kafka and ClickHouse as
// separate processes, gateway and direct mode, a Markdown report with one
// SVG of plots per scenario. See loadtest/e2e (RunFleet).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/polis-platform/polis/loadtest/e2e"
)

func main() {
	if handled, code := e2e.ServeKafka(); handled {
		os.Exit(code)
	}
	problems, err := run()
	if err != nil {
		slog.Error("fleet load test failed", "err", err)
		os.Exit(1)
	}
	if problems > 0 {
		fmt.Fprintf(os.Stderr, "fleet: %d problem(s) found; see the report\n", problems)
		os.Exit(2)
	}
}

func run() (int, error) {
	fs := flag.NewFlagSet("fleet", flag.ContinueOnError)
	var cfg e2e.FleetConfig
	fs.IntVar(&cfg.Sites, "sites", 4800, "post offices in the generated fleet")
	fs.IntVar(&cfg.Coworking, "coworking", 250, "coworking spaces in the generated fleet")
	modes := fs.String("modes", "gateway,direct", "connection modes to run: gateway (one connection per site), direct (one per device)")
	loads := fs.String("loads", "realistic,max", "loads to run in each mode: realistic (each device at its model's interval), max (as fast as acknowledgements allow), or a rate in msgs/s")
	fs.DurationVar(&cfg.Duration, "duration", 60*time.Second, "publishing time of each scenario")
	fs.DurationVar(&cfg.Hold, "hold", 20*time.Second, "how long the connections are held silent before publishing (memory and idle CPU are measured then)")
	fs.IntVar(&cfg.PerProcess, "per-process", e2e.DefaultPerProcess, "most connections per platform and simulator process (one process may hold only ulimit -Hn sockets)")
	fs.StringVar(&cfg.Polis, "polis", "", "polis binary (default: built from ./cmd/polis into a temporary directory)")
	fs.StringVar(&cfg.ClickHouse, "clickhouse", "", "host:port of a running ClickHouse (native protocol); empty starts a private one")
	fs.StringVar(&cfg.RulesDir, "rules", "", "directory of alert rules the platform evaluates (e.g. rules/pack); empty: none")
	serveArgs := fs.String("serve-args", "", `more flags for every polis serve, space-separated (e.g. "--kafka-linger 2ms")`)
	fs.BoolVar(&cfg.SkipMosquitto, "skip-mosquitto", false, "skip the mosquitto reference runs")
	fs.StringVar(&cfg.Mosquitto, "mosquitto", e2e.DefaultMosquitto, "mosquitto binary for the reference runs")
	fs.DurationVar(&cfg.DrainTimeout, "drain-timeout", e2e.DefaultDrainTimeout, "how long to wait for every published point to be queryable")
	out := fs.String("out", "loadtest/out/fleet", "directory of the report (report.md), its plots (SCENARIO.svg), CPU profiles and logs")
	level := fs.String("log-level", "warn", "log level")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0, nil
		}
		return 0, err
	}
	if fs.NArg() > 0 {
		return 0, fmt.Errorf("cannot parse arguments: unexpected %q", fs.Args())
	}
	cfg.ServeArgs = strings.Fields(*serveArgs)
	var err error
	if cfg.Scenarios, err = scenarios(*modes, *loads); err != nil {
		return 0, err
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(*level)); err != nil {
		return 0, fmt.Errorf("cannot parse -log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lv}))
	cfg.Progress = os.Stderr
	cfg.OutDir = *out
	cfg.CommandLine = strings.TrimSpace("go run ./loadtest/cmd/fleet " + strings.Join(os.Args[1:], " "))
	if cfg.Self, err = os.Executable(); err != nil {
		return 0, fmt.Errorf("cannot find this program's binary: %w", err)
	}
	if cfg.Polis == "" {
		dir, err := os.MkdirTemp("", "polis-fleet-bin-")
		if err != nil {
			return 0, fmt.Errorf("cannot create a directory for the polis binary: %w", err)
		}
		defer os.RemoveAll(dir)
		cfg.Polis = filepath.Join(dir, "polis")
		fmt.Fprintln(os.Stderr, "fleet: building ./cmd/polis")
		if b, err := exec.Command("go", "build", "-o", cfg.Polis, "./cmd/polis").CombinedOutput(); err != nil {
			return 0, fmt.Errorf("cannot build ./cmd/polis (run from the repository root, or pass -polis): %w\n%s", err, b)
		}
	}

	limit := time.Duration(len(cfg.Scenarios))*(2*(cfg.Duration+cfg.Hold)+cfg.DrainTimeout+15*time.Minute) + 10*time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	res, err := e2e.RunFleet(ctx, cfg)
	if err != nil {
		return 0, err
	}
	report := res.Markdown()
	fmt.Print(report)
	path := filepath.Join(cfg.OutDir, "report.md")
	if err := os.WriteFile(path, []byte(report), 0o644); err != nil {
		return 0, fmt.Errorf("cannot write report: %w", err)
	}
	fmt.Fprintf(os.Stderr, "fleet: report written to %s, plots beside it\n", path)
	return len(res.Problems), nil
}

// scenarios is every mode with every load.
func scenarios(modes, loads string) ([]e2e.Scenario, error) {
	var out []e2e.Scenario
	for _, m := range strings.Split(modes, ",") {
		var direct bool
		switch strings.TrimSpace(m) {
		case "gateway":
		case "direct":
			direct = true
		default:
			return nil, fmt.Errorf("cannot parse -modes: %q is neither gateway nor direct", m)
		}
		for _, l := range strings.Split(loads, ",") {
			sc := e2e.Scenario{Direct: direct}
			switch l = strings.TrimSpace(l); l {
			case "realistic":
				sc.Intervals = true
			case "max":
			default:
				r, err := strconv.ParseFloat(l, 64)
				if err != nil || !(r > 0) || math.IsInf(r, 0) {
					return nil, fmt.Errorf("cannot parse -loads: %q is not realistic, max or a positive rate", l)
				}
				sc.Rate = r
			}
			out = append(out, sc)
		}
	}
	return out, nil
}
