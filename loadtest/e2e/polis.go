package e2e

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/loadtest"
)

// connectTimeout bounds the simulator's connection phase (it connects 32
// at a time; a few thousand gateways take seconds, not minutes).
const connectTimeout = 3 * time.Minute

// PolisResult is the end-to-end run through the platform.
type PolisResult struct {
	Startup time.Duration // app.Start
	Connect time.Duration // simulator connection phase
	Stats   loadtest.Stats

	Expected         uint64 // telemetry points the simulator published (Stats.Points)
	Baseline         uint64 // simulator rows already in the table before the run (external server)
	RowsAtPublishEnd uint64 // simulator rows queryable when publishing stopped
	Rows             uint64 // simulator rows queryable when the drain ended
	RowsAfter        uint64 // count() after platform shutdown
	RowsFinal        uint64 // count() FINAL after shutdown (duplicates collapsed)
	ProbeRows        uint64
	Reached          bool          // Rows reached Expected within DrainTimeout
	ToQueryable      time.Duration // first publish to all rows queryable (or to the drain's end)
	Drain            time.Duration // end of publishing to all rows queryable

	// CPU between first publish and all rows queryable; Other is ClickHouse.
	CPU CPUUse

	Metrics     map[string]float64 // platform metrics, scraped before shutdown
	Shutdown    time.Duration
	ShutdownErr string
	Problems    []string
}

func (r *PolisResult) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

type simOut struct {
	st  loadtest.Stats
	err error
}

