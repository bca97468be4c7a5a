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
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/ruletest"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
)

const rulesUsage = `usage:
  polis rules check FILE...              compile and type-check rule files
  polis rules test FIXTURE...            run rule tests (fixture format: rules/ruletest/doc.go)
  polis rules backtest [flags]           replay ClickHouse history through rules (-rules FILE|DIR)`

// runRules is `polis rules check|test|backtest`.
func runRules(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New(rulesUsage)
	}
	switch args[0] {
	case "check":
		return rulesCheck(args[1:], stdout)
	case "test":
		if len(args) < 2 {
			return errors.New(rulesUsage)
		}
		res, err := ruletest.Run(args[1:], stdout)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%d tests, %d failed\n", res.Tests, res.Failed)
		if res.Failed > 0 {
			return fmt.Errorf("%d of %d rule tests failed", res.Failed, res.Tests)
		}
		return nil
	case "backtest":
		return rulesBacktest(ctx, args[1:], stdout)
	case "-h", "-help", "--help":
		fmt.Fprintln(stdout, rulesUsage)
		return nil
	}
	return errors.New(rulesUsage)
}

// rulesCheck prints every error with file:line:col.
func rulesCheck(paths []string, stdout io.Writer) error {
	if len(paths) == 0 {
		return errors.New(rulesUsage)
	}
	failed := 0
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			return fmt.Errorf("cannot read %s: %w", path, err)
		}
		f, err := dsl.Load(path, src, dsl.Options{})
		if err != nil {
			failed++
			fmt.Fprintln(stdout, err)
			continue
		}
		fmt.Fprintf(stdout, "%s: %d rules OK\n", path, len(f.Rules()))
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d rule files refused", failed, len(paths))
	}
	return nil
}

// loadRulesArg loads a rule file or every file of a directory.
func loadRulesArg(path string) ([]*dsl.Rule, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules %s: %w", path, err)
	}
	var files []*dsl.File
	if st.IsDir() {
		if files, err = dsl.LoadDir(path, dsl.Options{}); err != nil {
			return nil, err
		}
	} else {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read rules %s: %w", path, err)
		}
		f, err := dsl.Load(path, src, dsl.Options{})
		if err != nil {
			return nil, err
		}
		files = append(files, f)
	}
	var out []*dsl.Rule
	for _, f := range files {
		out = append(out, f.Rules()...)
	}
	return out, nil
}

func rulesBacktest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("rules backtest", flag.ContinueOnError)
	addr := fs.String("clickhouse", storage.DefaultAddr, "ClickHouse native protocol address")
	db := fs.String("database", schema.DefaultDatabase, "ClickHouse database")
	regPath := fs.String("registry", registry.DefaultPath, "registry file of sites and assets")
	from := fs.String("from", "", "start of the range (RFC 3339; default: 24 hours before -to)")
	to := fs.String("to", "", "end of the range (RFC 3339; default: now)")
	only := fs.String("rule", "", "comma-separated rule ids to run (default: every rule given)")
	sites := fs.String("sites", "", "comma-separated site ids (default: every site)")
	step := fs.Duration("step", time.Minute, "clock step: how often time-driven rules are evaluated")
	maxPoints := fs.Int("max-points", storage.DefaultScanLimit, "points to replay at most")
	svg := fs.String("svg", "", "also draw the occurrences on a timeline to this SVG file")
	rulesPath := fs.String("rules", "rules/pack", "rule file or directory to replay")
	if err := parse(fs, args); err != nil {
		return err
	}
	rs, err := loadRulesArg(*rulesPath)
	if err != nil {
		return err
	}
	if *only != "" {
		keep := splitList(*only)
		var picked []*dsl.Rule
		for _, id := range keep {
			found := false
			for _, r := range rs {
				if r.ID == id {
					picked, found = append(picked, r), true
				}
			}
			if !found {
				return fmt.Errorf("no rule %q in %s", id, *rulesPath)
			}
		}
		rs = picked
	}
	end := time.Now().UTC()
	if *to != "" {
		if end, err = time.Parse(time.RFC3339, *to); err != nil {
			return fmt.Errorf("-to %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z", *to)
		}
	}
	begin := end.Add(-24 * time.Hour)
	if *from != "" {
		if begin, err = time.Parse(time.RFC3339, *from); err != nil {
			return fmt.Errorf("-from %q: want an RFC 3339 time such as 2026-11-01T00:00:00Z", *from)
		}
	}
	reg, err := registry.Load(*regPath)
	if err != nil {
		return err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{*addr}, DialTimeout: 5 * time.Second, ReadTimeout: 10 * time.Minute})
	if err != nil {
		return fmt.Errorf("cannot open ClickHouse %s: %w", *addr, err)
	}
	defer conn.Close()
	flavor, err := schema.Detect(ctx, conn)
	if err != nil {
		return err
	}
	began := time.Now()
	res, err := rules.Backtest(ctx, reg, func(ctx context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error) {
		return storage.Scan(ctx, conn, *db, flavor, q, fn)
	}, rules.BacktestRequest{Rules: rs, From: begin, To: end, Sites: splitList(*sites), Step: *step, MaxPoints: *maxPoints,
		Progress: func(points int, at time.Time) {
			sec := time.Since(began).Seconds()
			fmt.Fprintf(os.Stderr, "backtest: %d points (%.0f/s), at %s\n", points, float64(points)/sec, at.Format(time.RFC3339))
		}})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d rules over %s .. %s: %d points, %d evaluations in %d ms; %d occurrences\n",
		len(rs), begin.Format(time.RFC3339), end.Format(time.RFC3339), res.Points, res.Evaluations, res.TookMS, len(res.Alerts))
	if res.Truncated {
		fmt.Fprintf(stdout, "stopped at %d points (-max-points): narrow the range or the sites\n", res.Points)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSITE/ASSET\tFIRED\tRESOLVED\tSUMMARY")
	for _, a := range res.Alerts {
		resolved := "open"
		if !a.ResolvedAt.IsZero() {
			resolved = a.ResolvedAt.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s/%s\t%s\t%s\t%s\n", a.Rule, a.Site, a.Asset, a.FiredAt.Format(time.RFC3339), resolved, a.Summary)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if *svg != "" {
		var b strings.Builder
		rules.BacktestSVG(&b, res)
		if err := os.WriteFile(*svg, []byte(b.String()), 0o644); err != nil {
			return fmt.Errorf("cannot write %s: %w", *svg, err)
		}
		fmt.Fprintf(stdout, "timeline: %s\n", *svg)
	}
	return nil
}
