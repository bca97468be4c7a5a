package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

type simulateFlags struct {
	broker, creds string
	rate          float64
	duration      time.Duration
	messages      int
	qos           int
	connections   int
	gateways      bool
	intervals     bool

	// Standalone only: where the assets stand (lifecycleFrom).
	registry, rollout string
	// Standalone only, for a harness running simulators as child
	// processes.
	hold        time.Duration
	startWhen   string // file whose existence starts publishing
	sourceAddrs string // comma-separated
	stats       string // file for the run's statsFile
}

// bind adds the simulator's flags; `polis dev` shares --credentials with
// the generator and sets the broker itself, so it leaves those out.
func (s *simulateFlags) bind(fs *flag.FlagSet, standalone bool) {
	s.broker, s.creds = loadtest.DefaultBroker, registry.DefaultCredentialsPath
	if standalone {
		fs.StringVar(&s.broker, "broker", s.broker, "MQTT broker URL")
		fs.StringVar(&s.creds, "credentials", s.creds, "device credentials (site,asset,username,password)")
		fs.StringVar(&s.registry, "registry", registry.DefaultPath,
			"registry file: asset types and places, and the lifecycle states only assets on site publish in (none: every device publishes)")
		fs.StringVar(&s.rollout, "rollout", "", "rollout history to fold over the registry's states (default: "+rolloutFile+" beside --registry, if there)")
		fs.DurationVar(&s.hold, "hold", 0, "once connected, keep the connections open and silent this long before publishing (--duration starts after it)")
		fs.StringVar(&s.startWhen, "start-when", "", "once connected (and after --hold), wait until this file exists before publishing: simulators in several processes start together")
		fs.StringVar(&s.sourceAddrs, "source-addrs", "",
			"comma-separated local addresses to dial from in turn, e.g. 127.0.0.2,127.0.0.3 (one address has ~28,000 ports towards a broker)")
		fs.StringVar(&s.stats, "stats", "", "write the run's statistics as JSON to this file at the end")
	}
	fs.Float64Var(&s.rate, "rate", 1000, "messages per second over the whole fleet (0: as fast as possible)")
	fs.DurationVar(&s.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.IntVar(&s.messages, "messages", 0, "stop after this many messages (0: no limit)")
	fs.IntVar(&s.qos, "qos", 1, "MQTT QoS of telemetry (0 or 1)")
	fs.IntVar(&s.connections, "connections", 0, "devices (or gateways) that connect (0: all)")
	fs.BoolVar(&s.gateways, "gateways", true, "publish through each site's gateway account (one connection per site) instead of one per device")
	fs.BoolVar(&s.intervals, "intervals", false,
		"each device reports once per its type's reporting interval (loadtest.Interval), the fleet's realistic rate; --rate still caps the total (--rate 0: no cap)")
}

func (s *simulateFlags) options(progress io.Writer) (loadtest.Options, error) {
	f, err := os.Open(s.creds)
	if err != nil {
		return loadtest.Options{}, fmt.Errorf("cannot read credentials (run 'polis registry generate' first): %w", err)
	}
	defer f.Close()
	creds, err := registry.ReadCredentialsCSV(f)
	if err != nil {
		return loadtest.Options{}, err
	}
	if s.qos < 0 || s.qos > 1 {
		return loadtest.Options{}, fmt.Errorf("--qos %d: want 0 or 1", s.qos)
	}
	if s.hold < 0 {
		return loadtest.Options{}, fmt.Errorf("--hold %s: want a duration of 0 or more", s.hold)
	}
	addrs, err := parseSourceAddrs(s.sourceAddrs)
	if err != nil {
		return loadtest.Options{}, err
	}
	o := loadtest.Options{Broker: s.broker, Credentials: creds, Rate: s.rate, Duration: s.duration,
		Messages: s.messages, QoS: byte(s.qos), Connections: s.connections, UseGateways: s.gateways,
		Progress: progress, Intervals: s.intervals, Hold: s.hold, SourceAddrs: addrs}
	if s.startWhen != "" {
		o.Gate = fileGate(s.startWhen)
	}
	if s.registry != "" {
		if err := s.lifecycleFrom(&o, progress, time.Now()); err != nil {
			return loadtest.Options{}, err
		}
	}
	return o, nil
}

// parseSourceAddrs reads --source-addrs: IP addresses, comma-separated.
func parseSourceAddrs(list string) ([]netip.Addr, error) {
	var addrs []netip.Addr
	for _, f := range splitList(list) {
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("--source-addrs: %w", err)
		}
		addrs = append(addrs, a)
	}
	return addrs, nil
}

