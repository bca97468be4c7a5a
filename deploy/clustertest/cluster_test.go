package clustertest

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

// partitions of every site-keyed topic: four per host.
const partitions = 12

// cluster is the shared Kafka and ClickHouse and the three polis hosts.
type cluster struct {
	t       *testing.T
	net     *hostNet
	dir     string
	bin     string
	kafka   string // the shared cluster, on the bridge
	chProxy string // ClickHouse as the hosts reach it, on the bridge
	db      string
	conn    driver.Conn
	regPath string
	sites   []string
	creds   []registry.Credential
	adm     *kadm.Client
	http    *http.Client
	hosts   []*host
}

// host is one `polis serve` process in its namespace.
type host struct {
	i    int
	cmd  *exec.Cmd
	done chan struct{}
	err  error // cmd.Wait's, once done is closed
	log  string
}

func (h *host) api() string  { return "http://" + net.JoinHostPort(hostIP(h.i), "8080") }
func (h *host) mqtt() string { return net.JoinHostPort(hostIP(h.i), "1883") }

func (h *host) exited() bool {
	select {
	case <-h.done:
		return true
	default:
		return false
	}
}

func (h *host) logTail() string {
	b, _ := os.ReadFile(h.log)
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// newCluster makes the network, starts the shared Kafka (kfake, a process
// of its own on the bridge), exposes the test binary's ClickHouse on the
// bridge, and starts the three hosts one after the other, each ready
// (/readyz) before the next.
func newCluster(t *testing.T) *cluster {
	n := newHostNet(t)
	c := &cluster{t: t, net: n, dir: t.TempDir(), bin: polisBinary(t),
		http: &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}}
	addr := chtest.Shared(t)
	c.db, c.conn = chtest.Database(t, addr), chtest.Conn(t, addr)
	c.chProxy = forward(t, net.JoinHostPort(bridgeIP, "0"), addr)
	c.kafka = startKfake(t, c.dir)
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.kafka))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	c.adm = kadm.NewClient(cl)

	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: 24, Coworking: 2, Seed: 15})
	if err != nil {
		t.Fatal(err)
	}
	c.regPath = filepath.Join(c.dir, "registry.json")
	if err := reg.Save(c.regPath); err != nil {
		t.Fatal(err)
	}
	for _, s := range reg.Sites() {
		c.sites = append(c.sites, s.ID)
	}
	c.creds = creds
	for i := range hosts {
		c.hosts = append(c.hosts, c.startHost(i))
	}
	c.waitGroups(nil)
	return c
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// polisBinary builds cmd/polis once per test binary.
func polisBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "polis-clustertest-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "polis")
		if out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/polis").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// startKfake runs the shared cluster in a child process (this test binary,
// see TestMain) listening on the bridge, and stops it when the test ends.
func startKfake(t *testing.T, dir string) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envKfake+"="+net.JoinHostPort(bridgeIP, "0"))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "kfake.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() {
		stdin.Close()
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- l
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case l := <-line:
		addr, ok := strings.CutPrefix(strings.TrimSpace(l), "ready ")
		if !ok {
			b, _ := os.ReadFile(filepath.Join(dir, "kfake.log"))
			t.Fatalf("kfake did not start: %q\n%s", l, b)
		}
		return addr
	case <-time.After(30 * time.Second):
		t.Fatal("kfake not ready within 30 s")
	}
	return ""
}

