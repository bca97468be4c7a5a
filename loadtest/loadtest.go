// Package loadtest is the fleet simulator: every device of the registry
// (or a subset) connects to the MQTT broker with its own credentials, or
// through its site gateway, and publishes plausible telemetry and events
// from small per-device models stepped with a simulated clock.
package loadtest

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/internal/logthrottle"
	"github.com/polis-platform/polis/twin/registry"
)

// DefaultBroker is docs/design.md's MQTT address, where the platform's broker
// listens by default.
const DefaultBroker = "tcp://" + broker.DefaultAddr

// Options configures a run. Only Credentials is required.
type Options struct {
	Broker      string                // default DefaultBroker; "host:port" means tcp://
	Credentials []registry.Credential // the devices (var/credentials.csv)
	// Registry gives asset types, coordinates and site kinds; without it the
	// type comes from the asset id prefix and sites stand in central Italy.
	Registry *registry.Registry
	Rate     float64       // messages per second over all devices; 0 = as fast as possible
	Duration time.Duration // stop after this long; 0 = no limit
	Messages int           // stop after this many telemetry and event messages; 0 = no limit
	QoS      byte
	// Connections is how many MQTT connections to open, in username order:
	// devices, or gateways with UseGateways. 0 = all.
	Connections int
	// UseGateways publishes every asset of a site through the site's gateway
	// account (fewer connections, as in the field); sites without a gateway
	// credential fall back to one connection per device.
	UseGateways bool
	Start       time.Time // simulated clock at the start; zero = now
	Speed       float64   // simulated seconds per real second; 0 = 1
	Seed        uint64    // varies the device models; same seed, same devices
	Workers     int       // publishing goroutines; 0 = 4 per CPU
	Progress    io.Writer // one progress line a second, if set
	Logger      *slog.Logger
}

// Stats summarises a run. Sent counts telemetry and event publishes handed
// to the client; Acked those the broker acknowledged (QoS 1 and 2 only).
type Stats struct {
	Sent, Events, Points, Errors, Acked uint64
	Elapsed                             time.Duration
}

// Run connects the devices and publishes until Duration has passed,
// Messages have been sent or ctx is done; those are normal ends and return
// a nil error. Devices announce "online" (retained) on connect, leave a will
// "offline", and publish "offline" when the run ends.
func Run(ctx context.Context, opts Options) (Stats, error) {
	r, err := newRunner(opts)
	if err != nil {
		return Stats{}, err
	}
	return r.run(ctx)
}

type device struct {
	site, asset string
	telemetry   string // topics
	event       string
	status      string
	model       Model
	conn        *conn
}

type conn struct {
	cred     registry.Credential
	devices  []*device
	client   mqtt.Client
	connects atomic.Int32
}

type runner struct {
	opts   Options
	log    *slog.Logger
	conns  []*conn
	pacer  *pacer
	budget *budget
	speed  float64

	realStart time.Time
	simStart  time.Time

	sent, events, points, errs, acked atomic.Uint64
	loggedErrs                        atomic.Uint64
	errLog                            *logthrottle.Throttle
}

func newRunner(opts Options) (*runner, error) {
	if len(opts.Credentials) == 0 {
		return nil, errors.New("cannot run simulator: no device credentials")
	}
	if opts.QoS > 2 || opts.Rate < 0 || opts.Speed < 0 || opts.Messages < 0 || opts.Connections < 0 {
		return nil, fmt.Errorf("cannot run simulator: bad options (qos %d, rate %g, speed %g, messages %d, connections %d)",
			opts.QoS, opts.Rate, opts.Speed, opts.Messages, opts.Connections)
	}
	if opts.Broker == "" {
		opts.Broker = DefaultBroker
	} else if !strings.Contains(opts.Broker, "://") {
		opts.Broker = "tcp://" + opts.Broker
	}
	r := &runner{opts: opts, log: opts.Logger, pacer: newPacer(opts.Rate), budget: newBudget(opts.Messages), speed: opts.Speed,
		errLog: logthrottle.New(errorLogEvery)}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("component", "loadtest")
	if r.speed == 0 {
		r.speed = 1
	}
	r.conns = plan(opts)
	return r, nil
}

