package rules

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// benchFleet is a generated fleet and a minute of its telemetry, one
// record per asset as the simulator makes them.
func benchFleet(b *testing.B, sites int) (*registry.Registry, []*record.Record, map[string][]string) {
	b.Helper()
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: sites, Coworking: sites / 20, Seed: 3})
	if err != nil {
		b.Fatal(err)
	}
	metrics := map[string][]string{} // asset type -> metrics its model sends
	var recs []*record.Record
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	var s loadtest.Sample
	for _, site := range reg.Sites() {
		for _, a := range site.Assets {
			m := loadtest.NewModel(a.Type, loadtest.Place{Lat: site.Lat, Lon: site.Lon, Coworking: site.Kind == registry.KindCoworking}, 1)
			s.Reset()
			m.Step(now.Add(-time.Minute), &s)
			s.Reset()
			m.Step(now, &s)
			if len(s.Metrics) == 0 {
				continue
			}
			r := &record.Record{Kind: record.KindTelemetry, Site: site.ID, Asset: a.ID, Received: now.UnixMilli()}
			for _, p := range s.Metrics {
				r.Points = append(r.Points, record.Point{Metric: p.Name, TS: now.UnixMilli(), Value: p.Value})
				if !strings.Contains(strings.Join(metrics[a.Type], ","), p.Name) {
					metrics[a.Type] = append(metrics[a.Type], p.Name)
				}
			}
			recs = append(recs, r)
		}
	}
	return reg, recs, metrics
}

// benchRules writes n rules spread over the fleet's asset types and their
// metrics, each with its own threshold. indexed rules name their metric
// (last("x") > t); the others read value, so every point of their asset
// type evaluates them, as a type-only dispatch would.
func benchRules(b *testing.B, n int, metrics map[string][]string, indexed bool) []*dsl.Rule {
	b.Helper()
	var types []string
	for t := range metrics {
		types = append(types, t)
	}
	var sb strings.Builder
	sb.WriteString("groups:\n  - name: bench\n    rules:\n")
	for i := range n {
		t := types[i%len(types)]
		m := metrics[t][(i/len(types))%len(metrics[t])]
		expr := fmt.Sprintf(`last(%q) > %d`, m, 1000+i)
		if !indexed {
			expr = fmt.Sprintf(`value > %d`, 1000000+i)
		}
		fmt.Fprintf(&sb, "      - id: r%d\n        scope: {asset_types: [%s]}\n        expr: '%s'\n        severity: info\n", i, t, expr)
	}
	f, err := dsl.Load("bench.yaml", []byte(sb.String()), dsl.Options{AnyMetric: true})
	if err != nil {
		b.Fatal(err)
	}
	return f.Rules()
}

// BenchmarkEvaluator measures the rules on the twin's path: apply a record
// to the twin, then dispatch and evaluate its points, on one goroutine.
// points/s is the rate one core keeps up with; evals/s counts rule
// evaluations.
func BenchmarkEvaluator(b *testing.B) {
	for _, bc := range []struct {
		name    string
		rules   int
		indexed bool
	}{
		{"rules=0", 0, true},
		{"rules=1000/indexed", 1000, true},
		{"rules=1000/by-type-only", 1000, false},
		{"pack", -1, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			reg, recs, metrics := benchFleet(b, 300)
			var rules []*dsl.Rule
			switch {
			case bc.rules > 0:
				rules = benchRules(b, bc.rules, metrics, bc.indexed)
			case bc.rules < 0:
				files, err := dsl.LoadDir("pack", dsl.Options{})
				if err != nil {
					b.Fatal(err)
				}
				for _, f := range files {
					rules = append(rules, f.Rules()...)
				}
			}
			ev, err := NewEvaluator(reg, rules, engine.Options{MaxLateness: time.Hour}, 0)
			if err != nil {
				b.Fatal(err)
			}
			st := state.New(state.Options{})
			for _, s := range reg.Sites() {
				for _, a := range s.Assets {
					st.AddAsset(s.ID, a.ID, a.Type)
				}
			}
			points := 0
			for _, r := range recs {
				points += len(r.Points)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				r := recs[i%len(recs)]
				for j := range r.Points { // a minute later each round: newer points, as live
					r.Points[j].TS += 60000
				}
				st.Apply(r)
				_, _ = ev.Point(st, r)
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(b.N)*float64(points)/float64(len(recs))/sec, "points/s")
			b.ReportMetric(float64(ev.Evaluations())/sec, "evals/s")
			b.ReportMetric(float64(len(rules)), "rules")
		})
	}
}

// BenchmarkTick is the clock's share: every 10 s the pack's clock rules
// (silent_for, asset.status, opening hours) run on every asset that has
// reported. Reported per asset, to scale to the fleet.
func BenchmarkTick(b *testing.B) {
	reg, recs, _ := benchFleet(b, 300)
	files, err := dsl.LoadDir("pack", dsl.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var rules []*dsl.Rule
	for _, f := range files {
		rules = append(rules, f.Rules()...)
	}
	ev, err := NewEvaluator(reg, rules, engine.Options{}, 0)
	if err != nil {
		b.Fatal(err)
	}
	st := state.New(state.Options{})
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			st.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	for _, r := range recs {
		st.Apply(r)
		_, _ = ev.Point(st, r)
	}
	now := time.UnixMilli(recs[0].Points[0].TS)
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		_, _ = ev.Tick(now.Add(time.Duration(i) * 10 * time.Second))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(len(recs)), "ns/asset")
}
