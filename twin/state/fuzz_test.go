package state

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

// FuzzApply applies arbitrary records to a small fleet: no panic, the
// aggregates still equal their recomputation, and applying the same records
// again (duplicates) changes nothing.
func FuzzApply(f *testing.F) {
	f.Add(uint8(0), uint8(4), "connector_state", int64(1000), 0.0, "", "", []byte(nil))
	f.Add(uint8(1), uint8(5), "energy_kwh", int64(-5), 12.5, "online", "", []byte(`{"a":1}`))
	f.Add(uint8(2), uint8(0), "fw", int64(0), math.NaN(), "offline", "fault", []byte(`{"fw":"1.0","x":[1,2]}`))
	f.Add(uint8(3), uint8(200), "", int64(math.MaxInt64), math.Inf(1), "bogus", "door_open", []byte(`nul`))
	fleet := genFleet(1)
	f.Fuzz(func(t *testing.T, kind, asset uint8, name string, ts int64, v float64, st, ev string, body []byte) {
		s := newFleetStore(fleet)
		ra := fleet[int(asset)%len(fleet)]
		site := ra.site
		if asset >= 200 {
			site = "CW-XX-1" // unknown site
		}
		var recs []*record.Record
		for i := range 4 {
			r := &record.Record{Site: site, Asset: ra.asset, Received: ts + int64(i), TS: ts - int64(i)}
			switch (int(kind) + i) % 5 {
			case 0:
				r.Kind = record.KindTelemetry
				r.Points = []record.Point{{Metric: name, TS: ts - int64(i), Value: v + float64(i)}, {Metric: "free_count", TS: ts, Value: v}}
			case 1:
				r.Kind, r.Body = record.KindReported, body
			case 2:
				r.Kind, r.Status = record.KindStatus, st
			case 3:
				r.Kind, r.Event, r.Body = record.KindEvent, ev, body
			default:
				r.Kind = record.Kind(name)
			}
			recs = append(recs, r)
			s.Apply(r)
		}
		now := time.UnixMilli(ts)
		checkAggregates(t, s, fleet, now)
		before, _ := s.Asset(ra.site, ra.asset, now)
		for _, r := range recs {
			if ch := s.Apply(r); ch.Changed() {
				t.Fatalf("duplicate record changed state: %+v", ch)
			}
		}
		after, _ := s.Asset(ra.site, ra.asset, now)
		if before.Version != after.Version {
			t.Fatalf("unexpected version after duplicates; got %d; want %d", after.Version, before.Version)
		}
		var buf bytes.Buffer
		if err := s.Snapshot(&buf); err != nil {
			t.Fatal(err)
		}
		s2 := New(Options{Location: rome})
		if err := s2.Restore(&buf); err != nil {
			t.Fatalf("cannot restore: %v", err)
		}
		checkAggregates(t, s2, fleet, now)
		if _, err := s.SetDesired(ra.site, ra.asset, map[string]json.RawMessage{name: body}, now, 0); err == nil {
			if _, ok := s.Delta(ra.site, ra.asset); !ok {
				t.Fatal("no delta for a known asset")
			}
		}
	})
}

// FuzzRestore feeds garbage and mangled snapshots to Restore: an error or a
// consistent store, never a panic.
func FuzzRestore(f *testing.F) {
	fleet := genFleet(1)
	s := newFleetStore(fleet)
	for _, r := range genStream(fleet, 3, time.Date(2026, 6, 15, 12, 0, 0, 0, rome), 3) {
		s.Apply(r)
	}
	var buf bytes.Buffer
	if err := s.Snapshot(&buf); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add([]byte(snapMagic))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		s := New(Options{Location: rome})
		if err := s.Restore(bytes.NewReader(b)); err != nil {
			return
		}
		for _, id := range s.Sites() {
			s.Site(id, time.Unix(0, 0))
		}
	})
}