// forward listens on listen and copies every connection to target: the
// test binary's ClickHouse listens on loopback, which the hosts' namespaces
// do not share.
func forward(t *testing.T, listen, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	var wg sync.WaitGroup
	track := func(c net.Conn, add bool) bool {
		mu.Lock()
		defer mu.Unlock()
		if add && conns == nil {
			return false
		}
		if add {
			conns[c] = true
		} else if conns != nil {
			delete(conns, c)
		}
		return true
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.DialTimeout("tcp", target, 5*time.Second)
			if err != nil {
				c.Close()
				continue
			}
			if !track(c, true) || !track(s, true) {
				c.Close()
				s.Close()
				return
			}
			pipe := func(dst, src net.Conn) {
				_, _ = io.Copy(dst, src)
				dst.Close()
				src.Close()
				track(dst, false)
				track(src, false)
			}
			wg.Go(func() { pipe(s, c) })
			wg.Go(func() { pipe(c, s) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		conns = nil
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// startHost runs `polis serve` in host i's namespace and waits for its
// /readyz. Every flag is one an operator would give (deploy/k8s/polis.yaml).
func (c *cluster) startHost(i int) *host {
	t := c.t
	h := &host{i: i, done: make(chan struct{}), log: filepath.Join(c.dir, fmt.Sprintf("polis-%d.log", i+1))}
	data := filepath.Join(c.dir, fmt.Sprintf("host-%d", i+1))
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(h.log)
	if err != nil {
		t.Fatal(err)
	}
	api := net.JoinHostPort(hostIP(i), "8080")
	// ip netns exec enters the namespace and execs polis: the process is
	// polis itself, so SIGKILL reaches it.
	h.cmd = exec.Command("ip", "netns", "exec", nsName(i), c.bin, "serve",
		"--kafka-brokers", c.kafka, "--kafka-partitions", fmt.Sprint(partitions),
		"--clickhouse", c.chProxy, "--database", c.db,
		"--mqtt-addr", h.mqtt(), "--http-addr", api, "--http-advertise", api,
		"--registry", c.regPath, "--data-dir", data,
		"--writer-max-wait", "200ms", "--twin-snapshot-every", "2s", "--log-level", "info")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { h.err = h.cmd.Wait(); logf.Close(); close(h.done) }()
	t.Cleanup(func() { c.stopHost(h) })
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := c.http.Get(h.api() + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				t.Logf("host %d (%s, pid %d) ready", i+1, hostIP(i), h.cmd.Process.Pid)
				return h
			}
		}
		if h.exited() {
			t.Fatalf("host %d: polis serve exited at start: %v\n%s", i+1, h.err, h.logTail())
		}
		if time.Now().After(deadline) {
			t.Fatalf("host %d: not ready within 2 min\n%s", i+1, h.logTail())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// stopHost stops a host as an orchestrator does (SIGTERM, then SIGKILL
// after the grace period).
func (c *cluster) stopHost(h *host) {
	if h.exited() {
		return
	}
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-h.done:
	case <-time.After(90 * time.Second):
		_ = h.cmd.Process.Kill()
		<-h.done
		c.t.Errorf("host %d did not stop within 90 s of SIGTERM", h.i+1)
	}
}

// kill sends SIGKILL to host i and waits until it is gone.
func (c *cluster) kill(i int) {
	h := c.hosts[i]
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		c.t.Fatal(err)
	}
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		c.t.Fatalf("host %d did not die", i+1)
	}
}

// owners describes a consumer group: the address of each member and, for
// each partition of the telemetry topic, the address of its owner.
func (c *cluster) owners(group string) (members []string, byPart map[int32]string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gs, err := c.adm.DescribeGroups(ctx, group)
	if err != nil {
		return nil, nil, err
	}
	g, ok := gs[group]
	if !ok || g.Err != nil {
		return nil, nil, fmt.Errorf("group %s: %v", group, g.Err)
	}
	byPart = map[int32]string{}
	for _, m := range g.Members {
		h, _, _ := net.SplitHostPort(strings.TrimPrefix(m.ClientHost, "/"))
		members = append(members, h)
		a, ok := m.Assigned.AsConsumer()
		if !ok {
			continue
		}
		for _, tp := range a.Topics {
			if tp.Topic == kafka.TopicTelemetry {
				for _, p := range tp.Partitions {
					byPart[p] = h
				}
			}
		}
	}
	slices.Sort(members)
	return members, byPart, nil
}

// waitGroups waits until the storage writers and the twins of the live
// hosts (all but those in gone) are the members of their groups, one each,
// and own every partition between them. bounded: 3 minutes, which covers
// a dead member's session timeout (app.DefaultKafkaSessionTimeout, 10 s)
// and a rebalance.
func (c *cluster) waitGroups(gone []int) {
	c.t.Helper()
	var want []string
	for i := range hosts {
		if !slices.Contains(gone, i) {
			want = append(want, hostIP(i))
		}
	}
	state := map[string]string{}
	testutil.Eventually(c.t, 3*time.Minute, 500*time.Millisecond, func() bool {
		ok := true
		for _, g := range []string{kafka.GroupStorage, kafka.GroupTwin} {
			members, byPart, err := c.owners(g)
			state[g] = fmt.Sprintf("members %v, %d partitions owned %v (%v)", members, len(byPart), byPart, err)
			if err != nil || !slices.Equal(members, want) || len(byPart) != partitions {
				ok = false
				continue
			}
			for _, owner := range byPart {
				if !slices.Contains(want, owner) {
					ok = false
				}
			}
		}
		return ok
	}, "groups storage and twin made of %v, owning all %d partitions: %v", want, partitions, testutil.Lazy(func() any { return state }))
	c.t.Logf("groups storage and twin: members %v, every partition owned (%s)", want, state[kafka.GroupTwin])
}

// apiGet gets url from a host's API, following a redirect to the site's
// owner, and decodes the answer into v. It returns the address that
// answered, which must be one of live.
func (c *cluster) apiGet(url string, live []int, v any) (string, error) {
	resp, err := c.http.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 300))
		return "", fmt.Errorf("%s: %s %s", url, resp.Status, b)
	}
	by := resp.Request.URL.Host
	if !slices.ContainsFunc(live, func(i int) bool { return by == net.JoinHostPort(hostIP(i), "8080") }) {
		return "", fmt.Errorf("%s answered by %s, which is not a live host", url, by)
	}
	return by, json.NewDecoder(resp.Body).Decode(v)
}

