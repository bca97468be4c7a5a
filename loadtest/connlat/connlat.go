// Package connlat measures how long a device waits to connect and to have
// one QoS 1 message acknowledged: it connects real device credentials one
// after another to a running broker, each time as a fresh client, and times
// CONNECT→CONNACK and PUBLISH→PUBACK apart (issue 15, "Connect latency
// under load"). Run it against a loaded platform (`polis dev`) with
// loadtest/cmd/connlat.
package connlat

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/twin/registry"
)

// Options of a run.
type Options struct {
	Broker         string                // tcp://host:port
	Credentials    []registry.Credential // devices to connect as, in turn
	N              int                   // connections, one after another
	Timeout        time.Duration         // per step (connect, publish); default 10 s
	ClientIDPrefix string                // default "connlat-"
	// Pause between two connections, so that the measure is a device's
	// wait and not the tool's own backlog.
	Pause time.Duration
}

// Sample is one connection.
type Sample struct {
	Connack, Puback, Total time.Duration
}

// Result is a run: its samples in order, and the failures.
type Result struct {
	Samples  []Sample
	Failures []error
}

// PickDevices returns n credentials spread over creds, leaving out
// gateways: a simulator in gateway mode holds their client ids, and a demo
// device is not one.
func PickDevices(creds []registry.Credential, n int) []registry.Credential {
	var devs []registry.Credential
	for _, c := range creds {
		if !strings.HasPrefix(c.Asset, registry.GatewayType+"-") {
			devs = append(devs, c)
		}
	}
	if n <= 0 || len(devs) == 0 {
		return nil
	}
	if n >= len(devs) {
		return devs
	}
	out := make([]registry.Credential, 0, n)
	step := float64(len(devs)) / float64(n)
	for i := range n {
		out = append(out, devs[int(float64(i)*step)])
	}
	return out
}

// Run connects, publishes one QoS 1 telemetry message and disconnects, N
// times in sequence, cycling through the credentials. A failed step is
// recorded and the run goes on; ctx ends it early.
func Run(ctx context.Context, o Options) (Result, error) {
	if len(o.Credentials) == 0 {
		return Result{}, errors.New("cannot measure connect latency: no credentials")
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ClientIDPrefix == "" {
		o.ClientIDPrefix = "connlat-"
	}
	var res Result
	for i := 0; i < o.N && ctx.Err() == nil; i++ {
		c := o.Credentials[i%len(o.Credentials)]
		s, err := once(o, c, o.ClientIDPrefix+strconv.Itoa(i))
		if err != nil {
			res.Failures = append(res.Failures, fmt.Errorf("connection %d as %s: %w", i, c.Username, err))
		} else {
			res.Samples = append(res.Samples, s)
		}
		if o.Pause > 0 {
			select {
			case <-ctx.Done():
			case <-time.After(o.Pause):
			}
		}
	}
	return res, ctx.Err()
}

func once(o Options, c registry.Credential, id string) (Sample, error) {
	opts := paho.NewClientOptions().AddBroker(o.Broker).SetClientID(id).
		SetUsername(c.Username).SetPassword(c.Password).SetCleanSession(true).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(o.Timeout).
		SetProtocolVersion(4)
	cl := paho.NewClient(opts)
	start := time.Now()
	tok := cl.Connect()
	if !tok.WaitTimeout(o.Timeout) {
		cl.Disconnect(0)
		return Sample{}, errors.New("no CONNACK in time")
	}
	if err := tok.Error(); err != nil {
		return Sample{}, fmt.Errorf("connect: %w", err)
	}
	connack := time.Now()
	defer cl.Disconnect(0)
	topic := "polis/v1/" + c.Site + "/" + c.Asset + "/telemetry"
	pl := `{"ts":` + strconv.FormatInt(time.Now().UnixMilli(), 10) + `,"m":{"connlat":1}}`
	ptok := cl.Publish(topic, 1, false, pl)
	if !ptok.WaitTimeout(o.Timeout) {
		return Sample{}, errors.New("no PUBACK in time")
	}
	if err := ptok.Error(); err != nil {
		return Sample{}, fmt.Errorf("publish: %w", err)
	}
	puback := time.Now()
	return Sample{Connack: connack.Sub(start), Puback: puback.Sub(connack), Total: puback.Sub(start)}, nil
}

// Summary is p50, p99 and max of one measure.
type Summary struct{ P50, P99, Max time.Duration }

// Summarize returns the summary of each measure (zero for no samples).
func (r Result) Summarize() (connack, puback, total Summary) {
	pick := func(f func(Sample) time.Duration) Summary {
		ds := make([]time.Duration, len(r.Samples))
		for i, s := range r.Samples {
			ds[i] = f(s)
		}
		return summarize(ds)
	}
	return pick(func(s Sample) time.Duration { return s.Connack }),
		pick(func(s Sample) time.Duration { return s.Puback }),
		pick(func(s Sample) time.Duration { return s.Total })
}

// summarize uses the nearest-rank percentile: with 200 samples p99 is the
// second largest.
func summarize(ds []time.Duration) Summary {
	if len(ds) == 0 {
		return Summary{}
	}
	ds = slices.Clone(ds)
	slices.Sort(ds)
	rank := func(q float64) time.Duration {
		i := int(q*float64(len(ds))+0.999999) - 1
		return ds[max(0, min(i, len(ds)-1))]
	}
	return Summary{P50: rank(0.50), P99: rank(0.99), Max: ds[len(ds)-1]}
}

// WriteTable writes the result as a Markdown table.
func (r Result) WriteTable(w io.Writer) error {
	c, p, t := r.Summarize()
	ms := func(d time.Duration) string { return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) }
	var b strings.Builder
	fmt.Fprintf(&b, "| measure (%d ok, %d failed) | p50 ms | p99 ms | max ms |\n|---|---:|---:|---:|\n", len(r.Samples), len(r.Failures))
	for _, row := range []struct {
		name string
		s    Summary
	}{{"CONNECT→CONNACK", c}, {"PUBLISH→PUBACK", p}, {"connect+publish", t}} {
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", row.name, ms(row.s.P50), ms(row.s.P99), ms(row.s.Max))
	}
	_, err := io.WriteString(w, b.String())
	return err
}
