package services

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// storeTwin is Twin over a real state.Store and lifecycle.Tracker, as the
// platform's twin is, for one instance; sites in remote belong to
// another.
type storeTwin struct {
	store *state.Store
	track *lifecycle.Tracker

	reads atomic.Int64 // AssetState calls

	mu     sync.RWMutex
	remote map[string]bool
}

func newStoreTwin(t testing.TB, reg *registry.Registry) *storeTwin {
	t.Helper()
	w := &storeTwin{store: state.New(state.Options{}), track: lifecycle.NewTracker(lifecycle.Options{}), remote: map[string]bool{}}
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			w.store.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	if err := reg.SeedTracker(w.track); err != nil {
		t.Fatal(err)
	}
	return w
}

func (w *storeTwin) AssetState(site, asset string, now time.Time) (state.AssetView, bool, string) {
	w.reads.Add(1)
	w.mu.RLock()
	remote := w.remote[site]
	w.mu.RUnlock()
	if remote {
		return state.AssetView{}, false, "http://other:8080"
	}
	v, _ := w.store.Asset(site, asset, now)
	return v, true, ""
}

func (w *storeTwin) Lifecycle(site, asset string) (lifecycle.State, bool) {
	return w.track.State(site, asset)
}

func (w *storeTwin) setRemote(site string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.remote[site] = true
}

// telemetry applies one telemetry record of metric/value pairs at at.
func (w *storeTwin) telemetry(site, asset string, at time.Time, kv ...any) {
	r := &record.Record{V: record.Version, Kind: record.KindTelemetry, Site: site, Asset: asset, Received: at.UnixMilli()}
	for i := 0; i+1 < len(kv); i += 2 {
		r.Points = append(r.Points, record.Point{Metric: kv[i].(string), TS: at.UnixMilli(), Value: toFloat(kv[i+1])})
	}
	w.store.Apply(r)
}

func toFloat(v any) float64 {
	switch x := v.(type) {
	case int:
		return float64(x)
	case float64:
		return x
	}
	panic("toFloat: not a number")
}

// status applies a connection status ("online", "offline") at at.
func (w *storeTwin) status(site, asset, st string, at time.Time) {
	w.store.Apply(&record.Record{V: record.Version, Kind: record.KindStatus, Site: site, Asset: asset,
		Received: at.UnixMilli(), TS: at.UnixMilli(), Status: st})
}

// move sets an asset's lifecycle state by operator calls along the
// allowed moves.
func (w *storeTwin) move(t testing.TB, site, asset string, to ...lifecycle.State) {
	t.Helper()
	for _, s := range to {
		if _, err := w.track.Transition(site, asset, s, "test", "test", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}
