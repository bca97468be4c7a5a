package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

func TestReadRoutes(t *testing.T) {
	e := newEnv(t)
	po := e.postOffice(t)
	count := func(f func(s *registry.Site) bool) int {
		n := 0
		for _, s := range e.reg.Sites() {
			if f(s) {
				n++
			}
		}
		return n
	}
	all := count(func(*registry.Site) bool { return true })
	hasType := func(typ string) func(s *registry.Site) bool {
		return func(s *registry.Site) bool {
			return slices.ContainsFunc(s.Assets, func(a *registry.Asset) bool { return a.Type == typ })
		}
	}
	tests := []struct {
		name, path string
		status     int
		total      int    // for 200 on /sites: want total, -1 to skip
		contains   string // in the body
	}{
		{"index", "/api/v1/", 200, -1, "openapi.json"},
		{"openapi", "/api/v1/openapi.json", 200, -1, `"openapi":"3.0.3"`},
		{"all sites", "/api/v1/sites", 200, all, ""},
		{"kind coworking", "/api/v1/sites?kind=coworking", 200, count(func(s *registry.Site) bool { return s.Kind == registry.KindCoworking }), ""},
		{"region any case", "/api/v1/sites?region=piemonte", 200, count(func(s *registry.Site) bool { return s.Region == "Piemonte" }), ""},
		{"province code", "/api/v1/sites?province=to", 200, count(func(s *registry.Site) bool { return s.Province == "TO" }), ""},
		{"comune code", "/api/v1/sites?comune=001002", 200, count(func(s *registry.Site) bool { return s.Comune == "001002" }), ""},
		{"comune name", "/api/v1/sites?comune=AIRASCA", 200, count(func(s *registry.Site) bool { return s.Name == "Airasca" }), ""},
		{"asset type", "/api/v1/sites?asset_type=desk", 200, count(hasType("desk")), ""},
		{"free text", "/api/v1/sites?q=alia", 200, count(func(s *registry.Site) bool { return strings.Contains(strings.ToLower(s.Name+s.Address), "alia") }), ""},
		{"status unknown", "/api/v1/sites?status=unknown", 200, all, ""},
		{"status online", "/api/v1/sites?status=online", 200, 0, ""},
		{"bad kind", "/api/v1/sites?kind=castle", 400, -1, "post_office or coworking"},
		{"bad limit", "/api/v1/sites?limit=-1", 400, -1, "1 to 1000"},
		{"limit too big", "/api/v1/sites?limit=1001", 400, -1, "1 to 1000"},
		{"bad status", "/api/v1/sites?status=blue", 400, -1, "online, offline, stale, fault, unknown"},
		{"bad region", "/api/v1/sites?region=Atlantis", 400, -1, "Piemonte"},
		{"bad province", "/api/v1/sites?province=ZZ", 400, -1, "TO"},
		{"bad comune code", "/api/v1/sites?comune=12", 400, -1, "6 digits"},
		{"bad asset type", "/api/v1/sites?asset_type=spaceship", 400, -1, "evc"},
		{"bad offset", "/api/v1/sites?offset=x", 400, -1, "offset"},
		{"offset and cursor", "/api/v1/sites?offset=1&cursor=" + encodeCursor(po.ID), 400, -1, "not both"},
		{"bad cursor", "/api/v1/sites?cursor=!!", 400, -1, "next link"},
		{"unknown parameter", "/api/v1/sites?regoin=Lazio", 400, -1, "region, province"},
		{"repeated parameter", "/api/v1/sites?kind=coworking&kind=post_office", 400, -1, "once"},
		{"site", "/api/v1/sites/" + po.ID, 200, -1, `"open_now":true`},
		{"unknown site", "/api/v1/sites/PO-999999-1", 404, -1, "/api/v1/sites"},
		{"asset", "/api/v1/sites/" + po.ID + "/assets/env-1", 200, -1, `"lifecycle"`},
		{"unknown asset", "/api/v1/sites/" + po.ID + "/assets/env-99", 404, -1, "assets are listed at /api/v1/sites/"},
		{"asset of unknown site", "/api/v1/sites/PO-999999-1/assets/env-1", 404, -1, "no site"},
		{"history", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c", 200, -1, `"resolution":"raw"`},
		{"history week", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&from=2026-03-01T00:00:00Z&to=2026-03-06T00:00:00Z", 200, -1, `"resolution":"1m"`},
		{"history step", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&from=1772960400000&step=1h", 200, -1, `"resolution":"1h"`},
		{"history no metric", "/api/v1/sites/" + po.ID + "/assets/env-1/history", 400, -1, "temp_c"},
		{"history bad from", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&from=yesterday", 400, -1, "RFC 3339"},
		{"history backwards", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&from=2026-03-10T10:00:00Z&to=2026-03-10T09:00:00Z", 400, -1, "before"},
		{"history bad step", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&step=-1m", 400, -1, "positive duration"},
		{"history too long", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&from=2020-01-01T00:00:00Z", 400, -1, "days"},
		{"history unknown param", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=temp_c&res=1m", 400, -1, "metric, from, to, step"},
		{"history store down", "/api/v1/sites/" + po.ID + "/assets/env-1/history?metric=broken_x", 503, -1, "retry"},
		{"history unknown asset", "/api/v1/sites/" + po.ID + "/assets/env-99/history?metric=temp_c", 404, -1, "no asset"},
		{"stream bad region", "/api/v1/stream?region=Mars", 400, -1, "Lazio"},
		{"stream bad site", "/api/v1/stream?site=PO-999999-1", 400, -1, "unknown site"},
		{"stream bad type", "/api/v1/stream?asset_type=ufo", 400, -1, "asset types"},
		{"stream bad kind", "/api/v1/stream?kind=gossip", 400, -1, "telemetry"},
		{"stream bad param", "/api/v1/stream?zone=1", 400, -1, "site, region"},
		{"unknown path", "/api/v1/nope", 404, -1, "no such path"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.do(t, "GET", tc.path, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("unexpected status; got %d; want %d; body %s", resp.StatusCode, tc.status, b)
			}
			if !strings.Contains(string(b), tc.contains) {
				t.Fatalf("body does not say %q: %s", tc.contains, b)
			}
			if tc.status >= 400 {
				decodeError(t, b)
			}
			if strings.Contains(string(b), "sha256$") || strings.Contains(string(b), "secret_hash") {
				t.Fatalf("a response leaks a secret hash: %s", b)
			}
			if tc.total >= 0 {
				var l siteList
				if err := json.Unmarshal(b, &l); err != nil {
					t.Fatal(err)
				}
				if l.Total != tc.total || len(l.Items) != min(tc.total, defaultLimit) {
					t.Fatalf("unexpected total; got %d (%d items); want %d", l.Total, len(l.Items), tc.total)
				}
			}
		})
	}
}

func TestWrongMethodIsJSON(t *testing.T) {
	e := newEnv(t)
	resp, b := e.do(t, "DELETE", "/api/v1/sites", "")
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET" {
		t.Fatalf("unexpected answer %d Allow %q: %s", resp.StatusCode, resp.Header.Get("Allow"), b)
	}
	decodeError(t, b)
}

func TestSitesPagination(t *testing.T) {
	e := newEnv(t)
	var want []string
	for _, s := range e.reg.Sites() {
		want = append(want, s.ID)
	}
	var got []string
	next := "/api/v1/sites?limit=3"
	for pages := 0; next != ""; pages++ {
		if pages > len(want) {
			t.Fatal("pagination does not end")
		}
		_, b := e.do(t, "GET", next, "")
		var l siteList
		if err := json.Unmarshal(b, &l); err != nil {
			t.Fatal(err)
		}
		for _, it := range l.Items {
			got = append(got, it.ID)
		}
		next = l.Next
	}
	if !slices.Equal(got, want) {
		t.Fatalf("unexpected pages; got %v; want %v", got, want)
	}
	_, b := e.do(t, "GET", "/api/v1/sites?offset=6&limit=3", "")
	var l siteList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Total != len(want) || len(l.Items) != len(want)-6 || l.Items[0].ID != want[6] || l.Next != "" {
		t.Fatalf("unexpected offset page: %s", b)
	}
}

func TestStatusFilterAndRemoteSites(t *testing.T) {
	e := newEnv(t)
	sites := e.reg.Sites()
	on, remote := sites[0], sites[1]
	e.live.telemetry(on.ID, "env-1", "temp_c", 21, testNow.Add(-10*time.Second))
	e.live.setRemote(remote.ID, "http://10.0.0.2:8080")

	_, b := e.do(t, "GET", "/api/v1/sites?status=online", "")
	var l siteList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	if l.Total != 2 || l.Items[0].ID != on.ID || l.Items[0].Status["online"] != 1 || !l.Items[1].Remote || len(l.Notes) != 1 {
		t.Fatalf("unexpected status filter result: %s", b)
	}

	for _, path := range []string{
		"/api/v1/sites/" + remote.ID,
		"/api/v1/sites/" + remote.ID + "/assets/env-1",
	} {
		resp, b := e.do(t, "GET", path+"?x=1", "")
		if resp.StatusCode != http.StatusTemporaryRedirect || resp.Header.Get("Location") != "http://10.0.0.2:8080"+path+"?x=1" {
			t.Fatalf("%s: unexpected redirect %d to %q: %s", path, resp.StatusCode, resp.Header.Get("Location"), b)
		}
	}
	resp, b := e.do(t, "PATCH", "/api/v1/sites/"+remote.ID+"/assets/env-1/desired", `{"x":1}`,
		append(bearer(operatorToken), "If-Match", `"0"`)...)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("unexpected PATCH on a remote site: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/api/v1/sites/"+remote.ID+"/assets/env-1/lifecycle", `{"to":"decommissioned"}`, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusTemporaryRedirect {
		t.Fatalf("unexpected POST on a remote site: %d %s", resp.StatusCode, b)
	}
	e.live.setRemote(remote.ID, "")
	resp, b = e.do(t, "GET", "/api/v1/sites/"+remote.ID, "")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("unexpected answer for an unknown owner: %d %s", resp.StatusCode, b)
	}
	decodeError(t, b)
}

func TestSiteDetail(t *testing.T) {
	e := newEnv(t)
	var cw *registry.Site
	for _, s := range e.reg.Sites() {
		if s.Kind == registry.KindCoworking {
			cw = s
		}
	}
	e.live.telemetry(cw.ID, "env-1", "temp_c", 22.5, testNow.Add(-time.Second))
	_, b := e.do(t, "GET", "/api/v1/sites/"+cw.ID, "")
	var d struct {
		siteDetail
		Live struct {
			TempC  float64        `json:"temp_c"`
			Status map[string]int `json:"status"`
		} `json:"live"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.ID != cw.ID || d.Coworking == nil || d.Coworking.Workstations == 0 || len(d.Assets) != len(cw.Assets) ||
		d.OpeningHours != registry.CoworkingHours || d.OpenNow == nil || !*d.OpenNow || d.Live.TempC != 22.5 || d.Live.Status["online"] != 1 {
		t.Fatalf("unexpected site detail: %s", b)
	}
}

func TestDesiredState(t *testing.T) {
	e := newEnv(t)
	po := e.postOffice(t)
	path := "/api/v1/sites/" + po.ID + "/assets/env-1"
	resp, _ := e.do(t, "GET", path, "")
	if resp.Header.Get("ETag") != `"0"` {
		t.Fatalf("unexpected ETag %q", resp.Header.Get("ETag"))
	}
	fm := bearer(managerToken)
	with := func(h ...string) []string { return append(slices.Clone(fm), h...) }
	steps := []struct {
		name   string
		body   string
		hdr    []string
		status int
		etag   string
		says   string
	}{
		{"no token", `{"setpoint_c":21}`, []string{"If-Match", `"0"`}, 401, "", "Bearer"},
		{"bad token", `{"setpoint_c":21}`, []string{"If-Match", `"0"`, "Authorization", "Bearer nope"}, 401, "", "not valid"},
		{"not bearer", `{"setpoint_c":21}`, []string{"Authorization", "Basic abc"}, 401, "", "Bearer <token>"},
		{"no If-Match", `{"setpoint_c":21}`, fm, 428, "", "If-Match"},
		{"bad If-Match", `{"setpoint_c":21}`, with("If-Match", "abc"), 400, "", `"3"`},
		{"stale If-Match", `{"setpoint_c":21}`, with("If-Match", `"5"`), 412, `"0"`, "version 0, not 5"},
		{"not an object", `[1]`, with("If-Match", `"0"`), 400, "", "JSON object"},
		{"not JSON", `{`, with("If-Match", `"0"`), 400, "", "JSON object"},
		{"empty object", `{}`, with("If-Match", `"0"`), 400, "", "no property"},
		{"bad name", `{"a b":1}`, with("If-Match", `"0"`), 400, "", "property name"},
		{"set", `{"setpoint_c":21,"mode":"eco"}`, with("If-Match", `"0"`), 200, `"1"`, `"setpoint_c":21`},
		{"lost update", `{"setpoint_c":23}`, with("If-Match", `"0"`), 412, `"1"`, "someone changed it"},
		{"operator too", `{"mode":null}`, append(bearer(operatorToken), "If-Match", `"1"`), 200, `"2"`, `"delta":{"setpoint_c":21}`},
		{"too large", `{"x":"` + strings.Repeat("a", DefaultMaxBodyBytes) + `"}`, with("If-Match", `"2"`), 413, "", "over"},
		{"weak ETag", `{"x":1}`, with("If-Match", `W/"2"`), 400, "", "If-Match"},
		{"overwrite", `{"x":1}`, with("If-Match", "*"), 200, `"3"`, `"x":`},
		{"remove", `{"x":null}`, with("If-Match", `"3"`), 200, `"4"`, `"desired":{"setpoint_c"`},
	}
	for _, st := range steps {
		resp, b := e.do(t, "PATCH", path+"/desired", st.body, st.hdr...)
		if resp.StatusCode != st.status {
			t.Fatalf("%s: unexpected status; got %d; want %d: %s", st.name, resp.StatusCode, st.status, b)
		}
		if resp.Header.Get("ETag") != st.etag {
			t.Fatalf("%s: unexpected ETag; got %q; want %q", st.name, resp.Header.Get("ETag"), st.etag)
		}
		text := string(b)
		if st.status >= 400 {
			text = decodeError(t, b).Message
		}
		if !strings.Contains(text, st.says) {
			t.Fatalf("%s: body does not say %q: %s", st.name, st.says, b)
		}
	}
	// The device confirms: the delta closes.
	e.live.report(t, po.ID, "env-1", `{"setpoint_c":21}`, testNow.Add(time.Second))
	resp, b := e.do(t, "GET", path, "")
	var a assetDTO
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("ETag") != `"4"` || len(a.Delta) != 0 || a.DesiredVersion != 4 || string(a.Reported["setpoint_c"].Value) != "21" {
		t.Fatalf("unexpected asset after the device reported: %s", b)
	}
	// A twin failure is a 500 naming it.
	e.live.failDesired(fmt.Errorf("cannot publish desired state: broker stopped"))
	resp, b = e.do(t, "PATCH", path+"/desired", `{"x":1}`, with("If-Match", `"4"`)...)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "broker stopped") {
		t.Fatalf("unexpected answer to a failing twin: %d %s", resp.StatusCode, b)
	}
	for _, tok := range []string{operatorToken, managerToken} {
		if strings.Contains(e.logs.String(), tok) {
			t.Fatalf("the log holds a token: %s", e.logs.String())
		}
	}
}

func TestLifecycle(t *testing.T) {
	e := newEnv(t)
	po := e.postOffice(t)
	as := po.Assets[0]
	from, _ := e.live.track.State(po.ID, as.ID)
	next := lifecycle.Next(from)
	path := "/api/v1/sites/" + po.ID + "/assets/" + as.ID + "/lifecycle"
	steps := []struct {
		name   string
		body   string
		hdr    []string
		status int
		says   string
	}{
		{"no token", `{"to":"decommissioned"}`, nil, 401, "role operator"},
		{"bad token", `{"to":"decommissioned"}`, bearer("wrong"), 401, "not valid"},
		{"facility manager", `{"to":"decommissioned"}`, bearer(managerToken), 403, "you need role operator"},
		{"bad body", `{"state":"decommissioned"}`, bearer(operatorToken), 400, `"to"`},
		{"bad state", `{"to":"castle"}`, bearer(operatorToken), 400, "planned, installed"},
		{"not allowed", `{"to":"planned"}`, bearer(operatorToken), 409, string(next[0])},
		{"allowed", `{"to":"` + string(next[0]) + `","cause":"site visit"}`, bearer(operatorToken), 200, `"actor":"ops"`},
	}
	for _, st := range steps {
		resp, b := e.do(t, "POST", path, st.body, st.hdr...)
		if resp.StatusCode != st.status {
			t.Fatalf("%s: unexpected status; got %d; want %d: %s", st.name, resp.StatusCode, st.status, b)
		}
		text := string(b)
		if st.status >= 400 {
			text = decodeError(t, b).Message
		}
		if !strings.Contains(text, st.says) {
			t.Fatalf("%s: body does not say %q: %s", st.name, st.says, b)
		}
		if st.status == http.StatusConflict {
			if got := decodeError(t, b).Allowed; len(got) != len(next) {
				t.Fatalf("unexpected allowed states; got %v; want %v", got, next)
			}
		}
	}
	_, b := e.do(t, "GET", "/api/v1/sites/"+po.ID+"/assets/"+as.ID, "")
	if !strings.Contains(string(b), `"lifecycle":"`+string(next[0])+`"`) {
		t.Fatalf("the asset does not show its new lifecycle state %s: %s", next[0], b)
	}
	resp, b := e.do(t, "POST", "/api/v1/sites/"+po.ID+"/assets/zzz-1/lifecycle", `{"to":"installed"}`, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unexpected answer for an unknown asset: %d %s", resp.StatusCode, b)
	}
}

func TestHistoryQuery(t *testing.T) {
	e := newEnv(t)
	po := e.postOffice(t)
	q := url.Values{"metric": {"co2_ppm"}, "from": {"2026-03-10T07:00:00+01:00"}, "step": {"5m"}}
	_, b := e.do(t, "GET", "/api/v1/sites/"+po.ID+"/assets/env-1/history?"+q.Encode(), "")
	e.hist.mu.Lock()
	got := e.hist.last
	e.hist.mu.Unlock()
	want := HistoryQuery{Site: po.ID, Asset: "env-1", Metric: "co2_ppm", From: time.Date(2026, 3, 10, 6, 0, 0, 0, time.UTC), To: testNow, Step: 5 * time.Minute}
	if got.Site != want.Site || got.Asset != want.Asset || got.Metric != want.Metric || !got.From.Equal(want.From) || !got.To.Equal(want.To) || got.Step != want.Step {
		t.Fatalf("unexpected query; got %+v; want %+v", got, want)
	}
	var h historyDTO
	if err := json.Unmarshal(b, &h); err != nil {
		t.Fatal(err)
	}
	if h.Resolution != ResolutionMinute || len(h.Points) != 2 || h.Step != "5m0s" || h.Points[0].Count != 60 {
		t.Fatalf("unexpected history: %s", b)
	}
}

func TestChooseResolution(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f := func(span, step time.Duration, want string) {
		t.Helper()
		if got := ChooseResolution(t0, t0.Add(span), step); got != want {
			t.Fatalf("unexpected resolution for span %v step %v; got %s; want %s", span, step, got, want)
		}
	}
	f(time.Hour, 0, ResolutionRaw)
	f(6*time.Hour, 0, ResolutionRaw)
	f(6*time.Hour+time.Second, 0, ResolutionMinute)
	f(7*24*time.Hour, 0, ResolutionMinute)
	f(7*24*time.Hour+time.Second, 0, ResolutionHour)
	f(time.Hour, 30*time.Second, ResolutionRaw)
	f(time.Hour, time.Minute, ResolutionMinute)
	f(time.Hour, 2*time.Hour, ResolutionHour)
	f(30*24*time.Hour, time.Minute, ResolutionHour) // a step never makes it finer
}

func TestMountTwinRefusesBadConfig(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.ln.Close()
	reg := testFleet(t)
	if err := s.MountV1(V1Options{Fleet: reg}); err == nil {
		t.Fatal("MountV1 accepted no Live")
	}
	err = s.MountV1(V1Options{Fleet: reg, Live: newFakeLive(t, reg), Tokens: []Token{{Name: "x", Role: "admin", Hash: credential.Hash("s")}}})
	if err == nil || !strings.Contains(err.Error(), "facility_manager") {
		t.Fatalf("unexpected error for a bad role: %v", err)
	}
}
