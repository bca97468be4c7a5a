package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// A demo with a history: a fleet's rollout, planned from the published
// progress, imported through the API into a running platform (embedded
// Kafka, ClickHouse 18.16), lands in lifecycle_events once per event with
// its own times; importing it again writes nothing; the milestones count
// what the plan says; and the simulator, following the tracker, leaves the
// assets still planned silent.

var (
	rolloutComuniOnce sync.Once
	rolloutComuni     []registry.Comune
	rolloutComuniErr  error
)

func sharedData(name string) string { return filepath.Join("..", "..", "shared", "data", name) }

// rolloutFleet replaces the env's fleet with one of n offices placed in
// real comuni, registered as planned, and returns its rollout history up
// to now.
func rolloutFleet(t *testing.T, e *env, offices, coworking int, now time.Time) (*registry.Registry, []lifecycle.Event) {
	t.Helper()
	rolloutComuniOnce.Do(func() { rolloutComuni, rolloutComuniErr = registry.LoadComuni(sharedData("comuni_mappa_ai_2020.csv")) })
	if rolloutComuniErr != nil {
		t.Fatal(rolloutComuniErr)
	}
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: offices, Coworking: coworking, Seed: 3, Comuni: rolloutComuni})
	if err != nil {
		t.Fatal(err)
	}
	reg.SetAllPlanned()
	if err := reg.Save(e.cfg.RegistryPath); err != nil {
		t.Fatal(err)
	}
	e.creds = creds
	facts, err := milestone.LoadFactsFile(sharedData("polis_fatti_pubblici.csv"))
	if err != nil {
		t.Fatal(err)
	}
	var rf []registry.RolloutFact
	for _, f := range facts {
		if f.Type == milestone.FactProgress && f.HasValue {
			rf = append(rf, registry.RolloutFact{ID: f.ID, Date: f.Date, Value: f.Value, Unit: f.Unit, Metric: f.Metric})
		}
	}
	evs, err := registry.PlanRollout(reg, registry.RolloutOptions{Now: now, Seed: 3, Facts: rf})
	if err != nil {
		t.Fatal(err)
	}
	return reg, evs
}

type importAnswer struct {
	Applied, Skipped int
	Code, Message    string
}

// postImport sends a history to POST /api/v1/lifecycle/import as NDJSON.
func postImport(t *testing.T, httpAddr, token string, evs []lifecycle.Event) (int, importAnswer) {
	t.Helper()
	var body bytes.Buffer
	if err := lifecycle.WriteImport(&body, evs); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/lifecycle/import", &body)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var a importAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("import answered %d %s: %v", resp.StatusCode, b, err)
	}
	return resp.StatusCode, a
}

// eventKey identifies an event as lifecycle_events stores it (18.16:
// seconds and milliseconds).
func eventKey(site, asset, to string, at time.Time) string {
	return fmt.Sprintf("%s/%s %s %d.%03d", site, asset, to, at.Unix(), at.Nanosecond()/1e6)
}

// storedEvents reads lifecycle_events (FINAL: as merged) by eventKey, with
// how many times each is there.
func storedEvents(t *testing.T, e *env) map[string]int {
	t.Helper()
	rows, err := e.conn.Query(context.Background(), fmt.Sprintf(
		"SELECT site, asset, to_state, toUInt64(toUnixTimestamp(ts)), ts_ms, actor FROM %s.lifecycle_events FINAL", e.cfg.Database))
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var site, asset, to, actor string
		var sec uint64
		var ms uint16
		if err := rows.Scan(&site, &asset, &to, &sec, &ms, &actor); err != nil {
			t.Fatal(err)
		}
		if actor != "ops" {
			t.Fatalf("event of %s/%s stored with actor %q; want the token's name", site, asset, actor)
		}
		out[eventKey(site, asset, to, time.Unix(int64(sec), int64(ms)*1e6))]++
	}
	return out
}

// checkStoredOnce waits until lifecycle_events holds every event exactly
// once, with its own time, and nothing else.
func checkStoredOnce(t *testing.T, e *env, evs []lifecycle.Event) {
	t.Helper()
	want := map[string]bool{}
	for _, ev := range evs {
		want[eventKey(ev.Site, ev.Asset, string(ev.To), ev.At)] = true
	}
	var got map[string]int
	testutil.Eventually(t, 2*time.Minute, 200*time.Millisecond, func() bool {
		got = storedEvents(t, e)
		return len(got) >= len(want)
	}, "lifecycle_events holds the %d events (%v so far)", len(want), testutil.Lazy(func() any { return len(got) }))
	for k, n := range got {
		if n != 1 || !want[k] {
			t.Fatalf("lifecycle_events holds %s %d times (in the history: %v)", k, n, want[k])
		}
	}
	if len(got) != len(want) {
		t.Fatalf("lifecycle_events holds %d events; want %d", len(got), len(want))
	}
}

