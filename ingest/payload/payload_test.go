package payload

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

var testNow = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

const nowMS = 1741944600000 // testNow

func pt(metric string, ts int64, v float64) record.Point {
	return record.Point{Metric: metric, TS: ts, Value: v}
}

func latePt(metric string, ts int64, v float64) record.Point {
	return record.Point{Metric: metric, TS: ts, Value: v, Late: true}
}

func equalPoints(a, b []record.Point) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func requireCode(t *testing.T, err error, want Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("expected error %s; got nil", want)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("unexpected error type %T: %v", err, err)
	}
	if e.Code != want {
		t.Fatalf("unexpected code; got %s (%s); want %s", e.Code, e.Msg, want)
	}
	if e.Msg == "" {
		t.Fatalf("error %s has no message", e.Code)
	}
}

func TestCodes(t *testing.T) {
	seen := map[Code]bool{}
	for _, r := range Catalogue() {
		c := r.Code
		if c == "" || seen[c] {
			t.Fatalf("code %q is empty or repeated", c)
		}
		seen[c] = true
		for _, r := range c {
			if (r < 'a' || r > 'z') && r != '_' {
				t.Fatalf("code %q is not snake_case", c)
			}
		}
		if r.Meaning == "" {
			t.Fatalf("code %q has no meaning", c)
		}
	}
	codes := Codes()
	if len(codes) != len(seen) {
		t.Fatalf("Codes() has %d codes; the catalogue %d", len(codes), len(seen))
	}
	for _, c := range codes {
		if !seen[c] {
			t.Fatalf("Codes() has %q, which is not in the catalogue", c)
		}
	}
	if n, d := len(seen), len(decoderCodes()); n != 21 || d != 14 {
		t.Fatalf("unexpected number of codes; got %d (%d of the decoders); want 21 (14)", n, d)
	}
}

// decoderCodes are the codes of the catalogue this package's decoders give.
func decoderCodes() []Code {
	var out []Code
	for _, r := range Catalogue() {
		if r.Stage == StageDecode {
			out = append(out, r.Code)
		}
	}
	return out
}

func TestError(t *testing.T) {
	_, err := DecodeTelemetry(nil, []byte(`{"m":{"Temp":1}}`), testNow, Limits{})
	wrapped := fmt.Errorf("cannot ingest publish: %w", err)
	if !errors.Is(wrapped, &Error{Code: CodeBadMetric}) {
		t.Fatalf("errors.Is does not match on code: %v", wrapped)
	}
	if errors.Is(wrapped, &Error{Code: CodeBadJSON}) {
		t.Fatalf("errors.Is matches another code: %v", wrapped)
	}
	if got := CodeOf(wrapped); got != CodeBadMetric {
		t.Fatalf("unexpected CodeOf; got %q; want %q", got, CodeBadMetric)
	}
	if CodeOf(errors.New("x")) != "" || CodeOf(nil) != "" {
		t.Fatalf("CodeOf of a foreign error must be empty")
	}
	if s := err.Error(); !strings.HasPrefix(s, "bad_metric_name: ") || !strings.Contains(s, `"Temp"`) {
		t.Fatalf("unexpected message %q: want the code and the offending name", s)
	}
}

func TestLimitsDefaults(t *testing.T) {
	w := newWindow(testNow, Limits{})
	d := DefaultLimits
	if w.max != nowMS+d.MaxFuture.Milliseconds() || w.late != nowMS-d.LateAfter.Milliseconds() ||
		w.min != nowMS-d.MaxAge.Milliseconds() || w.maxPoints != d.MaxPoints {
		t.Fatalf("zero Limits do not resolve to DefaultLimits; got %+v", w)
	}
	if d.MaxFuture != 5*time.Minute || d.LateAfter != 10*time.Minute || d.MaxAge != 400*24*time.Hour || d.MaxPoints != 10000 {
		t.Fatalf("unexpected DefaultLimits %+v", d)
	}
	w = newWindow(testNow, Limits{MaxFuture: -1, LateAfter: time.Minute, MaxAge: time.Hour, MaxPoints: 3})
	if w.max != nowMS+d.MaxFuture.Milliseconds() || w.late != nowMS-60000 || w.min != nowMS-3600000 || w.maxPoints != 3 {
		t.Fatalf("unexpected window %+v", w)
	}
}

