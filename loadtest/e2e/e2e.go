// Package e2e is the end-to-end load test of the ingest spine: it starts a
// private ClickHouse (or uses one given), runs the whole platform in this
// process, drives it with the fleet simulator, measures publish rates,
// rows stored and publish-to-queryable latency, profiles the CPU, and
// compares with two baselines: Debian's mosquitto under the same simulator,
// and clickhouse-client's bulk insert against the storage writer.
//
// Every phase is bounded in time; Run returns once all of them are done.
package e2e

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/internal/chserver"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
)

// Defaults of Config, used for a zero field (the writer's are storage's).
const (
	DefaultDrainTimeout = 120 * time.Second
	DefaultMosquitto    = "/usr/sbin/mosquitto"
)

// Config describes one load-test run.
type Config struct {
	Sites, Coworking int           // fleet size (post offices, coworking spaces)
	Duration         time.Duration // publishing time of each simulator run
	QoS              byte
	Speed            float64 // simulated seconds per real second

	ClickHouse string // host:port of a running server; empty starts a private one
	Database   string // database of the Polis phase; empty: "polis" (private) or "polis_loadtest" (external)

	WriterMaxWait time.Duration // the platform writer's MaxWait
	WriterMaxRows int           // the writers' MaxRows
	KafkaLinger   time.Duration // the ingest producer's linger
	RulesDir      string        // alert rules evaluated on the twin; empty: none
	DrainTimeout  time.Duration // how long to wait for every row to be queryable

	SkipMosquitto bool
	Mosquitto     string // mosquitto binary
	SkipBulk      bool
	BulkRows      int

	// ownDatabase: Database is this tool's (defaulted), so it may be
	// dropped and recreated before the run.
	ownDatabase bool

	ProfilePath string    // CPU profile of the Polis phase; empty: none
	Progress    io.Writer // progress lines (stderr)
	Logger      *slog.Logger
	CommandLine string // for the report
}

