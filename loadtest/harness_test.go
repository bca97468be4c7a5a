package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
)

// lineWriter calls f with each line written to it (Progress writes whole
// lines, from more than one goroutine).
type lineWriter struct {
	mu  sync.Mutex
	buf bytes.Buffer
	f   func(line string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	for _, l := range strings.Split(strings.TrimSuffix(string(p), "\n"), "\n") {
		if w.f != nil {
			w.f(l)
		}
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// With Intervals each device reports once per its (scaled) interval: no
// more than the slots that fit in the run, however fast it could go
// (Rate 0), and the devices that report often more than the others.
func TestRun_Intervals(t *testing.T) {
	broker, rec := startBroker(t)
	reg, creds := fleet(t, 3, 1)
	const (
		scale = 0.02 // a minute is 1.2 s
		run   = 4 * time.Second
	)
	progress := &lineWriter{}
	opts := Options{
		Broker: broker, Credentials: creds, Registry: reg, QoS: 1, Duration: run,
		Intervals: true, IntervalScale: scale, Seed: 3, Progress: progress,
	}
	st, err := Run(context.Background(), opts)
	if err != nil || st.Errors != 0 || st.Sent == 0 || st.Acked != st.Sent {
		t.Fatalf("run: %+v, %v", st, err)
	}
	// Every publish was acknowledged, so the broker has had them all.
	telemetry := map[string]int{}
	data := rec.data()
	for _, p := range data {
		if kind(p.topic) == "telemetry" {
			telemetry[strings.TrimSuffix(strings.TrimPrefix(p.topic, "polis/v1/"), "/telemetry")]++
		}
	}
	if uint64(len(data)) != st.Sent {
		t.Errorf("the broker has %d telemetry and event messages; Run sent %d", len(data), st.Sent)
	}
	byType := map[string][]int{}
	for _, c := range creds {
		typ := assetType(reg, c)
		iv := scaledInterval(typ, scale)
		n := telemetry[c.Username]
		// At most one report per slot of the run, whatever the phase.
		if most := int(run/iv) + 1; n > most {
			t.Errorf("%s (%s, every %s) reported %d times in %s; want at most %d", c.Username, typ, iv, n, run, most)
		}
		// Its first slot is within its first interval, well inside the run.
		if iv <= run/3 && n == 0 {
			t.Errorf("%s (%s, every %s) did not report in %s", c.Username, typ, iv, run)
		}
		byType[typ] = append(byType[typ], n)
	}
	mean := func(typ string) float64 {
		sum := 0
		for _, n := range byType[typ] {
			sum += n
		}
		return float64(sum) / float64(len(byType[typ]))
	}
	if len(byType["evc"]) == 0 || len(byType["showcase"]) == 0 {
		t.Fatalf("the fleet has no chargers or showcases: %v", byType)
	}
	if mean("evc") <= 2*mean("showcase") {
		t.Errorf("chargers (every 30 s) reported %.1f times each, showcases (every 5 min) %.1f", mean("evc"), mean("showcase"))
	}
	want := fmt.Sprintf("at their intervals, %.0f msg/s", RealisticRate(opts))
	if !regexp.MustCompile(`(?m)^simulate: publishing \d+ devices over \d+ connections ` + regexp.QuoteMeta(want) + `$`).MatchString(progress.String()) {
		t.Errorf("no publishing line ending %q in %q", want, progress.String())
	}
	if !regexp.MustCompile(`(?m)^simulate: 1s sent=\d+ \d+ msg/s \d+ points/s errors=0 target=\d+ msg/s$`).MatchString(progress.String()) {
		t.Errorf("no per-second progress line with the target in %q", progress.String())
	}
}

// With Intervals and a Rate below the fleet's, Rate caps the total and
// the run says so.
func TestRun_IntervalsCapped(t *testing.T) {
	broker, _ := startBroker(t)
	_, creds := fleet(t, 3, 0)
	progress := &lineWriter{}
	st, err := Run(context.Background(), Options{
		Broker: broker, Credentials: creds, Duration: 1500 * time.Millisecond, Rate: 20,
		Intervals: true, IntervalScale: 0.001, Progress: progress,
	})
	if err != nil || st.Errors != 0 {
		t.Fatalf("run: %+v, %v", st, err)
	}
	// 1.5 s at 20 msg/s, the 100 ms burst, and the events that ride
	// with a telemetry message.
	if st.Sent-st.Events > 40 || st.Sent == 0 {
		t.Errorf("sent %d telemetry messages in 1.5 s at 20 msg/s", st.Sent-st.Events)
	}
	if !strings.Contains(progress.String(), "simulate: the rate cap of 20 msg/s is below the fleet's") {
		t.Errorf("the run does not say Rate caps it: %q", progress.String())
	}
}

// Hold keeps every connection open and silent, and says when it starts
// and ends; a parent process reads those lines.
func TestRun_Hold(t *testing.T) {
	broker, rec := startBroker(t)
	_, creds := fleet(t, 2, 0)
	const hold = time.Second
	var (
		mu                  sync.Mutex
		holdAt              time.Time
		atHold, atPublish   int // data messages the broker had then
		connected, holdConn int
	)
	progress := &lineWriter{f: func(l string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(l, "simulate: holding "):
			holdAt = time.Now()
			atHold = len(rec.data())
			connected = len(rec.snapshot())
			fmt.Sscanf(l, "simulate: holding %d connections", &holdConn)
		case strings.HasPrefix(l, "simulate: publishing "):
			atPublish = len(rec.data())
		}
	}}
	st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, QoS: 1, Messages: 40,
		Hold: hold, Progress: progress})
	if err != nil || st.Sent != 40 || st.Errors != 0 {
		t.Fatalf("run: %+v, %v", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if holdAt.IsZero() || !strings.Contains(progress.String(), "simulate: holding "+fmt.Sprint(len(creds))+" connections for 1s\n") {
		t.Fatalf("no hold line in %q", progress.String())
	}
	if holdConn != len(creds) || connected != len(creds) || st.Connections != len(creds) {
		t.Errorf("hold line says %d connections, the broker had %d, Stats %d; want all %d", holdConn, connected, st.Connections, len(creds))
	}
	if atHold != 0 || atPublish != 0 {
		t.Errorf("the broker had %d data messages when the hold began and %d when publishing began; want none", atHold, atPublish)
	}
	data := rec.data()
	if len(data) == 0 {
		t.Fatal("nothing published after the hold")
	}
	if first := data[0].at; first.Sub(holdAt) < hold {
		t.Errorf("first data message %s after the hold began; want none within the %s hold", first.Sub(holdAt), hold)
	}
}

// A run cancelled during its hold ends without publishing.
func TestRun_HoldCancelled(t *testing.T) {
	broker, rec := startBroker(t)
	_, creds := fleet(t, 1, 0)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	progress := &lineWriter{f: func(l string) {
		if strings.HasPrefix(l, "simulate: holding ") {
			cancel()
		}
	}}
	// A hold that were not cancelled would outlast the test's timeout.
	st, err := Run(ctx, Options{Broker: broker, Credentials: creds, Hold: time.Hour, Progress: progress})
	if err != nil || st.Sent != 0 {
		t.Fatalf("run: %+v, %v", st, err)
	}
	if n := len(rec.data()); n != 0 {
		t.Errorf("%d data messages after a cancelled hold", n)
	}
	if strings.Contains(progress.String(), "simulate: publishing") {
		t.Errorf("a cancelled hold says it publishes: %q", progress.String())
	}
}

// Connections are dialled from the source addresses in turn, as the
// broker sees them.
func TestRun_SourceAddrs(t *testing.T) {
	a, b := netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")
	_, creds := fleet(t, 3, 0)
	for _, tc := range []struct {
		name     string
		gateways bool
		conns    int
	}{
		{"own logins", false, len(creds)},
		{"gateways", true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			broker, rec := startBroker(t)
			st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, UseGateways: tc.gateways,
				QoS: 1, Messages: 30, SourceAddrs: []netip.Addr{a, b}})
			if err != nil || st.Errors != 0 || st.Connections != tc.conns {
				t.Fatalf("run: %+v, %v", st, err)
			}
			got := rec.remoteHosts(t)
			want := map[string]int{a.String(): (tc.conns + 1) / 2, b.String(): tc.conns / 2}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("connections by source address %v; want %v", got, want)
			}
		})
	}
}

