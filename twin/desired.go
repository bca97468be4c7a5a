package twin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/topic"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/state"
)

// The path of a desired-state change, all in this package, log first: the
// API calls Live.SetDesired, which (one change of an asset at a time, on the
// instance owning its site) waits until the owning store has applied
// everything polis.desired.v1 holds for the partition, checks If-Match
// against the store's version and computes the asset's next whole desired
// state without changing the store, and produces it to the compacted topic.
// Only once Kafka has acknowledged the record does the store change: the
// twin consumer folds polis.desired.v1 like the ingest topics (applyDesired),
// and SetDesired answers once it has. A crash before the next snapshot
// therefore loses nothing: the restarted twin replays the topic from its
// snapshot's offsets, so a version is never handed out twice. Every
// instance also follows the topic (NewDesiredFollower) and publishes each
// record retained on the device's state/desired topic through its own MQTT
// broker.

// DesiredRecord is the value of a polis.desired.v1 record (key SITE/ASSET),
// also the payload a device receives on its state/desired topic.
type DesiredRecord struct {
	Version uint64                     `json:"version"`
	TS      int64                      `json:"ts"` // epoch ms
	Props   map[string]json.RawMessage `json:"props"`
}

// HeaderDesired names the header of a polis.desired.v1 record that lets the
// twin rebuild the asset's desired state exactly from the record alone (the
// only one compaction keeps): the asset's type and, for each property, the
// version and time it was set at. Devices never see it.
const HeaderDesired = "polis-desired"

// desiredMeta is the JSON of the HeaderDesired header.
type desiredMeta struct {
	Type  string              `json:"type,omitempty"`
	Props map[string]propMeta `json:"props,omitempty"`
}

type propMeta struct {
	Version uint64 `json:"v"`
	TS      int64  `json:"ts"` // epoch ms
}

// maxVersionGap bounds how many versions one record may skip ahead of the
// store (each is one step of the fold).
const maxVersionGap = 1 << 20

// nextDesired returns the asset's next whole desired state: cur's, with
// patch merged in (a JSON null removes a property), at version
// cur.DesiredVersion+1, and the header that describes it.
func nextDesired(cur state.AssetView, patch map[string]json.RawMessage, now time.Time) (DesiredRecord, desiredMeta, error) {
	next := cur.DesiredVersion + 1
	rec := DesiredRecord{Version: next, TS: now.UnixMilli(), Props: map[string]json.RawMessage{}}
	meta := desiredMeta{Props: map[string]propMeta{}}
	for name, p := range cur.Desired {
		rec.Props[name] = p.Value
		meta.Props[name] = propMeta{Version: p.Version, TS: p.TS.UnixMilli()}
	}
	for _, name := range slices.Sorted(maps.Keys(patch)) {
		v, ok := compactJSON(patch[name])
		if !ok {
			return DesiredRecord{}, desiredMeta{}, fmt.Errorf("cannot set desired %q: not JSON", name)
		}
		if bytes.Equal(v, []byte("null")) {
			delete(rec.Props, name)
			delete(meta.Props, name)
			continue
		}
		rec.Props[name] = v
		meta.Props[name] = propMeta{Version: next, TS: rec.TS}
	}
	return rec, meta, nil
}

func compactJSON(raw json.RawMessage) (json.RawMessage, bool) {
	var b bytes.Buffer
	if err := json.Compact(&b, raw); err != nil || b.Len() == 0 {
		return nil, false
	}
	return b.Bytes(), true
}

