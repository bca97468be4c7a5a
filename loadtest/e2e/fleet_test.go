package e2e

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/twin/registry"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestSplit(t *testing.T) {
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: 40, Coworking: 4, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	f := &FleetInfo{reg: reg, creds: creds}
	f.Sites, f.Assets = reg.Len()
	probe, ok := probeCredential(creds)
	if !ok {
		t.Fatal("no probe device in the fleet")
	}
	for _, tc := range []struct {
		name      string
		direct    bool
		per       int
		wantProcs int
	}{
		{"gateway, one process", false, 18000, 1},
		{"gateway, 10 sites each", false, 10, 5},
		{"direct, one process", true, 18000, 1},
		{"direct, 100 connections each", true, 100, (len(creds) - 1 + 99) / 100},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gs := split(f, tc.direct, tc.per, probe)
			if len(gs) != tc.wantProcs {
				t.Fatalf("%d groups, want %d", len(gs), tc.wantProcs)
			}
			seenSite := map[string]int{}
			n, conns := 0, 0
			for i, g := range gs {
				n += len(g.creds)
				conns += g.conns
				if g.conns > tc.per+12 { // whole sites: at most one site over
					t.Errorf("group %d has %d connections, per process %d", i, g.conns, tc.per)
				}
				for _, c := range g.creds {
					if c.Username == probe.Username {
						t.Errorf("the probe's device %s is given to a simulator", c.Username)
					}
					if j, ok := seenSite[c.Site]; ok && j != i {
						t.Errorf("site %s split over groups %d and %d", c.Site, j, i)
					}
					seenSite[c.Site] = i
				}
			}
			if n != len(creds)-1 {
				t.Errorf("%d credentials shared out, want %d (all but the probe's)", n, len(creds)-1)
			}
			want := f.Sites
			if tc.direct {
				want = len(creds) - 1
			}
			if conns != want {
				t.Errorf("%d connections planned, want %d", conns, want)
			}
		})
	}
}

func TestScenarioName(t *testing.T) {
	for _, tc := range []struct {
		sc   Scenario
		want string
	}{
		{Scenario{}, "gateway-max"},
		{Scenario{Direct: true, Intervals: true}, "direct-realistic"},
		{Scenario{Rate: 2500}, "gateway-2500"},
	} {
		if got := tc.sc.Name(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.sc, got, tc.want)
		}
	}
}

func TestAxisStep(t *testing.T) {
	for _, tc := range []struct{ v, step, top float64 }{
		{0, 1, 1},
		{1, 0.5, 1},
		{7, 2, 8},
		{46542, 20000, 60000},
		{0.35, 0.1, 0.4},
	} {
		step, top := axisStep(tc.v)
		if step != tc.step || top != tc.top {
			t.Errorf("axisStep(%g) = %g, %g; want %g, %g", tc.v, step, top, tc.step, tc.top)
		}
	}
}

// TestScenarioSVG_Golden draws a fixed run: the plot is deterministic.
func TestScenarioSVG_Golden(t *testing.T) {
	t0 := time.Date(2026, 12, 8, 3, 0, 0, 0, time.UTC)
	r := &ScenarioResult{Scenario: Scenario{Direct: true}, Processes: 3, Held: 46541, Devices: 46541,
		Probe: &ProbeResult{SeenLat: []time.Duration{300 * time.Millisecond, 450 * time.Millisecond, 900 * time.Millisecond}}}
	for i := range 12 {
		at := t0.Add(time.Duration(i) * time.Second)
		r.Series = append(r.Series, Sample{At: at, Ingested: float64(i * i * 1000), Rows: float64(i * i * 3000),
			Connected: float64(min(i, 4) * 11635), Lag: float64(i % 4 * 500),
			CPU: map[string]time.Duration{compPlatform: time.Duration(i) * 800 * time.Millisecond, compSimulator: time.Duration(i) * 600 * time.Millisecond, compClickHouse: time.Duration(i) * 100 * time.Millisecond},
			RSS: map[string]int64{compPlatform: int64(400+i*10) << 20, compSimulator: 300 << 20, compClickHouse: 500 << 20}})
	}
	r.Events = []Event{{t0.Add(2 * time.Second), "held"}, {t0.Add(5 * time.Second), "publishing"}, {t0.Add(10 * time.Second), "published"}}
	got := r.SVG()
	path := filepath.Join("testdata", "fleet.svg")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("SVG differs from %s (go test ./loadtest/e2e -run Golden -update)", path)
	}
	for _, s := range []string{"MQTT connections held", "platform", "Kafka lag", "p99 900 ms", "publishing"} {
		if !bytes.Contains(got, []byte(s)) {
			t.Errorf("SVG lacks %q", s)
		}
	}
}

