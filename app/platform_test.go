package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

type env struct {
	cfg   app.Config
	creds []registry.Credential
	conn  driver.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	dir := t.TempDir()
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: 6, Coworking: 1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Defaults()
	cfg.DataDir = dir
	cfg.RegistryPath = filepath.Join(dir, "registry.json")
	if err := reg.Save(cfg.RegistryPath); err != nil {
		t.Fatal(err)
	}
	addr := chtest.Shared(t)
	cfg.ClickHouseAddr, cfg.Database = addr, chtest.Database(t, addr)
	cfg.MQTTAddr, cfg.HTTPAddr, cfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.WriterMaxWait = 200 * time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return &env{cfg: cfg, creds: creds, conn: chtest.Conn(t, addr)}
}

func (e *env) start(t *testing.T) *app.Platform {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := app.Start(ctx, e.cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func stop(t *testing.T, p *app.Platform) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
}

// publishAll connects the first `devices` credentials and publishes msgs
// QoS 1 messages of 3 metrics from each, returning the points acknowledged.
func (e *env) publishAll(t *testing.T, p *app.Platform, devices, msgs int) int {
	t.Helper()
	if devices > len(e.creds) {
		t.Fatalf("only %d credentials", len(e.creds))
	}
	base := time.Now().Add(-time.Minute).UnixMilli()
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for i := range devices {
		c := e.creds[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
				SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
			cl := paho.NewClient(o)
			if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				errs <- fmt.Errorf("connect %s: %v", c.Username, tok.Error())
				return
			}
			defer cl.Disconnect(100)
			topic := fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset)
			for j := range msgs {
				pl := fmt.Sprintf(`{"ts":%d,"m":{"a_c":%d,"b_kw":%d,"c_pct":%d}}`, base+int64(j), j, j*2, j%100)
				tok := cl.Publish(topic, 1, false, pl)
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					errs <- fmt.Errorf("publish %s #%d not acknowledged: %v", c.Username, j, tok.Error())
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return devices * msgs * 3
}

func (e *env) count(t *testing.T, query string) uint64 {
	t.Helper()
	var n uint64
	if err := e.conn.QueryRow(context.Background(), fmt.Sprintf(query, e.cfg.Database)).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

func eventually(t *testing.T, total time.Duration, f func() bool) {
	t.Helper()
	testutil.Eventually(t, total, 100*time.Millisecond, f, "polled condition")
}

func TestEndToEnd_EveryAcknowledgedPointIsARow(t *testing.T) {
	e := newEnv(t)
	p := e.start(t)
	defer stop(t, p)
	want := e.publishAll(t, p, 10, 50)
	q := "SELECT count() FROM %s.telemetry FINAL"
	eventually(t, 30*time.Second, func() bool { return e.count(t, q) >= uint64(want) })
	if got := e.count(t, q); got != uint64(want) {
		t.Fatalf("unexpected rows; got %d; want %d", got, want)
	}
	// Without FINAL too: no duplicates were written in a clean run.
	if got := e.count(t, "SELECT count() FROM %s.telemetry"); got != uint64(want) {
		t.Fatalf("unexpected stored rows; got %d; want %d", got, want)
	}
	// The rollups agree with the raw rows. The writer inserts the raw rows
	// before the rollup rows, so a reader can see the raw rows a moment
	// before the rollups: wait for them, bounded.
	for _, tbl := range []string{"telemetry_1m", "telemetry_1h"} {
		var n uint64
		var mn, mx, rmn, rmx float64
		agree := func() bool {
			err := e.conn.QueryRow(context.Background(), fmt.Sprintf(
				"SELECT toUInt64(sum(count)), min(min), max(max) FROM %s.%s FINAL",
				e.cfg.Database, tbl)).Scan(&n, &mn, &mx)
			if err != nil {
				t.Fatalf("%s: %v", tbl, err)
			}
			if err := e.conn.QueryRow(context.Background(), fmt.Sprintf("SELECT min(value), max(value) FROM %s.telemetry", e.cfg.Database)).Scan(&rmn, &rmx); err != nil {
				t.Fatal(err)
			}
			return n == uint64(want) && mn == rmn && mx == rmx
		}
		deadline := time.Now().Add(10 * time.Second)
		for !agree() {
			if time.Now().After(deadline) {
				t.Fatalf("%s disagrees with raw: count %d min %v max %v; raw count %d min %v max %v", tbl, n, mn, mx, want, rmn, rmx)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	// A bad payload is acknowledged (MQTT 3.1.1) and lands in the
	// dead-letter table with its reason and raw bytes.
	c := e.creds[0]
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username + "-bad").
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, `{"m":{"temp_c":"warm"}}`)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("bad payload not acknowledged: %v", tok.Error())
	}
	cl.Disconnect(100)
	eventually(t, 10*time.Second, func() bool {
		return e.count(t, "SELECT count() FROM %s.deadletter WHERE reason = 'non_numeric' AND payload = '{\"m\":{\"temp_c\":\"warm\"}}'") == 1
	})
	// Status changes reached the events table.
	eventually(t, 10*time.Second, func() bool {
		return e.count(t, "SELECT count() FROM %s.events WHERE type = 'status'") >= 10
	})
	// Health, readiness, metrics and the portal answer.
	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/", "/dati/uffici.csv"} {
		resp, err := http.Get("http://" + p.HTTP.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: status %d", path, resp.StatusCode)
		}
	}
	// An unknown API path is the API's JSON 404; any other is the portal's page.
	resp, err := http.Get("http://" + p.HTTP.Addr() + "/api/nope")
	if err != nil {
		t.Fatal(err)
	}
	var apiErr struct{ Code, Message string }
	if err := json.NewDecoder(resp.Body).Decode(&apiErr); err != nil || resp.StatusCode != 404 || apiErr.Message == "" {
		t.Fatalf("unknown API path: status %d, body %+v, err %v", resp.StatusCode, apiErr, err)
	}
	resp.Body.Close()
	resp, err = http.Get("http://" + p.HTTP.Addr() + "/nope")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 404 || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(string(page), `lang="it"`) {
		t.Fatalf("unknown portal path: status %d, %s, want the portal's 404 page", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
}

func TestGracefulShutdown_NothingAcceptedIsLost(t *testing.T) {
	e := newEnv(t)
	// A long batch wait: rows would sit in the writer at shutdown.
	e.cfg.WriterMaxWait = time.Minute
	p := e.start(t)
	want := e.publishAll(t, p, 8, 40)
	stop(t, p)
	if got := e.count(t, "SELECT count() FROM %s.telemetry FINAL"); got != uint64(want) {
		t.Fatalf("after shutdown; got %d rows; want %d", got, want)
	}
	// A restart on the same data directory re-inserts nothing.
	p2 := e.start(t)
	want += e.publishAll(t, p2, 2, 10)
	stop(t, p2)
	if got := e.count(t, "SELECT count() FROM %s.telemetry"); got != uint64(want) {
		t.Fatalf("after restart; got %d stored rows; want %d", got, want)
	}
}

// With --kafka-brokers the platform starts no cluster of its own and uses
// the given one (here a separate kfake cluster standing in for Kafka).
func TestExternalKafka_UsedInsteadOfEmbedded(t *testing.T) {
	e := newEnv(t)
	ext, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	e.cfg.KafkaBrokers = ext.Addrs()
	p := e.start(t)
	if strings.Join(p.Brokers, ",") != strings.Join(ext.Addrs(), ",") {
		t.Fatalf("platform uses %v; want the external cluster %v", p.Brokers, ext.Addrs())
	}
	if _, err := os.Stat(filepath.Join(e.cfg.DataDir, "kafka")); err == nil {
		t.Fatal("an embedded Kafka log was created although --kafka-brokers was given")
	}
	want := e.publishAll(t, p, 3, 20)
	stop(t, p)
	if got := e.count(t, "SELECT count() FROM %s.telemetry FINAL"); got != uint64(want) {
		t.Fatalf("unexpected rows; got %d; want %d", got, want)
	}
}
