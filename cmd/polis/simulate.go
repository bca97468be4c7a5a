package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/polis-platform/polis/loadtest"
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
}

// bind adds the simulator's flags; `polis dev` shares --credentials with
// the generator and sets the broker itself, so it leaves those out.
func (s *simulateFlags) bind(fs *flag.FlagSet, standalone bool) {
	s.broker, s.creds = loadtest.DefaultBroker, registry.DefaultCredentialsPath
	if standalone {
		fs.StringVar(&s.broker, "broker", s.broker, "MQTT broker URL")
		fs.StringVar(&s.creds, "credentials", s.creds, "device credentials (site,asset,username,password)")
	}
	fs.Float64Var(&s.rate, "rate", 1000, "messages per second over the whole fleet (0: as fast as possible)")
	fs.DurationVar(&s.duration, "duration", 0, "stop after this long (0: until interrupted)")
	fs.IntVar(&s.messages, "messages", 0, "stop after this many messages (0: no limit)")
	fs.IntVar(&s.qos, "qos", 1, "MQTT QoS of telemetry (0 or 1)")
	fs.IntVar(&s.connections, "connections", 0, "devices (or gateways) that connect (0: all)")
	fs.BoolVar(&s.gateways, "gateways", true, "publish through each site's gateway account (one connection per site) instead of one per device")
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
	return loadtest.Options{Broker: s.broker, Credentials: creds, Rate: s.rate, Duration: s.duration,
		Messages: s.messages, QoS: byte(s.qos), Connections: s.connections, UseGateways: s.gateways,
		Progress: progress}, nil
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
	st, err := loadtest.Run(ctx, o)
	fmt.Fprintf(stdout, "simulate: done: %d messages, %d points, %d errors in %s\n", st.Sent, st.Points, st.Errors, st.Elapsed.Round(time.Millisecond))
	return err
}