// plan builds the devices and groups them into connections.
func plan(opts Options) []*conn {
	creds := append([]registry.Credential(nil), opts.Credentials...)
	sort.Slice(creds, func(i, j int) bool { return creds[i].Username < creds[j].Username })
	bySite := map[string][]registry.Credential{}
	var siteOrder []string
	for _, c := range creds {
		if _, ok := bySite[c.Site]; !ok {
			siteOrder = append(siteOrder, c.Site)
		}
		bySite[c.Site] = append(bySite[c.Site], c)
	}
	var conns []*conn
	for _, site := range siteOrder {
		cs := bySite[site]
		p := place(opts.Registry, site, cs)
		devs := make([]*device, len(cs))
		var gw *registry.Credential
		for i, c := range cs {
			typ := assetType(opts.Registry, c)
			if typ == registry.GatewayType && gw == nil {
				gw = &cs[i]
			}
			prefix := "polis/v1/" + c.Site + "/" + c.Asset + "/"
			devs[i] = &device{
				site: c.Site, asset: c.Asset,
				telemetry: prefix + "telemetry", event: prefix + "event", status: prefix + "status",
				model: NewModel(typ, p, SeedFor(c.Username, opts.Seed)),
			}
		}
		if opts.UseGateways && gw != nil {
			cn := &conn{cred: *gw, devices: devs}
			for _, d := range devs {
				d.conn = cn
			}
			conns = append(conns, cn)
			continue
		}
		for i, d := range devs {
			d.conn = &conn{cred: cs[i], devices: []*device{d}}
			conns = append(conns, d.conn)
		}
	}
	if opts.Connections > 0 && opts.Connections < len(conns) {
		conns = conns[:opts.Connections]
	}
	return conns
}

func assetType(reg *registry.Registry, c registry.Credential) string {
	if reg != nil {
		if a, ok := reg.Asset(c.Site, c.Asset); ok && a.Type != "" {
			return a.Type
		}
	}
	return registry.AssetTypeOf(c.Asset)
}

// place locates a site; without a registry entry it stands near Rome.
func place(reg *registry.Registry, site string, creds []registry.Credential) Place {
	p := Place{Lat: 41.9, Lon: 12.5, Coworking: strings.HasPrefix(site, "CW-")}
	var assets []string
	if s, ok := siteOf(reg, site); ok {
		if s.Lat != 0 || s.Lon != 0 {
			p.Lat, p.Lon = s.Lat, s.Lon
		}
		p.Coworking = s.Kind == registry.KindCoworking
		for _, a := range s.Assets {
			assets = append(assets, a.ID)
		}
	} else {
		for _, c := range creds {
			assets = append(assets, c.Asset)
		}
	}
	for _, a := range assets {
		if registry.AssetTypeOf(a) == registry.TypeDesk {
			p.Desks++
		}
	}
	return p
}

func siteOf(reg *registry.Registry, id string) (*registry.Site, bool) {
	if reg == nil {
		return nil, false
	}
	return reg.Site(id)
}

func (r *runner) run(ctx context.Context) (Stats, error) {
	connectStart := time.Now()
	up := r.connect(ctx)
	if len(up) == 0 {
		if ctx.Err() != nil {
			return r.stats(0), nil
		}
		return r.stats(0), fmt.Errorf("cannot connect any of %d devices to %s", len(r.conns), r.opts.Broker)
	}
	r.log.Info("connected", "connections", len(up), "of", len(r.conns), "took", time.Since(connectStart))
	// Duration is the publishing phase: connecting thousands of devices
	// takes a while and is not load.
	if r.opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Duration)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	var devs []*device
	for _, c := range up {
		devs = append(devs, c.devices...)
	}
	r.log.Info("simulating", "connections", len(up), "devices", len(devs), "broker", r.opts.Broker,
		"rate", r.opts.Rate, "qos", r.opts.QoS)

	r.realStart = time.Now()
	r.simStart = r.opts.Start
	if r.simStart.IsZero() {
		r.simStart = r.realStart
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(ctx)
	}()

	workers := r.opts.Workers
	if workers <= 0 {
		workers = 4 * runtime.GOMAXPROCS(0)
	}
	workers = min(workers, len(devs))
	var wg sync.WaitGroup
	for w := range workers {
		var mine []*device
		for i := w; i < len(devs); i += workers {
			mine = append(mine, devs[i])
		}
		wg.Go(func() { r.work(ctx, stop, mine) })
	}
	wg.Wait()
	stop()
	<-progressDone
	elapsed := time.Since(r.realStart)
	r.disconnect(up)
	st := r.stats(elapsed)
	if w := r.opts.Progress; w != nil {
		secs := max(elapsed.Seconds(), 1e-9)
		fmt.Fprintf(w, "simulate: done %s sent=%d %.0f msg/s %.0f points/s errors=%d acked=%d\n",
			elapsed.Round(time.Millisecond), st.Sent, float64(st.Sent)/secs, float64(st.Points)/secs, st.Errors, st.Acked)
	}
	return st, nil
}

