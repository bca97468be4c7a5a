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
	"net"
	"net/netip"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/internal/logthrottle"
	"github.com/polis-platform/polis/twin/lifecycle"
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
	// Lifecycle, if set, says where each asset stands (polis dev: the
	// platform's lifecycle tracker; polis simulate: the registry and its
	// rollout history). It is asked at every step, so the simulator follows
	// changes. Planned and decommissioned assets, and those it does not
	// know (""), stay silent: no telemetry, no events, no status. Installed,
	// commissioned and operational ones publish; faulty ones publish and
	// report their fault (metric fault = 1 with their telemetry, and a
	// "fault" event when it starts; fault = 0 and "fault_cleared" when it
	// ends). An asset going silent says offline once. nil: every asset
	// publishes, as a load test wants.
	Lifecycle func(site, asset string) lifecycle.State

	// Intervals makes each device report once per its type's reporting
	// interval (Interval) of real time, at a phase within the first
	// interval drawn from Seed, instead of the fleet taking turns as fast
	// as Rate allows. Rate, if set, still caps the total; RealisticRate is
	// what the fleet sends.
	Intervals bool
	// IntervalScale multiplies the intervals (0.01: a minute becomes
	// 600 ms), for tests and for stress runs; 0 = 1.
	IntervalScale float64
	// Hold keeps the connections open and silent for this long once they
	// are up, before the first publish: a broker's memory per connection
	// and idle CPU are measured then. Duration starts after it.
	Hold time.Duration
	// Gate, if set, is called once the connections are up (and Hold is
	// over); publishing starts when it returns nil, and a run whose Gate
	// fails ends with its error. Simulators in several processes start
	// together this way (polis simulate --start-when FILE).
	Gate func(ctx context.Context) error
	// SourceAddrs are the local addresses connections are dialled from, in
	// turn: one source address has only ~28,000 ephemeral ports towards
	// one broker address (127.0.0.2, 127.0.0.3, ... are all loopback on
	// Linux). None: the system picks.
	SourceAddrs []netip.Addr
}

// Stats summarises a run. Sent counts telemetry and event publishes handed
// to the client; Acked those the broker acknowledged (QoS 1 and 2 only);
// Connections those up when publishing began; Elapsed is the publishing
// phase (not connecting, not Hold). The JSON names are those of the tags.
type Stats struct {
	Sent        uint64        `json:"sent"`
	Events      uint64        `json:"events"`
	Points      uint64        `json:"points"`
	Errors      uint64        `json:"errors"`
	Acked       uint64        `json:"acked"`
	Connections int           `json:"connections"`
	Elapsed     time.Duration `json:"elapsed_ns"`
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
	typ         string // asset type, for its reporting interval
	seed        uint64 // SeedFor its username: model and reporting phase
	telemetry   string // topics
	event       string
	status      string
	model       Model
	conn        *conn // the planned connection: the site gateway's, or own
	own         *conn // the device's own login, when its gateway cannot carry it
	// via is the connection the device announced itself online through;
	// nil while it says nothing (Options.Lifecycle: not on site).
	via atomic.Pointer[conn]
	// fault is the fault flag last reported: -1 none yet, 0 or 1. Only the
	// worker stepping the device touches it.
	fault int8
}

type conn struct {
	cred     registry.Credential
	source   netip.Addr                 // local address to dial from; zero = any
	devices  []*device                  // those it publishes for as planned
	self     *device                    // the device whose login it is
	client   atomic.Pointer[mqttClient] // once dialed; nil again after retire
	connects atomic.Int32

	mu      sync.Mutex // dialing and retiring
	retryAt time.Time  // after a failed dial
}

type mqttClient struct{ mqtt.Client }

// get is the connection's client, nil before it is dialed.
func (c *conn) get() mqtt.Client {
	if p := c.client.Load(); p != nil {
		return p.Client
	}
	return nil
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
	connections                       int           // up when publishing began
	wakes                             atomic.Uint64 // rounds of the interval workers, to show they sleep

	lastDialErr atomic.Pointer[error]
	saidFiles   atomic.Bool // printed that the open files ran out

	dialedMu   sync.Mutex
	dialed     []*conn // every connection dialed, for disconnect
	loggedErrs atomic.Uint64
	errLog     *logthrottle.Throttle
}