func (c *Config) defaults() error {
	if c.Sites < 0 || c.Coworking < 0 || c.Sites+c.Coworking == 0 {
		return fmt.Errorf("cannot run load test: fleet of %d sites and %d coworking spaces", c.Sites, c.Coworking)
	}
	if c.Duration <= 0 || c.Duration > 24*time.Hour {
		return fmt.Errorf("cannot run load test: duration %s out of range", c.Duration)
	}
	if c.QoS > 2 {
		return fmt.Errorf("cannot run load test: QoS %d", c.QoS)
	}
	if c.Speed <= 0 {
		c.Speed = 1
	}
	if c.Database == "" {
		c.Database, c.ownDatabase = schema.DefaultDatabase, true
		if c.ClickHouse != "" {
			// Do not mix load-test rows into a developer's `make run` data.
			c.Database = "polis_loadtest"
		}
	}
	c.WriterMaxRows = cmp.Or(c.WriterMaxRows, storage.DefaultMaxRows)
	c.WriterMaxWait = cmp.Or(c.WriterMaxWait, storage.DefaultMaxWait)
	c.DrainTimeout = cmp.Or(c.DrainTimeout, DefaultDrainTimeout)
	c.Mosquitto = cmp.Or(c.Mosquitto, DefaultMosquitto)
	if c.BulkRows <= 0 {
		c.SkipBulk = true
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Results is everything the report shows.
type Results struct {
	Config    Config
	Started   time.Time
	Took      time.Duration
	Machine   Machine
	CH        CHInfo
	Fleet     FleetInfo
	Polis     *PolisResult
	Probe     *ProbeResult
	Profile   *ProfileResult
	Mosquitto *MosquittoResult
	Bulk      *BulkResult
	// Problems are failures and bugs the report shows loudly.
	Problems []string
}

func (r *Results) problem(format string, args ...any) {
	r.Problems = append(r.Problems, fmt.Sprintf(format, args...))
}

// CHInfo describes the ClickHouse server used.
type CHInfo struct {
	Addr    string
	Version string
	Private bool
	Dir     string
	pid     int // 0 when unknown (external server)
	conn    driver.Conn
}

// FleetInfo describes the generated fleet.
type FleetInfo struct {
	Sites, Assets, Gateways int
	reg                     *registry.Registry
	creds                   []registry.Credential
	regPath                 string
}

// Run runs every phase and returns what it measured. A phase that fails is
// recorded in Results.Problems and the next phase still runs; the error is
// for what prevents any measurement (no ClickHouse, no fleet).
func Run(ctx context.Context, cfg Config) (*Results, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	res := &Results{Config: cfg, Started: time.Now(), Machine: readMachine()}
	defer func() { res.Took = time.Since(res.Started) }()
	log := cfg.Logger

	tmp, err := os.MkdirTemp("", "polis-e2e-")
	if err != nil {
		return nil, fmt.Errorf("cannot create a temporary directory: %w", err)
	}
	defer func() {
		if err := os.RemoveAll(tmp); err != nil {
			log.Warn("cannot remove temporary directory", "dir", tmp, "err", err)
		}
	}()

	stopCH, err := startClickHouse(ctx, cfg, tmp, &res.CH)
	if err != nil {
		return nil, err
	}
	defer stopCH()
	log.Info("ClickHouse ready", "addr", res.CH.Addr, "version", res.CH.Version, "private", res.CH.Private)

	if err := makeFleet(cfg, tmp, &res.Fleet); err != nil {
		return nil, err
	}
	log.Info("fleet generated", "sites", res.Fleet.Sites, "assets", res.Fleet.Assets, "gateways", res.Fleet.Gateways)

	pr, probe, prof, err := runPolis(ctx, cfg, tmp, &res.CH, &res.Fleet)
	res.Polis, res.Probe, res.Profile = pr, probe, prof
	if err != nil {
		res.problem("Polis end-to-end phase failed: %v", err)
	}
	if pr != nil {
		res.Problems = append(res.Problems, pr.Problems...)
	}
	if probe != nil {
		res.Problems = append(res.Problems, probe.Problems...)
	}

	if !cfg.SkipMosquitto && ctx.Err() == nil {
		res.Mosquitto, err = runMosquitto(ctx, cfg, tmp, &res.Fleet)
		if err != nil {
			res.problem("mosquitto baseline failed: %v", err)
		}
		if m := res.Mosquitto; m != nil && (m.Stats.Errors > 0 || m.Stats.Acked != m.Stats.Sent) {
			res.problem("mosquitto baseline: %d sent, %d acknowledged, %d errors", m.Stats.Sent, m.Stats.Acked, m.Stats.Errors)
		}
	}
	if !cfg.SkipBulk && ctx.Err() == nil {
		res.Bulk, err = runBulk(ctx, cfg, tmp, &res.CH, &res.Fleet)
		if err != nil {
			res.problem("bulk insert baseline failed: %v", err)
		}
		if res.Bulk != nil {
			res.Problems = append(res.Problems, res.Bulk.Problems...)
		}
	}
	if ctx.Err() != nil {
		res.problem("run interrupted: %v", context.Cause(ctx))
	}
	return res, nil
}

// startClickHouse starts a private server under tmp unless cfg names one,
// and connects to it. The returned function stops what was started.
func startClickHouse(ctx context.Context, cfg Config, tmp string, info *CHInfo) (func(), error) {
	var srv *chserver.Server
	var err error
	stop := func() {}
	if cfg.ClickHouse == "" {
		dir := filepath.Join(tmp, "clickhouse")
		fmt.Fprintf(cfg.Progress, "e2e: starting a private clickhouse-server under %s\n", dir)
		srv, err = chserver.Start(ctx, chserver.Options{Dir: dir, Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("cannot start ClickHouse: %w", err)
		}
		info.Addr, info.Private, info.Dir = srv.NativeAddr(), true, dir
		info.pid = findPID("--config-file=" + dir + string(filepath.Separator))
		stop = func() {
			if err := srv.Stop(); err != nil {
				cfg.Logger.Warn("cannot stop ClickHouse", "err", err)
			}
		}
	} else {
		info.Addr = cfg.ClickHouse
	}
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{info.Addr}, Protocol: clickhouse.Native,
		DialTimeout: 5 * time.Second, MaxOpenConns: 8, ReadTimeout: 5 * time.Minute})
	if err != nil {
		stop()
		return nil, fmt.Errorf("cannot open ClickHouse %s: %w", info.Addr, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := conn.QueryRow(pctx, "SELECT version()").Scan(&info.Version); err != nil {
		_ = conn.Close()
		stop()
		return nil, fmt.Errorf("cannot query ClickHouse %s: %w", info.Addr, err)
	}
	info.conn = conn
	return func() {
		_ = conn.Close()
		stop()
	}, nil
}

func makeFleet(cfg Config, tmp string, f *FleetInfo) error {
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: cfg.Sites, Coworking: cfg.Coworking, Seed: 1})
	if err != nil {
		return fmt.Errorf("cannot generate fleet: %w", err)
	}
	f.regPath = filepath.Join(tmp, "registry.json")
	if err := reg.Save(f.regPath); err != nil {
		return fmt.Errorf("cannot save fleet: %w", err)
	}
	f.reg, f.creds = reg, creds
	f.Sites, f.Assets = reg.Len()
	for _, c := range creds {
		if registry.AssetTypeOf(c.Asset) == registry.GatewayType {
			f.Gateways++
		}
	}
	if f.Gateways == 0 {
		return errors.New("cannot run load test: the fleet has no gateways")
	}
	return nil
}

// probeCredential picks the device the latency probe logs in as: the first
// env-1 of the fleet. The simulator with UseGateways logs in only as gw-*.
func probeCredential(creds []registry.Credential) (registry.Credential, bool) {
	for _, c := range creds {
		if c.Asset == "env-1" {
			return c, true
		}
	}
	return registry.Credential{}, false
}