// runPolis starts the platform, drives it with the simulator and the probe,
// waits until every point is queryable and shuts the platform down.
func runPolis(ctx context.Context, cfg Config, tmp string, ch *CHInfo, fleet *FleetInfo) (*PolisResult, *ProbeResult, *ProfileResult, error) {
	res := &PolisResult{Metrics: map[string]float64{}}
	log := cfg.Logger
	pcfg := app.Defaults()
	pcfg.DataDir = filepath.Join(tmp, "polis")
	pcfg.RegistryPath = fleet.regPath
	pcfg.MQTTAddr, pcfg.HTTPAddr, pcfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	pcfg.ClickHouseAddr, pcfg.Database = ch.Addr, cfg.Database
	pcfg.WriterMaxWait, pcfg.WriterMaxRows, pcfg.ProducerLinger = cfg.WriterMaxWait, cfg.WriterMaxRows, cfg.KafkaLinger
	pcfg.RulesDir = cfg.RulesDir
	pcfg.Logger = log

	if cfg.ownDatabase {
		// Rows of an earlier run could share the ReplacingMergeTree key with
		// this run's and be merged away, spoiling the count.
		qctx, cancel := context.WithTimeout(ctx, time.Minute)
		err := ch.conn.Exec(qctx, "DROP DATABASE IF EXISTS "+cfg.Database)
		cancel()
		if err != nil {
			return res, nil, nil, fmt.Errorf("cannot drop database %s: %w", cfg.Database, err)
		}
	}
	fmt.Fprintf(cfg.Progress, "e2e: starting the platform (database %s)\n", cfg.Database)
	began := time.Now()
	var p *app.Platform
	var err error
	// Goroutines inherit pprof labels: the profile splits by component.
	pprof.Do(ctx, pprof.Labels("component", "platform"), func(ctx context.Context) {
		p, err = app.Start(ctx, pcfg)
	})
	if err != nil {
		return res, nil, nil, fmt.Errorf("cannot start the platform: %w", err)
	}
	res.Startup = time.Since(began)
	shutdown := sync.OnceFunc(func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
		defer cancel()
		t := time.Now()
		if err := p.Shutdown(sctx); err != nil {
			res.ShutdownErr = err.Error()
			res.problem("platform shutdown returned an error: %v", err)
		}
		res.Shutdown = time.Since(t)
	})
	defer shutdown()
	broker := "tcp://" + p.Broker.Addr()
	metricsURL := "http://" + p.HTTP.Addr() + "/metrics"

	if c, err := countRows(ctx, ch.conn, cfg.Database); err == nil {
		res.Baseline = c.sim
		if c.sim+c.probe > 0 {
			fmt.Fprintf(cfg.Progress, "e2e: %s.telemetry already holds %d rows; counting only new ones\n", cfg.Database, c.sim+c.probe)
			res.problem("%s.telemetry already held %d rows: a new row whose key (site, asset, metric, ts, ts_ms) equals an old one's is merged away by ReplacingMergeTree, "+
				"so the counts below may fall short without any loss; use a fresh database (the default -database is dropped and recreated)", cfg.Database, c.sim+c.probe)
		}
	} else {
		return res, nil, nil, err
	}

	// The simulator logs "simulating" right before its first publish.
	started := make(chan time.Time, 1)
	simLog := slogWatch(cfg, func() {
		select {
		case started <- time.Now():
		default:
		}
	})
	simCtx, simCancel := context.WithCancel(ctx)
	defer simCancel()
	opts := loadtest.Options{Broker: broker, Credentials: fleet.creds, Registry: fleet.reg, Rate: 0,
		Duration: cfg.Duration, QoS: cfg.QoS, UseGateways: true, Progress: cfg.Progress, Logger: simLog,
		Speed: cfg.Speed, Seed: 1, Start: simStart(cfg)}
	simDone := make(chan simOut, 1)
	fmt.Fprintf(cfg.Progress, "e2e: simulator connecting %d gateways to %s\n", fleet.Gateways, broker)
	connectBegan := time.Now()
	go pprof.Do(simCtx, pprof.Labels("component", "simulator"), func(simCtx context.Context) {
		st, err := loadtest.Run(simCtx, opts)
		simDone <- simOut{st, err}
	})
	var t0 time.Time
	select {
	case t0 = <-started:
	case out := <-simDone:
		return res, nil, nil, fmt.Errorf("cannot run the simulator: it ended before publishing: %v", out.err)
	case <-time.After(connectTimeout):
		simCancel()
		<-simDone
		return res, nil, nil, fmt.Errorf("cannot run the simulator: not connected after %s", connectTimeout)
	case <-ctx.Done():
		<-simDone
		return res, nil, nil, ctx.Err()
	}
	res.Connect = t0.Sub(connectBegan)

	// Profile and CPU accounting cover first publish to all rows queryable.
	prof := startProfile(cfg.ProfilePath)
	cpu0 := sampleCPU(ch.pid)

	var probeRes *ProbeResult
	probeDone := make(chan struct{})
	pubCtx, pubCancel := context.WithCancel(ctx)
	defer pubCancel()
	pollCtx, pollCancel := context.WithTimeout(ctx, cfg.Duration+cfg.DrainTimeout+probeGrace+time.Minute)
	defer pollCancel()
	if cred, ok := probeCredential(fleet.creds); ok {
		var pr *probe
		var err error
		pprof.Do(ctx, pprof.Labels("component", "latency probe"), func(ctx context.Context) {
			pr, err = startProbe(ctx, broker, cred, ch.conn, cfg.Database, log)
		})
		if err != nil {
			res.problem("latency probe: %v", err)
			close(probeDone)
		} else {
			limit := int(cfg.Duration/probeInterval) + 10
			labels := pprof.Labels("component", "latency probe")
			go pprof.Do(pubCtx, labels, func(ctx context.Context) { pr.publish(ctx, limit) })
			go pprof.Do(pollCtx, labels, func(ctx context.Context) {
				defer close(probeDone)
				pr.poll(ctx)
				probeRes = pr.result()
				pr.close()
			})
		}
	} else {
		res.problem("latency probe: the fleet has no env-1 device")
		close(probeDone)
	}

	samplerCtx, samplerCancel := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go pprof.Do(samplerCtx, pprof.Labels("component", "load test bookkeeping"), func(ctx context.Context) {
		defer close(samplerDone)
		sampleRows(ctx, cfg.Progress, ch.conn, cfg.Database, res.Baseline, cfg.Duration+cfg.DrainTimeout+time.Minute)
	})

	var out simOut
	select {
	case out = <-simDone:
	case <-time.After(cfg.Duration + 2*time.Minute):
		res.problem("simulator did not stop %s after its duration; cancelled it", 2*time.Minute)
		simCancel()
		out = <-simDone
	}
	tEnd := time.Now()
	pubCancel()
	res.Stats = out.st
	if out.err != nil {
		res.problem("simulator: %v", out.err)
	}
	res.Expected = out.st.Points
	if c, err := countRows(ctx, ch.conn, cfg.Database); err == nil {
		res.RowsAtPublishEnd = sub(c.sim, res.Baseline)
	}

	// Drain: poll until every published point is queryable.
	fmt.Fprintf(cfg.Progress, "e2e: publishing done; waiting up to %s for %d rows in %s.telemetry\n", cfg.DrainTimeout, res.Expected, cfg.Database)
	tQ, c, err := waitRows(ctx, ch.conn, cfg.Database, res.Baseline, res.Expected, cfg.DrainTimeout)
	if err != nil {
		res.problem("%v", err)
	}
	res.Rows = sub(c.sim, res.Baseline)
	res.Reached = res.Rows >= res.Expected
	res.ToQueryable, res.Drain = tQ.Sub(t0), max(0, tQ.Sub(tEnd))
	res.CPU = sampleCPU(ch.pid).since(cpu0)
	profRes := prof.stop()
	samplerCancel()
	<-samplerDone
	if !res.Reached {
		res.problem("LOSS: only %d of %d published telemetry points are queryable in %s.telemetry after waiting %s (simulator: %d sent, %d acked, %d errors)",
			res.Rows, res.Expected, cfg.Database, cfg.DrainTimeout, res.Stats.Sent, res.Stats.Acked, res.Stats.Errors)
	}

	fmt.Fprintf(cfg.Progress, "e2e: waiting for the latency probe's last rows\n")
	select {
	case <-probeDone:
	case <-time.After(probeGrace + 10*time.Second):
		pollCancel()
		<-probeDone
	}

	mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
	res.Metrics, err = scrapeMetrics(mctx, metricsURL)
	mcancel()
	if err != nil {
		res.problem("%v", err)
	}

	fmt.Fprintf(cfg.Progress, "e2e: shutting the platform down\n")
	shutdown()
	if c, err := countRows(ctx, ch.conn, cfg.Database); err == nil {
		res.RowsAfter, res.ProbeRows = sub(c.sim, res.Baseline), c.probe
	} else {
		res.problem("%v", err)
	}
	if n, err := countFinal(ctx, ch.conn, cfg.Database); err == nil {
		res.RowsFinal = sub(n, res.Baseline)
	} else {
		res.problem("%v", err)
	}
	checkCounts(res, probeRes)
	return res, probeRes, profRes, nil
}

