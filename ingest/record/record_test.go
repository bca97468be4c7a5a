package record

import (
	"errors"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	in := &Record{Kind: KindTelemetry, Site: "PO-001001-1", Asset: "atm-1", Received: 1700000000123,
		Points: []Point{{Metric: "temp_c", TS: 1700000000000, Value: 21.5}, {Metric: "co2_ppm", TS: 1700000000000, Value: 800, Late: true}}}
	b, err := Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var out Record
	if err := Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out.Site != in.Site || out.Asset != in.Asset || len(out.Points) != 2 || out.Points[1] != in.Points[1] || out.V != Version {
		t.Fatalf("unexpected record; got %+v; want %+v", out, *in)
	}
}

func TestUnmarshal_Failure(t *testing.T) {
	f := func(in string, wantVersion bool) {
		t.Helper()
		var r Record
		err := Unmarshal([]byte(in), &r)
		if err == nil {
			t.Fatalf("expected error for %q", in)
		}
		if errors.Is(err, ErrVersion) != wantVersion {
			t.Fatalf("unexpected error kind for %q: %v", in, err)
		}
	}
	f(`{`, false)
	f(`{"v":2,"site":"a","asset":"b"}`, true)
	f(`{"v":1,"site":"","asset":"b"}`, false)
	f(`[]`, false)
}

func FuzzUnmarshal(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"telemetry","site":"PO-1-1","asset":"atm-1","points":[{"m":"x","t":1,"v":2}]}`))
	f.Add([]byte(`{"v":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var r Record
		if err := Unmarshal(b, &r); err != nil {
			return
		}
		b2, err := Marshal(&r)
		if err != nil {
			t.Fatalf("re-marshal of accepted record failed: %v", err)
		}
		var r2 Record
		if err := Unmarshal(b2, &r2); err != nil {
			t.Fatalf("re-decode failed: %v", err)
		}
	})
}

func FuzzUnmarshalAlert(f *testing.F) {
	f.Add([]byte(`{"v":1,"kind":"fired","fingerprint":"ab","rule_id":"r","site":"PO-1","asset":"a"}`))
	f.Add([]byte(`{"v":2}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var a AlertChange
		if err := UnmarshalAlert(b, &a); err != nil {
			return
		}
		b2, err := MarshalAlert(&a)
		if err != nil {
			t.Fatalf("re-marshal: %v", err)
		}
		var a2 AlertChange
		if err := UnmarshalAlert(b2, &a2); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
	})
}
