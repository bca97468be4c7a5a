package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

var (
	// ErrVersionMismatch is returned by SetDesired when ifVersion is not the
	// current desired version (HTTP 412).
	ErrVersionMismatch = errors.New("desired version mismatch")
	// ErrUnknownAsset is returned for an asset that is not registered.
	ErrUnknownAsset = errors.New("unknown asset")
)

// SetDesired merges props into the asset's desired properties; a JSON null
// removes a property. ifVersion is the If-Match of the API: 0 means no
// condition, any other value must equal the current desired version (which
// starts at 0 and counts SetDesired calls). It returns the new version.
func (s *Store) SetDesired(siteID, assetID string, props map[string]json.RawMessage, at time.Time, ifVersion uint64) (uint64, error) {
	vals := make(map[string]json.RawMessage, len(props))
	for name, raw := range props {
		v, ok := compactJSON(raw)
		if !ok {
			return 0, fmt.Errorf("cannot set desired %q of %s/%s: not JSON", name, siteID, assetID)
		}
		vals[name] = v
	}
	sh := s.shardOf(siteID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.asset(siteID, assetID)
	if a == nil {
		return 0, fmt.Errorf("cannot set desired of %s/%s: %w", siteID, assetID, ErrUnknownAsset)
	}
	d := a.desired
	if d == nil {
		d = &desired{}
	}
	if ifVersion != 0 && ifVersion != d.version {
		return d.version, fmt.Errorf("cannot set desired of %s/%s: version %d, want %d: %w",
			siteID, assetID, d.version, ifVersion, ErrVersionMismatch)
	}
	ms := at.UnixMilli()
	for name, v := range vals {
		id, ok := sh.names.id(name)
		if !ok {
			return d.version, fmt.Errorf("cannot set desired %q of %s/%s: too many property names", name, siteID, assetID)
		}
		i := propIndex(d.props, id)
		switch {
		case bytes.Equal(v, []byte("null")):
			if i >= 0 {
				d.props = append(d.props[:i], d.props[i+1:]...)
			}
		case i >= 0:
			d.props[i] = prop{ts: ms, arrival: ms, val: v, id: id, ver: d.version + 1}
		default:
			d.props = append(d.props, prop{ts: ms, arrival: ms, val: v, id: id, ver: d.version + 1})
		}
	}
	d.version++
	a.desired = d
	return d.version, nil
}

func propIndex(ps []prop, id uint16) int {
	for i := range ps {
		if ps[i].id == id {
			return i
		}
	}
	return -1
}

func (sh *shard) asset(siteID, assetID string) *asset {
	if st := sh.sites[siteID]; st != nil {
		return st.assets[assetID]
	}
	return nil
}

// Delta returns the desired properties the device has not yet confirmed:
// those whose reported value differs, or equals but was reported before the
// desire was set. ok is false for an unknown asset.
func (s *Store) Delta(siteID, assetID string) (map[string]json.RawMessage, bool) {
	sh := s.shardOf(siteID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.asset(siteID, assetID)
	if a == nil {
		return nil, false
	}
	return sh.delta(a), true
}

func (sh *shard) delta(a *asset) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	if a.desired == nil {
		return out
	}
	for _, d := range a.desired.props {
		if i := propIndex(a.reported, d.id); i >= 0 {
			r := a.reported[i]
			if bytes.Equal(r.val, d.val) && r.ts >= d.ts {
				continue
			}
		}
		out[sh.names.list[d.id]] = clone(d.val)
	}
	return out
}

func clone(b []byte) json.RawMessage { return append(json.RawMessage(nil), b...) }

// MetricView is a metric's latest point.
type MetricView struct {
	Value   float64
	TS      time.Time // source time
	Arrival time.Time // earliest arrival of this point
	Version uint64    // asset version when it became latest
}

// PropView is a reported or desired property.
type PropView struct {
	Value   json.RawMessage
	TS      time.Time // source time (reported) or when it was set (desired)
	Arrival time.Time
	Version uint64 // asset version (reported) or desired version (desired)
}

// AssetView is a copy of an asset's state with its status at a given time.
type AssetView struct {
	Site, ID, Type string
	Status         Status
	Connection     string    // newest connection status: "online", "offline" or ""
	StatusTS       time.Time // its source time
	LastSeen       time.Time // newest arrival of any record
	Version        uint64    // counts accepted changes
	Metrics        map[string]MetricView
	Reported       map[string]PropView
	Desired        map[string]PropView
	DesiredVersion uint64
	Delta          map[string]json.RawMessage
	LastEvent      string
	LastEventTS    time.Time
}

func msTime(ms int64) time.Time {
	if ms == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

// Asset returns a copy of the asset's state and its status at now.
func (s *Store) Asset(siteID, assetID string, now time.Time) (AssetView, bool) {
	sh := s.shardOf(siteID)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	a := sh.asset(siteID, assetID)
	if a == nil {
		return AssetView{}, false
	}
	v := AssetView{
		Site:     siteID,
		ID:       a.id,
		Type:     a.typ.name,
		Status:   a.status(now.UnixMilli()),
		StatusTS: msTime(a.statusTS),
		LastSeen: msTime(a.lastSeen),
		Version:  a.version,
		Metrics:  make(map[string]MetricView, len(a.metrics)),
		Reported: make(map[string]PropView, len(a.reported)),
		Desired:  map[string]PropView{},
		Delta:    sh.delta(a),
	}
	switch a.conn {
	case connOnline:
		v.Connection = "online"
	case connOffline:
		v.Connection = "offline"
	}
	if a.event != idNone {
		v.LastEvent, v.LastEventTS = sh.names.list[a.event], msTime(a.eventTS)
	}
	for _, m := range a.metrics {
		v.Metrics[sh.names.list[m.id]] = MetricView{Value: m.val, TS: msTime(m.ts), Arrival: msTime(m.arrival), Version: m.ver}
	}
	for _, p := range a.reported {
		v.Reported[sh.names.list[p.id]] = PropView{Value: clone(p.val), TS: msTime(p.ts), Arrival: msTime(p.arrival), Version: p.ver}
	}
	if a.desired != nil {
		v.DesiredVersion = a.desired.version
		for _, p := range a.desired.props {
			v.Desired[sh.names.list[p.id]] = PropView{Value: clone(p.val), TS: msTime(p.ts), Arrival: msTime(p.arrival), Version: p.ver}
		}
	}
	return v, true
}