func TestDecodeTelemetry_Success(t *testing.T) {
	f := func(in string, lim Limits, want ...record.Point) {
		t.Helper()
		got, err := DecodeTelemetry(nil, []byte(in), testNow, lim)
		if err != nil {
			t.Fatalf("unexpected error for %s: %v", in, err)
		}
		if !equalPoints(got, want) {
			t.Fatalf("unexpected points for %s;\ngot  %+v\nwant %+v", in, got, want)
		}
	}
	var none Limits
	const ts = nowMS - 1877 // 09:29:58.123
	f(`{"ts":"2025-03-14T09:29:58.123Z","m":{"temp_c":21.5,"co2_ppm":612}}`, none, pt("temp_c", ts, 21.5), pt("co2_ppm", ts, 612))
	f(` {"m" : {"temp_c" : 21.5} } `+"\n", none, pt("temp_c", nowMS, 21.5))
	f(`{"ts":null,"m":{"temp_c":21.5}}`, none, pt("temp_c", nowMS, 21.5))
	f(`{"m":{"temp_c":21.5},"ts":1741944598123}`, none, pt("temp_c", ts, 21.5))

	// Epoch: below 1e11 seconds, above milliseconds; fractions round to the ms.
	f(`{"ts":1741944598,"m":{"a_c":1}}`, none, pt("a_c", nowMS-2000, 1))
	f(`{"ts":1741944598.1234,"m":{"a_c":1}}`, none, pt("a_c", ts, 1))
	f(`{"ts":1741944598122.6,"m":{"a_c":1}}`, none, pt("a_c", ts, 1))
	f(`{"ts":1.741944598123e12,"m":{"a_c":1}}`, none, pt("a_c", ts, 1))

	// RFC 3339 variants: zones and nanoseconds (truncated to the ms).
	f(`{"ts":"2025-03-14T10:29:58.123+01:00","m":{"a_c":1}}`, none, pt("a_c", ts, 1))
	f(`{"ts":"2025-03-14T09:29:58.123999999Z","m":{"a_c":1}}`, none, pt("a_c", ts, 1))
	f(`{"ts":"2025-03-14T04:29:58.123-05:00","m":{"a_c":1}}`, none, pt("a_c", ts, 1))

	// Booleans are 1/0; JSON number forms.
	f(`{"m":{"door_open":true,"screen_on":false}}`, none, pt("door_open", nowMS, 1), pt("screen_on", nowMS, 0))
	f(`{"m":{"a_c":-5.5,"b_c":1e3,"c_c":-0,"d_c":2.5E-1,"e_c":1e-400}}`, none,
		pt("a_c", nowMS, -5.5), pt("b_c", nowMS, 1000), pt("c_c", nowMS, 0), pt("d_c", nowMS, 0.25), pt("e_c", nowMS, 0))

	// Unit normalisation, only on clear suffixes.
	f(`{"m":{"power_w":3420,"energy_wh":15234700,"temp_f":212,"water_k":273.15}}`, none,
		pt("power_kw", nowMS, 3.42), pt("energy_kwh", nowMS, 15234.7), pt("temp_c", nowMS, 100), pt("water_c", nowMS, 0))
	f(`{"m":{"power_kw":1,"energy_kwh":2,"w":3,"flow_mw":4,"energy_mwh":5,"speed_kmh":6}}`, none,
		pt("power_kw", nowMS, 1), pt("energy_kwh", nowMS, 2), pt("w", nowMS, 3), pt("flow_mw", nowMS, 4), pt("energy_mwh", nowMS, 5), pt("speed_kmh", nowMS, 6))

	// Escaped keys mean the same name.
	f(`{"\u0074s":1741944598123,"m":{"temp\u005fc":1}}`, none, pt("temp_c", ts, 1))

	// Late marking and the time window edges.
	f(`{"ts":"2025-03-14T09:15:00Z","m":{"a_c":1}}`, none, latePt("a_c", nowMS-15*60000, 1))
	f(`{"ts":"2025-03-14T09:20:00Z","m":{"a_c":1}}`, none, pt("a_c", nowMS-10*60000, 1))
	f(`{"ts":"2025-03-14T09:35:00Z","m":{"a_c":1}}`, none, pt("a_c", nowMS+5*60000, 1))
	f(`{"ts":"2024-02-08T09:30:00Z","m":{"a_c":1}}`, none, latePt("a_c", nowMS-400*86400000, 1))
	f(`{"ts":"2025-03-14T09:28:00Z","m":{"a_c":1}}`, Limits{LateAfter: time.Minute}, latePt("a_c", nowMS-120000, 1))
	f(`{"ts":"2025-03-14T09:45:00Z","m":{"a_c":1}}`, Limits{MaxFuture: time.Hour}, pt("a_c", nowMS+15*60000, 1))

	// Name length: 64 is the limit, also after normalisation.
	f(`{"m":{"`+strings.Repeat("x", 61)+`_kw":1}}`, none, pt(strings.Repeat("x", 61)+"_kw", nowMS, 1))
	f(`{"m":{"`+strings.Repeat("y", 61)+`_w":1000}}`, none, pt(strings.Repeat("y", 61)+"_kw", nowMS, 1))

	// Appends to dst and keeps what was there.
	prev := []record.Point{pt("old_c", 1, 2)}
	got, err := DecodeTelemetry(prev, []byte(`{"m":{"a_c":1}}`), testNow, none)
	if err != nil || !equalPoints(got, []record.Point{prev[0], pt("a_c", nowMS, 1)}) {
		t.Fatalf("unexpected append result %+v, %v", got, err)
	}
}