func newRunner(opts Options) (*runner, error) {
	if len(opts.Credentials) == 0 {
		return nil, errors.New("cannot run simulator: no device credentials")
	}
	if opts.QoS > 2 || opts.Rate < 0 || opts.Speed < 0 || opts.Messages < 0 || opts.Connections < 0 ||
		opts.IntervalScale < 0 || opts.Hold < 0 {
		return nil, fmt.Errorf("cannot run simulator: bad options (qos %d, rate %g, speed %g, messages %d, connections %d, interval scale %g, hold %s)",
			opts.QoS, opts.Rate, opts.Speed, opts.Messages, opts.Connections, opts.IntervalScale, opts.Hold)
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
			seed := SeedFor(c.Username, opts.Seed)
			devs[i] = &device{
				site: c.Site, asset: c.Asset, typ: typ, seed: seed,
				telemetry: prefix + "telemetry", event: prefix + "event", status: prefix + "status",
				model: NewModel(typ, p, seed), fault: -1,
			}
		}
		for i, d := range devs {
			d.own = &conn{cred: cs[i], devices: []*device{d}, self: d}
		}
		if opts.UseGateways && gw != nil {
			cn := &conn{cred: *gw, devices: devs}
			for _, d := range devs {
				d.conn = cn
				if d.site == gw.Site && d.asset == gw.Asset {
					cn.self, d.own = d, cn
				}
			}
			conns = append(conns, cn)
			continue
		}
		for _, d := range devs {
			d.conn = d.own
			conns = append(conns, d.conn)
		}
	}
	if opts.Connections > 0 && opts.Connections < len(conns) {
		conns = conns[:opts.Connections]
	}
	// Round robin over the source addresses; the devices' own logins,
	// which a gateway's devices fall back to with Lifecycle, take turns
	// among themselves.
	if n := len(opts.SourceAddrs); n > 0 {
		own := 0
		for i, c := range conns {
			c.source = opts.SourceAddrs[i%n]
			for _, d := range c.devices {
				if d.own != c {
					d.own.source = opts.SourceAddrs[own%n]
					own++
				}
			}
		}
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
	r.checkFileLimit()
	connectStart := time.Now()
	up, tried := r.connect(ctx)
	if len(up) == 0 && (tried > 0 || r.opts.Lifecycle == nil) {
		if ctx.Err() != nil {
			return r.stats(0), nil
		}
		err := fmt.Errorf("cannot connect any of %d devices to %s", len(r.conns), r.opts.Broker)
		if last := r.lastDialErr.Load(); last != nil {
			err = fmt.Errorf("%w: the last error: %w", err, *last)
		}
		return r.stats(0), err
	}
	r.connections = len(up)
	r.log.Info("connected", "connections", len(up), "of", len(r.conns), "took", time.Since(connectStart))
	if r.opts.Hold > 0 && ctx.Err() == nil {
		r.hold(ctx, len(up))
	}
	if r.opts.Gate != nil && ctx.Err() == nil {
		// A parent process waits for this line too: connected, waiting.
		r.printf("simulate: holding %d connections until the start signal\n", len(up))
		if err := r.opts.Gate(ctx); err != nil {
			r.disconnect()
			if ctx.Err() != nil {
				return r.stats(0), nil
			}
			return r.stats(0), fmt.Errorf("cannot start publishing: %w", err)
		}
	}
	// Duration is the publishing phase: connecting thousands of devices
	// takes a while and is not load.
	if r.opts.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opts.Duration)
		defer cancel()
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()

	// Without Lifecycle the devices of the connections that are up
	// publish; with it every device may come on site, and connects when
	// it does (route).
	var devs []*device
	from := up
	if r.opts.Lifecycle != nil {
		from = r.conns
	}
	for _, c := range from {
		devs = append(devs, c.devices...)
	}
	var target float64 // msgs/s at the devices' intervals, capped by Rate
	if r.opts.Intervals {
		target = intervalRate(devs, r.opts.IntervalScale)
		if r.opts.Rate > 0 && r.opts.Rate < target {
			r.printf("simulate: the rate cap of %g msg/s is below the fleet's %.0f msg/s at its intervals\n", r.opts.Rate, target)
			target = r.opts.Rate
		}
	}
	r.log.Info("simulating", "connections", len(up), "devices", len(devs), "broker", r.opts.Broker,
		"rate", r.opts.Rate, "qos", r.opts.QoS, "intervals", r.opts.Intervals, "interval_rate", target)
	if ctx.Err() == nil {
		// A parent process waits for this line (Hold is over).
		if r.opts.Intervals {
			r.printf("simulate: publishing %d devices over %d connections at their intervals, %.0f msg/s\n", len(devs), len(up), target)
		} else {
			r.printf("simulate: publishing %d devices over %d connections\n", len(devs), len(up))
		}
	}

	r.realStart = time.Now()
	r.simStart = r.opts.Start
	if r.simStart.IsZero() {
		r.simStart = r.realStart
	}
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		r.progress(ctx, target)
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
	r.disconnect()
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
		Errors: r.errs.Load(), Acked: r.acked.Load(), Connections: r.connections, Elapsed: elapsed,
	}
}

