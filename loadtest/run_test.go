package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// connectRecorder notes the username and remote address of every client
// that connects, and every publish the broker receives.
type connectRecorder struct {
	mqtt.HookBase
	mu        sync.Mutex
	users     map[string]int
	remotes   []string
	publishes []published
}

type published struct {
	topic string
	at    time.Time // when the broker had it
}

func (h *connectRecorder) ID() string { return "connect-recorder" }

func (h *connectRecorder) Provides(b byte) bool { return b == mqtt.OnConnect || b == mqtt.OnPublish }

func (h *connectRecorder) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.users[string(cl.Properties.Username)]++
	h.remotes = append(h.remotes, cl.Net.Remote)
	return nil
}

func (h *connectRecorder) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.publishes = append(h.publishes, published{pk.TopicName, time.Now()})
	return pk, nil
}

// data is the telemetry and event publishes the broker has received.
func (h *connectRecorder) data() []published {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []published
	for _, p := range h.publishes {
		if k := kind(p.topic); k == "telemetry" || k == "event" {
			out = append(out, p)
		}
	}
	return out
}

// remoteHosts counts the clients' remote addresses by host.
func (h *connectRecorder) remoteHosts(t *testing.T) map[string]int {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, r := range h.remotes {
		host, _, err := net.SplitHostPort(r)
		if err != nil {
			t.Fatalf("remote address %q: %v", r, err)
		}
		out[host]++
	}
	return out
}

func (h *connectRecorder) snapshot() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make(map[string]int, len(h.users))
	for k, v := range h.users {
		out[k] = v
	}
	return out
}

// startBroker runs mochi-mqtt on a free loopback port, allowing everyone.
func startBroker(t *testing.T) (string, *connectRecorder) { return startBrokerTB(t) }

func startBrokerTB(t testing.TB) (string, *connectRecorder) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatalf("cannot add auth hook: %v", err)
	}
	rec := &connectRecorder{users: map[string]int{}}
	if err := srv.AddHook(rec, nil); err != nil {
		t.Fatalf("cannot add hook: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("cannot serve: %v", err)
	}
	t.Cleanup(func() {
		// mochi v2.7.9's Close can deadlock with a client that is still
		// going away (Clients.GetByListener read-locks twice while Delete
		// waits for the write lock), so let the clients leave first.
		deadline := time.Now().Add(10 * time.Second)
		for srv.Clients.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = srv.Close()
	})
	return "tcp://" + l.Address(), rec
}

type received struct {
	topic   string
	payload []byte
	retain  bool
}

// subscribe counts everything under polis/v1/ with a separate paho client.
func subscribe(t *testing.T, broker string) (get func() []received) {
	t.Helper()
	var mu sync.Mutex
	var msgs []received
	o := paho.NewClientOptions().AddBroker(broker).SetClientID("test-subscriber").SetOrderMatters(false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot connect subscriber: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("polis/v1/#", 1, func(_ paho.Client, m paho.Message) {
		mu.Lock()
		msgs = append(msgs, received{m.Topic(), append([]byte(nil), m.Payload()...), m.Retained()})
		mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe: %v", tok.Error())
	}
	return func() []received {
		mu.Lock()
		defer mu.Unlock()
		return append([]received(nil), msgs...)
	}
}

func fleet(t *testing.T, sites, coworking int) (*registry.Registry, []registry.Credential) {
	t.Helper()
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: sites, Coworking: coworking, Seed: 1})
	if err != nil {
		t.Fatalf("cannot generate fleet: %v", err)
	}
	return reg, creds
}

func kind(topic string) string { return topic[strings.LastIndexByte(topic, '/')+1:] }

