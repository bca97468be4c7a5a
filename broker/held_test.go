package broker_test

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/ingest/topic"
	"github.com/polis-platform/polis/twin/registry"
)

var (
	heldConns  = flag.Int("held.conns", 2000, "BenchmarkHeldConnections: device connections to hold")
	heldWindow = flag.Duration("held.window", 10*time.Second, "BenchmarkHeldConnections: how long to measure idle CPU")
	heldRetain = flag.Bool("held.retain", true, "BenchmarkHeldConnections: devices say online retained, as the simulator does")
	heldHeap   = flag.String("held.heapprofile", "", "BenchmarkHeldConnections: write a heap profile here while the devices are held")
)

// heldEnv, set in the environment of the helper process, is the broker
// address its held devices connect to.
const heldEnv = "POLIS_BROKER_HELD_ADDR"

// heldRetainEnv tells the helper process whether its devices' status is
// retained ("1") or not.
const heldRetainEnv = "POLIS_BROKER_HELD_RETAIN"

// BenchmarkHeldConnections measures what a held device connection costs the
// broker: heap and stack (after GC) per connection, and the CPU the broker
// burns at rest per 1,000 connections. Each device does what the simulator
// does (loadtest): connects with a retained "offline" will, says "online"
// (retained, QoS 1) and then stays silent; it also subscribes to its own
// desired state, which the design lets a device do. The devices are held by
// a helper process (TestHeldFleetProcess) so that only the broker's side is
// in this process's memory and CPU time. Run with -benchtime=1x.
func BenchmarkHeldConnections(b *testing.B) {
	for _, c := range []struct {
		name      string
		configure func(*broker.Options)
	}{
		{"polis", func(*broker.Options) {}},
		{"mochi-defaults", func(o *broker.Options) { o.Tuning = broker.MochiDefaults() }},
	} {
		b.Run(c.name, func(b *testing.B) {
			if *heldHeap != "" {
				runtime.MemProfileRate = 1 // every allocation, for a profile per connection
			}
			n := *heldConns
			s := newStackFleet(b, n, nil, c.configure)
			var mem, stack, cpu, total, rss, goroutines float64
			for range b.N {
				m := measureHeld(b, s, n, *heldWindow)
				mem, stack, rss, goroutines = mem+m.bytes, stack+m.stack, rss+m.rss, goroutines+m.goroutines
				cpu, total = cpu+m.cpu, total+m.cpuTotal
			}
			b.ReportMetric(mem/float64(b.N), "B/conn")
			b.ReportMetric(stack/float64(b.N), "stack-B/conn")
			b.ReportMetric(rss/float64(b.N), "rss-B/conn")
			b.ReportMetric(goroutines/float64(b.N), "goroutines/conn")
			b.ReportMetric(cpu/float64(b.N), "idle-cpu-ms/s/kconn")
			b.ReportMetric(total/float64(b.N), "idle-cpu-ms/s")
		})
	}
}

type heldFigures struct {
	bytes      float64 // heap in use + stacks, per connection
	stack      float64 // stacks, per connection
	rss        float64 // resident memory, per connection
	goroutines float64 // per connection
	cpu        float64 // CPU milliseconds per second per 1,000 connections, at rest
	cpuTotal   float64 // CPU milliseconds per second of the whole process, at rest with the devices held
}