func TestDecodeTelemetry_Failure(t *testing.T) {
	f := func(in string, lim Limits, want Code) {
		t.Helper()
		prev := []record.Point{pt("old_c", 1, 2)}
		got, err := DecodeTelemetry(prev, []byte(in), testNow, lim)
		requireCode(t, err, want)
		if len(got) != 1 || got[0] != prev[0] {
			t.Fatalf("dst changed on error for %s: %+v", in, got)
		}
	}
	var none Limits
	f(``, none, CodeEmpty)
	f(" \t\r\n", none, CodeEmpty)

	// Not JSON, wherever the break is (a syntax error wins over an earlier bad name).
	for _, in := range []string{
		`hello`, `{`, `{"m":{"temp_c":1}`, `{"m":{"temp_c":1}} x`, `{"m":{"temp_c":1},}`, `{"m":{"temp_c":1,}}`,
		`{"m":{"temp_c":01}}`, `{"m":{"temp_c":.5}}`, `{"m":{"temp_c":1.}}`, `{"m":{"temp_c":1e}}`, `{"m":{"temp_c":NaN}}`,
		`{"m":{"temp_c":Infinity}}`, `{"m":{"temp_c":+1}}`, `{"m":{"temp_c":0x10}}`, `{"m":{"temp_c":1_000}}`,
		`{"m":{"temp_c":tru}}`, `{"m":{'temp_c':1}}`, `{"m":{"temp_c"1}}`, `{m:{"temp_c":1}}`, "{\"m\":{\"a\tb\":1}}",
		`{"m":{"a\x":1}}`, `{"m":{"a\u00g0":1}}`, `{"m":{"Temp":1}} }`, `{"m":{"a_c":"x}}`, "\ufeff{\"m\":{\"a_c\":1}}",
		`{"m":{"a_c":1}}` + "\x00", `{"m":{"a_c":[1,]}}`, `{"m":{"a_c":1}`, `{"ts":,"m":{"a_c":1}}`,
		`{"m":{"a_c":1}}{}`, `{"x":1,`, `{"m":{"a_c":1},"m"}`, `[`, `42`, `"x"`, `null`,
	} {
		f(in, none, CodeBadJSON)
	}
	// Valid JSON, wrong shape.
	f(`{"m":{"temp_c":1},"extra":1}`, none, CodeBadJSON)
	f(`{"M":{"temp_c":1}}`, none, CodeBadJSON)
	f(`{"m":{"a_c":1},"m":{"b_c":1}}`, none, CodeBadJSON)
	f(`{"ts":1741944598000,"ts":1741944598000,"m":{"a_c":1}}`, none, CodeBadJSON)
	f(`{"m":[1,2]}`, none, CodeBadJSON)
	f(`{"m":"temp_c=1"}`, none, CodeBadJSON)

	f(`{}`, none, CodeNoMetrics)
	f(`{"ts":1741944598123}`, none, CodeNoMetrics)
	f(`{"m":{}}`, none, CodeNoMetrics)
	f(`{"m":null}`, none, CodeNoMetrics)

	for _, name := range []string{"Temp_c", "1temp", "temp-c", "temp c", "", "_temp", "temp.c", "températ", "temp_C",
		strings.Repeat("x", 65), strings.Repeat("y", 62) + "_w"} {
		f(`{"m":{"`+name+`":1}}`, none, CodeBadMetric)
	}
	f(`{"m":{"temp_c":1,"temp_c":2}}`, none, CodeBadMetric)
	f(`{"m":{"temp_f":1,"temp_c":2}}`, none, CodeBadMetric)
	f(`{"m":{"power_w":1,"power_kw":2}}`, none, CodeBadMetric)
	// Repeats past the linear scan, where a map takes over.
	var many strings.Builder
	for i := range 40 {
		fmt.Fprintf(&many, `"m%d_c":%d,`, i, i)
	}
	f(`{"m":{`+many.String()+`"m3_c":1}}`, none, CodeBadMetric)
	f(`{"m":{`+many.String()+`"m39_c":1}}`, none, CodeBadMetric)

	f(`{"m":{"a_c":1e999}}`, none, CodeNonFinite)
	f(`{"m":{"a_c":-1e400}}`, none, CodeNonFinite)

	for _, v := range []string{`"21.5"`, `null`, `{}`, `[]`, `[1]`, `{"v":1}`} {
		f(`{"m":{"a_c":`+v+`}}`, none, CodeNonNumeric)
	}

	for _, ts := range []string{`"yesterday"`, `"2025-03-14 09:29:58Z"`, `"2025-03-14T09:29:58"`, `"1741944598000"`,
		`"2025-03-14"`, `"2025-03-14T25:00:00Z"`, `"2025-03-14T09:29:58,123Z"`, `"2025-03-14T09:29:58+24:00"`,
		`"2025-03-14T09:29:58+0100"`, `"2025-03-14T09:29:60Z"`, `" 2025-03-14T09:29:58Z"`, `"0000-01-01T0:00:00Z"`,
		`"2025-03-14T9:29:58Z"`, `"2025-3-14T09:29:58Z"`, `"2025-03-14T09:29:58.Z"`, `"2025-03-14T09:29:58Z "`, `"2025-03-14T09:29:58+01"`,
		`"2025-03-14T09:29:58+1:00"`, `"2025-03-14t09:29:58z"`, `"2025-02-30T09:29:58Z"`, `"+2025-03-14T09:29:58Z"`, `"Fri, 14 Mar 2025 09:29:58 GMT"`, `true`, `{}`, `[]`, `1e999`, `""`} {
		f(`{"ts":`+ts+`,"m":{"a_c":1}}`, none, CodeBadTimestamp)
	}

	for _, ts := range []string{`"2025-03-14T09:35:00.001Z"`, `1741944900001`, `1e15`, `9e18`, `1e300`, `"9999-12-31T23:59:59Z"`} {
		f(`{"ts":`+ts+`,"m":{"a_c":1}}`, none, CodeFuture)
	}
	f(`{"ts":"2025-03-14T09:45:00Z","m":{"a_c":1}}`, Limits{MaxFuture: time.Minute}, CodeFuture)

	for _, ts := range []string{`0`, `-1`, `-1e300`, `"1970-01-01T00:00:00Z"`, `"0001-01-01T00:00:00Z"`,
		`"2024-02-08T09:29:59.999Z"`, `1707384599999`} {
		f(`{"ts":`+ts+`,"m":{"a_c":1}}`, none, CodeTooOld)
	}
	f(`{"ts":"2025-03-14T08:00:00Z","m":{"a_c":1}}`, Limits{MaxAge: time.Hour}, CodeTooOld)

	f(`{"m":{"a_c":1,"b_c":2,"c_c":3}}`, Limits{MaxPoints: 2}, CodeTooMany)
}