// printf writes a line to Progress, if set.
func (r *runner) printf(format string, args ...any) {
	if r.opts.Progress != nil {
		fmt.Fprintf(r.opts.Progress, format, args...)
	}
}

// hold keeps the connections open and silent for Options.Hold, or until
// ctx ends. The line it prints tells a parent process the hold has begun.
func (r *runner) hold(ctx context.Context, up int) {
	r.log.Info("holding", "connections", up, "for", r.opts.Hold)
	r.printf("simulate: holding %d connections for %s\n", up, r.opts.Hold)
	t := time.NewTimer(r.opts.Hold)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

func (r *runner) simNow() time.Time {
	return r.simStart.Add(time.Duration(float64(time.Since(r.realStart)) * r.speed))
}

// connect opens the connections, a few dozen at a time so that thousands
// of devices do not stampede the broker, and returns those that are up
// and how many it tried. With Lifecycle, only those whose own device is on
// site: a login is itself a status (the broker records it online), and a
// device not on site says nothing.
func (r *runner) connect(ctx context.Context) (up []*conn, tried int) {
	sem := make(chan struct{}, 32)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range r.conns {
		if c.self != nil {
			if _, on := r.state(c.self); !on {
				continue
			}
		}
		tried++
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
				r.dialFailed(err, c)
				return
			}
			mu.Lock()
			up = append(up, c)
			mu.Unlock()
		})
	}
	wg.Wait()
	sort.Slice(up, func(i, j int) bool { return up[i].cred.Username < up[j].cred.Username })
	return up, tried
}

// route is the connection an on-site device publishes through, dialing it
// if need be: its gateway's when the gateway is on site too, else its own
// login. nil when it cannot connect now (counted; retried later).
func (r *runner) route(ctx context.Context, d *device) *conn {
	if gw := d.conn; gw != d.own {
		if gw.get() != nil {
			return gw
		}
		if gw.self != nil {
			if _, on := r.state(gw.self); on && r.ensure(ctx, gw) {
				return gw
			}
		}
	}
	if r.ensure(ctx, d.own) {
		return d.own
	}
	return nil
}

// redialAfter is how long a connection that failed to dial is left alone.
const redialAfter = 5 * time.Second

// ensure dials c unless it is up, and reports whether it is.
func (r *runner) ensure(ctx context.Context, c *conn) bool {
	if c.get() != nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.get() != nil {
		return true
	}
	if time.Now().Before(c.retryAt) {
		return false
	}
	if err := r.dial(ctx, c); err != nil {
		c.retryAt = time.Now().Add(redialAfter)
		if ctx.Err() == nil {
			r.dialFailed(err, c)
		}
		return false
	}
	return true
}