func TestRun_Broker(t *testing.T) {
	broker, rec := startBroker(t)
	get := subscribe(t, broker)
	reg, creds := fleet(t, 3, 1)
	var progress bytes.Buffer
	const n = 200
	st, err := Run(context.Background(), Options{
		Broker: broker, Credentials: creds, Registry: reg, Messages: n, QoS: 1,
		Duration: 30 * time.Second, Start: time.Date(2024, 6, 4, 10, 0, 0, 0, rome), Speed: 60,
		Progress: &progress,
	})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if st.Sent != n || st.Acked != n || st.Errors != 0 || st.Points == 0 {
		t.Fatalf("unexpected stats %+v; want %d sent and acked, no errors", st, n)
	}
	data := func() (telemetry, events int) {
		for _, m := range get() {
			switch kind(m.topic) {
			case "telemetry":
				telemetry++
			case "event":
				events++
			}
		}
		return
	}
	testutil.Eventually(t, 10*time.Second, 0, func() bool { te, ev := data(); return te+ev == n },
		"subscriber gets %d messages in all (telemetry, events: %v)", n, testutil.Lazy(func() any { te, ev := data(); return []int{te, ev} }))

	known := map[string]bool{}
	for _, c := range creds {
		known[c.Username] = true
	}
	status := map[string][]string{}
	points := 0
	for _, m := range get() {
		parts := strings.Split(m.topic, "/")
		if len(parts) != 5 || parts[0] != "polis" || parts[1] != "v1" || !known[parts[2]+"/"+parts[3]] {
			t.Fatalf("unexpected topic %s", m.topic)
		}
		switch kind(m.topic) {
		case "telemetry":
			var v struct {
				TS *int64              `json:"ts"`
				M  map[string]*float64 `json:"m"`
			}
			if err := json.Unmarshal(m.payload, &v); err != nil || v.TS == nil || len(v.M) == 0 {
				t.Fatalf("telemetry %s does not decode with ts and m: %v", m.payload, err)
			}
			if got := time.UnixMilli(*v.TS); got.Before(time.Date(2024, 6, 4, 9, 59, 0, 0, rome)) || got.After(time.Date(2024, 6, 4, 11, 0, 0, 0, rome)) {
				t.Fatalf("ts %s does not follow the simulated clock", got)
			}
			points += len(v.M)
		case "event":
			var v struct {
				TS   *int64 `json:"ts"`
				Type string `json:"type"`
			}
			if err := json.Unmarshal(m.payload, &v); err != nil || v.TS == nil || v.Type == "" {
				t.Fatalf("event %s does not decode with ts and type: %v", m.payload, err)
			}
		case "status":
			status[parts[2]+"/"+parts[3]] = append(status[parts[2]+"/"+parts[3]], string(m.payload))
		default:
			t.Fatalf("unexpected topic %s", m.topic)
		}
	}
	if uint64(points) != st.Points {
		t.Errorf("subscriber decoded %d points; Run reported %d", points, st.Points)
	}
	// Every device said online, and offline at the end (the last offline
	// messages may still be on their way to the subscriber).
	testutil.Eventually(t, 5*time.Second, 0, func() bool {
		status = map[string][]string{}
		for _, m := range get() {
			if kind(m.topic) == "status" {
				u := strings.TrimSuffix(strings.TrimPrefix(m.topic, "polis/v1/"), "/status")
				status[u] = append(status[u], string(m.payload))
			}
		}
		for _, s := range status {
			if s[len(s)-1] != "offline" {
				return false
			}
		}
		return len(status) == len(creds)
	}, "status from all %d devices, ending offline (got %v)", len(creds), testutil.Lazy(func() any { return status }))
	for u, s := range status {
		if s[0] != "online" || s[len(s)-1] != "offline" {
			t.Errorf("device %s status sequence %v; want online ... offline", u, s)
		}
	}
	if users := rec.snapshot(); len(users) != len(creds)+1 { // +1: the subscriber
		t.Errorf("%d clients connected; want one per device plus the subscriber", len(users))
	}
	if !regexp.MustCompile(`(?m)^simulate: done \S+ sent=200 \d+ msg/s \d+ points/s errors=0 acked=200$`).Match(progress.Bytes()) {
		t.Errorf("unexpected final progress line in %q", progress.String())
	}
}

