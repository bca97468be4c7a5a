package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/storage/schema"
)

// Lines `polis simulate` prints when its connections are up and held, and
// when it starts publishing.
const (
	simHolding    = "simulate: holding"
	simPublishing = "simulate: publishing"
)

// Mem is the platform's memory, summed over its processes.
type Mem struct {
	RSS  int64 // resident, from /proc
	Heap int64 // Go heap in use plus goroutine stacks, from /metrics; -1 unknown
}

// ScenarioResult is one scenario against the platform.
type ScenarioResult struct {
	Scenario  Scenario
	Processes int // platform processes (and as many simulators)
	Planned   int // connections the simulators open
	Devices   int // devices publishing
	Held      int // connections the platform held at once, most seen

	Base, Loaded Mem // after start (registry loaded); with every connection held, silent
	// Hold is the quiet window with every connection held and nothing
	// published; IdleCPU is the cores each component used in it.
	Hold    time.Duration
	IdleCPU map[string]float64
	// Publish is the window every simulator published in (from the last
	// to start to the first to stop); LoadCPU the cores used in it.
	Publish time.Duration
	LoadCPU map[string]float64
	PeakRSS map[string]int64

	Stats loadtest.Stats // simulators' sums (Elapsed: the longest)
	// Accepted is the simulators' acknowledged messages ÷ the longest
	// publishing time, as for mosquitto; Ingested the platform's own count
	// of publishes it put in Kafka (device status included) ÷ the Publish
	// window.
	Accepted, Ingested float64

	Expected         uint64 // points published
	RowsAtPublishEnd uint64
	Rows, RowsAfter  uint64
	RowsFinal        uint64
	Reached          bool
	Drain            time.Duration // end of publishing → all queryable
	RowsPerSec       float64       // rows ÷ (first publish → all queryable)
	ToQueryable      time.Duration

	Probe   *ProbeResult
	Profile *ProfileResult
	Series  []Sample
	Metrics map[string]float64 // summed over the platform processes at the end
	Events  []Event            // phase changes, for the plots

	Mosquitto *MosquittoFleet
	Problems  []string
}

func (r *ScenarioResult) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// Event marks a phase on the plots.
type Event struct {
	At   time.Time
	Name string
}

// platform is one `polis serve` process.
type platform struct {
	*child
	mqtt, http, debug string
}

func (p *platform) scrape(ctx context.Context) (map[string]float64, error) {
	return scrapeMetrics(ctx, "http://"+p.http+"/metrics")
}

func runScenario(ctx context.Context, cfg FleetConfig, sc Scenario, dir string, idx int, ch *CHInfo, fleet *FleetInfo) *ScenarioResult {
	res := &ScenarioResult{Scenario: sc, IdleCPU: map[string]float64{}, LoadCPU: map[string]float64{}, PeakRSS: map[string]int64{}}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		res.problem("cannot create %s: %v", dir, err)
		return res
	}
	if err := scenarioRun(ctx, cfg, sc, dir, idx, ch, fleet, res); err != nil {
		res.problem("%v", err)
	}
	return res
}

