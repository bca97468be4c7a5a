package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/twin/registry"
)

// Crashes for real: `polis serve` killed with SIGKILL mid-stream and
// started again on its data, and ClickHouse killed with SIGKILL under the
// platform. Every acknowledged point is then in ClickHouse exactly once,
// in the raw table and in every rollup, and the twin agrees with it.

var (
	polisOnce sync.Once
	polisBin  string
	polisErr  error
)

// polisBinary builds cmd/polis once per test binary.
func polisBinary(t *testing.T) string {
	t.Helper()
	polisOnce.Do(func() {
		dir, err := os.MkdirTemp("", "polis-bin-")
		if err != nil {
			polisErr = err
			return
		}
		polisBin = filepath.Join(dir, "polis")
		out, err := exec.Command("go", "build", "-o", polisBin, "../cmd/polis").CombinedOutput()
		if err != nil {
			polisErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if polisErr != nil {
		t.Fatal(polisErr)
	}
	return polisBin
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// child is one `polis serve` process.
type child struct {
	cmd  *exec.Cmd
	done chan error
}

// startServe runs polis serve with args and waits until /readyz answers 200.
func startServe(t *testing.T, args []string, httpAddr, logPath string) *child {
	t.Helper()
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd := exec.Command(polisBinary(t), append([]string{"serve"}, args...)...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	t.Cleanup(func() { c.stop(t) })
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + httpAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return c
			}
		}
		select {
		case err := <-c.done:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("polis serve exited at start: %v\n%s", err, tail(b))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("polis serve not ready within 90 s\n%s", tail(b))
		}
	}
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// kill sends SIGKILL and waits for the process to be gone.
func (c *child) kill(t *testing.T) {
	t.Helper()
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.done:
	case <-time.After(30 * time.Second):
		t.Fatal("polis serve did not die")
	}
}

func (c *child) stop(t *testing.T) {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(90 * time.Second):
		_ = c.cmd.Process.Kill()
		t.Error("polis serve did not stop on SIGTERM")
	}
}

// fleetLoad is devices publishing QoS 1 telemetry with a unique explicit
// ts each, reconnecting when the broker goes away, and recording what was
// acknowledged.
type fleetLoad struct {
	mu    sync.Mutex
	acked map[[3]string]bool // site, asset, ts (ms)
	stop  chan struct{}
	wg    sync.WaitGroup
}

const pointsPerMessage = 2

func startLoad(t *testing.T, broker string, creds []registry.Credential) *fleetLoad {
	t.Helper()
	l := &fleetLoad{acked: map[[3]string]bool{}, stop: make(chan struct{})}
	base := time.Now().Add(-time.Minute).UnixMilli()
	for _, c := range creds {
		l.wg.Go(func() {
			// Unique per device (site, asset): one millisecond a message.
			ts := base
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				o := paho.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(c.Username).
					SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second).
					SetWriteTimeout(5 * time.Second)
				cl := paho.NewClient(o)
				if tok := cl.Connect(); !tok.WaitTimeout(3*time.Second) || tok.Error() != nil {
					select {
					case <-l.stop:
						return
					case <-time.After(200 * time.Millisecond):
					}
					continue
				}
				topic := fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset)
				for ok := true; ok; {
					select {
					case <-l.stop:
						cl.Disconnect(100)
						return
					default:
					}
					ts++
					tok := cl.Publish(topic, 1, false, fmt.Sprintf(`{"ts":%d,"m":{"temp_c":%d,"power_kw":%d}}`, ts, ts%1000, ts%77))
					if tok.WaitTimeout(5*time.Second) && tok.Error() == nil {
						l.mu.Lock()
						l.acked[[3]string{c.Site, c.Asset, strconv.FormatInt(ts, 10)}] = true
						l.mu.Unlock()
						time.Sleep(2 * time.Millisecond)
						continue
					}
					ok = false // not acknowledged: may or may not be stored
				}
				cl.Disconnect(0)
			}
		})
	}
	t.Cleanup(l.halt)
	return l
}

func (l *fleetLoad) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acked)
}

func (l *fleetLoad) halt() {
	select {
	case <-l.stop:
	default:
		close(l.stop)
	}
	l.wg.Wait()
}

