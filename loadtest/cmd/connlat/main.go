// Command connlat measures CONNECT→CONNACK and PUBLISH→PUBACK of devices
// connecting one after another to a running platform (see loadtest/connlat):
//
//	go run ./loadtest/cmd/connlat -broker tcp://127.0.0.1:1883 -credentials var/credentials.csv -n 200
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/polis-platform/polis/loadtest/connlat"
	"github.com/polis-platform/polis/twin/registry"
)

func main() {
	if err := run(); err != nil {
		slog.Error("connlat failed", "err", err)
		os.Exit(1)
	}
}

func run() error {
	broker := flag.String("broker", "tcp://127.0.0.1:1883", "MQTT broker URL")
	credPath := flag.String("credentials", registry.DefaultCredentialsPath, "device credentials CSV (polis dev writes it)")
	n := flag.Int("n", 200, "connections, one after another")
	pause := flag.Duration("pause", 20*time.Millisecond, "pause between two connections")
	timeout := flag.Duration("timeout", 10*time.Second, "timeout of each step")
	flag.Parse()
	f, err := os.Open(*credPath)
	if err != nil {
		return fmt.Errorf("cannot read credentials: %w", err)
	}
	creds, err := registry.ReadCredentialsCSV(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("cannot read credentials %s: %w", *credPath, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := connlat.Run(ctx, connlat.Options{Broker: *broker, Credentials: connlat.PickDevices(creds, *n), N: *n,
		Timeout: *timeout, Pause: *pause})
	for i, e := range res.Failures {
		if i == 5 {
			fmt.Fprintf(os.Stderr, "... and %d more failures\n", len(res.Failures)-5)
			break
		}
		fmt.Fprintln(os.Stderr, e)
	}
	if werr := res.WriteTable(os.Stdout); werr != nil {
		return werr
	}
	return err
}