func scenarioRun(ctx context.Context, cfg FleetConfig, sc Scenario, dir string, idx int, ch *CHInfo, fleet *FleetInfo, res *ScenarioResult) error {
	log := cfg.Logger
	prog := func(format string, args ...any) {
		fmt.Fprintf(cfg.Progress, "fleet: %s: "+format+"\n", append([]any{sc.Name()}, args...)...)
	}
	db := schema.DefaultDatabase
	if !ch.Private {
		db = "polis_loadtest"
	}
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	err := ch.conn.Exec(qctx, "DROP DATABASE IF EXISTS "+db)
	cancel()
	if err != nil {
		return fmt.Errorf("cannot drop database %s: %w", db, err)
	}

	kafkaProc, kafkaAddr, err := startKafka(ctx, cfg, dir)
	if err != nil {
		return err
	}
	defer func() {
		if err := kafkaProc.stop(30 * time.Second); err != nil {
			res.problem("Kafka: %v", err)
		}
	}()

	probeCred, hasProbe := probeCredential(fleet.creds)
	groups := split(fleet, sc.Direct, cfg.PerProcess, probeCred)
	res.Processes = len(groups)
	for _, g := range groups {
		res.Planned += g.conns
		res.Devices += len(g.creds)
	}
	if !sc.Direct {
		res.Devices = fleet.Assets - 1
		if !hasProbe {
			res.Devices = fleet.Assets
		}
	}
	prog("%d platform process(es) for %d connections; Kafka at %s", len(groups), res.Planned, kafkaAddr)

	debugFlag := hasFlag(cfg.Polis, "serve", "-debug-addr")
	plats := make([]*platform, len(groups))
	var all []*child
	all = append(all, kafkaProc)
	defer func() {
		// Stopped before Kafka, as an orchestrator would.
		var wg sync.WaitGroup
		for _, p := range plats {
			if p != nil {
				wg.Go(func() {
					if err := p.stop(90 * time.Second); err != nil {
						res.problem("%v", err)
					}
				})
			}
		}
		wg.Wait()
	}()
	start := func(k int) error {
		p, err := startPlatform(cfg, dir, k, kafkaAddr, ch.Addr, db, fleet.regPath, debugFlag)
		if err != nil {
			return err
		}
		plats[k] = p
		return waitReady(ctx, p, 3*time.Minute)
	}
	// The first migrates the schema alone; the others start together.
	if err := start(0); err != nil {
		return err
	}
	var wg sync.WaitGroup
	errs := make([]error, len(groups))
	for k := 1; k < len(groups); k++ {
		wg.Go(func() { errs[k] = start(k) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, p := range plats {
		all = append(all, p.child)
	}
	prog("platform ready (%d process(es))", len(plats))
	time.Sleep(3 * time.Second) // let start-up garbage go
	res.Base = platformMem(ctx, plats)

	smp := newSampler(plats, all, ch)
	sctx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); smp.run(sctx) }()
	defer func() {
		stopSampler()
		<-samplerDone
		res.Series = smp.samples()
		for comp, v := range smp.peak() {
			res.PeakRSS[comp] = v
		}
	}()
	event := func(name string) {
		res.Events = append(res.Events, Event{At: time.Now(), Name: name})
	}

	// Simulators: connect, hold silent until the start file exists (so
	// every process starts together), publish for Duration.
	startFile := filepath.Join(dir, "start")
	sims := make([]*child, len(groups))
	statsPaths := make([]string, len(groups))
	for k, g := range groups {
		creds := filepath.Join(dir, fmt.Sprintf("credentials-%d.csv", k))
		if err := writeCredentials(creds, g.creds); err != nil {
			return err
		}
		statsPaths[k] = filepath.Join(dir, fmt.Sprintf("simulate-%d.json", k))
		sims[k], err = startChild(childSpec{name: fmt.Sprintf("simulator %d", k+1), comp: compSimulator,
			log: filepath.Join(dir, fmt.Sprintf("simulate-%d.log", k)), bin: cfg.Polis,
			args:  simArgs(cfg, sc, "tcp://"+plats[k].mqtt, creds, statsPaths[k], startFile, k, len(groups)),
			watch: []string{simHolding, simPublishing}})
		if err != nil {
			return err
		}
		smp.add(sims[k])
		all = append(all, sims[k])
	}
	defer func() {
		for _, s := range sims {
			if s != nil && !s.exited() {
				_ = s.stop(10 * time.Second)
			}
		}
	}()
	event("connecting")
	connectBudget := 10 * time.Minute
	if err := waitAll(ctx, "connect the simulators", chans(sims, simHolding), sims, connectBudget); err != nil {
		return err
	}
	event("connected")
	// Every connection is up once the platform counts them all.
	heldBy := time.Now().Add(2 * time.Minute)
	for time.Now().Before(heldBy) && smp.connected() < res.Planned {
		time.Sleep(250 * time.Millisecond)
	}
	prog("%d connections planned, %d held; holding them silent for %s", res.Planned, smp.connected(), cfg.Hold)
	time.Sleep(2 * time.Second) // let the connect storm's work settle
	event("held")
	res.Loaded = platformMem(ctx, plats)
	res.Held = smp.connected()
	c0 := cpuOf(all, ch)
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return ctx.Err()
	}
	c1 := cpuOf(all, ch)
	res.Hold = c1.at.Sub(c0.at)
	res.IdleCPU = c1.cores(c0)
	if err := os.WriteFile(startFile, nil, 0o644); err != nil {
		return fmt.Errorf("cannot start the simulators: %w", err)
	}
	if err := waitAll(ctx, "start publishing", chans(sims, simPublishing), sims, time.Minute); err != nil {
		return err
	}
	event("publishing")
	t0 := time.Now()
	ing0 := smp.ingested()
	p0 := cpuOf(all, ch)
	prog("publishing for %s", cfg.Duration)

	// Probe and profile during the publishing window.
	var probeRes *ProbeResult
	probeDone := make(chan struct{})
	pubCtx, pubCancel := context.WithCancel(ctx)
	defer pubCancel()
	if hasProbe {
		pr, err := startProbe(ctx, "tcp://"+plats[0].mqtt, probeCred, ch.conn, db, log)
		if err != nil {
			res.problem("latency probe: %v", err)
			close(probeDone)
		} else {
			go pr.publish(pubCtx, int(cfg.Duration/probeInterval)+10)
			pollCtx, pollCancel := context.WithTimeout(ctx, cfg.Duration+cfg.DrainTimeout+probeGrace+time.Minute)
			defer pollCancel()
			go func() {
				defer close(probeDone)
				pr.poll(pollCtx)
				probeRes = pr.result()
				pr.close()
			}()
		}
	} else {
		res.problem("latency probe: the fleet has no env-1 device")
		close(probeDone)
	}
	profDone := make(chan *ProfileResult, 1)
	if plats[0].debug != "" {
		secs := max(1, int((cfg.Duration - 2*time.Second).Seconds()))
		go func() {
			profDone <- fetchProfile(ctx, plats[0].debug, secs, filepath.Join(cfg.OutDir, sc.Name()+".cpu.pprof"))
		}()
	} else {
		profDone <- &ProfileResult{Error: "polis serve has no --debug-addr: no profile of the platform"}
	}

	// The first simulator to finish ends the window everyone published in.
	var firstEnd time.Time
	ended := make(chan struct{}, len(sims))
	for _, s := range sims {
		go func() {
			<-s.done
			ended <- struct{}{}
		}()
	}
	simBudget := cfg.Duration + 2*time.Minute
	for i := range sims {
		select {
		case <-ended:
			if i == 0 {
				firstEnd = time.Now()
				res.Ingested = (smp.ingested() - ing0) / firstEnd.Sub(t0).Seconds()
				p1 := cpuOf(all, ch)
				res.Publish = p1.at.Sub(p0.at)
				res.LoadCPU = p1.cores(p0)
			}
		case <-time.After(simBudget):
			res.problem("a simulator did not stop %s after its publishing time; stopped it", 2*time.Minute)
			for _, s := range sims {
				_ = s.stop(10 * time.Second)
			}
		}
	}
	tEnd := time.Now()
	event("published")
	pubCancel()
	for k, s := range sims {
		if err := s.exitErr(); err != nil {
			res.problem("simulator %d: %v", k+1, err)
		}
		st, err := readStats(statsPaths[k])
		if err != nil {
			res.problem("simulator %d: %v", k+1, err)
			continue
		}
		addStats(&res.Stats, st)
	}
	res.Expected = res.Stats.Points
	if secs := res.Stats.Elapsed.Seconds(); secs > 0 {
		res.Accepted = float64(res.Stats.Acked) / secs
	}
	if c, err := countRows(ctx, ch.conn, db); err == nil {
		res.RowsAtPublishEnd = c.sim
	}
	prog("published %d messages (%d points, %d errors); waiting up to %s for every row", res.Stats.Sent, res.Stats.Points, res.Stats.Errors, cfg.DrainTimeout)
	tQ, c, err := waitRows(ctx, ch.conn, db, 0, res.Expected, cfg.DrainTimeout)
	if err != nil {
		res.problem("%v", err)
	}
	event("queryable")
	res.Rows = c.sim
	res.Reached = res.Rows >= res.Expected
	res.Drain, res.ToQueryable = max(0, tQ.Sub(tEnd)), tQ.Sub(t0)
	if s := res.ToQueryable.Seconds(); s > 0 {
		res.RowsPerSec = float64(res.Rows) / s
	}
	if !res.Reached {
		res.problem("LOSS: only %d of %d published points are queryable after %s", res.Rows, res.Expected, cfg.DrainTimeout)
	}
	select {
	case <-probeDone:
	case <-time.After(probeGrace + 10*time.Second):
	}
	res.Probe = probeRes
	if probeRes != nil {
		res.Problems = append(res.Problems, probeRes.Problems...)
	}
	res.Profile = <-profDone

	res.Metrics = map[string]float64{}
	for _, p := range plats {
		mctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := p.scrape(mctx)
		cancel()
		if err != nil {
			res.problem("%v", err)
			continue
		}
		for k, v := range m {
			res.Metrics[k] += v
		}
	}
	prog("stopping the platform")
	var swg sync.WaitGroup
	for i, p := range plats {
		swg.Go(func() {
			if err := p.stop(90 * time.Second); err != nil {
				res.problem("%v", err)
			}
			plats[i] = nil
		})
	}
	swg.Wait()
	if c, err := countRows(ctx, ch.conn, db); err == nil {
		res.RowsAfter = c.sim
	} else {
		res.problem("%v", err)
	}
	if n, err := countFinal(ctx, ch.conn, db); err == nil {
		res.RowsFinal = n
	} else {
		res.problem("%v", err)
	}
	switch {
	case res.RowsAfter > res.Expected:
		res.problem("DUPLICATES: %d rows stored for %d points published", res.RowsAfter, res.Expected)
	case res.RowsAfter < res.Expected:
		res.problem("LOSS: %d rows stored for %d points published", res.RowsAfter, res.Expected)
	}
	if res.RowsFinal != res.RowsAfter {
		res.problem("rows merged away: count() %d, count() FINAL %d", res.RowsAfter, res.RowsFinal)
	}
	if res.Stats.Errors > 0 || res.Stats.Acked != res.Stats.Sent {
		res.problem("the simulators sent %d messages, %d acknowledged, %d errors", res.Stats.Sent, res.Stats.Acked, res.Stats.Errors)
	}
	if res.Held < res.Planned {
		res.problem("the platform held at most %d of %d connections at once", res.Held, res.Planned)
	}
	return nil
}

