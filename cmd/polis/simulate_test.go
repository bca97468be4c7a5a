package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/twin/registry"
)

// remoteRecorder notes the remote address of every client that connects.
type remoteRecorder struct {
	mqtt.HookBase
	mu      sync.Mutex
	remotes []string
	data    int // telemetry and event publishes
}

func (h *remoteRecorder) ID() string           { return "remote-recorder" }
func (h *remoteRecorder) Provides(b byte) bool { return b == mqtt.OnConnect || b == mqtt.OnPublish }
func (h *remoteRecorder) OnPublish(_ *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	if strings.HasSuffix(pk.TopicName, "/telemetry") || strings.HasSuffix(pk.TopicName, "/events") {
		h.mu.Lock()
		h.data++
		h.mu.Unlock()
	}
	return pk, nil
}

// count is the telemetry and event publishes seen so far.
func (h *remoteRecorder) count() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.data
}
func (h *remoteRecorder) OnConnect(cl *mqtt.Client, _ packets.Packet) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remotes = append(h.remotes, cl.Net.Remote)
	return nil
}

func (h *remoteRecorder) hosts() map[string]int {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string]int{}
	for _, r := range h.remotes {
		host, _, _ := net.SplitHostPort(r)
		out[host]++
	}
	return out
}

// startMQTT runs an MQTT broker (mochi, allowing everyone) on a free
// loopback port: `polis simulate` needs only something to publish to.
func startMQTT(t *testing.T) (string, *remoteRecorder) {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler)})
	rec := &remoteRecorder{}
	for _, h := range []mqtt.Hook{new(auth.AllowHook), rec} {
		if err := srv.AddHook(h, nil); err != nil {
			t.Fatal(err)
		}
	}
	l := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatal(err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Let the clients leave first: mochi v2.7.9's Close can deadlock
		// with one still going away.
		for deadline := time.Now().Add(10 * time.Second); srv.Clients.Len() > 0 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		_ = srv.Close()
	})
	return "tcp://" + l.Address(), rec
}

