package twin

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/twin/state"
)

// Update is one change of the twin, for the API's event stream, the
// lifecycle tracker and (next) the rules engine.
type Update struct {
	Site, Asset string
	Kind        string // telemetry, reported, status, event
	Status      string // the new time-independent status, when it changed
	Metrics     []string
	At          time.Time // source time of the record
	// Online is the connection status, when Kind is status.
	Online bool
}

// hub fans updates out to subscribers; a slow subscriber loses updates
// rather than holding up the consumer.
type hub struct {
	mu      sync.RWMutex
	subs    map[int]chan Update
	next    int
	dropped atomic.Uint64
}

// Subscribe returns a channel of updates and a cancel function.
func (s *Service) Subscribe(buffer int) (<-chan Update, func()) {
	h := &s.hub
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.subs == nil {
		h.subs = map[int]chan Update{}
	}
	id := h.next
	h.next++
	ch := make(chan Update, buffer)
	h.subs[id] = ch
	return ch, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if c, ok := h.subs[id]; ok {
			delete(h.subs, id)
			close(c)
		}
	}
}

// Dropped counts updates lost to slow subscribers.
func (s *Service) Dropped() uint64 { return s.hub.dropped.Load() }

func (h *hub) active() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.subs) > 0
}

func (h *hub) publish(u Update) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, c := range h.subs {
		select {
		case c <- u:
		default:
			h.dropped.Add(1)
		}
	}
}

// updateOf turns what Apply changed into an Update, or false if nothing did.
func updateOf(r *record.Record, c state.Change) (Update, bool) {
	if !c.Known || !c.Changed() {
		return Update{}, false
	}
	u := Update{Site: r.Site, Asset: r.Asset, Kind: string(r.Kind), At: time.UnixMilli(r.TS)}
	switch r.Kind {
	case record.KindTelemetry:
		for i, p := range r.Points {
			if (i < 64 && c.Points&(1<<uint(i)) != 0) || (i >= 64 && c.PointsOver) {
				u.Metrics = append(u.Metrics, p.Metric)
				if p.TS > u.At.UnixMilli() || u.At.UnixMilli() == 0 {
					u.At = time.UnixMilli(p.TS)
				}
			}
		}
	case record.KindStatus:
		u.Online = r.Status == "online"
	}
	if c.OldStatus != c.NewStatus {
		u.Status = c.NewStatus.String()
	}
	return u, true
}