// checkSites asks every site of the registry from each live host: each
// answers, itself or through a redirect to the site's owner, and the owner
// is a live host.
func (c *cluster) checkSites(live []int) {
	t := c.t
	t.Helper()
	served := map[string]int{}
	var last error
	testutil.Eventually(t, 90*time.Second, 500*time.Millisecond, func() bool {
		clear(served)
		for _, i := range live {
			for _, s := range c.sites {
				var site struct {
					ID string `json:"id"`
				}
				by, err := c.apiGet(c.hosts[i].api()+"/api/v1/sites/"+s, live, &site)
				if err == nil && site.ID != s {
					err = fmt.Errorf("asked for %s, got %q", s, site.ID)
				}
				if last = err; err != nil {
					return false
				}
				served[by]++
			}
		}
		return true
	}, "every site answered by a live host through each of %v: %v", live, testutil.Lazy(func() any { return last }))
	t.Logf("twin: all %d sites answered through each of the %d live hosts; answers by owner %v", len(c.sites), len(live), served)
}

// checkTwinValues checks, once the load has stopped, that the twin of every
// device of the load shows the newest point ClickHouse has for it: the
// hosts that took a site over restored its state and applied what followed.
func (c *cluster) checkTwinValues(live []int, l *load) {
	t := c.t
	t.Helper()
	newest := l.newestStored(c)
	var last error
	testutil.Eventually(t, 90*time.Second, 500*time.Millisecond, func() bool {
		for dev, want := range newest {
			var a struct {
				Metrics map[string]struct{ Value float64 } `json:"metrics"`
			}
			site, asset, _ := strings.Cut(dev, "/")
			_, err := c.apiGet(c.hosts[live[0]].api()+"/api/v1/sites/"+site+"/assets/"+asset, live, &a)
			if err == nil && a.Metrics[metric].Value != float64(want) {
				err = fmt.Errorf("twin of %s shows %s %v; ClickHouse's newest is %d", dev, metric, a.Metrics[metric].Value, want)
			}
			if last = err; err != nil {
				return false
			}
		}
		return true
	}, "the twin of every loaded device shows its newest stored point: %v", testutil.Lazy(func() any { return last }))
	t.Logf("twin: the %d loaded devices show their newest stored point", len(newest))
}

// probe publishes one QoS 1 message with mosquitto_pub from inside host
// i's namespace to that host's own broker, bounded by timeout: whether it
// was acknowledged, and mosquitto_pub's debug output.
func (c *cluster) probe(i int, cred registry.Credential, id int64, timeout time.Duration) (acked bool, out string) {
	c.t.Helper()
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		c.t.Fatal("mosquitto_pub not found: install Debian's mosquitto-clients (make deps does)")
	}
	cmd := execIn(i, timeout, bin, "-d", "-h", hostIP(i), "-p", "1883", "-i", cred.Username, "-u", cred.Username, "-P", cred.Password,
		"-q", "1", "-t", topicOf(cred), "-m", payload(id))
	b, err := cmd.CombinedOutput()
	return err == nil && strings.Contains(string(b), "received PUBACK"), string(b)
}