// verifyExactlyOnce checks ClickHouse against what was acknowledged: each
// acknowledged message's points once, no point twice, every rollup equal
// to the raw table.
func verifyExactlyOnce(t *testing.T, e *env, l *fleetLoad) {
	t.Helper()
	acked := map[[3]string]bool{}
	l.mu.Lock()
	for k := range l.acked {
		acked[k] = true
	}
	l.mu.Unlock()
	stored := func() map[[3]string]uint64 {
		rows, err := e.conn.Query(context.Background(), fmt.Sprintf(
			"SELECT site, asset, toString(toUInt64(ts) * 1000 + ts_ms) AS t, count() FROM %s.telemetry FINAL GROUP BY site, asset, t", e.cfg.Database))
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		out := map[[3]string]uint64{}
		for rows.Next() {
			var s, a, ts string
			var n uint64
			if err := rows.Scan(&s, &a, &ts, &n); err != nil {
				t.Fatal(err)
			}
			out[[3]string{s, a, ts}] = n
		}
		return out
	}
	var got map[[3]string]uint64
	var missing, wrong int
	var example string
	testutil.Eventually(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		got = stored()
		missing, wrong, example = 0, 0, ""
		for k := range acked {
			switch got[k] {
			case pointsPerMessage:
			case 0:
				missing++
				example = fmt.Sprint("missing ", k)
			default:
				wrong++
				example = fmt.Sprint(k, " has ", got[k])
			}
		}
		return missing+wrong == 0
	}, "every acknowledged message stored (%d acknowledged, %v stored)", len(acked),
		testutil.Lazy(func() any {
			return fmt.Sprintf("%d; %d missing, %d with a wrong count, e.g. %s", len(got), missing, wrong, example)
		}))
	var total uint64
	for k, n := range got {
		if n != pointsPerMessage {
			t.Fatalf("message %v has %d points stored; want %d", k, n, pointsPerMessage)
		}
		total += n
	}
	if n := e.count(t, "SELECT count() FROM %s.deadletter"); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	t.Logf("%d messages acknowledged, %d stored (the rest were in Kafka but not acknowledged when the process died)", len(acked), len(got))
	for _, table := range []string{"telemetry_1m", "telemetry_1h"} {
		q := "SELECT toUInt64(sum(count)) FROM %s." + table + " FINAL"
		testutil.Eventually(t, time.Minute, 200*time.Millisecond, func() bool { return e.count(t, q) == total },
			"%s counts every stored point once: %v of %d", table, testutil.Lazy(func() any { return e.count(t, q) }), total)
	}
}