// emfileBrokerEnv tells TestRun_TooManyOpenFiles it runs as the child.
const emfileBrokerEnv = "LOADTEST_EMFILE_BROKER"

// A simulator that runs out of open files says so, and what to do: the
// test runs itself as a child process with a low limit (the broker stays
// in this one, out of the limit's way).
func TestRun_TooManyOpenFiles(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts the open files in /proc/self/fd")
	}
	if broker := os.Getenv(emfileBrokerEnv); broker != "" {
		tooManyFilesChild(t, broker)
		return
	}
	broker, _ := startBroker(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestRun_TooManyOpenFiles$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), emfileBrokerEnv+"="+broker)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	for _, want := range []string{
		"connections need more open files than this process may have (ulimit -n ",
		"simulate: too many open files (ulimit -n ",
		"raise ulimit -n or split the fleet over several processes",
	} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("the child does not say %q:\n%s", want, out)
		}
	}
}

func tooManyFilesChild(t *testing.T, broker string) {
	_, creds := fleet(t, 2, 0)
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	// Room for a few connections, not for the fleet's.
	lim := syscall.Rlimit{Cur: uint64(len(fds) + 4), Max: 0}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim.Max = old.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	defer syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old)
	st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, Messages: 10, Progress: os.Stdout})
	fmt.Printf("child: %+v, %v\n", st, err)
	if st.Errors == 0 {
		t.Errorf("%d connections with room for a few: no errors", len(creds))
	}
}

