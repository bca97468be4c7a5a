package e2e

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/twin/registry"
)

// The fleet run is the full-fleet load test: the platform, the simulator,
// Kafka and ClickHouse each run as their own processes, so CPU and memory
// are measured per component; direct mode spreads the connections over
// several platform and simulator processes, because one process here may
// hold at most `ulimit -Hn` sockets (20,000 on the development VM, which
// cannot raise it).

// DefaultPerProcess is the most connections one platform or simulator
// process is given: under the 20,000 open files a process may have here,
// with room for Kafka, ClickHouse, logs and the HTTP API.
const DefaultPerProcess = 18000

// kafkaEnv makes the load-test command serve the Kafka-protocol cluster
// (ServeKafka) instead of running a test: ADDR,DIR,PARTITIONS.
const kafkaEnv = "POLIS_LOADTEST_KAFKA"

// Scenario is one load of a fleet run.
type Scenario struct {
	Direct bool // one connection per device; false: one per site gateway
	// Intervals publishes each device once per its model's reporting
	// interval (the realistic load); otherwise Rate.
	Intervals bool
	Rate      float64 // msgs/s over the fleet; 0: as fast as acknowledgements allow
}

// Name is how the report and its files call the scenario.
func (s Scenario) Name() string {
	mode := "gateway"
	if s.Direct {
		mode = "direct"
	}
	switch {
	case s.Intervals:
		return mode + "-realistic"
	case s.Rate > 0:
		return mode + "-" + strconv.FormatFloat(s.Rate, 'f', -1, 64)
	default:
		return mode + "-max"
	}
}

// FleetConfig describes a fleet run.
type FleetConfig struct {
	Sites, Coworking int
	Scenarios        []Scenario
	Duration         time.Duration // publishing time of each scenario
	Hold             time.Duration // connections held silent before publishing
	PerProcess       int           // connections per platform and simulator process
	Polis            string        // the polis binary
	Self             string        // this command's binary, re-run as the Kafka process
	ClickHouse       string        // host:port of a running server; empty starts a private one
	RulesDir         string
	ServeArgs        []string // more flags for every polis serve, e.g. --kafka-linger 2ms
	SkipMosquitto    bool
	Mosquitto        string
	DrainTimeout     time.Duration
	OutDir           string // report.md, one SVG and one CPU profile per scenario, logs
	Progress         io.Writer
	Logger           *slog.Logger
	CommandLine      string
}

