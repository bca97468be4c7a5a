package payload

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/polis-platform/polis/ingest/record"
)

// checkError requires err to be a *Error with a code of the catalogue's
// that the decoders give.
func checkError(t *testing.T, err error) Code {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || !slices.Contains(decoderCodes(), e.Code) || e.Msg == "" {
		t.Fatalf("error outside the catalogue: %#v", err)
	}
	return e.Code
}

func checkTS(t *testing.T, w window, ts int64) {
	t.Helper()
	if ts < w.min || ts > w.max {
		t.Fatalf("timestamp %d outside [%d, %d]", ts, w.min, w.max)
	}
}

func FuzzDecodeTelemetry(f *testing.F) {
	for _, s := range fuzzSeeds(f, "telemetry", "senml") {
		f.Add(s)
	}
	f.Add(benchJSON)
	f.Add(benchSenML)
	f.Add([]byte(`{"m":{"a_w":1,"b_wh":2,"c_f":3,"d_k":4,"e":true},"ts":1741944598}`))
	f.Add([]byte(`[{"bn":"x:","bv":1,"bs":2,"bt":-3,"bu":"W","bver":10},{"n":"y","v":1,"t":-1},{"n":"z","s":1,"ut":5,"x":[{}]}]`))
	w := newWindow(testNow, Limits{})
	prev := []record.Point{pt("prev_c", 1, 2)}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := DecodeTelemetry(nil, b, testNow, Limits{})
		// The encoding/json decoder must agree on the outcome and its code.
		want, werr := stdDecodeTelemetry(nil, b, testNow, Limits{})
		if CodeOf(err) != CodeOf(werr) {
			t.Fatalf("scanner and encoding/json disagree on %q:\nscanner:       %v\nencoding/json: %v", b, err, werr)
		}
		if err != nil {
			checkError(t, err)
			if len(got) != 0 {
				t.Fatalf("points returned with error %v", err)
			}
		} else {
			if !equalPoints(got, want) {
				t.Fatalf("scanner and encoding/json disagree on %q:\n%+v\n%+v", b, got, want)
			}
			if len(got) == 0 || len(got) > w.maxPoints {
				t.Fatalf("unexpected number of points %d", len(got))
			}
			for _, p := range got {
				if !validName(p.Metric) || math.IsInf(p.Value, 0) || math.IsNaN(p.Value) {
					t.Fatalf("invalid point %+v", p)
				}
				checkTS(t, w, p.TS)
				if p.Late != (p.TS < w.late) {
					t.Fatalf("wrong Late flag on %+v", p)
				}
			}
		}
		// Deterministic, and appending keeps what dst held.
		again, err2 := DecodeTelemetry(slices.Clip(prev), b, testNow, Limits{})
		if CodeOf(err2) != CodeOf(err) || again[0] != prev[0] || !equalPoints(again[1:], got) {
			t.Fatalf("second decode differs: %+v, %v", again, err2)
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	for _, s := range fuzzSeeds(f, "event") {
		f.Add(s)
	}
	f.Add([]byte(`{"type":"a","ts":null,"x":{"type":1},"y":[1,"\u00e9"]}`))
	w := newWindow(testNow, Limits{})
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		typ, ts, body, err := DecodeEvent(in, testNow, Limits{})
		if err != nil {
			checkError(t, err)
		} else {
			if !validName(typ) {
				t.Fatalf("invalid type %q", typ)
			}
			checkTS(t, w, ts)
			checkCompactObject(t, body)
			var m map[string]any
			if err := json.Unmarshal(body, &m); err != nil || m["type"] != typ {
				t.Fatalf("body %s does not carry type %q: %v", body, typ, err)
			}
			for i := range in {
				in[i] = 'x' // body must not alias the input
			}
		}
		typ2, ts2, body2, err2 := DecodeEvent(b, testNow, Limits{})
		if typ2 != typ || ts2 != ts || !bytes.Equal(body2, body) || CodeOf(err2) != CodeOf(err) {
			t.Fatalf("second decode differs: %q %d %s %v", typ2, ts2, body2, err2)
		}
	})
}

func FuzzDecodeReported(f *testing.F) {
	for _, s := range fuzzSeeds(f, "reported") {
		f.Add(s)
	}
	f.Add([]byte(`{"a":1,"ts":1741944598000,"b":{"ts":2}}`))
	w := newWindow(testNow, Limits{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ts, props, err := DecodeReported(b, testNow, Limits{})
		if err != nil {
			checkError(t, err)
		} else {
			checkTS(t, w, ts)
			checkCompactObject(t, props)
			// props is the input object without "ts".
			var in, out map[string]json.RawMessage
			if json.Unmarshal(b, &in) != nil || json.Unmarshal(props, &out) != nil {
				t.Fatalf("cannot compare %q with %s", b, props)
			}
			if _, ok := out["ts"]; ok {
				t.Fatalf("props keep ts: %s", props)
			}
			delete(in, "ts")
			if len(in) != len(out) {
				t.Fatalf("props %s lost or gained keys of %q", props, b)
			}
			for k, v := range in {
				var c bytes.Buffer
				if json.Compact(&c, v) != nil || !bytes.Equal(c.Bytes(), out[k]) {
					t.Fatalf("props %s changed key %q of %q", props, k, b)
				}
			}
		}
		ts2, props2, err2 := DecodeReported(b, testNow, Limits{})
		if ts2 != ts || !bytes.Equal(props2, props) || CodeOf(err2) != CodeOf(err) {
			t.Fatalf("second decode differs: %d %s %v", ts2, props2, err2)
		}
	})
}

func FuzzDecodeStatus(f *testing.F) {
	for _, s := range fuzzSeeds(f, "status") {
		f.Add(s)
	}
	for _, s := range []string{"online", "OFFLINE", `"online"`, `{"status":"online","x":[1]}`, `{"status":"of\u0066line"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeStatus(b)
		if err != nil {
			checkError(t, err)
		} else if s != "online" && s != "offline" {
			t.Fatalf("unexpected status %q", s)
		}
		s2, err2 := DecodeStatus(b)
		if s2 != s || CodeOf(err2) != CodeOf(err) {
			t.Fatalf("second decode differs: %q %v", s2, err2)
		}
	})
}

// checkCompactObject requires b to be a valid, compact JSON object.
func checkCompactObject(t *testing.T, b []byte) {
	t.Helper()
	var c bytes.Buffer
	if err := json.Compact(&c, b); err != nil || !bytes.Equal(c.Bytes(), b) || b[0] != '{' {
		t.Fatalf("not a compact JSON object: %q (%v)", b, err)
	}
}