// kelvin300 is a variable so that 300-273.15 is computed in float64, as the
// decoder does, not exactly as a constant.
var kelvin300 = 300.0

func TestDecodeSenML_Success(t *testing.T) {
	f := func(in string, want ...record.Point) {
		t.Helper()
		got, err := DecodeTelemetry(nil, []byte(in), testNow, Limits{})
		if err != nil {
			t.Fatalf("unexpected error for %s: %v", in, err)
		}
		if !equalPoints(got, want) {
			t.Fatalf("unexpected points for %s;\ngot  %+v\nwant %+v", in, got, want)
		}
	}
	// RFC 8428 §5.1.2, no times: "now".
	f(`[{"bn":"urn:dev:ow:10e2073a01080063:","n":"voltage","u":"V","v":120.1},{"n":"current","u":"A","v":1.2}]`,
		pt("voltage_v", nowMS, 120.1), pt("current_a", nowMS, 1.2))

	// Relative times (below 2^28 s) are from now; bt adds to t.
	f(`[{"n":"temp","u":"Cel","t":-5,"v":20}]`, pt("temp_c", nowMS-5000, 20))
	f(`[{"bt":-10,"n":"a","u":"V","v":1},{"n":"a","u":"V","t":5,"v":2}]`, pt("a_v", nowMS-10000, 1), pt("a_v", nowMS-5000, 2))
	f(`[{"n":"a","u":"V","t":-900,"v":1}]`, latePt("a_v", nowMS-900000, 1))
	f(`[{"n":"a","u":"V","t":120.5,"v":1}]`, pt("a_v", nowMS+120500, 1))
	// Absolute times, float seconds.
	f(`[{"n":"a","u":"V","t":1741944598.123,"v":1}]`, pt("a_v", nowMS-1877, 1))
	f(`[{"bt":1741944590,"n":"a","u":"V","t":8.123,"v":1}]`, pt("a_v", nowMS-1877, 1))
	f(`[{"n":"a","u":"V","t":1741944600,"v":1}]`, pt("a_v", nowMS, 1))

	// Base value and sum.
	f(`[{"bn":"dev:","bv":100,"n":"energy","u":"kWh","v":1.5},{"n":"energy","u":"kWh","t":1,"v":2.5}]`,
		pt("energy_kwh", nowMS, 101.5), pt("energy_kwh", nowMS+1000, 102.5))
	f(`[{"n":"energy","u":"kWh","s":10}]`, pt("energy_kwh", nowMS, 10))
	f(`[{"bs":100,"n":"energy","u":"kWh","s":10}]`, pt("energy_kwh", nowMS, 110))
	f(`[{"n":"energy","u":"kWh","v":3,"s":10}]`, pt("energy_kwh", nowMS, 3))

	// Booleans.
	f(`[{"n":"door_open","vb":true},{"n":"screen_on","vb":false}]`, pt("door_open", nowMS, 1), pt("screen_on", nowMS, 0))
	f(`[{"bv":5,"n":"door_open","vb":true}]`, pt("door_open", nowMS, 1))

	// Units: appended, kept, stripped and converted.
	f(`[{"n":"power","u":"W","v":1500},{"n":"power_w","u":"W","v":2500},{"n":"power_kw","u":"W","v":500}]`,
		pt("power_kw", nowMS, 1.5), pt("power_kw", nowMS, 2.5), pt("power_kw", nowMS, 0.5))
	f(`[{"n":"temp","u":"K","v":300},{"n":"temp_k","u":"K","v":273.15},{"n":"temp_c","u":"Cel","v":20}]`,
		pt("temp_c", nowMS, kelvin300-273.15), pt("temp_c", nowMS, 0), pt("temp_c", nowMS, 20))
	f(`[{"n":"energy","u":"Wh","v":1500},{"n":"energy","u":"kWh","v":2},{"n":"power","u":"kW","v":3}]`,
		pt("energy_kwh", nowMS, 1.5), pt("energy_kwh", nowMS, 2), pt("power_kw", nowMS, 3))
	f(`[{"n":"humidity","u":"%RH","v":40},{"n":"battery","u":"%","v":90},{"n":"co2","u":"ppm","v":600},{"n":"occupied","u":"count","v":3},{"n":"light","u":"lx","v":300},{"n":"fill","u":"/","v":0.5}]`,
		pt("humidity_pct", nowMS, 40), pt("battery_pct", nowMS, 90), pt("co2_ppm", nowMS, 600), pt("occupied_count", nowMS, 3),
		pt("light_lx", nowMS, 300), pt("fill_ratio", nowMS, 0.5))
	// No unit: the name is the metric, with the JSON suffix rules.
	f(`[{"n":"power_w","v":2000},{"n":"temp","v":1},{"n":"Temp_F","v":32}]`,
		pt("power_kw", nowMS, 2), pt("temp", nowMS, 1), pt("temp_c", nowMS, 0))

	// Names: last ':' or '/' segment of bn+n, lower-cased.
	f(`[{"n":"Temp","u":"Cel","v":1}]`, pt("temp_c", nowMS, 1))
	f(`[{"bn":"site/PO-001001-1/env-1/","n":"humidity","u":"%RH","v":40}]`, pt("humidity_pct", nowMS, 40))
	f(`[{"bn":"urn:dev:mac:0024:","n":"sensor1/temp","u":"Cel","v":1}]`, pt("temp_c", nowMS, 1))
	f(`[{"bn":"urn:dev:mac:0024:room_","n":"temp","u":"Cel","v":1}]`, pt("room_temp_c", nowMS, 1))
	f(`[{"bn":"temp","u":"Cel","v":1}]`, pt("temp_c", nowMS, 1))

	// Base fields carry over until replaced; u overrides bu; "" u means bu.
	f(`[{"bn":"a:","bu":"V","n":"x","v":1},{"n":"y","v":2},{"n":"z","u":"A","v":3},{"bn":"b:","bu":"Cel","n":"w","u":"","v":4}]`,
		pt("x_v", nowMS, 1), pt("y_v", nowMS, 2), pt("z_a", nowMS, 3), pt("w_c", nowMS, 4))
	// A record with only base fields yields nothing; bver 10 and ut are fine.
	f(`[{"bn":"urn:dev:x:","bt":1741944598,"bver":10},{"n":"temp","u":"Cel","v":21,"ut":60}]`, pt("temp_c", nowMS-2000, 21))
	// Unknown fields are ignored (RFC 8428 §4.4), whatever they hold.
	f(`[{"n":"temp","u":"Cel","v":21,"foo":{"a":[1,2,{"b":null}],"c":"\u00e9"},"bar":true,"_x":null}]`, pt("temp_c", nowMS, 21))
	// Escapes in names and units.
	f(`[{"n":"te\u006dp","u":"C\u0065l","v":1}]`, pt("temp_c", nowMS, 1))
}

