package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }

// polis rules backtest against a real ClickHouse: rows written to the
// telemetry table replay through a rule file into occurrences, a table
// and an SVG timeline.
func TestRulesBacktest(t *testing.T) {
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	ctx := context.Background()
	var out bytes.Buffer
	if err := run(ctx, []string{"migrate", "-clickhouse", addr, "-database", db}, &out); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 5, Coworking: 1, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	regPath := filepath.Join(dir, "registry.json")
	if err := reg.Save(regPath); err != nil {
		t.Fatal(err)
	}
	var site, asset string
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if a.Type == "env" && site == "" {
				site, asset = s.ID, a.ID
			}
		}
	}
	conn := chtest.Conn(t, addr)
	flavor, err := schema.Detect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	cols := "site, asset, metric, ts, value, received, late"
	if flavor == schema.Legacy {
		cols = "site, asset, metric, ts, ts_ms, value, received, late"
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".telemetry ("+cols+")")
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	for i := range 90 { // a point a minute, hot from minute 20 to 39
		v := 22.0
		if i >= 20 && i < 40 {
			v = 36
		}
		at := t0.Add(time.Duration(i) * time.Minute)
		row := []any{site, asset, "temp_c", at, v, at, uint8(0)}
		if flavor == schema.Legacy {
			row = []any{site, asset, "temp_c", at, uint16(0), v, at, uint8(0)}
		}
		if err := b.Append(row...); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	rules := filepath.Join(dir, "hot.yaml")
	if err := os.WriteFile(rules, []byte(`groups:
  - name: g
    rules:
      - id: hot
        scope: {asset_types: [env]}
        expr: last("temp_c") > 30
        for: 5m
        severity: critical
        summary: "{{ asset.id }} at {{ last(\"temp_c\") }} C"
      - id: other
        expr: last("co2_ppm") > 5000
        severity: info
`), 0o644); err != nil {
		t.Fatal(err)
	}
	svg := filepath.Join(dir, "timeline.svg")
	out.Reset()
	err = run(ctx, []string{"rules", "backtest", "-clickhouse", addr, "-database", db, "-registry", regPath,
		"-from", t0.Format(time.RFC3339), "-to", t0.Add(2 * time.Hour).Format(time.RFC3339), "-rule", "hot", "-svg", svg, "-rules", rules}, &out)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, out.String())
	}
	want := "hot   " + site + "/" + asset + "  2026-11-02T09:25:00Z  2026-11-02T09:40:00Z  " + asset + " at 36 C"
	if !strings.Contains(out.String(), "90 points") || !strings.Contains(out.String(), "1 occurrences") || !strings.Contains(out.String(), want) {
		t.Fatalf("backtest printed:\n%s\nwant a line %q", out.String(), want)
	}
	if b, err := os.ReadFile(svg); err != nil || !bytes.Contains(b, []byte("<svg")) || !bytes.Contains(b, []byte(asset)) {
		t.Fatalf("timeline: %v %.200s", err, b)
	}
	if err := run(ctx, []string{"rules", "backtest", "-registry", regPath, "-rule", "nope", "-rules", rules}, &out); err == nil || !strings.Contains(err.Error(), `no rule "nope"`) {
		t.Fatalf("an unknown rule id: %v", err)
	}
}