// With Intervals a fleet with nothing on site asks where each device
// stands once per its interval, rather than spin.
func TestRun_IntervalsAllSilent(t *testing.T) {
	broker, rec := startBroker(t)
	_, creds := fleet(t, 2, 0)
	var asked atomic.Int64
	const scale = 0.01 // the shortest interval, the chargers', is 300 ms
	r, err := newRunner(Options{Broker: broker, Credentials: creds, Duration: 1200 * time.Millisecond,
		Intervals: true, IntervalScale: scale,
		Lifecycle: func(string, string) lifecycle.State { asked.Add(1); return lifecycle.Planned }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := r.run(context.Background())
	if err != nil || st.Sent != 0 || st.Errors != 0 {
		t.Fatalf("silent fleet: %+v, %v", st, err)
	}
	if n := len(rec.data()); n != 0 {
		t.Fatalf("a silent fleet published %d messages", n)
	}
	// Each device: at connect, and once per interval of the run (at most
	// five for the chargers), with room to spare; a spinning worker asks
	// millions of times.
	if n, most := asked.Load(), int64(20*len(creds)); n > most || n < int64(len(creds)) {
		t.Errorf("the lifecycle was asked %d times for %d devices in 1.2 s; want %d to %d", n, len(creds), len(creds), most)
	}
	// And the workers woke about as often: when a device was due.
	if n, most := r.wakes.Load(), uint64(20*len(creds)); n > most || n == 0 {
		t.Errorf("the workers woke %d times for %d devices in 1.2 s; want 1 to %d", n, len(creds), most)
	}
}

// A run with a Gate publishes nothing until the gate opens, then publishes.
func TestRun_Gate(t *testing.T) {
	broker, rec := startBroker(t)
	_, creds := fleet(t, 2, 0)
	open := make(chan struct{})
	var atOpen atomic.Int64
	atOpen.Store(-1)
	gate := func(ctx context.Context) error {
		// Let the gate stay shut a while: nothing may be published meanwhile.
		time.Sleep(500 * time.Millisecond)
		atOpen.Store(int64(len(rec.data())))
		close(open)
		return nil
	}
	progress := &lineWriter{}
	st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, QoS: 1, Messages: 30,
		Gate: gate, Progress: progress})
	if err != nil || st.Sent != 30 || st.Errors != 0 {
		t.Fatalf("run: %+v, %v", st, err)
	}
	<-open
	if n := atOpen.Load(); n != 0 {
		t.Errorf("the broker had %d data messages when the gate opened; want none", n)
	}
	if !strings.Contains(progress.String(), "simulate: holding "+fmt.Sprint(len(creds))+" connections until the start signal\n") {
		t.Errorf("no holding line in %q", progress.String())
	}
	if len(rec.data()) == 0 {
		t.Error("nothing published after the gate opened")
	}

	// A gate that fails ends the run with its error, publishing nothing.
	broker2, rec2 := startBroker(t)
	_, err = Run(context.Background(), Options{Broker: broker2, Credentials: creds, QoS: 1, Messages: 5,
		Gate: func(context.Context) error { return errors.New("no signal") }})
	if err == nil || !strings.Contains(err.Error(), "no signal") {
		t.Errorf("failed gate: %v", err)
	}
	if n := len(rec2.data()); n != 0 {
		t.Errorf("%d data messages after a failed gate", n)
	}
}
