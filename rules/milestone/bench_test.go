package milestone

import (
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// BenchmarkCompute is the portal's worst case: the whole programme (7,000
// sites, ~10 assets each) against the real pack (about 20 milestones).
// Synthetic placement, so that it needs no shared data.
func BenchmarkCompute(b *testing.B) {
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 6750, Coworking: 250, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	sites := reg.Sites()
	live := randomStates(sites, 2)
	state := func(site, asset string) (lifecycle.State, bool) {
		st, ok := live[site+"/"+asset]
		return st, ok
	}
	ms, err := LoadFile(packPath)
	if err != nil {
		b.Fatal(err)
	}
	now := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	b.ResetTimer()
	for b.Loop() {
		Compute(ms, sites, state, now)
	}
	// After the loop: ResetTimer would drop them.
	_, assets := reg.Len()
	b.ReportMetric(float64(assets), "assets")
	b.ReportMetric(float64(len(ms)), "milestones")
}