// addStats adds one simulator's figures to the sum of several running side
// by side: the elapsed time is the longest.
func addStats(sum *loadtest.Stats, st loadtest.Stats) {
	sum.Sent += st.Sent
	sum.Events += st.Events
	sum.Points += st.Points
	sum.Errors += st.Errors
	sum.Acked += st.Acked
	sum.Connections += st.Connections
	sum.Elapsed = max(sum.Elapsed, st.Elapsed)
}

func chans(kids []*child, prefix string) []<-chan struct{} {
	out := make([]<-chan struct{}, len(kids))
	for i, k := range kids {
		out[i] = k.seenLine(prefix)
	}
	return out
}

func startPlatform(cfg FleetConfig, dir string, k int, kafkaAddr, chAddr, db, regPath string, debug bool) (*platform, error) {
	ports := make([]int, 3)
	for i := range ports {
		p, err := freePort()
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	p := &platform{mqtt: "127.0.0.1:" + strconv.Itoa(ports[0]), http: "127.0.0.1:" + strconv.Itoa(ports[1])}
	data := filepath.Join(dir, fmt.Sprintf("polis-%d", k))
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", data, err)
	}
	args := []string{"serve", "--kafka-brokers", kafkaAddr, "--clickhouse", chAddr, "--database", db,
		"--mqtt-addr", p.mqtt, "--http-addr", p.http, "--http-advertise", p.http,
		"--registry", regPath, "--data-dir", data, "--rules", cfg.RulesDir, "--log-level", "warn"}
	args = append(args, cfg.ServeArgs...)
	if debug {
		p.debug = "127.0.0.1:" + strconv.Itoa(ports[2])
		args = append(args, "--debug-addr", p.debug)
	}
	c, err := startChild(childSpec{name: fmt.Sprintf("platform %d", k+1), comp: compPlatform,
		log: filepath.Join(dir, fmt.Sprintf("polis-%d.log", k)), bin: cfg.Polis, args: args})
	if err != nil {
		return nil, err
	}
	p.child = c
	return p, nil
}

