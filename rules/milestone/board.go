package milestone

import (
	"sync"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// BoardEvery is how long a Board serves the same computation: the
// milestones are public, so a flood of requests must not recompute them.
const BoardEvery = 30 * time.Second

// Board serves the programme's milestones computed from the registry and
// the lifecycle states, recomputed at most every BoardEvery.
type Board struct {
	ms    []*Milestone
	reg   *registry.Registry
	state func(site, asset string) (lifecycle.State, bool)

	mu   sync.Mutex
	at   time.Time
	last []Progress
}

// NewBoard returns a board of ms over the registry's assets, whose
// lifecycle state is read with state.
func NewBoard(ms []*Milestone, reg *registry.Registry, state func(site, asset string) (lifecycle.State, bool)) *Board {
	return &Board{ms: ms, reg: reg, state: state}
}

// Milestones is the progress of every milestone at now.
func (b *Board) Milestones(now time.Time) []Progress {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last == nil || now.Sub(b.at) >= BoardEvery || now.Before(b.at) {
		b.last, b.at = Compute(b.ms, b.reg.Sites(), b.state, now), now
	}
	return b.last
}
