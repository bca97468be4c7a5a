package payload

import (
	"strings"
	"testing"
	"time"
)

func TestDecodeEvent_Success(t *testing.T) {
	f := func(in string, wantType string, wantTS int64, wantBody string) {
		t.Helper()
		typ, ts, body, err := DecodeEvent([]byte(in), testNow, Limits{})
		if err != nil {
			t.Fatalf("unexpected error for %s: %v", in, err)
		}
		if typ != wantType || ts != wantTS || string(body) != wantBody {
			t.Fatalf("unexpected event for %s; got %q %d %s; want %q %d %s", in, typ, ts, body, wantType, wantTS, wantBody)
		}
	}
	f(`{"type":"door_open"}`, "door_open", nowMS, `{"type":"door_open"}`)
	f(` { "ts" : "2025-03-14T09:29:58Z", "type" : "session_start", "connector" : 2, "meta" : { "a" : [ 1, 2 ] } } `+"\n",
		"session_start", nowMS-2000, `{"ts":"2025-03-14T09:29:58Z","type":"session_start","connector":2,"meta":{"a":[1,2]}}`)
	f(`{"type":"fault","ts":1741944598123,"code":"E42"}`, "fault", nowMS-1877, `{"type":"fault","ts":1741944598123,"code":"E42"}`)
	f(`{"type":"fault","ts":1741944598}`, "fault", nowMS-2000, `{"type":"fault","ts":1741944598}`)
	f(`{"type":"fault","ts":null}`, "fault", nowMS, `{"type":"fault","ts":null}`)
	f(`{"type":"service_used","service":"certificato di residenza","comune":"Città di Castello"}`, "service_used", nowMS,
		`{"type":"service_used","service":"certificato di residenza","comune":"Città di Castello"}`)
	f(`{"ty\u0070e":"door_open","note":"a\"b"}`, "door_open", nowMS, `{"ty\u0070e":"door_open","note":"a\"b"}`)
	f(`{"type":"x","nested":{"type":1,"type":2}}`, "x", nowMS, `{"type":"x","nested":{"type":1,"type":2}}`)
	// An hour-old event is accepted (events have no Late flag).
	f(`{"type":"x","ts":"2025-03-14T08:30:00Z"}`, "x", nowMS-3600000, `{"type":"x","ts":"2025-03-14T08:30:00Z"}`)

	// body is a copy: changing the input afterwards does not change it.
	in := []byte(`{"type":"door_open"}`)
	_, _, body, err := DecodeEvent(in, testNow, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	copy(in, strings.Repeat("x", len(in)))
	if string(body) != `{"type":"door_open"}` {
		t.Fatalf("body aliases the input: %s", body)
	}
}

func TestDecodeEvent_Failure(t *testing.T) {
	f := func(in string, lim Limits, want Code) {
		t.Helper()
		typ, ts, body, err := DecodeEvent([]byte(in), testNow, lim)
		if err == nil {
			t.Fatalf("expected error %s for %s; got %q %d %s", want, in, typ, ts, body)
		}
		requireCode(t, err, want)
		if typ != "" || ts != 0 || body != nil {
			t.Fatalf("values returned with an error for %s", in)
		}
	}
	var none Limits
	f(``, none, CodeEmpty)
	f("  \n", none, CodeEmpty)
	for _, in := range []string{`{`, `{"type":"a"`, `{"type":"a"}}`, `{"type":a}`, `door_open`, `{"type":"a",}`, "{\"type\":\"a\"}\x00"} {
		f(in, none, CodeBadJSON)
	}
	f(`{"type":"a","x":"`+"\xff"+`"}`, none, CodeBadJSON)
	f(`{"type":"a","type":"b"}`, none, CodeBadJSON)
	f(`{"type":"a","ts":1741944598000,"ts":1741944598000}`, none, CodeBadJSON)

	f(`[]`, none, CodeBadEvent)
	f(`"door_open"`, none, CodeBadEvent)
	f(`42`, none, CodeBadEvent)
	f(`{}`, none, CodeBadEvent)
	f(`{"ts":1741944598000}`, none, CodeBadEvent)
	f(`{"type":5}`, none, CodeBadEvent)
	f(`{"type":null}`, none, CodeBadEvent)
	f(`{"type":""}`, none, CodeBadEvent)
	f(`{"type":"Door Open"}`, none, CodeBadEvent)
	f(`{"type":"door-open"}`, none, CodeBadEvent)
	f(`{"type":"`+strings.Repeat("a", 65)+`"}`, none, CodeBadEvent)
	f(`{"Type":"door_open"}`, none, CodeBadEvent)

	f(`{"type":"a","ts":"yesterday"}`, none, CodeBadTimestamp)
	f(`{"type":"a","ts":{}}`, none, CodeBadTimestamp)
	f(`{"type":"a","ts":"2025-03-14T09:36:00Z"}`, none, CodeFuture)
	f(`{"type":"a","ts":"2025-03-14T09:20:00Z"}`, Limits{MaxFuture: time.Minute, MaxAge: 5 * time.Minute}, CodeTooOld)
	f(`{"type":"a","ts":0}`, none, CodeTooOld)
}

func TestDecodeReported_Success(t *testing.T) {
	f := func(in string, wantTS int64, wantProps string) {
		t.Helper()
		ts, props, err := DecodeReported([]byte(in), testNow, Limits{})
		if err != nil {
			t.Fatalf("unexpected error for %s: %v", in, err)
		}
		if ts != wantTS || string(props) != wantProps {
			t.Fatalf("unexpected reported state for %s; got %d %s; want %d %s", in, ts, props, wantTS, wantProps)
		}
	}
	f(`{"fw":"1.2.3","cash_pct":80}`, nowMS, `{"fw":"1.2.3","cash_pct":80}`)
	f(`{"ts":1741944598000,"fw":"1.2.3"}`, nowMS-2000, `{"fw":"1.2.3"}`)
	f(`{"fw":"1.2.3","ts":1741944598000}`, nowMS-2000, `{"fw":"1.2.3"}`)
	f(`{"a":1,"ts":"2025-03-14T09:29:58Z","b":2}`, nowMS-2000, `{"a":1,"b":2}`)
	f(`{ "a" : [ 1 , { "ts" : 2 } ] ,  "ts" : 1741944598000 , "b" : { } }`, nowMS-2000, `{"a":[1,{"ts":2}],"b":{}}`)
	f(`{"ts":1741944598000}`, nowMS-2000, `{}`)
	f(`{"ts":null}`, nowMS, `{}`)
	f(`{}`, nowMS, `{}`)
	f(` {"x": {"ts": 1}} `, nowMS, `{"x":{"ts":1}}`)
	f(`{"\u0074s":1741944598000,"a":1}`, nowMS-2000, `{"a":1}`)
	f(`{"TS":1,"Ts":2}`, nowMS, `{"TS":1,"Ts":2}`)
}

func TestDecodeReported_Failure(t *testing.T) {
	f := func(in string, want Code) {
		t.Helper()
		ts, props, err := DecodeReported([]byte(in), testNow, Limits{})
		if err == nil {
			t.Fatalf("expected error %s for %s; got %d %s", want, in, ts, props)
		}
		requireCode(t, err, want)
	}
	f(``, CodeEmpty)
	for _, in := range []string{`[1]`, `"x"`, `null`, `{`, `{"a":1,}`, `{"a":1}x`, `{"a":1,"a":2}`, `{"ts":1741944598000,"ts":1741944598000}`,
		`{"a":"` + "\xc3" + `"}`} {
		f(in, CodeBadJSON)
	}
	f(`{"ts":"bad","a":1}`, CodeBadTimestamp)
	f(`{"ts":true}`, CodeBadTimestamp)
	f(`{"ts":"2026-01-01T00:00:00Z"}`, CodeFuture)
	f(`{"ts":1}`, CodeTooOld)
	// Past the linear key check, where a map takes over.
	var many strings.Builder
	for i := range 40 {
		many.WriteString(`"k` + strings.Repeat("x", i) + `":1,`)
	}
	f(`{`+many.String()+`"kxxx":2}`, CodeBadJSON)
	f(`{`+many.String()+`"k`+strings.Repeat("x", 39)+`":2}`, CodeBadJSON)
}

func TestDecodeStatus_Success(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		got, err := DecodeStatus([]byte(in))
		if err != nil || got != want {
			t.Fatalf("unexpected status for %q; got %q, %v; want %q", in, got, err, want)
		}
	}
	f(`online`, "online")
	f(`offline`, "offline")
	f("ONLINE", "online")
	f(" Offline\r\n", "offline")
	f(`"online"`, "online")
	f(`"onl\u0069ne"`, "online")
	f(`{"status":"online"}`, "online")
	f(` { "status" : "OFFLINE", "ts" : 1741944598000, "reason" : {"code": 3} } `, "offline")
	f(`{"reason":"will","status":"offline"}`, "offline")
}

func TestDecodeStatus_Failure(t *testing.T) {
	f := func(in string, want Code) {
		t.Helper()
		got, err := DecodeStatus([]byte(in))
		if err == nil {
			t.Fatalf("expected error %s for %q; got %q", want, in, got)
		}
		requireCode(t, err, want)
	}
	f(``, CodeEmpty)
	f(" \t\n", CodeEmpty)
	for _, in := range []string{`on`, `online!`, `on line`, `1`, `true`, `[]`, `["online"]`, `null`, `{}`, `{"state":"online"}`,
		`{"status":1}`, `{"status":null}`, `{"status":"up"}`, `{"status":"online","status":"offline"}`, `""`,
		"ONL\u0130NE", "onl\u0131ne", "online\x00"} {
		f(in, CodeBadStatus)
	}
	for _, in := range []string{`{"status":"online"`, `{"status":"online",}`, `{"status":"online"} x`, `"online`, `"online" x`,
		`{"status":"online","x":[}`, `{status:"online"}`} {
		f(in, CodeBadJSON)
	}
}