// lifecycleFrom reads, for a standalone simulator, where each asset
// stands: the registry's states with the rollout history folded over them
// up to now. A registry that is not there leaves every device publishing.
func (s *simulateFlags) lifecycleFrom(o *loadtest.Options, w io.Writer, now time.Time) error {
	reg, err := registry.Load(s.registry)
	if errors.Is(err, os.ErrNotExist) {
		fmt.Fprintf(w, "simulate: %s not found: every device publishes, whatever its lifecycle\n", s.registry)
		return nil
	}
	if err != nil {
		return err
	}
	states := map[string]lifecycle.State{}
	for _, st := range reg.Sites() {
		for _, a := range st.Assets {
			states[registry.Username(st.ID, a.ID)] = cmp.Or(a.Lifecycle, lifecycle.Planned)
		}
	}
	path := s.rollout
	if path == "" {
		path = filepath.Join(filepath.Dir(s.registry), rolloutFile)
	}
	f, err := os.Open(path)
	switch {
	case err == nil:
		evs, _, derr := lifecycle.DecodeImport(f)
		f.Close()
		if derr != nil {
			return fmt.Errorf("cannot read the rollout history %s: %w", path, derr)
		}
		for _, ev := range evs { // in time order per asset, as written
			if !ev.At.After(now) {
				states[registry.Username(ev.Site, ev.Asset)] = ev.To
			}
		}
	case s.rollout != "" || !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("cannot read the rollout history: %w", err)
	}
	silent := 0
	for _, st := range states {
		if st == lifecycle.Planned || st == lifecycle.Decommissioned {
			silent++
		}
	}
	fmt.Fprintf(w, "simulate: %d of %d devices are planned or decommissioned and stay silent\n", silent, len(states))
	o.Registry = reg
	o.Lifecycle = func(site, asset string) lifecycle.State { return states[registry.Username(site, asset)] }
	return nil
}

func runSimulate(ctx context.Context, args []string, stdout io.Writer) error {
	var s simulateFlags
	fs := flag.NewFlagSet("simulate", flag.ContinueOnError)
	s.bind(fs, true)
	level := fs.String("log-level", "warn", "log level")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, *level)
	if err != nil {
		return err
	}
	o, err := s.options(stdout)
	if err != nil {
		return err
	}
	o.Logger = log
	var rate float64
	if o.Intervals && s.stats != "" {
		rate = loadtest.RealisticRate(o)
	}
	st, err := loadtest.Run(ctx, o)
	fmt.Fprintf(stdout, "simulate: done: %d messages, %d points, %d errors in %s\n", st.Sent, st.Points, st.Errors, st.Elapsed.Round(time.Millisecond))
	if s.stats != "" {
		if werr := writeStats(s.stats, st, rate, err); werr != nil {
			return errors.Join(err, werr)
		}
	}
	return err
}

// statsFile is what --stats writes, for a parent process that should not
// parse text: loadtest.Stats's fields (sent, events, points, errors,
// acked, connections, elapsed_ns), the elapsed time in seconds, the
// fleet's msgs/s at its intervals with --intervals, and the run's error.
type statsFile struct {
	loadtest.Stats
	ElapsedSeconds float64 `json:"elapsed_s"`
	IntervalRate   float64 `json:"interval_rate,omitempty"`
	Error          string  `json:"error,omitempty"`
}

// writeStats writes the file whole or not at all: a parent may be
// waiting for it to appear.
func writeStats(path string, st loadtest.Stats, rate float64, runErr error) error {
	out := statsFile{Stats: st, ElapsedSeconds: st.Elapsed.Seconds(), IntervalRate: rate}
	if runErr != nil {
		out.Error = runErr.Error()
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("cannot encode the run's statistics: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("cannot write the run's statistics: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the run's statistics: %w", err)
	}
	return nil
}

// fileGate opens when path exists (a parent process creates it).
func fileGate(path string) func(context.Context) error {
	return func(ctx context.Context) error {
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			_, err := os.Stat(path)
			if err == nil {
				return nil
			}
			if !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("cannot wait for --start-when %s: %w", path, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
			}
		}
	}
}