// simStart places the simulated clock so that it ends near now: at Speed
// 60 a 30 s run spans 30 simulated minutes, and a clock starting now would
// run more than 5 minutes ahead of the server, whose payload check refuses
// such timestamps (future_timestamp). Points older than 10 minutes are
// accepted and marked late.
func simStart(cfg Config) time.Time {
	return time.Now().Add(-time.Duration(float64(cfg.Duration) * cfg.Speed))
}

// checkCounts compares what the simulator published with what ClickHouse
// and the platform's counters hold, and records every mismatch.
func checkCounts(res *PolisResult, probe *ProbeResult) {
	if res.Stats.Acked != res.Stats.Sent || res.Stats.Errors != 0 {
		res.problem("simulator: %d messages sent, %d acknowledged, %d errors: the unacknowledged messages' points may legitimately be missing",
			res.Stats.Sent, res.Stats.Acked, res.Stats.Errors)
	}
	if res.RowsAfter != res.Expected {
		res.problem("MISMATCH: %d simulator rows in ClickHouse after shutdown, %d telemetry points published (difference %+d)",
			res.RowsAfter, res.Expected, int64(res.RowsAfter)-int64(res.Expected))
	}
	if res.RowsFinal != res.RowsAfter {
		res.problem("count() FINAL is %d, count() is %d: %d rows share their identity (Kafka partition, offset, index) with another (re-inserted batches, collapsing on merge)",
			res.RowsFinal, res.RowsAfter, int64(res.RowsAfter)-int64(res.RowsFinal))
	}
	ingested, ok := res.Metrics["polis_ingest_points_total"]
	if !ok {
		return
	}
	probeAcked := 0
	if probe != nil {
		probeAcked = probe.Acked
	}
	if want := float64(res.Expected) + float64(probeAcked); ingested != want {
		res.problem("MISMATCH: polis_ingest_points_total is %.0f; the simulator published %d points and the probe had %d acknowledged",
			ingested, res.Expected, probeAcked)
	}
	if dl := res.Metrics["polis_ingest_deadletter_total"]; dl > 0 {
		res.problem("%.0f payloads were dead-lettered (see polis_ingest_deadletter_total by reason)", dl)
	}
	if rf := res.Metrics["polis_broker_refused_total"]; rf > 0 {
		res.problem("the broker refused %.0f times (see polis_broker_refused_total by reason)", rf)
	}
}

type counts struct{ sim, probe uint64 }

// sub is a - b, or 0 if b is larger (merges can shrink a table).
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}