// foldDesired applies a desired record to st: a record at or below the
// asset's version is already there (a replay over a snapshot); one ahead is
// reached with the store's own SetDesired, one version per step, each
// property set at the version and time the header gives, so the store ends
// as it was on the instance that wrote the record, even when compaction
// left only the last record. An asset st does not hold yet (its site came
// through the registry topic after the store was made) is added.
func foldDesired(st *state.Store, site, asset string, rec DesiredRecord, meta desiredMeta) error {
	at := time.UnixMilli(rec.TS)
	cur, ok := st.Asset(site, asset, at)
	if !ok {
		st.AddAsset(site, asset, meta.Type)
		if cur, ok = st.Asset(site, asset, at); !ok {
			return fmt.Errorf("cannot add asset %s/%s", site, asset)
		}
	}
	have := cur.DesiredVersion
	if rec.Version <= have {
		return nil
	}
	if rec.Version-have > maxVersionGap {
		return fmt.Errorf("desired version %d of %s/%s is %d ahead of the twin's %d", rec.Version, site, asset, rec.Version-have, have)
	}
	steps := map[uint64]map[string]json.RawMessage{}
	stepTS := map[uint64]int64{}
	set := func(v uint64, name string, val json.RawMessage, ts int64) {
		if steps[v] == nil {
			steps[v] = map[string]json.RawMessage{}
		}
		steps[v][name] = val
		stepTS[v] = ts
	}
	for name, raw := range rec.Props {
		val, ok := compactJSON(raw)
		if !ok {
			return fmt.Errorf("desired %q of %s/%s is not JSON", name, site, asset)
		}
		pm, ok := meta.Props[name]
		if !ok || pm.Version == 0 || pm.Version > rec.Version {
			pm = propMeta{Version: rec.Version, TS: rec.TS}
		}
		if p, ok := cur.Desired[name]; ok && p.Version == pm.Version && bytes.Equal(p.Value, val) {
			continue // unchanged since the store's version
		}
		if pm.Version <= have {
			// The store holds another value from before: set it now.
			pm = propMeta{Version: rec.Version, TS: rec.TS}
		}
		set(pm.Version, name, val, pm.TS)
	}
	for name := range cur.Desired {
		if _, ok := rec.Props[name]; !ok {
			if steps[rec.Version] == nil {
				steps[rec.Version] = map[string]json.RawMessage{}
			}
			steps[rec.Version][name] = json.RawMessage("null")
		}
	}
	for v := have + 1; v <= rec.Version; v++ {
		ts, ok := stepTS[v]
		if !ok {
			ts = rec.TS
		}
		if _, err := st.SetDesired(site, asset, steps[v], time.UnixMilli(ts), 0); err != nil {
			return err
		}
	}
	return nil
}

// desiredRecord encodes rec and meta as a polis.desired.v1 record.
func desiredRecord(site, asset string, rec DesiredRecord, meta desiredMeta) (*kgo.Record, error) {
	body, err := json.Marshal(rec)
	if err != nil {
		return nil, fmt.Errorf("cannot encode desired state: %w", err)
	}
	hdr, err := json.Marshal(meta)
	if err != nil {
		return nil, fmt.Errorf("cannot encode desired state: %w", err)
	}
	return &kgo.Record{Topic: kafka.TopicDesired, Key: []byte(site + "/" + asset), Value: body,
		Headers: []kgo.RecordHeader{{Key: HeaderDesired, Value: hdr}}}, nil
}

// applyDesired folds a polis.desired.v1 record into the store of its
// partition (called from apply, with s.mu held) and tells subscribers.
func (s *Service) applyDesired(st *state.Store, kr *kgo.Record) {
	site, asset, ok := strings.Cut(string(kr.Key), "/")
	if !ok || len(kr.Value) == 0 {
		return
	}
	var rec DesiredRecord
	if err := json.Unmarshal(kr.Value, &rec); err != nil {
		s.log.Warn("skipping a desired state the twin cannot decode", "partition", kr.Partition, "offset", kr.Offset, "err", err)
		return
	}
	var meta desiredMeta
	for _, h := range kr.Headers {
		if h.Key == HeaderDesired {
			if err := json.Unmarshal(h.Value, &meta); err != nil {
				s.log.Warn("desired state header unreadable; properties take the record's version", "site", site, "asset", asset, "err", err)
			}
		}
	}
	if err := foldDesired(st, site, asset, rec, meta); err != nil {
		s.log.Warn("cannot apply desired state", "site", site, "asset", asset, "version", rec.Version, "err", err)
		return
	}
	if s.hub.active() {
		s.hub.publish(Update{Site: site, Asset: asset, Kind: "desired", At: time.UnixMilli(rec.TS)})
	}
}

// errNotOwner is returned when this instance stopped owning a site while
// writing for it.
var errNotOwner = errors.New("the site is now served by another instance; retry")

// appliedThrough returns the next offset of topic the store of partition p
// will apply, and whether this instance owns p.
func (s *Service) appliedThrough(p int32, topic string) (int64, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.parts[p]
	if !ok {
		return 0, false
	}
	return o.next[topic], true
}

// RetainedPublisher publishes a message from the platform itself (the
// MQTT broker).
type RetainedPublisher interface {
	Publish(topic string, payload []byte, retain bool, qos byte) error
}

// NewDesiredFollower replays and follows polis.desired.v1, publishing
// every desired state retained on its device's state/desired topic. opts
// (kafka.ClientOptions.Opts: SASL, TLS) go to its client.
func NewDesiredFollower(brokers []string, log *slog.Logger, pub RetainedPublisher, opts ...kgo.Opt) *kafka.Follower {
	return kafka.NewFollower(brokers, kafka.TopicDesired, log, func(r *kgo.Record) {
		site, asset, ok := strings.Cut(string(r.Key), "/")
		if !ok {
			return
		}
		if err := pub.Publish(topic.Build(site, asset, topic.Desired), r.Value, true, 1); err != nil {
			log.Warn("cannot publish desired state", "site", site, "asset", asset, "err", err)
		}
	}, opts...)
}
