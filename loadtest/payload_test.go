package loadtest

import (
	"encoding/json"
	"math"
	"testing"
	"time"
)

func TestAppendTelemetry(t *testing.T) {
	ts := time.UnixMilli(1717495200123)
	f := func(ms []Metric, want string) {
		t.Helper()
		got := string(appendTelemetry(nil, ts, ms))
		if got != want {
			t.Errorf("unexpected payload; got %s; want %s", got, want)
		}
		var v struct {
			TS int64              `json:"ts"`
			M  map[string]float64 `json:"m"`
		}
		if err := json.Unmarshal([]byte(got), &v); err != nil || v.TS != ts.UnixMilli() {
			t.Errorf("payload %s does not decode: %v", got, err)
		}
	}
	f(nil, `{"ts":1717495200123,"m":{}}`)
	f([]Metric{{"power_kw", 1.5}, {"energy_kwh", 12345.678}}, `{"ts":1717495200123,"m":{"power_kw":1.5,"energy_kwh":12345.678}}`)
	f([]Metric{{"bad", math.NaN()}, {"uptime_s", 2521277}, {"inf", math.Inf(1)}, {"rssi_dbm", -67}},
		`{"ts":1717495200123,"m":{"uptime_s":2521277,"rssi_dbm":-67}}`)
}

func TestAppendEvent(t *testing.T) {
	ts := time.UnixMilli(1717495200123)
	f := func(e Event, want string) {
		t.Helper()
		got, err := appendEvent(nil, e)
		if err != nil || string(got) != want {
			t.Errorf("unexpected event; got %s (%v); want %s", got, err, want)
		}
	}
	f(Event{TS: ts, Type: "door_open"}, `{"ts":1717495200123,"type":"door_open"}`)
	f(Event{TS: ts, Type: "door_open", Fields: map[string]any{"reason": "pickup", "compartment": 4, "ts": 1}},
		`{"ts":1717495200123,"type":"door_open","compartment":4,"reason":"pickup"}`)
	if _, err := appendEvent(nil, Event{TS: ts, Type: "x", Fields: map[string]any{"f": math.NaN()}}); err == nil {
		t.Errorf("NaN field encoded without error")
	}
}