func TestRollout_ImportedOnceCountedSilentWhenPlanned(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	reg, evs := rolloutFleet(t, e, 60, 2, now)
	e.cfg.MilestonesPath = "../rules/milestones/polis.yaml"
	token := e.operatorToken(t)
	p := e.start(t)
	defer stop(t, p)

	status, a := postImport(t, p.HTTP.Addr(), token, evs)
	if status != 200 || a.Applied != len(evs) || a.Skipped != 0 {
		t.Fatalf("import: %d %+v; want %d applied", status, a, len(evs))
	}
	checkStoredOnce(t, e, evs)
	// Without FINAL too: a clean run wrote each row once.
	if n := e.count(t, "SELECT count() FROM %s.lifecycle_events"); n != uint64(len(evs)) {
		t.Fatalf("%d rows in lifecycle_events; want %d", n, len(evs))
	}

	// Again: everything skipped, nothing more in the log.
	status, a = postImport(t, p.HTTP.Addr(), token, evs)
	if status != 200 || a.Applied != 0 || a.Skipped != len(evs) {
		t.Fatalf("second import: %d %+v; want all %d skipped", status, a, len(evs))
	}
	if logged := lifecycleLog(t, p.Brokers); len(logged) != len(evs) {
		t.Fatalf("%d events in the lifecycle log after importing twice; want %d", len(logged), len(evs))
	}
	// A bad history is refused whole, naming the event.
	bad := append([]lifecycle.Event{}, evs[:5]...)
	bad = append(bad, lifecycle.Event{Site: evs[0].Site, Asset: evs[0].Asset, To: lifecycle.Planned, At: now})
	if status, a := postImport(t, p.HTTP.Addr(), token, bad); status != 409 || !strings.Contains(a.Message, "event 5 (line 6)") {
		t.Fatalf("a move back to planned: %d %+v; want 409 naming event 5", status, a)
	}

	// The milestones count what the plan says at now.
	planned := map[string]lifecycle.State{}
	for _, ev := range evs {
		planned[ev.Site+"/"+ev.Asset] = ev.To
	}
	stateOf := func(site, asset string) (lifecycle.State, bool) {
		st, ok := planned[site+"/"+asset]
		if !ok {
			return lifecycle.Planned, true
		}
		return st, true
	}
	ms, err := milestone.LoadFile(e.cfg.MilestonesPath)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for _, m := range milestone.Compute(ms, reg.Sites(), stateOf, time.Now()) {
		want[m.ID] = m.Current
	}
	var board struct{ Items []milestone.Progress }
	if code := getJSON(t, "http://"+p.HTTP.Addr()+"/api/v1/milestones", &board); code != 200 || len(board.Items) == 0 {
		t.Fatalf("milestones: %d, %d items", code, len(board.Items))
	}
	counted := 0
	for _, m := range board.Items {
		if m.Current != want[m.ID] {
			t.Errorf("milestone %s counts %d; the plan has %d", m.ID, m.Current, want[m.ID])
		}
		counted += m.Current
	}
	if counted == 0 || want["offices_completed_6933"] == 0 {
		t.Fatalf("the milestones count nothing: %v", want)
	}

	// The simulator follows the tracker: nothing from planned assets.
	var silent, faulty []string
	for _, s := range reg.Sites() {
		for _, as := range s.Assets {
			switch st, _ := p.Live.Lifecycle(s.ID, as.ID); st {
			case lifecycle.Planned:
				silent = append(silent, s.ID+"/"+as.ID)
			case lifecycle.Faulty:
				faulty = append(faulty, s.ID+"/"+as.ID)
			}
		}
	}
	if len(silent) == 0 || len(faulty) == 0 {
		t.Fatalf("the fleet has %d planned and %d faulty assets now; the test needs both", len(silent), len(faulty))
	}
	st, err := loadtest.Run(context.Background(), loadtest.Options{Broker: p.Broker.Addr(), Credentials: e.creds, Registry: reg,
		UseGateways: true, QoS: 1, Messages: 3000, Duration: time.Minute,
		Lifecycle: func(site, asset string) lifecycle.State { s, _ := p.Live.Lifecycle(site, asset); return s }})
	if err != nil || st.Errors != 0 || st.Acked != st.Sent || st.Sent == 0 {
		t.Fatalf("simulator: %+v, %v", st, err)
	}
	testutil.Eventually(t, time.Minute, 200*time.Millisecond, func() bool {
		return e.count(t, "SELECT count() FROM %s.telemetry FINAL") >= st.Points
	}, "the simulator's %d points stored", st.Points)
	for _, table := range []string{"telemetry", "events"} {
		rows, err := e.conn.Query(context.Background(), fmt.Sprintf("SELECT DISTINCT site, asset FROM %s.%s", e.cfg.Database, table))
		if err != nil {
			t.Fatal(err)
		}
		heard := 0
		for rows.Next() {
			var site, asset string
			if err := rows.Scan(&site, &asset); err != nil {
				t.Fatal(err)
			}
			heard++
			if s, _ := stateOf(site, asset); s == lifecycle.Planned || s == lifecycle.Decommissioned {
				t.Errorf("%s from %s/%s, which is %s", table, site, asset, s)
			}
		}
		rows.Close()
		if heard == 0 {
			t.Fatalf("nothing in %s from the simulator", table)
		}
	}
	// Evidence moved no planned asset; a faulty one says so in the twin.
	for _, k := range silent {
		site, asset, _ := strings.Cut(k, "/")
		if s, _ := p.Live.Lifecycle(site, asset); s != lifecycle.Planned {
			t.Fatalf("%s moved to %s while silent", k, s)
		}
	}
	// A faulty asset reported its fault: the twin holds fault = 1 (its
	// status said fault until the simulator said offline at its end), and
	// the events table its "fault" event.
	site, asset, _ := strings.Cut(faulty[0], "/")
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		var v struct {
			Metrics map[string]struct{ Value float64 } `json:"metrics"`
		}
		return getJSON(t, fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s", p.HTTP.Addr(), site, asset), &v) == 200 && v.Metrics["fault"].Value == 1
	}, "the twin holds fault = 1 for the faulty asset %s/%s", site, asset)
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		return e.count(t, "SELECT count() FROM %s.events WHERE site = '"+site+"' AND asset = '"+asset+"' AND type = 'fault'") == 1
	}, "one fault event from %s/%s", site, asset)
}