// readyzFromInside asks host i's /readyz from its own namespace (bash's
// /dev/tcp, no client needed there) and returns the status line.
func (c *cluster) readyzFromInside(i int) string {
	script := fmt.Sprintf(`exec 3<>/dev/tcp/%s/8080 && printf 'GET /readyz HTTP/1.0\r\n\r\n' >&3 && head -1 <&3`, hostIP(i))
	out, err := execIn(i, 10*time.Second, "bash", "-c", script).CombinedOutput()
	if err != nil {
		return fmt.Sprintf("%v %s", err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestCluster_HostKilled(t *testing.T) {
	const victim = 1
	c := newCluster(t)
	l := c.startLoad(c.loadDevices())
	l.waitAckedByEach(c, 100)

	before := l.devicesOn(victim)
	killed := time.Now()
	c.kill(victim)
	t.Logf("host %d (%s) killed with SIGKILL; %d devices were connected to it", victim+1, hostIP(victim), len(before))

	c.waitGroups([]int{victim})
	t.Logf("takeover %s after the kill", time.Since(killed).Round(100*time.Millisecond))
	l.waitMoved(before, victim, killed)
	l.waitMore(300)
	c.checkSites([]int{0, 2})
	l.halt()
	l.verifyExactlyOnce(c)
	c.checkTwinValues([]int{0, 2}, l)
}

func TestCluster_HostCutOff(t *testing.T) {
	const victim = 2
	c := newCluster(t)
	devices := c.loadDevices()
	probeDev := c.probeDevice(devices)
	// The probe works while the host is connected: it is the partition
	// that stops the acknowledgement, not the probe.
	if ok, out := c.probe(victim, probeDev, probeID, 30*time.Second); !ok {
		t.Fatalf("a publish to host %d before the cut was not acknowledged:\n%s", victim+1, out)
	}
	l := c.startLoad(devices)
	l.sentProbe(probeID, true)
	l.waitAckedByEach(c, 100)

	before := l.devicesOn(victim)
	cut := time.Now()
	c.net.cut(victim)
	t.Logf("host %d (%s) cut off the network; %d devices were connected to it", victim+1, hostIP(victim), len(before))

	// The host still runs and its broker still takes connections from its
	// own namespace, but Kafka is out of reach: what it is given now it
	// must not acknowledge.
	began := time.Now()
	acked, out := c.probe(victim, probeDev, probeID+1, 45*time.Second)
	l.sentProbe(probeID+1, acked)
	if acked {
		t.Fatalf("host %d acknowledged a publish while cut off from Kafka:\n%s", victim+1, out)
	}
	what := "no PUBACK; mosquitto_pub killed at the bound"
	if strings.Contains(out, "received CONNACK") && !c.hosts[victim].exited() {
		what = "CONNACK, then no PUBACK"
	}
	if strings.Contains(out, "rror") || strings.Contains(out, "onnection lost") {
		what += "; the connection was closed"
	}
	t.Logf("publish to the cut-off host: not acknowledged (%s) after %s", what, time.Since(began).Round(100*time.Millisecond))
	// Its readiness says so, for a load balancer that can still reach it.
	var status string
	testutil.Eventually(t, 30*time.Second, time.Second, func() bool {
		status = c.readyzFromInside(victim)
		return strings.Contains(status, " 503 ")
	}, "/readyz of the cut-off host, asked from its own namespace, answers 503: %v", testutil.Lazy(func() any { return status }))
	t.Logf("/readyz of the cut-off host: %s", status)

	c.waitGroups([]int{victim})
	t.Logf("takeover %s after the cut", time.Since(cut).Round(100*time.Millisecond))
	l.waitMoved(before, victim, cut)
	l.waitMore(300)
	c.checkSites([]int{0, 1})

	c.net.heal(victim)
	healed := time.Now()
	l.waitMore(200)
	l.halt()
	// Back on the network, the host rejoins the groups (or, had it given
	// up and exited, the others keep its share).
	live, gone := []int{0, 1, 2}, []int(nil)
	if c.hosts[victim].exited() {
		t.Logf("host %d exited while cut off: %v", victim+1, c.hosts[victim].err)
		live, gone = []int{0, 1}, []int{victim}
	}
	c.waitGroups(gone)
	t.Logf("host %d back on the network; groups settled %s later", victim+1, time.Since(healed).Round(100*time.Millisecond))
	// What the host held when it was cut off (a batch for ClickHouse,
	// records for Kafka) may arrive now: it collapses by identity, and was
	// never acknowledged.
	l.verifyExactlyOnce(c)
	c.checkTwinValues(live, l)
	if n := l.storedCount(c, probeID+1); n > 1 {
		t.Fatalf("the unacknowledged probe is stored %d times", n)
	} else {
		t.Logf("the unacknowledged probe is stored %d time(s) (at most once: it may reach Kafka once the host is back)", n)
	}
}