// measureHeld has n fleet devices connect and hold, and measures the
// broker's memory and idle CPU with and without them.
func measureHeld(b *testing.B, s *stack, n int, window time.Duration) heldFigures {
	b.Helper()
	b.StopTimer()
	defer b.StartTimer()
	m0 := settledMemory()
	cpu0 := idleCPU(window)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHeldFleetProcess$", "-test.count=1")
	retain := "0"
	if *heldRetain {
		retain = "1"
	}
	cmd.Env = append(os.Environ(), heldEnv+"="+s.broker.Addr(), heldRetainEnv+"="+retain)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatalf("cannot start the process holding the devices: %v", err)
	}
	defer func() {
		in.Close() // the helper disconnects its devices and exits
		_, _ = io.Copy(io.Discard, out)
		if err := cmd.Wait(); err != nil {
			b.Errorf("process holding the devices: %v", err)
		}
	}()
	w := bufio.NewWriter(in)
	for i := range n {
		u := registry.Username(siteA, fleetAsset(i))
		fmt.Fprintf(w, "%s\t%s\n", u, s.secrets[u])
	}
	fmt.Fprintln(w)
	if err := w.Flush(); err != nil {
		b.Fatalf("cannot hand the credentials over: %v", err)
	}
	held := false
	for sc := bufio.NewScanner(out); !held && sc.Scan(); {
		held = sc.Text() == fmt.Sprintf("held %d", n)
	}
	if !held {
		b.Fatal("the helper process did not report its devices held")
	}
	// Every device had its PUBACK: its session, subscription and retained
	// status are in place.
	m1 := settledMemory()
	if *heldHeap != "" {
		writeHeapProfile(b, *heldHeap)
	}
	cpu1 := idleCPU(window)
	return heldFigures{
		bytes:      (float64(m1.heap+m1.stack) - float64(m0.heap+m0.stack)) / float64(n),
		stack:      (float64(m1.stack) - float64(m0.stack)) / float64(n),
		rss:        (float64(m1.rss) - float64(m0.rss)) / float64(n),
		goroutines: float64(m1.goroutines-m0.goroutines) / float64(n),
		cpu:        (cpu1 - cpu0) * 1000 / (float64(n) / 1000),
		cpuTotal:   cpu1 * 1000,
	}
}

// settledMemory returns the heap in use plus goroutine stacks after a full
// collection, the resident set size, and the number of goroutines.
func settledMemory() (mem memFigures) {
	// A collection shrinks a goroutine stack that uses a quarter of it or
	// less by half: a few let the stacks of idle connections settle.
	for range 4 {
		runtime.GC()
	}
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return memFigures{heap: m.HeapInuse, stack: m.StackInuse, rss: residentBytes(), goroutines: runtime.NumGoroutine()}
}

type memFigures struct {
	heap, stack, rss uint64
	goroutines       int
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatalf("cannot write the heap profile: %v", err)
	}
}

// residentBytes reads the resident set size from /proc (0 where there is none).
func residentBytes() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident uint64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * uint64(os.Getpagesize())
}

// idleCPU returns the CPU seconds (user and system) this process used per
// second of wall time over the window.
func idleCPU(window time.Duration) float64 {
	start, t0 := cpuTime(), time.Now()
	time.Sleep(window)
	return (cpuTime() - start).Seconds() / time.Since(t0).Seconds()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestHeldFleetProcess is the helper process of BenchmarkHeldConnections,
// not a test: it reads "username<TAB>secret" lines up to a blank one from
// stdin, connects each as a device does, prints "held N" once all are
// connected, and holds them until stdin closes.
func TestHeldFleetProcess(t *testing.T) {
	addr := os.Getenv(heldEnv)
	if addr == "" {
		t.Skip("the helper process of BenchmarkHeldConnections")
	}
	retain := os.Getenv(heldRetainEnv) != "0"
	sc := bufio.NewScanner(os.Stdin)
	var clients []*rawClient
	for sc.Scan() && sc.Text() != "" {
		user, secret, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			t.Fatalf("bad credential line %q", sc.Text())
		}
		site, asset, _ := strings.Cut(user, "/")
		status := topic.Build(site, asset, topic.Status)
		cl, ack := dialRaw(t, addr, rawConnect{v: 4, id: user, user: user, pass: secret, clean: true, keepalive: 600,
			willTopic: status, willMsg: "offline", willRetain: retain})
		if ack.ReasonCode != 0 {
			t.Fatalf("CONNACK %#x for %s", ack.ReasonCode, user)
		}
		if codes := cl.subscribe(1, map[string]byte{topic.Build(site, asset, topic.Desired): 1}); len(codes) != 1 || codes[0] != 1 {
			t.Fatalf("SUBACK %v for %s", codes, user)
		}
		cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: retain},
			PacketID: 2, TopicName: status, Payload: []byte("online")})
		cl.expect(packets.Puback, 10*time.Second)
		clients = append(clients, cl)
	}
	fmt.Printf("held %d\n", len(clients))
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, cl := range clients {
		cl.disconnect()
	}
}
