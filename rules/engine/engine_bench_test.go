package engine_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// BenchmarkObserve: 1,000 rules, 10,000 assets; each point is evaluated by
// one rule (the caller's dispatch picks it), about 1% of points are over
// the threshold so some alerts open and close.
func BenchmarkObserve(b *testing.B) {
	e, evs, ids := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		ev := evs[i%len(evs)]
		ev.TS = day.Add(time.Duration(i) * time.Millisecond)
		// i/len(evs) shifts the rule each round: every rule meets every asset.
		if _, err := e.Observe(ev, ids[(i+i/len(evs))%len(ids)]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

// BenchmarkObserveParallel measures the engine mutex under contention.
func BenchmarkObserveParallel(b *testing.B) {
	e, evs, ids := benchSetup(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			i++
			ev := evs[i%len(evs)]
			ev.TS = day.Add(time.Duration(i) * time.Millisecond)
			_, _ = e.Observe(ev, ids[(i+i/len(evs))%len(ids)]) // late points are fine here
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "evals/s")
}

func benchSetup(b *testing.B) (*engine.Engine, []engine.Eval, []string) {
	e := engine.New(engine.Options{MaxLateness: time.Hour})
	rules := make([]engine.Rule, 1000)
	ids := make([]string, len(rules))
	for i := range rules {
		ids[i] = fmt.Sprintf("rule-%d", i)
		rules[i] = engine.Rule{ID: ids[i], Cond: gt(99), Clear: lt(90), For: time.Second}
	}
	if err := e.SetRules(rules); err != nil {
		b.Fatal(err)
	}
	evs := make([]engine.Eval, 10000)
	for i := range evs {
		evs[i] = engine.Eval{Site: fmt.Sprintf("PO-%d", i/10), Asset: fmt.Sprintf("env-%d", i%10), AssetType: "env", Metric: "temp_c", Value: float64(i % 101)}
	}
	return e, evs, ids
}

// BenchmarkTick: one Tick over 50,000 alert records (10,000 assets, 5 rules
// with NoData, 1% firing).
func BenchmarkTick(b *testing.B) {
	e := engine.New(engine.Options{ReminderEvery: time.Hour})
	var rules []engine.Rule
	for i := range 5 {
		rules = append(rules, engine.Rule{ID: fmt.Sprintf("rule-%d", i), Cond: gt(99), NoDataAfter: 24 * time.Hour})
	}
	if err := e.SetRules(rules); err != nil {
		b.Fatal(err)
	}
	for i := range 10000 {
		ev := engine.Eval{Site: fmt.Sprintf("PO-%d", i/10), Asset: fmt.Sprintf("env-%d", i%10), Metric: "temp_c", Value: float64(i % 101), TS: day}
		if _, err := e.Observe(ev, "rule-0", "rule-1", "rule-2", "rule-3", "rule-4"); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		e.Tick(day.Add(time.Duration(i) * time.Second))
	}
}