// With UseGateways each site connects once, as its gateway, and publishes
// for all its assets; without a registry the types come from the ids.
func TestRun_Gateways(t *testing.T) {
	broker, rec := startBroker(t)
	get := subscribe(t, broker)
	_, creds := fleet(t, 4, 2)
	var progress bytes.Buffer
	st, err := Run(context.Background(), Options{
		Broker: strings.TrimPrefix(broker, "tcp://"), Credentials: creds, UseGateways: true,
		Rate: 400, Duration: 1500 * time.Millisecond, QoS: 0, Progress: &progress,
	})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	// 1.5 s at 400 msg/s, give or take the 100 ms burst and the last tick.
	if st.Sent < 450 || st.Sent > 700 || st.Errors != 0 || st.Acked != 0 {
		t.Errorf("unexpected stats %+v for 1.5 s at 400 msg/s, QoS 0", st)
	}
	users := rec.snapshot()
	delete(users, "")
	for u := range users {
		if !strings.HasSuffix(u, "/gw-1") {
			t.Errorf("device %s connected on its own with UseGateways", u)
		}
	}
	if len(users) != 6 {
		t.Errorf("%d gateways connected; want 6", len(users))
	}
	assets := map[string]bool{}
	testutil.Eventually(t, 5*time.Second, 0, func() bool {
		for _, m := range get() {
			if kind(m.topic) == "telemetry" {
				assets[strings.TrimSuffix(m.topic, "/telemetry")] = true
			}
		}
		return len(assets) == len(creds)
	}, "telemetry from all %d assets (got %v)", len(creds), testutil.Lazy(func() any { return len(assets) }))
	if !regexp.MustCompile(`(?m)^simulate: 1s sent=\d+ \d+ msg/s \d+ points/s errors=0$`).Match(progress.Bytes()) {
		t.Errorf("no per-second progress line in %q", progress.String())
	}
}

func TestRun_Failure(t *testing.T) {
	_, creds := fleet(t, 1, 0)
	f := func(opts Options, wantErr string) {
		t.Helper()
		_, err := Run(context.Background(), opts)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("unexpected error; got %v; want one containing %q", err, wantErr)
		}
	}
	f(Options{}, "no device credentials")
	f(Options{Credentials: creds, QoS: 3}, "bad options")
	f(Options{Credentials: creds, Intervals: true, IntervalScale: -1}, "bad options")
	f(Options{Credentials: creds, Hold: -time.Second}, "bad options")
	// Nothing listens on port 1 of loopback.
	f(Options{Credentials: creds, Broker: "tcp://127.0.0.1:1", Connections: 2, Duration: 20 * time.Second}, "cannot connect any of 2 devices")
}

func TestRun_Cancel(t *testing.T) {
	broker, _ := startBroker(t)
	_, creds := fleet(t, 2, 0)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	st, err := Run(ctx, Options{Broker: broker, Credentials: creds, Connections: 3, QoS: 1})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if d := time.Since(start); d > 10*time.Second || st.Sent == 0 {
		t.Errorf("run took %s after cancel, sent %d", d, st.Sent)
	}
}