func TestDecodeSenML_Failure(t *testing.T) {
	f := func(in string, lim Limits, want Code) {
		t.Helper()
		got, err := DecodeTelemetry(nil, []byte(in), testNow, lim)
		if err == nil {
			t.Fatalf("expected error %s for %s; got %+v", want, in, got)
		}
		requireCode(t, err, want)
		if len(got) != 0 {
			t.Fatalf("points returned with an error for %s: %+v", in, got)
		}
	}
	var none Limits
	f(`[]`, none, CodeNoMetrics)
	f(` [ ] `, none, CodeNoMetrics)
	f(`[{"bn":"x:"}]`, none, CodeNoMetrics)
	f(`[{}]`, none, CodeNoMetrics)

	for _, in := range []string{`[`, `[{"n":"a_c","v":1}`, `[{"n":"a_c","v":1},]`, `[{"n":"a_c","v":1}] [`,
		`[{"n":"BAD","v":1}, oops]`, `[{"n":"a_c","v":1,}]`, `[{"n":"a_c" "v":1}]`, `[{"n":"a_c","v":1}}`,
		`[{"n":"a_c","v":1,"x":[1,}]`, `[{"n":"a_c","v":1,"x":{"a"}}]`, `[{"n":"a_c","v":1,"x":nul}]`, `[{"n":"a_c","v":-}]`} {
		f(in, none, CodeBadJSON)
	}

	for _, in := range []string{
		`[1]`, `[[]]`, `["x"]`, `[null]`, `[{"n":"a_c","v":1},2]`,
		`[{"n":"temp_c"}]`, `[{"n":"temp_c","u":"Cel","t":1}]`, `[{"bn":"x:","n":"a"}]`,
		`[{"n":"a_c","v":1,"vb":true}]`, `[{"n":"a_c","v":1,"vs":"x"}]`, `[{"n":"a_c","vb":true,"vd":"aGk"}]`,
		`[{"n":"a_c","v":"1"}]`, `[{"n":5,"v":1}]`, `[{"n":"a_c","v":null}]`, `[{"n":"a_c","vb":1}]`, `[{"n":"a_c","vb":"true"}]`,
		`[{"n":"a_c","u":1,"v":1}]`, `[{"n":"a_c","v":1,"t":"now"}]`, `[{"bn":["x"],"n":"a_c","v":1}]`,
		`[{"n":"a_c","v":1,"n":"b_c"}]`, `[{"n":"a_c","v":1,"v":2}]`,
		`[{"n":"a_c","v":1,"x_":1}]`, `[{"n":"a_c","v":1,"bx_":true}]`,
		`[{"bver":11,"n":"a_c","v":1}]`, `[{"bver":1.5,"n":"a_c","v":1}]`, `[{"bver":0,"n":"a_c","v":1}]`, `[{"bver":-10,"n":"a_c","v":1}]`,
		`[{"bver":5,"n":"a_c","v":1},{"bver":10,"n":"b_c","v":1}]`, `[{"bver":1e999,"n":"a_c","v":1}]`, `[{"n":"a_c","v":1,"ut":1e999}]`,
	} {
		f(in, none, CodeBadSenML)
	}

	f(`[{"n":"label","vs":"Machine Room"}]`, none, CodeNonNumeric)
	f(`[{"n":"nfc","vd":"aGkgCg"}]`, none, CodeNonNumeric)

	f(`[{"n":"a","u":"furlong","v":1}]`, none, CodeBadUnit)
	f(`[{"n":"a","u":"cel","v":1}]`, none, CodeBadUnit)
	f(`[{"bu":"degF","n":"a","v":1}]`, none, CodeBadUnit)

	for _, in := range []string{
		`[{"n":"urn:dev:ow:10e2073a01080063","u":"Cel","v":23.1}]`, `[{"bn":"urn:dev:x:","v":1}]`, `[{"v":1}]`,
		`[{"n":"temp-sensor","u":"Cel","v":1}]`, `[{"n":"temp.1","v":1}]`, `[{"n":"1temp","v":1}]`,
		`[{"n":"` + strings.Repeat("x", 65) + `","v":1}]`, `[{"n":"` + strings.Repeat("x", 63) + `","u":"Cel","v":1}]`,
		`[{"bn":"` + strings.Repeat("x", 40) + `","n":"` + strings.Repeat("y", 40) + `","v":1}]`,
		`[{"n":"città","v":1}]`, `[{"n":"a/","u":"Cel","v":1}]`,
	} {
		f(in, none, CodeBadMetric)
	}

	f(`[{"n":"a_c","v":1e999}]`, none, CodeNonFinite)
	f(`[{"bv":1e308,"n":"a_c","v":1e308}]`, none, CodeNonFinite)
	f(`[{"bs":-1e308,"n":"a_c","s":-1e308}]`, none, CodeNonFinite)

	f(`[{"n":"a_c","v":1,"t":1e999}]`, none, CodeBadTimestamp)
	f(`[{"bt":1e999,"n":"a_c","v":1}]`, none, CodeBadTimestamp)

	f(`[{"n":"a_c","v":1,"t":1741945000}]`, none, CodeFuture)
	f(`[{"n":"a_c","v":1,"t":301}]`, none, CodeFuture)
	f(`[{"n":"a_c","v":1,"t":1e300}]`, none, CodeFuture)
	f(`[{"n":"a_c","v":1,"t":268435455}]`, none, CodeFuture) // 2^28-1: relative, 8.5 years ahead
	f(`[{"n":"a_c","v":1,"t":268435456}]`, none, CodeTooOld) // 2^28: absolute, 1978
	f(`[{"n":"a_c","v":1,"t":1e9}]`, none, CodeTooOld)
	f(`[{"n":"a_c","v":1,"t":-1e9}]`, none, CodeTooOld)
	f(`[{"n":"a_c","v":1,"t":-1e300}]`, none, CodeTooOld)
	f(`[{"n":"a_c","v":1,"t":1276020076.001}]`, none, CodeTooOld)

	f(`[{"n":"a_c","v":1},{"n":"a_c","v":2},{"n":"a_c","v":3}]`, Limits{MaxPoints: 2}, CodeTooMany)
}

// The scanner must accept exactly the nesting encoding/json accepts (10000).
func TestDecodeSenML_DepthLimit(t *testing.T) {
	f := func(arrays int, want Code) {
		t.Helper()
		in := []byte(`[{"n":"a_c","v":1,"x":` + strings.Repeat("[", arrays) + strings.Repeat("]", arrays) + `}]`)
		_, err := DecodeTelemetry(nil, in, testNow, Limits{})
		_, werr := stdDecodeTelemetry(nil, in, testNow, Limits{})
		if CodeOf(err) != want || CodeOf(werr) != want {
			t.Fatalf("unexpected result at %d levels; got %v; encoding/json %v; want %q", arrays+2, err, werr, want)
		}
	}
	f(maxDepth-2, "")
	f(maxDepth-1, CodeBadJSON)
}
