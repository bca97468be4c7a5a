package progress

import (
	"encoding/binary"
	"hash/fnv"
	"io"
	"slices"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// Change is one stored lifecycle change of an asset (a row of
// lifecycle_events). From is "" when not known.
type Change struct {
	Site, Asset string
	From, To    lifecycle.State
	At          time.Time
}

// step is a Change of a known asset, time in Unix ms.
type step struct {
	at       int64
	from, to lifecycle.State
}

type assetKey struct{ site, asset string }

// History is the lifecycle history: every asset's changes in time order.
// Build it with NewHistory; it is not modified afterwards.
type History struct {
	steps map[assetKey][]step
	n     int
}

// NewHistory groups changes by asset, in time order; identical rows (the
// same change stored twice before ClickHouse merged them) count once.
func NewHistory(changes []Change) *History {
	h := &History{steps: map[assetKey][]step{}}
	for _, c := range changes {
		h.add(c)
	}
	h.finish()
	return h
}

func (h *History) add(c Change) {
	if !c.To.Valid() {
		return
	}
	k := assetKey{c.Site, c.Asset}
	h.steps[k] = append(h.steps[k], step{at: c.At.UnixMilli(), from: c.From, to: c.To})
}

func (h *History) finish() {
	h.n = 0
	for k, ss := range h.steps {
		slices.SortStableFunc(ss, func(a, b step) int {
			switch {
			case a.at < b.at:
				return -1
			case a.at > b.at:
				return 1
			}
			return 0
		})
		ss = slices.Compact(ss)
		h.steps[k] = ss
		h.n += len(ss)
	}
}

// Len is the number of distinct changes.
func (h *History) Len() int {
	if h == nil {
		return 0
	}
	return h.n
}

// levelOf orders states for "at least installed" tests: decommissioned
// assets count nowhere.
func atLeastInstalled(s lifecycle.State) bool {
	switch s {
	case lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty:
		return true
	}
	return false
}

func atLeastCommissioned(s lifecycle.State) bool {
	switch s {
	case lifecycle.Commissioned, lifecycle.Operational, lifecycle.Faulty:
		return true
	}
	return false
}

// completed is the rule of an intervento concluso: every asset of the site
// commissioned or later (the same as the milestones' all_assets_in
// ("commissioned", "operational", "faulty")); false for a site without assets.
func completed(states []lifecycle.State) bool {
	if len(states) == 0 {
		return false
	}
	for _, s := range states {
		if !atLeastCommissioned(s) {
			return false
		}
	}
	return true
}

// siteFold is what the history says of one site.
type siteFold struct {
	site      *registry.Site // the registry entry it was folded for
	hash      uint64         // of its inputs (foldHash): an unchanged site is not folded again
	sig       string         // its assets' final states (signature)
	contrib   []int32        // every measure's count over the site in its final states
	completed bool
	// completedAt is when the site became completed for the last time
	// (beforeRecords: since before records); valid if completed.
	completedAt int64
	compDeltas  []delta  // +1 when it became completed, -1 when it stopped being
	installedOn []int64  // per asset (registry order): first time at least installed; 0 unknown
	deltas      []mdelta // its changes of every measure
}

// mdelta is a change of measure m.
type mdelta struct {
	m int
	delta
}

// folded is the history folded over the registry and the measures: each
// measure's count over time, and what each site's history says.
type folded struct {
	readAt  time.Time
	changes int
	series  []series // per measure
	sites   map[string]*siteFold
}

// stateCode makes a signature byte of a state.
func stateCode(s lifecycle.State) byte {
	switch s {
	case lifecycle.Planned:
		return 'p'
	case lifecycle.Installed:
		return 'i'
	case lifecycle.Commissioned:
		return 'c'
	case lifecycle.Operational:
		return 'o'
	case lifecycle.Faulty:
		return 'f'
	case lifecycle.Decommissioned:
		return 'd'
	}
	return '?'
}

func signature(states []lifecycle.State, buf []byte) []byte {
	buf = buf[:0]
	for _, s := range states {
		buf = append(buf, stateCode(s))
	}
	return buf
}

// registryState is an asset's state when nothing else is known.
func registryState(a *registry.Asset) lifecycle.State {
	if a.Lifecycle.Valid() {
		return a.Lifecycle
	}
	return lifecycle.Planned
}

// fold replays the history of every site of the registry. An asset
// without any change in h holds its registry state since its registry
// installation date (Asset.InstalledAt), or since before records when it
// has none; an asset with changes starts from the first change's From
// (planned when unknown). A site whose registry entry and changes are the
// same as when prev was folded keeps prev's result: after the first read,
// a new history costs the sites that changed.
func fold(h *History, sites []*registry.Site, set *measureSet, readAt time.Time, prev *folded) *folded {
	f := &folded{readAt: readAt, changes: h.Len(), sites: make(map[string]*siteFold, len(sites))}
	e := newEvaluator(set)
	r := &replay{e: e}
	n := 0
	for _, s := range sites {
		hash := foldHash(h, s)
		sf := prev.site(s.ID)
		if sf == nil || sf.site != s || sf.hash != hash {
			sf = r.site(h, s)
			sf.hash = hash
		}
		f.sites[s.ID] = sf
		n += len(sf.deltas)
	}
	deltas := make([][]delta, len(set.list))
	for _, sf := range f.sites {
		for _, d := range sf.deltas {
			deltas[d.m] = append(deltas[d.m], d.delta)
		}
	}
	f.series = make([]series, len(set.list))
	for i := range deltas {
		f.series[i] = newSeries(deltas[i])
	}
	return f
}

// foldHash digests what a site's fold depends on besides the registry
// entry itself: its assets' changes.
func foldHash(h *History, s *registry.Site) uint64 {
	x := fnv.New64a()
	var b [8]byte
	for _, a := range s.Assets {
		io.WriteString(x, a.ID)
		x.Write([]byte{0})
		for _, st := range h.steps[assetKey{s.ID, a.ID}] {
			binary.LittleEndian.PutUint64(b[:], uint64(st.at))
			x.Write(b[:])
			io.WriteString(x, string(st.from))
			x.Write([]byte{0})
			io.WriteString(x, string(st.to))
			x.Write([]byte{0})
		}
	}
	return x.Sum64()
}

// replay folds sites one by one, reusing its buffers.
type replay struct {
	e       *evaluator
	evs     []replayEv
	states  []lifecycle.State
	sig     []byte
	changed []int
}

type replayEv struct {
	at    int64
	asset int
	to    lifecycle.State
}

func (r *replay) site(h *History, s *registry.Site) *siteFold {
	r.evs = r.evs[:0]
	r.states = r.states[:0]
	sf := &siteFold{site: s, installedOn: make([]int64, len(s.Assets)), completedAt: beforeRecords}
	for i, a := range s.Assets {
		ss := h.steps[assetKey{s.ID, a.ID}]
		switch {
		case len(ss) > 0:
			from := ss[0].from
			if !from.Valid() {
				from = lifecycle.Planned
			}
			r.states = append(r.states, from)
			for _, st := range ss {
				r.evs = append(r.evs, replayEv{st.at, i, st.to})
			}
		case !a.InstalledAt.IsZero() && registryState(a) != lifecycle.Planned:
			r.states = append(r.states, lifecycle.Planned)
			r.evs = append(r.evs, replayEv{a.InstalledAt.UnixMilli(), i, registryState(a)})
		default:
			st := registryState(a)
			r.states = append(r.states, st)
			if atLeastInstalled(st) {
				sf.installedOn[i] = beforeRecords
			}
		}
	}
	slices.SortStableFunc(r.evs, func(a, b replayEv) int {
		switch {
		case a.at < b.at:
			return -1
		case a.at > b.at:
			return 1
		}
		return 0
	})
	states := r.states
	// Counts before the first change, then after each Rome day's changes:
	// a site is counted again once per day it changed on.
	sc := r.e.begin(s, states)
	prev := slices.Clone(sc.total)
	for i, c := range prev {
		if c != 0 {
			sf.deltas = append(sf.deltas, mdelta{i, delta{beforeRecords, c}})
		}
	}
	done := completed(states)
	if done {
		sf.compDeltas = append(sf.compDeltas, delta{beforeRecords, 1})
	}
	evs := r.evs
	for j := 0; j < len(evs); {
		day := romeDay(evs[j].at)
		last := evs[j].at
		r.changed = r.changed[:0]
		for ; j < len(evs) && romeDay(evs[j].at) == day; j++ {
			states[evs[j].asset] = evs[j].to
			r.changed = append(r.changed, evs[j].asset)
			last = evs[j].at
			if atLeastInstalled(evs[j].to) && sf.installedOn[evs[j].asset] == 0 {
				sf.installedOn[evs[j].asset] = evs[j].at
			}
		}
		sc.update(r.changed)
		for i, v := range sc.total {
			if d := v - prev[i]; d != 0 {
				sf.deltas = append(sf.deltas, mdelta{i, delta{last, d}})
				prev[i] = v
			}
		}
		if now := completed(states); now != done {
			done = now
			if now {
				sf.compDeltas = append(sf.compDeltas, delta{last, 1})
				sf.completedAt = last
			} else {
				sf.compDeltas = append(sf.compDeltas, delta{last, -1})
			}
		}
	}
	r.sig = signature(states, r.sig)
	sf.sig = string(r.sig)
	sf.contrib = prev
	sf.completed = done
	return sf
}

// romeDay numbers the calendar day of a Unix ms time in Europe/Rome.
func romeDay(ms int64) int64 {
	if ms == beforeRecords {
		return beforeRecords
	}
	t := time.UnixMilli(ms).In(rome)
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400
}