// With Lifecycle, planned and decommissioned assets say nothing, faulty
// ones report their fault, and an asset installed during the run starts
// publishing, announcing itself online first.
func TestRun_FollowsLifecycle(t *testing.T) {
	broker, rec := startBroker(t)
	get := subscribe(t, broker)
	reg, creds := fleet(t, 3, 0)
	var mu sync.Mutex
	states := map[string]lifecycle.State{}
	for i, c := range creds {
		st := lifecycle.Operational
		switch i % 5 {
		case 0:
			st = lifecycle.Planned
		case 1:
			st = lifecycle.Decommissioned
		case 2:
			st = lifecycle.Faulty
		}
		states[c.Username] = st
	}
	var late, gone registry.Credential // planned, installed during the run; operational, decommissioned during it
	for _, c := range creds {
		if states[c.Username] == lifecycle.Planned && late.Site == "" {
			late = c
		}
		if states[c.Username] == lifecycle.Operational && !strings.HasPrefix(c.Asset, "gw-") && gone.Site == "" {
			gone = c
		}
	}
	stateOf := func(site, asset string) lifecycle.State {
		mu.Lock()
		defer mu.Unlock()
		return states[site+"/"+asset]
	}
	// waitFor polls cond for up to 10 s (these run beside Run, off the
	// test goroutine, so they report rather than stop the test).
	waitFor := func(cond func() bool) bool {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if cond() {
				return true
			}
		}
		return false
	}
	installed := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		defer cancel()
		// Install the late asset once the others have published a while.
		if !waitFor(func() bool { return len(get()) > 100 }) {
			t.Error("the fleet did not publish")
		}
		mu.Lock()
		states[late.Username] = lifecycle.Installed
		states[gone.Username] = lifecycle.Decommissioned
		mu.Unlock()
		close(installed)
		if !waitFor(func() bool {
			for _, m := range get() {
				if m.topic == "polis/v1/"+late.Username+"/telemetry" {
					return true
				}
			}
			return false
		}) {
			t.Error("no telemetry from the asset installed during the run")
		}
	}()
	st, err := Run(ctx, Options{Broker: broker, Credentials: creds, Registry: reg, QoS: 1, Rate: 500, Duration: 30 * time.Second,
		UseGateways: true, Lifecycle: stateOf})
	if err != nil || st.Errors != 0 {
		t.Fatalf("run: %+v, %v", st, err)
	}
	<-installed
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
		for _, m := range get() {
			if m.topic == "polis/v1/"+late.Username+"/status" && string(m.payload) == "offline" {
				return true
			}
		}
		return false
	}, "the late asset says offline at the end")
	seen := map[string][]received{}
	for _, m := range get() {
		u := strings.Join(strings.Split(m.topic, "/")[2:4], "/")
		seen[u] = append(seen[u], m)
	}
	connected := rec.snapshot()
	for _, c := range creds {
		msgs := seen[c.Username]
		switch st := states[c.Username]; {
		case c == gone:
			// It said offline when it left, and nothing after.
			if len(msgs) < 2 {
				t.Errorf("%s decommissioned during the run: %d messages; want some, then offline", c.Username, len(msgs))
			} else if last := msgs[len(msgs)-1]; kind(last.topic) != "status" || string(last.payload) != "offline" {
				t.Errorf("%s decommissioned during the run: last message %s %s; want status offline", c.Username, last.topic, last.payload)
			}
		case c == late:
			if len(msgs) == 0 || kind(msgs[0].topic) != "status" || string(msgs[0].payload) != "online" {
				t.Errorf("%s installed during the run: first message %v; want status online", c.Username, msgs)
			}
		case st == lifecycle.Planned || st == lifecycle.Decommissioned:
			if len(msgs) > 0 {
				t.Errorf("%s is %s but published %d messages, e.g. %s %s", c.Username, st, len(msgs), msgs[0].topic, msgs[0].payload)
			}
			if connected[c.Username] > 0 {
				t.Errorf("%s is %s but logged in (the broker records a login as online)", c.Username, st)
			}
		default:
			var faults, telemetry, events int
			for _, m := range msgs {
				switch kind(m.topic) {
				case "telemetry":
					telemetry++
					var v struct{ M map[string]float64 }
					if err := json.Unmarshal(m.payload, &v); err != nil {
						t.Fatal(err)
					}
					if f, ok := v.M["fault"]; ok && f != map[bool]float64{true: 1, false: 0}[st == lifecycle.Faulty] {
						t.Fatalf("%s (%s) reported fault = %v", c.Username, st, f)
					} else if ok && f == 1 {
						faults++
					}
				case "event":
					if strings.Contains(string(m.payload), `"type":"fault"`) {
						events++
					}
				}
			}
			if telemetry == 0 {
				t.Errorf("%s is %s but sent no telemetry", c.Username, st)
			}
			if st == lifecycle.Faulty && (faults != telemetry || events != 1) {
				t.Errorf("%s is faulty: fault = 1 in %d of %d samples, %d fault events; want all, and one event", c.Username, faults, telemetry, events)
			}
			if st == lifecycle.Operational && events != 0 {
				t.Errorf("%s is operational but sent %d fault events", c.Username, events)
			}
		}
	}
}

// A fleet with nothing on site sends nothing and waits, rather than spin.
func TestRun_AllSilent(t *testing.T) {
	broker, _ := startBroker(t)
	get := subscribe(t, broker)
	_, creds := fleet(t, 2, 0)
	st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, Duration: 1200 * time.Millisecond,
		Lifecycle: func(string, string) lifecycle.State { return lifecycle.Planned }})
	if err != nil || st.Sent != 0 || st.Errors != 0 {
		t.Fatalf("silent fleet: %+v, %v", st, err)
	}
	if msgs := get(); len(msgs) != 0 {
		t.Fatalf("a silent fleet published %d messages, e.g. %s", len(msgs), msgs[0].topic)
	}
}
