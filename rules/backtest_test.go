package rules

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/polis-platform/polis/storage"
)

var update = flag.Bool("update", false, "rewrite golden files")

// A replay through an in-memory scanner (ClickHouse's is tested in
// internal/platform): the occurrences, the scan filter and the timeline.
func TestBacktest(t *testing.T) {
	reg := testFleet(t)
	rules := loadRules(t, `
      - {id: pv_low, scope: {asset_types: [pv]}, expr: 'last("power_kw") < 1', for: 5m, severity: warning, summary: '{{ last("power_kw") }} kW'}
      - {id: env_hot, scope: {asset_types: [env]}, expr: 'last("temp_c") > 30', severity: critical}
`)
	t0 := time.Date(2026, 6, 1, 8, 0, 0, 0, time.UTC)
	var pts []storage.Point
	for i := range 120 {
		at := t0.Add(time.Duration(i) * time.Minute)
		pv := 5.0
		if i >= 20 && i < 50 || i >= 100 {
			pv = 0.2
		}
		pts = append(pts, storage.Point{Site: "PO-001001-1", Asset: "pv-1", Metric: "power_kw", TS: at, Value: pv})
		temp := 25.0
		if i >= 60 && i < 70 {
			temp = 33
		}
		pts = append(pts, storage.Point{Site: "PO-001001-1", Asset: "env-1", Metric: "temp_c", TS: at, Value: temp})
	}
	var asked storage.ScanQuery
	scan := func(_ context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error) {
		asked = q
		for i, p := range pts {
			if err := fn(p); err != nil {
				return i, err
			}
		}
		return len(pts), nil
	}
	res, err := Backtest(context.Background(), reg, scan, BacktestRequest{Rules: rules, From: t0, To: t0.Add(2 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if got := asked.Metrics; len(got) != 2 || got[0] != "power_kw" || got[1] != "temp_c" {
		t.Errorf("scan metrics = %v", got)
	}
	type occ struct {
		rule           string
		fired, resolve int // minutes from t0; -1: open
	}
	want := []occ{{"pv_low", 25, 50}, {"env_hot", 60, 70}, {"pv_low", 105, -1}}
	if len(res.Alerts) != len(want) || res.Points != 240 || res.PerRule["pv_low"] != 2 {
		t.Fatalf("backtest = %+v", res)
	}
	for i, w := range want {
		a := res.Alerts[i]
		resolved := -1
		if !a.ResolvedAt.IsZero() {
			resolved = int(a.ResolvedAt.Sub(t0).Minutes())
		}
		if a.Rule != w.rule || int(a.FiredAt.Sub(t0).Minutes()) != w.fired || resolved != w.resolve {
			t.Errorf("occurrence %d = %s %v..%v, want %+v", i, a.Rule, a.FiredAt, a.ResolvedAt, w)
		}
	}
	// MaxPoints cuts the replay and says so.
	cut, err := Backtest(context.Background(), reg, scan, BacktestRequest{Rules: rules, From: t0, To: t0.Add(2 * time.Hour), MaxPoints: 100})
	if err != nil || !cut.Truncated || cut.Points != 100 {
		t.Fatalf("cut backtest = %+v, %v", cut, err)
	}
	var svg bytes.Buffer
	BacktestSVG(&svg, res)
	golden := filepath.Join("testdata", "backtest.svg")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, svg.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want2, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test ./rules -update)", err)
	}
	if !bytes.Equal(svg.Bytes(), want2) {
		t.Errorf("the timeline differs from %s (run go test ./rules -update and look at it)", golden)
	}
}