// retire closes the connection of a device that left the site: the
// devices announced through it say offline (those still on site announce
// themselves again through their own login), and its login goes away.
func (r *runner) retire(c *conn) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cl := c.get()
	if cl == nil {
		return
	}
	var toks []mqtt.Token
	for _, d := range c.devices {
		if d.via.CompareAndSwap(c, nil) {
			toks = append(toks, cl.Publish(d.status, 1, true, "offline"))
		}
	}
	r.drainStatus(toks)
	cl.Disconnect(250)
	c.client.Store(nil)
}

// state is the device's lifecycle state and whether it publishes.
func (r *runner) state(d *device) (lifecycle.State, bool) {
	if r.opts.Lifecycle == nil {
		return lifecycle.Operational, true
	}
	st := r.opts.Lifecycle(d.site, d.asset)
	switch st {
	case lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty:
		return st, true
	}
	return st, false
}

func (r *runner) dial(ctx context.Context, c *conn) error {
	self := "polis/v1/" + c.cred.Site + "/" + c.cred.Asset + "/status"
	// A dialer of its own: SetConnectTimeout writes into it.
	dialer := &net.Dialer{Timeout: 30 * time.Second}
	if c.source.IsValid() {
		dialer.LocalAddr = &net.TCPAddr{IP: c.source.AsSlice(), Zone: c.source.Zone()}
	}
	o := mqtt.NewClientOptions().
		SetDialer(dialer).
		AddBroker(r.opts.Broker).
		SetClientID(c.cred.Username).
		SetUsername(c.cred.Username).
		SetPassword(c.cred.Password).
		SetCleanSession(true).
		SetOrderMatters(false).
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetWriteTimeout(10 * time.Second).
		SetAutoReconnect(true).
		SetMaxReconnectInterval(10 * time.Second).
		SetOnConnectHandler(func(cl mqtt.Client) {
			// After a reconnect the will may have said offline meanwhile. The
			// first connect is announced by dial, before any telemetry.
			if c.connects.Add(1) > 1 {
				for _, d := range c.devices {
					if d.via.Load() == c {
						cl.Publish(d.status, 1, true, "online")
					}
				}
			}
		}).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			r.errs.Add(1)
			r.logError("connection lost", err, "username", c.cred.Username)
		})
	// Only a login on site is dialed: the will speaks for it.
	o.SetWill(self, "offline", 1, true)
	cl := mqtt.NewClient(o)
	tok := cl.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		cl.Disconnect(0)
		return ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return dialError(c, r.opts.Broker, err)
	}
	// The devices on site say online through it, before any telemetry.
	var toks []mqtt.Token
	var announced []*device
	for _, d := range c.devices {
		if _, on := r.state(d); on && d.via.Load() == nil {
			toks = append(toks, cl.Publish(d.status, 1, true, "online"))
			announced = append(announced, d)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, t := range toks {
		if !t.WaitTimeout(max(time.Until(deadline), time.Millisecond)) || t.Error() != nil {
			cl.Disconnect(0)
			return fmt.Errorf("cannot announce %s online: %w", c.cred.Username, cmp.Or(t.Error(), errors.New("timeout")))
		}
	}
	for _, d := range announced {
		d.via.CompareAndSwap(nil, c)
	}
	c.client.Store(&mqttClient{cl})
	r.dialedMu.Lock()
	r.dialed = append(r.dialed, c)
	r.dialedMu.Unlock()
	return nil
}

// dialFailed counts and logs a failed dial; running out of open files is
// also said once on Progress, where a parent process reads.
func (r *runner) dialFailed(err error, c *conn) {
	r.errs.Add(1)
	r.lastDialErr.Store(&err)
	r.logError("cannot connect device", err, "username", c.cred.Username)
	if (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) && r.saidFiles.CompareAndSwap(false, true) {
		limit, _ := openFileLimit()
		r.printf("simulate: too many open files (ulimit -n %d), one per connection: "+
			"raise ulimit -n or split the fleet over several processes\n", limit)
	}
}

// dialError says what failed, and what to do when it is this process's
// limit of open files: each connection holds one.
func dialError(c *conn, broker string, err error) error {
	from := ""
	if c.source.IsValid() {
		from = " from " + c.source.String()
	}
	if errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE) {
		return fmt.Errorf("cannot connect %s to %s%s: too many open files, one per connection: raise ulimit -n or split the fleet over several processes: %w",
			c.cred.Username, broker, from, err)
	}
	if errors.Is(err, syscall.EADDRNOTAVAIL) {
		return fmt.Errorf("cannot connect %s to %s%s: no local port or address left: add source addresses or split the fleet: %w",
			c.cred.Username, broker, from, err)
	}
	return fmt.Errorf("cannot connect %s to %s%s: %w", c.cred.Username, broker, from, err)
}