func (r *runner) stats(elapsed time.Duration) Stats {
	return Stats{
		Sent: r.sent.Load(), Events: r.events.Load(), Points: r.points.Load(),
		Errors: r.errs.Load(), Acked: r.acked.Load(), Elapsed: elapsed,
	}
}

func (r *runner) simNow() time.Time {
	return r.simStart.Add(time.Duration(float64(time.Since(r.realStart)) * r.speed))
}

// connect opens the connections, a few dozen at a time so that thousands
// of devices do not stampede the broker, and returns those that are up.
func (r *runner) connect(ctx context.Context) []*conn {
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var up []*conn
	var wg sync.WaitGroup
	for _, c := range r.conns {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := r.dial(ctx, c); err != nil {
				r.errs.Add(1)
				r.logError("cannot connect device", err, "username", c.cred.Username)
				return
			}
			mu.Lock()
			up = append(up, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(up, func(i, j int) bool { return up[i].cred.Username < up[j].cred.Username })
	return up
}

func (r *runner) dial(ctx context.Context, c *conn) error {
	self := "polis/v1/" + c.cred.Site + "/" + c.cred.Asset + "/status"
	o := mqtt.NewClientOptions().
		AddBroker(r.opts.Broker).
		SetClientID(c.cred.Username).
		SetUsername(c.cred.Username).
		SetPassword(c.cred.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetKeepAlive(60*time.Second).
		SetConnectTimeout(10*time.Second).
		SetWriteTimeout(10*time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10*time.Second).
		SetWill(self, "offline", 1, true).
		SetOnConnectHandler(func(cl mqtt.Client) {
			// After a reconnect the will may have said offline meanwhile. The
			// first connect is announced by dial, before any telemetry.
			if c.connects.Add(1) > 1 {
				for _, d := range c.devices {
					cl.Publish(d.status, 1, true, "online")
				}
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			r.errs.Add(1)
			r.logError("connection lost", err, "username", c.cred.Username)
		})
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		cl.Disconnect(0)
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("cannot connect %s to %s: %w", c.cred.Username, r.opts.Broker, err)
	}
	toks := make([]mqtt.Token, len(c.devices))
	for i, d := range c.devices {
		toks[i] = cl.Publish(d.status, 1, true, "online")
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, t := range toks {
		if !t.WaitTimeout(max(time.Until(deadline), time.Millisecond)) || t.Error() != nil {
			cl.Disconnect(0)
			return fmt.Errorf("cannot announce %s online: %w", c.cred.Username, cmp.Or(t.Error(), errors.New("timeout")))
		}
	}
	c.client = cl
	return nil
}

// disconnect says offline for every device, as a device shutting down
// cleanly would (a clean disconnect does not fire the will).
func (r *runner) disconnect(conns []*conn) {
	var toks []mqtt.Token
	for _, c := range conns {
		for _, d := range c.devices {
			toks = append(toks, c.client.Publish(d.status, 1, true, "offline"))
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, t := range toks {
		if !t.WaitTimeout(time.Until(deadline)) || t.Error() != nil {
			r.errs.Add(1)
		}
	}
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(func() { c.client.Disconnect(250) })
	}
	wg.Wait()
}

// window bounds the publishes a worker has in flight before it waits for
// the oldest acknowledgement.
const window = 512

func (r *runner) work(ctx context.Context, stop context.CancelFunc, devs []*device) {
	var buf, ebuf []byte
	var s Sample
	var inflight []mqtt.Token
	defer func() { r.drain(inflight) }()
	for ctx.Err() == nil {
		for _, d := range devs {
			if ctx.Err() != nil {
				return
			}
			now := r.simNow()
			s.Reset()
			d.model.Step(now, &s)
			n := r.budget.take(1 + len(s.Events))
			if n == 0 {
				stop()
				return
			}
			if r.pacer.wait(ctx, n) != nil {
				return
			}
			buf = appendTelemetry(buf[:0], now, s.Metrics)
			inflight = r.publish(ctx, d.conn.client, d.telemetry, buf, inflight)
			r.points.Add(uint64(len(s.Metrics)))
			for _, e := range s.Events[:n-1] {
				var err error
				if ebuf, err = appendEvent(ebuf[:0], e); err != nil {
					r.errs.Add(1)
					r.logError("cannot encode event", err, "type", e.Type)
					continue
				}
				inflight = r.publish(ctx, d.conn.client, d.event, ebuf, inflight)
				r.events.Add(1)
			}
		}
	}
}

// publish hands a copy of payload to the client (paho keeps the slice until
// it is written) and settles finished tokens.
func (r *runner) publish(ctx context.Context, cl mqtt.Client, topic string, payload []byte, inflight []mqtt.Token) []mqtt.Token {
	tok := cl.Publish(topic, r.opts.QoS, false, bytes.Clone(payload))
	r.sent.Add(1)
	inflight = append(inflight, tok)
	done := 0
	for done < len(inflight) {
		t := inflight[done]
		if len(inflight)-done >= window {
			select {
			case <-t.Done():
			case <-ctx.Done():
				return inflight[done:]
			}
		} else {
			select {
			case <-t.Done():
			default:
				return slicesShift(inflight, done)
			}
		}
		r.settle(t)
		done++
	}
	return slicesShift(inflight, done)
}

func slicesShift(s []mqtt.Token, n int) []mqtt.Token {
	if n == 0 {
		return s
	}
	m := copy(s, s[n:])
	clear(s[m:])
	return s[:m]
}

func (r *runner) settle(t mqtt.Token) {
	if err := t.Error(); err != nil {
		r.errs.Add(1)
		r.logError("cannot publish", err)
		return
	}
	if r.opts.QoS > 0 {
		r.acked.Add(1)
	}
}

// drain waits a little for the last acknowledgements; the unacknowledged
// remainder shows as Sent - Acked.
func (r *runner) drain(inflight []mqtt.Token) {
	deadline := time.Now().Add(5 * time.Second)
	for _, t := range inflight {
		if t.WaitTimeout(max(time.Until(deadline), time.Millisecond)) {
			r.settle(t)
		}
	}
}

// errorLogEvery is how often an error of one kind is logged.
const errorLogEvery = time.Second

// logError logs an error at most once per errorLogEvery per msg, so that a
// broker outage does not drown the log; all are counted in Stats.Errors.
func (r *runner) logError(msg string, err error, args ...any) {
	n := r.loggedErrs.Add(1)
	if held, ok := r.errLog.Allow(msg); ok {
		r.log.Warn(msg, append(args, "error", err, "errors_so_far", n, "suppressed", held)...)
	}
}

func (r *runner) progress(ctx context.Context) {
	if r.opts.Progress == nil {
		return
	}
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var lastSent, lastPoints uint64
	last := r.realStart
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			sent, points := r.sent.Load(), r.points.Load()
			secs := now.Sub(last).Seconds()
			fmt.Fprintf(r.opts.Progress, "simulate: %s sent=%d %.0f msg/s %.0f points/s errors=%d\n",
				now.Sub(r.realStart).Round(time.Second), sent, float64(sent-lastSent)/secs,
				float64(points-lastPoints)/secs, r.errs.Load())
			lastSent, lastPoints, last = sent, points, now
		}
	}
}