// TestRunFleet runs a small fleet in both modes through real processes:
// polis serve, polis simulate, the Kafka process, ClickHouse and mosquitto,
// and checks that every published point was stored once.
func TestRunFleet(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ClickHouse, Kafka, mosquitto and several polis processes")
	}
	_, chErr := exec.LookPath("clickhouse-server")
	testutil.Need(t, chErr == nil, "clickhouse-server not installed")
	_, mqErr := exec.LookPath(DefaultMosquitto)
	testutil.Need(t, mqErr == nil, "mosquitto not installed")
	dir := t.TempDir()
	polis := filepath.Join(dir, "polis")
	if b, err := exec.Command("go", "build", "-o", polis, "../../cmd/polis").CombinedOutput(); err != nil {
		t.Fatalf("cannot build polis: %v\n%s", err, b)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var progress bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := RunFleet(ctx, FleetConfig{Sites: 30, Coworking: 2,
		// Direct mode over two processes: the fleet has ~260 devices.
		Scenarios: []Scenario{{Rate: 300}, {Direct: true}},
		Duration:  4 * time.Second, Hold: 2 * time.Second, PerProcess: 150,
		Polis: polis, Self: self, OutDir: filepath.Join(dir, "out"), Progress: &progress})
	if err != nil {
		t.Fatalf("%v\n%s", err, progress.String())
	}
	if len(res.Problems) > 0 {
		t.Fatalf("problems:\n%s\nprogress:\n%s", strings.Join(res.Problems, "\n"), progress.String())
	}
	if len(res.Scenarios) != 2 {
		t.Fatalf("%d scenarios ran, want 2", len(res.Scenarios))
	}
	for _, s := range res.Scenarios {
		name := s.Scenario.Name()
		if s.Expected == 0 || s.RowsAfter != s.Expected || s.RowsFinal != s.Expected {
			t.Errorf("%s: %d points published, %d rows, %d FINAL", name, s.Expected, s.RowsAfter, s.RowsFinal)
		}
		if s.Held != s.Planned {
			t.Errorf("%s: %d of %d connections held", name, s.Held, s.Planned)
		}
		if s.Mosquitto == nil || s.Mosquitto.Stats.Acked == 0 {
			t.Errorf("%s: no mosquitto reference", name)
		}
		if _, err := os.Stat(filepath.Join(dir, "out", name+".svg")); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	if d := res.Scenarios[1]; d.Processes != 2 {
		t.Errorf("direct mode ran %d platform processes, want 2", d.Processes)
	}
	md := res.Markdown()
	for _, s := range []string{"gateway-300", "direct-max", "every point once", "per held connection"} {
		if !strings.Contains(md, s) {
			t.Errorf("report lacks %q", s)
		}
	}
}

func TestOwner(t *testing.T) {
	for _, tc := range []struct {
		fn, want string
		ok       bool
	}{
		{"internal/runtime/syscall/linux.Syscall6", "", false},
		{"runtime.mallocgc", "", false},
		{"net/http.(*conn).serve", "", false},
		{"github.com/mochi-mqtt/server/v2.(*Client).Read", "mochi-mqtt (MQTT broker)", true},
		{"github.com/twmb/franz-go/pkg/kgo.(*Client).produce", "franz-go (Kafka client)", true},
		{"github.com/polis-platform/polis/ingest/payload.(*scanner).peek", "polis/ingest/payload", true},
		{"github.com/polis-platform/polis/broker.(*hook).OnPublish", "polis/broker", true},
		{"golang.org/x/sys/unix.Syscall", "golang.org/x/sys", true},
		{"type:.hash.github.com/polis-platform/polis/twin/state.key", "polis/twin/state", true},
	} {
		got, ok := owner(tc.fn)
		if got != tc.want || ok != tc.ok {
			t.Errorf("owner(%q) = %q, %v; want %q, %v", tc.fn, got, ok, tc.want, tc.ok)
		}
	}
}