// Durability of the import: `polis serve` killed with SIGKILL while it
// writes a history; started again on its data, the same import writes
// exactly what is missing: every event once in the log and in
// lifecycle_events.
func TestCrash_RolloutImportKilled(t *testing.T) {
	e := newEnv(t)
	now := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	_, evs := rolloutFleet(t, e, 2000, 20, now)
	token := e.operatorToken(t)
	mqtt, httpAddr, kafkaAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	args := []string{"--data-dir", e.cfg.DataDir, "--registry", e.cfg.RegistryPath, "--clickhouse", e.cfg.ClickHouseAddr,
		"--database", e.cfg.Database, "--mqtt-addr", mqtt, "--http-addr", httpAddr, "--kafka-addr", kafkaAddr,
		"--writer-max-wait", "200ms", "--tokens", e.cfg.TokensPath}
	logPath := filepath.Join(e.cfg.DataDir, "polis.log")
	first := startServe(t, args, httpAddr, logPath)

	// Kill it once part of the history is in Kafka, before the answer.
	answered := make(chan int, 1)
	go func() {
		var body bytes.Buffer
		_ = lifecycle.WriteImport(&body, evs)
		req, _ := http.NewRequest("POST", "http://"+httpAddr+"/api/v1/lifecycle/import", &body)
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/x-ndjson")
		resp, err := (&http.Client{Timeout: 3 * time.Minute}).Do(req)
		if err != nil {
			answered <- 0 // cut by the kill
			return
		}
		resp.Body.Close()
		answered <- resp.StatusCode
	}()
	kc, err := kgo.NewClient(kgo.SeedBrokers(kafkaAddr))
	if err != nil {
		t.Fatal(err)
	}
	var written int64
	testutil.Eventually(t, 2*time.Minute, time.Millisecond, func() bool {
		written = lifecycleEnd(kc)
		return written > 0
	}, "the import writing")
	kc.Close()
	first.kill(t)
	code := <-answered
	t.Logf("killed with %d of %d events in the log (answer: %d)", written, len(evs), code)

	startServe(t, args, httpAddr, logPath)
	status, a := postImport(t, httpAddr, token, evs)
	if status != 200 || a.Applied+a.Skipped != len(evs) {
		t.Fatalf("import after the kill: %d %+v; want %d applied or skipped", status, a, len(evs))
	}
	if code != 200 && a.Skipped == 0 {
		t.Fatalf("the kill cut the import before anything was written (%d in the log when killed)", written)
	}
	if logged := lifecycleLog(t, []string{kafkaAddr}); len(logged) != len(evs) {
		t.Fatalf("%d events in the lifecycle log; want %d, each once", len(logged), len(evs))
	}
	checkStoredOnce(t, e, evs)
	if _, a := postImport(t, httpAddr, token, evs); a.Applied != 0 || a.Skipped != len(evs) {
		t.Fatalf("third import: %+v; want all skipped", a)
	}
}

// lifecycleEnd is how many records the lifecycle log holds (its end
// offsets summed), or 0 when Kafka does not answer.
func lifecycleEnd(cl *kgo.Client) int64 {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, kafka.TopicLifecycle)
	if err != nil {
		return 0
	}
	var n int64
	ends.Each(func(o kadm.ListedOffset) { n += o.Offset })
	return n
}