func writeCreds(t *testing.T, dir string, sites int) (string, []registry.Credential) {
	t.Helper()
	_, creds, err := registry.Generate(registry.GenerateOptions{Sites: sites, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := registry.WriteCredentialsCSV(&b, creds); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "credentials.csv")
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, creds
}

// `polis simulate --stats FILE` writes the run's statistics as JSON, with
// --hold and --source-addrs doing what they say on the way.
func TestSimulate_StatsFile(t *testing.T) {
	dir := t.TempDir()
	broker, rec := startMQTT(t)
	credsPath, creds := writeCreds(t, dir, 2)
	statsPath := filepath.Join(dir, "stats.json")
	var out bytes.Buffer
	err := run(context.Background(), []string{"simulate", "--broker", broker, "--credentials", credsPath, "--registry", "",
		"--gateways=false", "--messages", "30", "--rate", "0", "--hold", "50ms", "--source-addrs", "127.0.0.2, 127.0.0.3",
		"--stats", statsPath}, &out)
	if err != nil {
		t.Fatalf("polis simulate: %v\n%s", err, out.String())
	}
	for _, line := range []string{
		"simulate: holding " + itoa(len(creds)) + " connections for 50ms\n",
		"simulate: publishing " + itoa(len(creds)) + " devices over " + itoa(len(creds)) + " connections\n",
		"simulate: done: 30 messages, ",
	} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("no %q in the output:\n%s", line, out.String())
		}
	}
	b, err := os.ReadFile(statsPath)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	for _, k := range []string{"sent", "events", "points", "errors", "acked", "connections", "elapsed_ns", "elapsed_s"} {
		if _, ok := got[k]; !ok {
			t.Errorf("no %q in %s", k, b)
		}
	}
	for _, k := range []string{"interval_rate", "error"} {
		if _, ok := got[k]; ok {
			t.Errorf("%q in a run without --intervals that went well: %s", k, b)
		}
	}
	var st struct {
		loadtest.Stats
		ElapsedSeconds float64 `json:"elapsed_s"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	if st.Sent != 30 || st.Acked != 30 || st.Errors != 0 || st.Points == 0 || st.Connections != len(creds) ||
		st.Elapsed <= 0 || st.ElapsedSeconds != st.Elapsed.Seconds() {
		t.Errorf("unexpected statistics %s", b)
	}
	if h := rec.hosts(); h["127.0.0.2"]+h["127.0.0.3"] != len(creds) || h["127.0.0.2"] == 0 || h["127.0.0.3"] == 0 {
		t.Errorf("connections by source address %v; want all %d from 127.0.0.2 and 127.0.0.3", h, len(creds))
	}
}

// With --intervals the statistics carry the fleet's rate at its intervals,
// and a run that cannot connect still writes its statistics, with the error.
func TestSimulate_StatsFileIntervals(t *testing.T) {
	dir := t.TempDir()
	broker, _ := startMQTT(t)
	credsPath, creds := writeCreds(t, dir, 2)
	for _, tc := range []struct {
		name, broker, wantErr string
	}{
		{"connected", broker, ""},
		{"no broker", "tcp://127.0.0.1:1", "cannot connect any of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			statsPath := filepath.Join(dir, tc.name+".json")
			var out bytes.Buffer
			err := run(context.Background(), []string{"simulate", "--broker", tc.broker, "--credentials", credsPath, "--registry", "",
				"--intervals", "--duration", "300ms", "--connections", "1", "--stats", statsPath}, &out)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("polis simulate: %v; want an error saying %q\n%s", err, tc.wantErr, out.String())
			}
			b, rerr := os.ReadFile(statsPath)
			if rerr != nil {
				t.Fatal(rerr)
			}
			var got struct {
				Sent         uint64  `json:"sent"`
				IntervalRate float64 `json:"interval_rate"`
				Error        string  `json:"error"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("%s: %v", b, err)
			}
			// One gateway: its site's devices at their intervals.
			want := loadtest.RealisticRate(loadtest.Options{Credentials: creds, UseGateways: true, Connections: 1})
			if got.IntervalRate != want || want == 0 {
				t.Errorf("interval_rate %g; want %g", got.IntervalRate, want)
			}
			if tc.wantErr != "" && !strings.Contains(got.Error, tc.wantErr) {
				t.Errorf("error %q in the statistics; want one saying %q", got.Error, tc.wantErr)
			}
		})
	}
}

func TestSimulate_BadFlags(t *testing.T) {
	dir := t.TempDir()
	credsPath, _ := writeCreds(t, dir, 1)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--source-addrs", "127.0.0.2,localhost"}, "--source-addrs"},
		{[]string{"--hold", "-1s"}, "--hold"},
	} {
		var out bytes.Buffer
		args := append([]string{"simulate", "--credentials", credsPath, "--registry", ""}, tc.args...)
		if err := run(context.Background(), args, &out); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v; want an error about %s", tc.args, err, tc.want)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// --start-when holds a connected simulator until its file exists.
func TestSimulate_StartWhen(t *testing.T) {
	dir := t.TempDir()
	broker, rec := startMQTT(t)
	credsPath, creds := writeCreds(t, dir, 2)
	gate := filepath.Join(dir, "go")
	out := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(context.Background(), []string{"simulate", "--broker", broker, "--credentials", credsPath, "--registry", "",
			"--gateways=false", "--messages", "10", "--rate", "0", "--start-when", gate}, out)
	}()
	holding := "simulate: holding " + itoa(len(creds)) + " connections until the start signal\n"
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), holding) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within 30 s:\n%s", holding, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // publishing now would be a bug
	if n := rec.count(); n != 0 {
		t.Fatalf("%d messages before the start file existed", n)
	}
	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("polis simulate: %v\n%s", err, out.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("simulate did not finish after the start file appeared")
	}
	if !strings.Contains(out.String(), "simulate: done: 10 messages") {
		t.Errorf("output:\n%s", out.String())
	}
}

// syncBuffer is a bytes.Buffer safe to read while a command writes to it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
