package lifecycle

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestDecodeImport_Forms(t *testing.T) {
	want := []Event{
		{Site: "PO-001002-1", Asset: "atm-1", To: Installed, At: time.Date(2023, 5, 4, 8, 12, 0, 0, time.UTC), Cause: "rollout:installation"},
		{Site: "PO-001002-1", Asset: "atm-1", From: Installed, To: Commissioned, At: time.Date(2023, 5, 11, 6, 0, 0, 0, time.UTC)},
	}
	ndjson := `{"site":"PO-001002-1","asset":"atm-1","to":"installed","at":"2023-05-04T10:12:00+02:00","cause":"rollout:installation"}

{"site":"PO-001002-1","asset":"atm-1","from":"installed","to":"commissioned","at":"2023-05-11T06:00:00Z"}
`
	array := "[\n" + strings.ReplaceAll(strings.TrimSpace(strings.ReplaceAll(ndjson, "\n\n", "\n")), "\n", ",\n") + "\n]\n"
	for name, in := range map[string]string{"ndjson": ndjson, "array": array, "ndjson without final newline": strings.TrimSpace(ndjson)} {
		got, lines, err := DecodeImport(strings.NewReader(in))
		if err != nil {
			t.Fatalf("%s: unexpected error: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s: got %+v; want %+v", name, got, want)
		}
		wantLines := map[string][]int{"ndjson": {1, 3}, "array": {2, 3}, "ndjson without final newline": {1, 3}}[name]
		if !reflect.DeepEqual(lines, wantLines) {
			t.Fatalf("%s: lines %v; want %v", name, lines, wantLines)
		}
	}
	if got, _, err := DecodeImport(strings.NewReader(" \n")); err != nil || len(got) != 0 {
		t.Fatalf("empty file: %v, %v", got, err)
	}
	if got, _, err := DecodeImport(strings.NewReader("[]")); err != nil || len(got) != 0 {
		t.Fatalf("empty array: %v, %v", got, err)
	}
}

func TestDecodeImport_Faults(t *testing.T) {
	const ok = `{"site":"S","asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z"}`
	for _, tc := range []struct {
		name, in    string
		line, index int
		msg         string
	}{
		{"broken json", ok + "\n{\"site\":", 2, 1, "ends early"},
		{"two values a line", ok + " " + ok, 1, 0, "more than one JSON value"},
		{"unknown field", `{"site":"S","asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z","actor":"me"}`, 1, 0, `unknown field "actor"`},
		{"no site", "\n\n" + `{"asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z"}`, 3, 0, "site and asset are required"},
		{"bad state", `{"site":"S","asset":"a-1","to":"built","at":"2023-05-04T08:12:00Z"}`, 1, 0, `to "built" is not a lifecycle state`},
		{"bad from", `{"site":"S","asset":"a-1","from":"x","to":"installed","at":"2023-05-04T08:12:00Z"}`, 1, 0, `from "x"`},
		{"bad time", `{"site":"S","asset":"a-1","to":"installed","at":"04/05/2023"}`, 1, 0, "not an RFC 3339 time"},
		{"number time", `{"site":"S","asset":"a-1","to":"installed","at":1683187920}`, 1, 0, "at must be a string"},
		{"control in cause", `{"site":"S","asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z","cause":"a\u0007b"}`, 1, 0, "control characters"},
		{"long cause", `{"site":"S","asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z","cause":"` + strings.Repeat("x", 201) + `"}`, 1, 0, "over 200 bytes"},
		{"not an object", `["S"]`, 1, 0, "not an event object"},
		{"array: second event bad", "[\n" + ok + ",\n" + `{"site":"S"}` + "\n]", 3, 1, "required"},
		{"array: not closed", "[\n" + ok, 2, -1, "does not close"},
		{"array: trailing data", "[" + ok + "] x", 1, -1, "after the array"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs, _, err := DecodeImport(strings.NewReader(tc.in))
			var de *DecodeError
			if !errors.As(err, &de) || de.Line != tc.line || de.Index != tc.index || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (%+v); want line %d, index %d, saying %q", err, de, tc.line, tc.index, tc.msg)
			}
			if evs != nil {
				t.Fatalf("events returned with an error")
			}
		})
	}
}

// WriteImport's output decodes to the events it was given (actors aside).
func TestWriteImport_RoundTrip(t *testing.T) {
	evs := []Event{
		{Site: "PO-001002-1", Asset: "atm-1", From: Planned, To: Installed, At: time.Date(2023, 5, 4, 8, 12, 0, 0, time.UTC), Actor: "x", Cause: "rollout:installation"},
		{Site: "CW-TO-1", Asset: "desk-3", From: Operational, To: Faulty, At: time.Date(2026, 11, 30, 23, 59, 59, 500, time.UTC), Cause: "<guasto> & co"},
	}
	var b bytes.Buffer
	if err := WriteImport(&b, evs); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), "actor") || strings.Count(b.String(), "\n") != 2 || !strings.Contains(b.String(), "<guasto> & co") {
		t.Fatalf("unexpected file:\n%s", b.String())
	}
	got, _, err := DecodeImport(&b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range evs {
		evs[i].Actor = ""
	}
	if !reflect.DeepEqual(got, evs) {
		t.Fatalf("round trip\n got %+v\nwant %+v", got, evs)
	}
}

// FuzzDecodeImport: any input decodes to well-formed events or a
// positioned error, and what decodes survives a round trip.
func FuzzDecodeImport(f *testing.F) {
	f.Add(`{"site":"S","asset":"a-1","to":"installed","at":"2023-05-04T08:12:00Z","cause":"c"}` + "\n")
	f.Add(`[{"site":"S","asset":"a-1","from":"planned","to":"installed","at":"2023-05-04T08:12:00.5+01:00"}]`)
	f.Add("[\n{},\n]")
	f.Add(`{"site":"S"}{"site":"T"}`)
	f.Fuzz(func(t *testing.T, in string) {
		evs, lines, err := DecodeImport(strings.NewReader(in))
		if err != nil {
			var de *DecodeError
			if !errors.As(err, &de) || de.Line < 1 || de.Index < -1 || de.Line > strings.Count(in, "\n")+1 {
				t.Fatalf("error without a sound position: %v", err)
			}
			return
		}
		if len(lines) != len(evs) {
			t.Fatalf("%d lines for %d events", len(lines), len(evs))
		}
		for _, e := range evs {
			if e.Site == "" || e.Asset == "" || !e.To.Valid() || (e.From != "" && !e.From.Valid()) || e.At.Location() != time.UTC {
				t.Fatalf("malformed event decoded: %+v", e)
			}
		}
		var b bytes.Buffer
		if err := WriteImport(&b, evs); err != nil {
			t.Fatal(err)
		}
		again, _, err := DecodeImport(&b)
		if err != nil || len(again) != len(evs) {
			t.Fatalf("re-decoding %q: %v", b.String(), err)
		}
		for i := range evs {
			if !again[i].At.Equal(evs[i].At) || again[i].Site != evs[i].Site || again[i].Cause != evs[i].Cause {
				t.Fatalf("round trip changed event %d: %+v → %+v", i, evs[i], again[i])
			}
		}
	})
}