func (c *FleetConfig) defaults() error {
	if c.Sites < 0 || c.Coworking < 0 || c.Sites+c.Coworking == 0 {
		return fmt.Errorf("cannot run fleet load test: %d sites and %d coworking spaces", c.Sites, c.Coworking)
	}
	if c.Duration <= 0 || c.Duration > 6*time.Hour {
		return fmt.Errorf("cannot run fleet load test: duration %s out of range", c.Duration)
	}
	if len(c.Scenarios) == 0 {
		return errors.New("cannot run fleet load test: no scenario")
	}
	if c.Polis == "" || c.Self == "" || c.OutDir == "" {
		return errors.New("cannot run fleet load test: the polis binary, this binary and an output directory are required")
	}
	c.PerProcess = cmp.Or(c.PerProcess, DefaultPerProcess)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	c.Mosquitto = cmp.Or(c.Mosquitto, DefaultMosquitto)
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// FleetResults is what a fleet run measured.
type FleetResults struct {
	Config    FleetConfig
	Started   time.Time
	Took      time.Duration
	Machine   Machine
	CH        CHInfo
	Fleet     FleetInfo
	Mosquitto string // version
	Scenarios []*ScenarioResult
	Problems  []string
}

func (r *FleetResults) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// RunFleet runs every scenario against the platform and, unless skipped,
// against mosquitto, one after the other on one ClickHouse.
func RunFleet(ctx context.Context, cfg FleetConfig) (*FleetResults, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &FleetResults{Config: cfg, Started: time.Now(), Machine: readMachine()}
	defer func() { res.Took = time.Since(res.Started) }()
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", cfg.OutDir, err)
	}
	tmp, err := os.MkdirTemp("", "polis-fleet-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer os.RemoveAll(tmp)

	ecfg := Config{Sites: cfg.Sites, Coworking: cfg.Coworking, ClickHouse: cfg.ClickHouse, Progress: cfg.Progress, Logger: cfg.Logger}
	stopCH, err := startClickHouse(ctx, ecfg, tmp, &res.CH)
	if err != nil {
		return nil, err
	}
	defer stopCH()
	if err := makeFleet(ecfg, tmp, &res.Fleet); err != nil {
		return nil, err
	}
	if !cfg.SkipMosquitto {
		res.Mosquitto = mosquittoVersion(cfg.Mosquitto)
	}
	fmt.Fprintf(cfg.Progress, "fleet: %d sites, %d assets, %d gateways; ClickHouse %s at %s\n",
		res.Fleet.Sites, res.Fleet.Assets, res.Fleet.Gateways, res.CH.Version, res.CH.Addr)
	for i, sc := range cfg.Scenarios {
		if ctx.Err() != nil {
			res.problem("run interrupted before %s: %v", sc.Name(), context.Cause(ctx))
			break
		}
		dir := filepath.Join(tmp, fmt.Sprintf("s%d-%s", i, sc.Name()))
		sr := runScenario(ctx, cfg, sc, dir, i, &res.CH, &res.Fleet)
		res.Scenarios = append(res.Scenarios, sr)
		for _, p := range sr.Problems {
			res.problem("%s: %s", sc.Name(), p)
		}
		if !cfg.SkipMosquitto && ctx.Err() == nil {
			sr.Mosquitto = runMosquittoFleet(ctx, cfg, sc, filepath.Join(dir, "mosquitto"), &res.Fleet)
			for _, p := range sr.Mosquitto.Problems {
				res.problem("%s against mosquitto: %s", sc.Name(), p)
			}
		}
		if err := keepLogs(dir, filepath.Join(cfg.OutDir, "logs", sc.Name())); err != nil {
			res.problem("cannot keep the logs of %s: %v", sc.Name(), err)
		}
		if err := os.WriteFile(filepath.Join(cfg.OutDir, sc.Name()+".svg"), sr.SVG(), 0o644); err != nil {
			res.problem("cannot write the plots of %s: %v", sc.Name(), err)
		}
	}
	return res, nil
}

// keepLogs copies a scenario's process logs (the run's temporary
// directory goes at the end) to dst, keeping their paths: the platform's,
// the simulators', Kafka's and mosquitto's, not the data directories.
func keepLogs(src, dst string) error {
	var paths []string
	for _, pat := range []string{"*.log", "mosquitto/*/*.log", "mosquitto/*.log"} {
		m, err := filepath.Glob(filepath.Join(src, pat))
		if err != nil {
			return err
		}
		paths = append(paths, m...)
	}
	for _, path := range paths {
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		out := filepath.Join(dst, rel)
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(out, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// group is one platform process's share of the fleet and its simulator.
type group struct {
	creds []registry.Credential
	conns int // connections its simulator opens
}

// split shares the fleet's sites among as few processes as hold its
// connections, whole sites per process, without the probe's device.
func split(f *FleetInfo, direct bool, per int, probe registry.Credential) []group {
	bySite := map[string][]registry.Credential{}
	var sites []string
	for _, c := range f.creds {
		if c.Username == probe.Username {
			continue
		}
		if _, ok := bySite[c.Site]; !ok {
			sites = append(sites, c.Site)
		}
		bySite[c.Site] = append(bySite[c.Site], c)
	}
	slices.Sort(sites)
	conns := func(cs []registry.Credential) int {
		if !direct {
			return 1
		}
		return len(cs)
	}
	total := 0
	for _, s := range sites {
		total += conns(bySite[s])
	}
	n := max(1, (total+per-1)/per)
	gs := make([]group, n)
	// Fill evenly: each group takes sites until it has its share.
	share := (total + n - 1) / n
	g := 0
	for _, s := range sites {
		if gs[g].conns >= share && g < n-1 {
			g++
		}
		gs[g].creds = append(gs[g].creds, bySite[s]...)
		gs[g].conns += conns(bySite[s])
	}
	return gs
}

// writeCredentials writes a group's credentials for `polis simulate`.
func writeCredentials(path string, creds []registry.Credential) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("cannot write credentials: %w", err)
	}
	if err := registry.WriteCredentialsCSV(f, creds); err != nil {
		_ = f.Close()
		return fmt.Errorf("cannot write credentials %s: %w", path, err)
	}
	return f.Close()
}

// simArgs are `polis simulate`'s arguments for group k of n.
// They connect, say "simulate: holding", and publish once start exists.
func simArgs(cfg FleetConfig, sc Scenario, broker, creds, stats, start string, k, n int) []string {
	args := []string{"simulate", "--broker", broker, "--credentials", creds, "--registry=",
		"--qos", "1", "--duration", cfg.Duration.String(), "--start-when", start,
		"--gateways=" + strconv.FormatBool(!sc.Direct), "--stats", stats,
		// Each process dials from its own loopback address, as separate
		// hosts would; one address has ~28,000 ephemeral ports per broker.
		"--source-addrs", fmt.Sprintf("127.0.0.%d", 2+k),
		"--log-level", "warn"}
	rate := 0.0
	if sc.Rate > 0 {
		rate = sc.Rate / float64(n)
	}
	args = append(args, "--rate", strconv.FormatFloat(rate, 'f', -1, 64))
	if sc.Intervals {
		args = append(args, "--intervals")
	}
	return args
}

// readStats reads `polis simulate --stats`.
func readStats(path string) (loadtest.Stats, error) {
	var st loadtest.Stats
	b, err := os.ReadFile(path)
	if err != nil {
		return st, fmt.Errorf("cannot read simulator stats: %w", err)
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return st, fmt.Errorf("cannot read simulator stats %s: %w", path, err)
	}
	return st, nil
}

// ServeKafka runs the fleet run's Kafka-protocol cluster when this process
// was started as it (kafkaEnv set); handled is false otherwise. It serves
// until SIGTERM.
func ServeKafka() (handled bool, code int) {
	spec, ok := os.LookupEnv(kafkaEnv)
	if !ok {
		return false, 0
	}
	parts := strings.Split(spec, ",")
	if len(parts) != 3 {
		fmt.Fprintf(os.Stderr, "kafka: %s=%q: want ADDR,DIR,PARTITIONS\n", kafkaEnv, spec)
		return true, 2
	}
	n, err := strconv.Atoi(parts[2])
	if err != nil {
		fmt.Fprintf(os.Stderr, "kafka: partitions %q: %v\n", parts[2], err)
		return true, 2
	}
	e, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: parts[0], DataDir: parts[1], Partitions: int32(n),
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kafka:", err)
		return true, 1
	}
	defer e.Close()
	fmt.Println("kafka: ready", strings.Join(e.Addrs(), ","))
	// The harness stops it with SIGTERM; if the harness dies, the kernel
	// kills it (Pdeathsig).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	<-sig
	return true, 0
}

// startKafka starts this binary as the Kafka process.
func startKafka(ctx context.Context, cfg FleetConfig, dir string) (*child, string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	data := filepath.Join(dir, "kafka")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, "", fmt.Errorf("cannot create %s: %w", data, err)
	}
	k, err := startChild(childSpec{name: "kafka", comp: compKafka, log: filepath.Join(dir, "kafka.log"),
		env: []string{kafkaEnv + "=" + addr + "," + data + "," + strconv.Itoa(int(kafka.DefaultPartitions))},
		bin: cfg.Self, watch: []string{"kafka: ready"}})
	if err != nil {
		return nil, "", err
	}
	if err := waitAll(ctx, "start Kafka", []<-chan struct{}{k.seenLine("kafka: ready")}, []*child{k}, 30*time.Second); err != nil {
		_ = k.stop(5 * time.Second)
		return nil, "", err
	}
	return k, addr, nil
}

// lookPath resolves a binary the way exec does, for the report.
func lookPath(bin string) string {
	if p, err := exec.LookPath(bin); err == nil {
		return p
	}
	return bin
}