// fileMargin is the descriptors a run needs besides its connections
// (logs, the runtime's poller, files of the caller).
const fileMargin = 64

// checkFileLimit warns, before connecting, when the process may not open
// a file per planned connection.
func (r *runner) checkFileLimit() {
	limit, ok := openFileLimit()
	if !ok || uint64(len(r.conns))+fileMargin <= limit {
		return
	}
	r.log.Warn("more connections than open files allowed", "connections", len(r.conns), "limit", limit)
	r.printf("simulate: %d connections need more open files than this process may have (ulimit -n %d): "+
		"raise ulimit -n or split the fleet over several processes\n", len(r.conns), limit)
}

// disconnect says offline for every device, as a device shutting down
// cleanly would (a clean disconnect does not fire the will).
func (r *runner) disconnect() {
	r.dialedMu.Lock()
	var conns []*conn
	for _, c := range r.dialed {
		if c.get() != nil {
			conns = append(conns, c)
		}
	}
	r.dialedMu.Unlock()
	var toks []mqtt.Token
	for _, c := range conns {
		for _, d := range c.devices {
			if d.via.CompareAndSwap(c, nil) {
				toks = append(toks, c.get().Publish(d.status, 1, true, "offline"))
			}
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
		wg.Go(func() { c.get().Disconnect(250) })
	}
	wg.Wait()
}

// window bounds the publishes a worker has in flight before it waits for
// the oldest acknowledgement.
const window = 512

// idleWait is how long a worker whose devices are all silent waits before
// it asks again where they stand.
const idleWait = 500 * time.Millisecond

// worker is one publishing goroutine's state.
type worker struct {
	buf, ebuf        []byte
	s                Sample
	inflight, status []mqtt.Token
}

func (r *runner) work(ctx context.Context, stop context.CancelFunc, devs []*device) {
	w := &worker{}
	defer func() { r.drain(w.inflight); r.drainStatus(w.status) }()
	if r.opts.Intervals {
		r.workIntervals(ctx, stop, w, devs)
		return
	}
	for ctx.Err() == nil {
		published := false
		for _, d := range devs {
			if ctx.Err() != nil {
				return
			}
			p, more := r.visit(ctx, stop, w, d)
			if !more {
				return
			}
			published = published || p
		}
		if !published {
			select {
			case <-ctx.Done():
			case <-time.After(idleWait):
			}
		}
		w.status = r.settleStatus(w.status)
	}
}

// workIntervals publishes for each device once per its interval, and
// sleeps until the next device is due in between.
func (r *runner) workIntervals(ctx context.Context, stop context.CancelFunc, w *worker, devs []*device) {
	q := newSchedule(devs, r.realStart, r.opts.IntervalScale)
	t := time.NewTimer(0)
	defer t.Stop()
	for ctx.Err() == nil {
		r.wakes.Add(1)
		now := time.Now()
		for {
			sl, ok := q.due(now)
			if !ok {
				break
			}
			if _, more := r.visit(ctx, stop, w, sl.d); !more {
				return
			}
			// now, not the time after the publish: a Rate cap that holds
			// the worker back must not push the schedule later each round.
			q.advance(sl, now)
		}
		w.status = r.settleStatus(w.status)
		next, ok := q.next()
		if !ok {
			return
		}
		t.Reset(time.Until(next))
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
}

// visit steps one device and publishes what it reports, or says whether
// it went off site. published says it publishes; more is false when the
// run is over.
func (r *runner) visit(ctx context.Context, stop context.CancelFunc, w *worker, d *device) (published, more bool) {
	st, on := r.state(d)
	if !on {
		if c := d.via.Swap(nil); c != nil {
			if cl := c.get(); cl != nil {
				w.status = append(w.status, cl.Publish(d.status, 1, true, "offline"))
			}
		}
		if d.own != nil && d.own.get() != nil && r.opts.Lifecycle != nil {
			r.retire(d.own) // its login goes too
		}
		return false, true
	}
	c := d.conn
	if r.opts.Lifecycle != nil {
		if c = r.route(ctx, d); c == nil {
			return false, true
		}
	}
	cl := c.get()
	if cl == nil {
		return false, true // retired meanwhile
	}
	if old := d.via.Swap(c); old != c {
		w.status = append(w.status, cl.Publish(d.status, 1, true, "online"))
	}
	now := r.simNow()
	s := &w.s
	s.Reset()
	d.model.Step(now, s)
	reportFault(d, st == lifecycle.Faulty, now, s)
	n := r.budget.take(1 + len(s.Events))
	if n == 0 {
		stop()
		return true, false
	}
	if r.pacer.wait(ctx, n) != nil {
		return true, false
	}
	w.buf = appendTelemetry(w.buf[:0], now, s.Metrics)
	w.inflight = r.publish(ctx, cl, d.telemetry, w.buf, w.inflight)
	r.points.Add(uint64(len(s.Metrics)))
	for _, e := range s.Events[:n-1] {
		var err error
		if w.ebuf, err = appendEvent(w.ebuf[:0], e); err != nil {
			r.errs.Add(1)
			r.logError("cannot encode event", err, "type", e.Type)
			continue
		}
		w.inflight = r.publish(ctx, cl, d.event, w.ebuf, w.inflight)
		r.events.Add(1)
	}
	return true, true
}

// reportFault adds a faulty asset's fault to its sample: the metric fault
// = 1 with every sample (the twin's status reads it), a "fault" event when
// it starts, and fault = 0 with "fault_cleared" when it ends. The first
// sample of a device says fault = 0 too, clearing a fault an earlier run
// left in the twin.
func reportFault(d *device, faulty bool, now time.Time, s *Sample) {
	was := d.fault
	d.fault = 0
	if faulty {
		d.fault = 1
	}
	if faulty || was != d.fault {
		s.add("fault", boolf(faulty))
	}
	switch {
	case faulty && was != 1:
		s.event(now, "fault", map[string]any{"code": "reported_fault"})
	case !faulty && was == 1:
		s.event(now, "fault_cleared", nil)
	}
}

// settleStatus counts the failed status announcements that have finished
// and keeps the others.
func (r *runner) settleStatus(toks []mqtt.Token) []mqtt.Token {
	keep := toks[:0]
	for _, t := range toks {
		select {
		case <-t.Done():
			if err := t.Error(); err != nil {
				r.errs.Add(1)
				r.logError("cannot announce a device's status", err)
			}
		default:
			keep = append(keep, t)
		}
	}
	clear(toks[len(keep):])
	return keep
}

// drainStatus waits a little for the last status announcements.
func (r *runner) drainStatus(toks []mqtt.Token) {
	deadline := time.Now().Add(5 * time.Second)
	for _, t := range toks {
		if t.WaitTimeout(max(time.Until(deadline), time.Millisecond)) && t.Error() != nil {
			r.errs.Add(1)
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

// progress prints a line a second; with Intervals it ends with the
// target rate, the fleet's at its intervals (capped by Rate).
func (r *runner) progress(ctx context.Context, target float64) {
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
			line := fmt.Sprintf("simulate: %s sent=%d %.0f msg/s %.0f points/s errors=%d",
				now.Sub(r.realStart).Round(time.Second), sent, float64(sent-lastSent)/secs,
				float64(points-lastPoints)/secs, r.errs.Load())
			if r.opts.Intervals {
				line += fmt.Sprintf(" target=%.0f msg/s", target)
			}
			fmt.Fprintln(r.opts.Progress, line)
			lastSent, lastPoints, last = sent, points, now
		}
	}
}
