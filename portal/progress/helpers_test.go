package progress

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// sharedData is a file of the public data folder (../shared/data from the
// repository root); a missing file fails the test.
func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data relative to the repository root)", err)
	}
	return p
}

const packPath = "../../rules/milestones/polis.yaml"

// realPack is the programme's milestone pack and facts table.
func realPack(tb testing.TB) ([]*milestone.Milestone, []milestone.Fact) {
	tb.Helper()
	ms, err := milestone.LoadFile(packPath)
	if err != nil {
		tb.Fatal(err)
	}
	facts, err := milestone.LoadFactsFile(sharedData(tb, "polis_fatti_pubblici.csv"))
	if err != nil {
		tb.Fatal(err)
	}
	return ms, facts
}

var comuni struct {
	once sync.Once
	cs   []registry.Comune
	err  error
}

// realComuni is ISTAT's list with centroids.
func realComuni(tb testing.TB) []registry.Comune {
	tb.Helper()
	mappa, centr := sharedData(tb, "comuni_mappa_ai_2020.csv"), sharedData(tb, "comuni_centroidi_openpolis_2023.csv")
	comuni.once.Do(func() {
		comuni.cs, comuni.err = registry.LoadComuni(mappa)
		if comuni.err != nil {
			return
		}
		var c map[string]registry.LatLon
		if c, comuni.err = registry.LoadCentroids(centr); comuni.err == nil {
			registry.JoinCentroids(comuni.cs, c)
		}
	})
	if comuni.err != nil {
		tb.Fatal(comuni.err)
	}
	return comuni.cs
}

// fullFleet is the programme's demo fleet: 4,800 post offices in real
// comuni and 250 coworking spaces.
func fullFleet(tb testing.TB) *registry.Registry {
	tb.Helper()
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 4800, Coworking: 250, Seed: 7,
		Comuni: realComuni(tb), ReproducibleSecrets: true})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}

// rollout makes a lifecycle history that leads every asset of sites to its
// registry state: installed on its registry date, commissioned a week
// later, operational two days after, faulty a month after that; a planned
// asset has no change. It also returns the final states.
func rollout(sites []*registry.Site, seed uint64) ([]Change, map[assetKey]lifecycle.State) {
	rng := rand.New(rand.NewPCG(seed, 1))
	var out []Change
	final := map[assetKey]lifecycle.State{}
	for _, s := range sites {
		for _, a := range s.Assets {
			st := registryState(a)
			final[assetKey{s.ID, a.ID}] = st
			if st == lifecycle.Planned {
				continue
			}
			at := a.InstalledAt
			if at.IsZero() {
				at = time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(rng.IntN(700*24)) * time.Hour)
			}
			from := lifecycle.Planned
			step := func(to lifecycle.State, after time.Duration) {
				at = at.Add(after)
				out = append(out, Change{Site: s.ID, Asset: a.ID, From: from, To: to, At: at})
				from = to
			}
			step(lifecycle.Installed, 0)
			if st == lifecycle.Installed {
				continue
			}
			if st == lifecycle.Decommissioned {
				step(lifecycle.Decommissioned, 24*time.Hour)
				continue
			}
			step(lifecycle.Commissioned, 7*24*time.Hour)
			if st == lifecycle.Commissioned {
				continue
			}
			step(lifecycle.Operational, 2*24*time.Hour)
			if st == lifecycle.Faulty {
				step(lifecycle.Faulty, 30*24*time.Hour)
			}
		}
	}
	return out, final
}
