package progress

import (
	"time"

	"github.com/polis-platform/polis/twin"
	"github.com/polis-platform/polis/twin/state"
)

// twinLive reads the live twin's stores directly, without asking other
// instances: the portal needs tens of thousands of statuses per build,
// and twin.Live.AssetState would ask the owner of every site this
// instance does not hold over the network.
type twinLive struct{ l *twin.Live }

// LiveOf is the Live of the platform's live twin. It answers for the
// sites of the partitions this instance owns: with one instance (polis
// serve) that is every site; with several, an instance's portal counts as
// working now only what it holds, and says nothing of the rest.
func LiveOf(l *twin.Live) Live { return twinLive{l} }

func (t twinLive) AssetStatus(site, asset string, now time.Time) (state.Status, bool) {
	var (
		st state.Status
		ok bool
	)
	svc := t.l.Service()
	if svc == nil {
		return 0, false
	}
	svc.With(t.l.PartitionOf(site), func(s *state.Store) {
		var v state.AssetView
		if v, ok = s.Asset(site, asset, now); ok {
			st = v.Status
		}
	})
	return st, ok
}

func (t twinLive) SiteView(site string, now time.Time) (state.SiteView, bool) {
	var (
		v  state.SiteView
		ok bool
	)
	svc := t.l.Service()
	if svc == nil {
		return v, false
	}
	svc.With(t.l.PartitionOf(site), func(s *state.Store) { v, ok = s.Site(site, now) })
	return v, ok
}

// StoreLive is the Live of one twin store (tests, tools).
func StoreLive(s *state.Store) Live { return storeLive{s} }

type storeLive struct{ s *state.Store }

func (l storeLive) AssetStatus(site, asset string, now time.Time) (state.Status, bool) {
	v, ok := l.s.Asset(site, asset, now)
	return v.Status, ok
}

func (l storeLive) SiteView(site string, now time.Time) (state.SiteView, bool) {
	return l.s.Site(site, now)
}