func countRows(ctx context.Context, conn driver.Conn, db string) (counts, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var c counts
	err := conn.QueryRow(qctx, "SELECT countIf(metric != '"+probeMetric+"'), countIf(metric = '"+probeMetric+"') FROM "+db+".telemetry").
		Scan(&c.sim, &c.probe)
	if err != nil {
		return c, fmt.Errorf("cannot count rows of %s.telemetry: %w", db, err)
	}
	return c, nil
}

func countFinal(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	qctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(qctx, "SELECT count() FROM "+db+".telemetry FINAL WHERE metric != '"+probeMetric+"'").Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count rows of %s.telemetry FINAL: %w", db, err)
	}
	return n, nil
}

// waitRows polls every 100 ms until the simulator rows reach want over
// base, or timeout; it returns when that happened and the last counts.
func waitRows(ctx context.Context, conn driver.Conn, db string, base, want uint64, timeout time.Duration) (time.Time, counts, error) {
	deadline := time.Now().Add(timeout)
	var last counts
	var lastErr error
	for time.Now().Before(deadline) {
		c, err := countRows(ctx, conn, db)
		now := time.Now()
		if err == nil {
			last, lastErr = c, nil
			if sub(c.sim, base) >= want {
				return now, c, nil
			}
		} else {
			lastErr = err
		}
		select {
		case <-ctx.Done():
			return now, last, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	if lastErr != nil {
		return time.Now(), last, lastErr
	}
	return time.Now(), last, nil
}

// sampleRows prints the rows queryable once a second, for the progress log.
func sampleRows(ctx context.Context, w interface{ Write([]byte) (int, error) }, conn driver.Conn, db string, base uint64, limit time.Duration) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	stop := time.After(limit)
	var prev uint64
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-tick.C:
		}
		c, err := countRows(ctx, conn, db)
		if err != nil {
			continue
		}
		n := sub(c.sim, base)
		fmt.Fprintf(w, "e2e: clickhouse rows=%d (+%d/s) probe_rows=%d\n", n, n-min(prev, n), c.probe)
		prev = n
	}
}

// slogWatch is cfg.Logger, calling fire when the simulator logs that it
// starts publishing.
func slogWatch(cfg Config, fire func()) *slog.Logger {
	return slog.New(&watchHandler{base: cfg.Logger.Handler(), msg: "simulating", fire: fire})
}

// watchHandler passes records to base and calls fire when a record's
// message is msg (whatever base's level).
type watchHandler struct {
	base slog.Handler
	msg  string
	fire func()
}

func (h *watchHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *watchHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == h.msg {
		h.fire()
	}
	if h.base.Enabled(ctx, r.Level) {
		return h.base.Handle(ctx, r)
	}
	return nil
}

func (h *watchHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &watchHandler{base: h.base.WithAttrs(as), msg: h.msg, fire: h.fire}
}

func (h *watchHandler) WithGroup(name string) slog.Handler {
	return &watchHandler{base: h.base.WithGroup(name), msg: h.msg, fire: h.fire}
}

// ProfileResult is where the CPU profile went and its top functions.
type ProfileResult struct {
	Path      string
	TopFlat   string
	TopCum    string
	Tags      string  // CPU by component label
	Shares    []Share // CPU by owning module or package (fleet runs)
	Error     string
	Duration  time.Duration
	startedAt time.Time
	file      *os.File
}

func startProfile(path string) *ProfileResult {
	pr := &ProfileResult{Path: path, startedAt: time.Now()}
	if path == "" {
		pr.Error = "no profile requested"
		return pr
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		pr.Error = fmt.Sprintf("cannot create profile directory: %v", err)
		return pr
	}
	f, err := os.Create(path)
	if err != nil {
		pr.Error = fmt.Sprintf("cannot create profile: %v", err)
		return pr
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		pr.Error = fmt.Sprintf("cannot start CPU profile: %v", err)
		return pr
	}
	pr.file = f
	return pr
}

func (pr *ProfileResult) stop() *ProfileResult {
	if pr.file == nil {
		return pr
	}
	pprof.StopCPUProfile()
	pr.Duration = time.Since(pr.startedAt)
	if err := pr.file.Close(); err != nil {
		pr.Error = fmt.Sprintf("cannot write profile: %v", err)
		return pr
	}
	pr.file = nil
	var errs []error
	var err error
	if pr.TopFlat, err = pprofTop(pr.Path, false); err != nil {
		errs = append(errs, err)
	}
	if pr.TopCum, err = pprofTop(pr.Path, true); err != nil {
		errs = append(errs, err)
	}
	if pr.Tags, err = pprofTags(pr.Path); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		pr.Error = err.Error()
	}
	return pr
}