// checkTwin compares each loaded asset's twin with the newest stored point.
func checkTwin(t *testing.T, e *env, httpAddr string, creds []registry.Credential) {
	t.Helper()
	for _, c := range creds {
		var want float64
		if err := e.conn.QueryRow(context.Background(), fmt.Sprintf(
			"SELECT argMax(value, (ts, ts_ms, koffset)) FROM %s.telemetry FINAL WHERE site = ? AND asset = ? AND metric = 'temp_c'", e.cfg.Database),
			c.Site, c.Asset).Scan(&want); err != nil {
			t.Fatal(err)
		}
		testutil.Eventually(t, time.Minute, 200*time.Millisecond, func() bool {
			resp, err := http.Get(fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s", httpAddr, c.Site, c.Asset))
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			var a struct {
				Metrics map[string]struct{ Value float64 } `json:"metrics"`
			}
			return json.NewDecoder(resp.Body).Decode(&a) == nil && a.Metrics["temp_c"].Value == want
		}, "the twin of %s/%s shows the newest stored temp_c %v", c.Site, c.Asset, want)
	}
}

func TestCrash_PolisKilledMidStream(t *testing.T) {
	e := newEnv(t)
	token := e.operatorToken(t)
	rules := filepath.Join(e.cfg.DataDir, "rules")
	if err := os.Mkdir(rules, 0o755); err != nil {
		t.Fatal(err)
	}
	// Every loaded device's temp_c is at least 0: an alert per device, open
	// through the crash.
	if err := os.WriteFile(filepath.Join(rules, "crash.yaml"), []byte(`groups:
  - name: crash
    rules:
      - id: a_seen
        expr: last("temp_c") >= 0
        severity: info
        summary: "{{ asset.id }} reports temp_c"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	mqtt, httpAddr, kafkaAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--data-dir", e.cfg.DataDir, "--registry", e.cfg.RegistryPath, "--clickhouse", e.cfg.ClickHouseAddr,
		"--database", e.cfg.Database, "--mqtt-addr", mqtt, "--http-addr", httpAddr, "--kafka-addr", kafkaAddr,
		"--writer-max-wait", "200ms", "--twin-snapshot-every", "1s", "--tokens", e.cfg.TokensPath, "--rules", rules}
	logPath := filepath.Join(e.cfg.DataDir, "polis.log")
	first := startServe(t, args, httpAddr, logPath)
	devices := e.creds[:6]
	l := startLoad(t, mqtt, devices)
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return l.count() >= 600 }, "600 acknowledged messages before the kill")

	// Desired state set through the API just before the crash.
	d := devices[0]
	desiredURL := fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s/desired", httpAddr, d.Site, d.Asset)
	req, _ := http.NewRequest("PATCH", desiredURL, strings.NewReader(`{"setpoint_c":19}`))
	req.Header.Set("If-Match", `"0"`)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PATCH desired: %v %v", err, resp)
	}
	etag := resp.Header.Get("ETag")
	resp.Body.Close()
	firing := func() int {
		resp, err := http.Get("http://" + httpAddr + "/api/v1/alerts?state=firing&rule=a_seen")
		if err != nil {
			return -1
		}
		defer resp.Body.Close()
		var body struct {
			Items []json.RawMessage `json:"items"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil {
			return -1
		}
		return len(body.Items)
	}
	testutil.Eventually(t, time.Minute, 100*time.Millisecond, func() bool { return firing() == len(devices) }, "an alert per device firing")
	fired := "SELECT count() FROM %s.alerts FINAL WHERE rule_id = 'a_seen' AND kind = 'fired'"
	testutil.Eventually(t, time.Minute, 100*time.Millisecond, func() bool { return e.count(t, fired) == uint64(len(devices)) },
		"the fired changes stored")

	first.kill(t)
	before := l.count()
	startServe(t, args, httpAddr, logPath)
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return l.count() >= before+600 },
		"devices reconnect and publish through the restarted process")
	l.halt()
	verifyExactlyOnce(t, e, l)
	checkTwin(t, e, httpAddr, devices)

	// Desired state is back with its version; the alerts are open again
	// without a second "fired".
	resp, err = http.Get(fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s", httpAddr, d.Site, d.Asset))
	if err != nil {
		t.Fatal(err)
	}
	var a struct {
		Desired map[string]struct{ Value json.RawMessage } `json:"desired"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("ETag") != etag || string(a.Desired["setpoint_c"].Value) != "19" {
		t.Fatalf("desired state after the crash: ETag %s (want %s), %v", resp.Header.Get("ETag"), etag, a.Desired)
	}
	testutil.Eventually(t, time.Minute, 100*time.Millisecond, func() bool { return firing() == len(devices) }, "the alerts firing after the crash")
	if n := e.count(t, fired); n != uint64(len(devices)) {
		t.Fatalf("%d fired changes after the crash; want %d (one per alert)", n, len(devices))
	}
}

func TestCrash_ClickHouseKilledMidStream(t *testing.T) {
	e := newEnv(t)
	ch := chtest.Private(t)
	e.cfg.ClickHouseAddr = ch.NativeAddr()
	e.conn = chtest.Conn(t, ch.NativeAddr())
	p, err := app.Start(context.Background(), e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, p)
	devices := e.creds[:6]
	l := startLoad(t, p.Broker.Addr(), devices)
	rows := func() uint64 { return e.count(t, "SELECT count() FROM %s.telemetry FINAL") }
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return l.count() >= 1500 && rows() > 1000 },
		"points flowing into ClickHouse")
	if err := ch.Kill(); err != nil {
		t.Fatal(err)
	}
	during := l.count()
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return l.count() >= during+300 },
		"the platform keeps acknowledging while ClickHouse is down (Kafka holds the points)")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := ch.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	after := l.count()
	testutil.Eventually(t, time.Minute, 50*time.Millisecond, func() bool { return l.count() >= after+300 }, "more after the restart")
	l.halt()
	verifyExactlyOnce(t, e, l)
	checkTwin(t, e, p.HTTP.Addr(), devices)
}