// waitReady polls /readyz until it answers 200.
func waitReady(ctx context.Context, p *platform, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	cl := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := cl.Get("http://" + p.http + "/readyz")
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if p.exited() {
			return fmt.Errorf("cannot start %s: %v", p.name, p.exitErr())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot start %s: not ready within %s (log %s)", p.name, timeout, p.log)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// platformMem sums the platform processes' memory.
func platformMem(ctx context.Context, plats []*platform) Mem {
	m := Mem{}
	for _, p := range plats {
		m.RSS += max(0, procRSS(p.pid()))
		mctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		met, err := p.scrape(mctx)
		cancel()
		h, ok1 := met["go_memstats_heap_inuse_bytes"]
		s, ok2 := met["go_memstats_stack_inuse_bytes"]
		if err != nil || !ok1 || !ok2 || m.Heap < 0 {
			m.Heap = -1
			continue
		}
		m.Heap += int64(h + s)
	}
	return m
}

// cpuSnap is every component's CPU time at one moment.
type cpuSnap struct {
	at  time.Time
	cpu map[string]time.Duration
}

func cpuOf(kids []*child, ch *CHInfo) cpuSnap {
	s := cpuSnap{at: time.Now(), cpu: map[string]time.Duration{}}
	for _, k := range kids {
		if t := k.cpu(); t >= 0 {
			s.cpu[k.comp] += t
		}
	}
	if ch.pid > 0 {
		if t := procCPUOf(ch.pid); t >= 0 {
			s.cpu[compClickHouse] += t
		}
	}
	if t := machineBusy(); t >= 0 {
		s.cpu["machine"] = t
	}
	return s
}

// cores is the CPU each component used since s0, in cores.
func (s cpuSnap) cores(s0 cpuSnap) map[string]float64 {
	out := map[string]float64{}
	secs := s.at.Sub(s0.at).Seconds()
	if secs <= 0 {
		return out
	}
	for k, v := range s.cpu {
		out[k] = (v - s0.cpu[k]).Seconds() / secs
	}
	return out
}

// fetchProfile takes a CPU profile of a platform over its debug listener.
func fetchProfile(ctx context.Context, addr string, secs int, path string) *ProfileResult {
	pr := &ProfileResult{Path: path, startedAt: time.Now()}
	cl := &http.Client{Timeout: time.Duration(secs+30) * time.Second}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		pr.Error = err.Error()
		return pr
	}
	resp, err := cl.Do(req)
	if err != nil {
		pr.Error = fmt.Sprintf("cannot take a CPU profile: %v", err)
		return pr
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		pr.Error = "cannot take a CPU profile: " + resp.Status
		return pr
	}
	f, err := os.Create(path)
	if err != nil {
		pr.Error = err.Error()
		return pr
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		_ = f.Close()
		pr.Error = fmt.Sprintf("cannot read the CPU profile: %v", err)
		return pr
	}
	if err := f.Close(); err != nil {
		pr.Error = err.Error()
		return pr
	}
	pr.Duration = time.Since(pr.startedAt)
	var errs []error
	if pr.TopFlat, err = pprofTop(path, false); err != nil {
		errs = append(errs, err)
	}
	if pr.TopCum, err = pprofTop(path, true); err != nil {
		errs = append(errs, err)
	}
	if pr.Shares, err = profileShares(path); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		pr.Error = err.Error()
	}
	return pr
}

// hasFlag reports whether `bin cmd -h` lists flag.
func hasFlag(bin, cmd, flag string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, bin, cmd, "-h").CombinedOutput() // -h exits non-zero
	s := string(out)
	return strings.Contains(s, "  "+flag+" ") || strings.Contains(s, "  "+flag+"\n")
}
