package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// testClock is the API's clock in these tests: it moves only when told,
// so that the rate limiter's buckets refill only when told.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// Where the test comuni are (the test fleet has no coordinates).
var testPlaces = map[string]registry.LatLon{
	"001002": {Lat: 44.9167, Lon: 7.4856},  // Airasca
	"001272": {Lat: 45.0703, Lon: 7.6869},  // Torino
	"058091": {Lat: 41.8931, Lon: 12.4828}, // Roma
	"066001": {Lat: 42.1769, Lon: 13.7179}, // Acciano
	"082002": {Lat: 37.7796, Lon: 13.6055}, // Alia
}

type servicesEnv struct {
	*env
	clock  *testClock
	finder *services.Finder
}

// newServicesEnv is newEnv with the citizen-services routes: the test
// fleet placed at its comuni, every post office on Poste's usual hours,
// the API's clock at testNow (a Tuesday at 10:00 in Rome) until advanced.
func newServicesEnv(t *testing.T) *servicesEnv {
	t.Helper()
	se := &servicesEnv{clock: &testClock{t: testNow}}
	se.env = newEnvWith(t, func(o *V1Options) {
		reg := o.Fleet.(*registry.Registry)
		for _, s := range reg.Sites() {
			p := testPlaces[s.Comune]
			s.Lat, s.Lon = p.Lat, p.Lon
			if s.Kind == registry.KindPostOffice {
				s.OpeningHours = registry.MustParseOpeningHours(registry.PostOfficeHours)
			}
		}
		f, err := services.NewFinder(services.FinderOptions{Fleet: reg, Twin: o.Live.(*fakeLive)})
		if err != nil {
			t.Fatal(err)
		}
		se.finder = f
		o.Services = f
		o.Now = se.clock.Now
	})
	return se
}

// operational moves an asset to operational by operator calls.
func (e *servicesEnv) operational(t *testing.T, site, asset string) {
	t.Helper()
	path := map[lifecycle.State][]lifecycle.State{
		lifecycle.Planned:      {lifecycle.Installed, lifecycle.Commissioned, lifecycle.Operational},
		lifecycle.Installed:    {lifecycle.Commissioned, lifecycle.Operational},
		lifecycle.Commissioned: {lifecycle.Operational},
		lifecycle.Faulty:       {lifecycle.Operational},
	}
	st, _ := e.live.track.State(site, asset)
	for _, to := range path[st] {
		if _, err := e.live.track.Transition(site, asset, to, "test", "test", testNow); err != nil {
			t.Fatal(err)
		}
	}
}

// officeWith returns a post office with an asset of the type.
func (e *servicesEnv) officeWith(t *testing.T, typ string) *registry.Site {
	t.Helper()
	for _, s := range e.reg.Sites() {
		if s.Kind == registry.KindPostOffice && slices.ContainsFunc(s.Assets, func(a *registry.Asset) bool { return a.Type == typ }) {
			return s
		}
	}
	t.Fatalf("no post office with a %s in the test fleet", typ)
	return nil
}

// coworkingSite returns the coworking space in Torino.
func (e *servicesEnv) coworkingSite(t *testing.T) *registry.Site {
	t.Helper()
	for _, s := range e.reg.Sites() {
		if s.Kind == registry.KindCoworking && s.Comune == "001272" {
			return s
		}
	}
	t.Fatal("no coworking space in the test fleet")
	return nil
}

func TestServicesRoutes(t *testing.T) {
	e := newServicesEnv(t)
	po := e.officeWith(t, registry.TypeATM)
	cw := e.coworkingSite(t)
	tests := []struct {
		name, method, path string
		status             int
		contains           string
	}{
		{"catalogue", "GET", "/api/v1/services", 200, `"version":"2026.1"`},
		{"catalogue with a parameter", "GET", "/api/v1/services?lang=en", 400, "takes none"},
		{"service", "GET", "/api/v1/services/cash_withdrawal", 200, "Prelievo di contanti"},
		{"unknown service", "GET", "/api/v1/services/teleport", 404, `unknown service \"teleport\"; GET /api/v1/services lists them`},
		{"offices of an unknown service", "GET", "/api/v1/services/teleport/offices?near=41.9,12.5", 404, "GET /api/v1/services lists them"},
		{"offices near", "GET", "/api/v1/services/cash_withdrawal/offices?near=44.9,7.5", 200, po.ID},
		{"offices near, wide", "GET", "/api/v1/services/passport/offices?near=41.9,12.5&radius_km=200&limit=100", 200, `"radius_km":200`},
		{"offices in a comune by name", "GET", "/api/v1/services/passport/offices?comune=airasca", 200, `"total":2`},
		{"offices in a comune by code", "GET", "/api/v1/services/passport/offices?comune=066001&available=true", 200, `"available":2`},
		{"offices in a region", "GET", "/api/v1/services/passport/offices?region=SICILIA", 200, "Alia"},
		{"no place", "GET", "/api/v1/services/passport/offices", 400, "near=lat,lon in degrees (e.g. near=41.9,12.5), comune"},
		{"near not a point", "GET", "/api/v1/services/passport/offices?near=rome", 400, "near must be lat,lon in degrees, e.g. near=41.9,12.5"},
		{"near out of range", "GET", "/api/v1/services/passport/offices?near=91,12", 400, "near must be lat,lon in degrees"},
		{"near NaN", "GET", "/api/v1/services/passport/offices?near=NaN,12", 400, "near must be lat,lon in degrees"},
		{"radius too large", "GET", "/api/v1/services/passport/offices?near=41.9,12.5&radius_km=500", 400, "radius_km must be between 0 and 200"},
		{"radius zero", "GET", "/api/v1/services/passport/offices?near=41.9,12.5&radius_km=0", 400, "radius_km must be between 0 and 200"},
		{"radius without near", "GET", "/api/v1/services/passport/offices?region=Lazio&radius_km=5", 400, "radius_km needs a point"},
		{"limit too large", "GET", "/api/v1/services/passport/offices?region=Lazio&limit=101", 400, "limit must be a whole number from 1 to 100"},
		{"available not a boolean", "GET", "/api/v1/services/passport/offices?region=Lazio&available=yes", 400, "available must be true or false"},
		{"comune code too short", "GET", "/api/v1/services/passport/offices?comune=12", 400, "6 digits"},
		{"unknown region", "GET", "/api/v1/services/passport/offices?region=Atlantide", 400, "Piemonte"},
		{"bad cursor", "GET", "/api/v1/services/passport/offices?region=Lazio&cursor=abc", 400, "next link"},
		{"unknown parameter", "GET", "/api/v1/services/passport/offices?raduis_km=3&near=41.9,12.5", 400, "this route takes near, radius_km"},
		{"repeated parameter", "GET", "/api/v1/services/passport/offices?region=Lazio&region=Sicilia", 400, "give it once"},
		{"office", "GET", "/api/v1/offices/" + po.ID + "/services", 200, `"open_now":true`},
		{"coworking space's services", "GET", "/api/v1/offices/" + cw.ID + "/services", 200, "coworking_desk"},
		{"unknown office", "GET", "/api/v1/offices/PO-999999-1/services", 404, "/api/v1/services/{id}/offices"},
		{"office with a parameter", "GET", "/api/v1/offices/" + po.ID + "/services?all=1", 400, "takes none"},
		{"coworking near", "GET", "/api/v1/coworking?near=45.07,7.68", 200, cw.ID},
		{"coworking in a region", "GET", "/api/v1/coworking?region=lazio", 200, `"total":1`},
		{"coworking without a place", "GET", "/api/v1/coworking", 400, "say where"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Each case from its own address: the rate limit is per client.
			cl := clientFrom(t, fmt.Sprintf("127.0.1.%d", i+1), 10*time.Second)
			resp, b := e.doWith(t, cl, tc.method, tc.path, "")
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d; want %d; body %s", resp.StatusCode, tc.status, b)
			}
			if !strings.Contains(string(b), tc.contains) {
				t.Fatalf("body does not say %q: %s", tc.contains, b)
			}
			if tc.status >= 400 {
				decodeError(t, b)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "*" {
				t.Fatalf("Access-Control-Allow-Origin %q", got)
			}
			if tc.status == 200 && (resp.Header.Get("ETag") == "" || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "public, max-age=")) {
				t.Fatalf("no ETag or Cache-Control: %v", resp.Header)
			}
		})
	}
	// HEAD is GET without the body (not in the document, as everywhere).
	head, err := http.Head(e.base + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	head.Body.Close()
	if head.StatusCode != 200 || head.Header.Get("ETag") == "" {
		t.Fatalf("HEAD: %d %v", head.StatusCode, head.Header)
	}
	// Other methods are refused in JSON, saying what is served.
	resp, b := e.do(t, "DELETE", "/api/v1/services", "")
	if resp.StatusCode != 405 || resp.Header.Get("Allow") != "GET, OPTIONS" {
		t.Fatalf("DELETE: %d, Allow %q: %s", resp.StatusCode, resp.Header.Get("Allow"), b)
	}
}

// The answers follow the twin: an ATM's cash, a totem going offline with
// the counter open or closed, a charger's connector freeing.
func TestServicesFollowTheTwin(t *testing.T) {
	e := newServicesEnv(t)
	po := e.officeWith(t, registry.TypeATM)
	for _, a := range []string{"atm-1", "totem-1", "evc-1"} {
		e.operational(t, po.ID, a)
	}
	at := testNow.Add(-time.Minute)
	office := func(service string) services.Availability {
		t.Helper()
		var page struct {
			Items []services.OfficeAvailability `json:"items"`
		}
		resp, b := e.do(t, "GET", fmt.Sprintf("/api/v1/services/%s/offices?comune=%s&limit=100", service, po.Comune), "")
		if resp.StatusCode != 200 {
			t.Fatalf("%d: %s", resp.StatusCode, b)
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		for _, it := range page.Items {
			if it.Site == po.ID {
				// One source of truth: the office page says the same.
				all, _ := e.finder.Office(po.ID, e.clock.Now())
				for _, a := range all {
					if a.Service == service && (a.Available != it.Availability.Available || a.Reason != it.Availability.Reason) {
						t.Fatalf("office page %+v; finder %+v", a, it.Availability)
					}
				}
				return it.Availability
			}
		}
		t.Fatalf("%s is not listed for %s: %s", po.ID, service, b)
		return services.Availability{}
	}
	want := func(service string, available bool, reason string) {
		t.Helper()
		e.clock.advance(time.Second) // a new second: a fresh token for this client
		got := office(service)
		if got.Available != available || got.Reason != reason {
			t.Fatalf("%s: available %v, reason %q (%s); want %v, %q", service, got.Available, got.Reason, got.Message, available, reason)
		}
	}

	want("cash_withdrawal", false, services.ReasonTwinUnknown)
	e.live.telemetry(po.ID, "atm-1", "available", 1, at)
	e.live.telemetry(po.ID, "atm-1", "cash_eur", 42000, at)
	want("cash_withdrawal", true, "")
	e.live.telemetry(po.ID, "atm-1", "cash_eur", services.MinCashEUR-50, at.Add(time.Second))
	want("cash_withdrawal", false, services.ReasonATMNoCash)

	e.live.telemetry(po.ID, "totem-1", "online", 1, at)
	e.live.telemetry(po.ID, "totem-1", "paper_pct", 80, at)
	want("civil_certificate", true, "")
	e.live.telemetry(po.ID, "totem-1", "online", 0, at.Add(time.Second))
	want("civil_certificate", true, "") // the counter is open
	if a := office("civil_certificate"); a.Channel != services.ChannelCounter || a.Channels[0].Reason != services.ReasonTotemOffline {
		t.Fatalf("with the counter open: %+v", a)
	}
	e.clock.advance(10 * time.Hour) // 20:00: closed
	want("civil_certificate", false, services.ReasonTotemOffline)
	if a := office("civil_certificate"); !strings.Contains(a.Message, "allo sportello da mercoledì 11 marzo alle 08:20") || a.ExpectedAt.IsZero() {
		t.Fatalf("closed: %+v", a)
	}

	now := e.clock.Now()
	e.live.telemetry(po.ID, "evc-1", "connector_state", 1, now.Add(-time.Second))
	want("ev_charging", false, services.ReasonChargerBusy)
	e.live.telemetry(po.ID, "evc-1", "connector_state", 0, now)
	want("ev_charging", true, "")
}

// Every answer has an ETag; the same request with it as If-None-Match is
// 304 until the twin changes the answer.
func TestServicesCaching(t *testing.T) {
	e := newServicesEnv(t)
	po := e.officeWith(t, registry.TypeATM)
	e.operational(t, po.ID, "atm-1")
	path := "/api/v1/offices/" + po.ID + "/services"
	resp, _ := e.do(t, "GET", path, "")
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || etag == "" || resp.Header.Get("Cache-Control") != "public, max-age=10" {
		t.Fatalf("%d, ETag %q, Cache-Control %q", resp.StatusCode, etag, resp.Header.Get("Cache-Control"))
	}
	for _, inm := range []string{etag, "W/" + etag, `"x", ` + etag, "*"} {
		resp, b := e.do(t, "GET", path, "", "If-None-Match", inm)
		if resp.StatusCode != 304 || len(b) != 0 || resp.Header.Get("ETag") != etag {
			t.Fatalf("If-None-Match %s: %d, ETag %q, %d bytes", inm, resp.StatusCode, resp.Header.Get("ETag"), len(b))
		}
	}
	e.live.telemetry(po.ID, "atm-1", "cash_eur", 10, testNow.Add(-time.Second))
	resp, b := e.do(t, "GET", path, "", "If-None-Match", etag)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") == etag || !strings.Contains(string(b), services.ReasonATMNoCash) {
		t.Fatalf("after a change: %d, ETag %q: %s", resp.StatusCode, resp.Header.Get("ETag"), b)
	}
	resp, _ = e.do(t, "GET", "/api/v1/services", "")
	if resp.Header.Get("Cache-Control") != "public, max-age=3600" {
		t.Fatalf("catalogue Cache-Control %q", resp.Header.Get("Cache-Control"))
	}
}

// A browser's preflight is answered for every route.
func TestServicesPreflight(t *testing.T) {
	e := newServicesEnv(t)
	po := e.officeWith(t, registry.TypeATM)
	for _, path := range []string{"/api/v1/services", "/api/v1/services/isee", "/api/v1/services/isee/offices",
		"/api/v1/offices/" + po.ID + "/services", "/api/v1/coworking"} {
		resp, b := e.do(t, "OPTIONS", path, "", "Origin", "https://comune.example", "Access-Control-Request-Method", "GET",
			"Access-Control-Request-Headers", "if-none-match")
		h := resp.Header
		if resp.StatusCode != 204 || len(b) != 0 || h.Get("Access-Control-Allow-Origin") != "*" ||
			!strings.Contains(h.Get("Access-Control-Allow-Methods"), "GET") ||
			!strings.Contains(h.Get("Access-Control-Allow-Headers"), "If-None-Match") || h.Get("Access-Control-Max-Age") == "" {
			t.Fatalf("%s: %d %v", path, resp.StatusCode, h)
		}
	}
	resp, _ := e.do(t, "GET", "/api/v1/services", "", "Origin", "https://comune.example")
	if !strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "ETag") ||
		!strings.Contains(resp.Header.Get("Access-Control-Expose-Headers"), "Retry-After") {
		t.Fatalf("exposed headers %q", resp.Header.Get("Access-Control-Expose-Headers"))
	}
}

// A client over the rate gets 429 with Retry-After; others do not; the
// bucket refills with time.
func TestServicesRateLimit(t *testing.T) {
	e := newServicesEnv(t)
	a := clientFrom(t, "127.0.2.1", 10*time.Second)
	for i := range publicBurst {
		if resp, b := e.doWith(t, a, "GET", "/api/v1/services/isee", ""); resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %s", i+1, resp.StatusCode, b)
		}
	}
	resp, b := e.doWith(t, a, "GET", "/api/v1/services/isee", "")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("over the burst: %d, Retry-After %q: %s", resp.StatusCode, resp.Header.Get("Retry-After"), b)
	}
	if er := decodeError(t, b); er.Code != CodeTooManyRequests || !strings.Contains(er.Message, "retry in 1 s") {
		t.Fatalf("error %+v", er)
	}
	if resp, _ := e.doWith(t, clientFrom(t, "127.0.2.2", 10*time.Second), "GET", "/api/v1/services/isee", ""); resp.StatusCode != 200 {
		t.Fatalf("another client: %d", resp.StatusCode)
	}
	e.clock.advance(time.Second)
	if resp, _ := e.doWith(t, a, "GET", "/api/v1/services/isee", ""); resp.StatusCode != 200 {
		t.Fatalf("a second later: %d", resp.StatusCode)
	}
}

// The limiter's memory is bounded: idle buckets are forgotten, and no more
// than max clients are kept.
func TestClientLimiter(t *testing.T) {
	l := newClientLimiter(10, 5, 100)
	now := testNow
	for i := range 1000 {
		if ok, _ := l.allow(fmt.Sprintf("10.0.%d.%d", i/256, i%256), now); !ok {
			t.Fatalf("client %d refused on its first request", i)
		}
		if n := l.len(); n > 100 {
			t.Fatalf("%d clients remembered", n)
		}
	}
	for range 5 {
		if ok, _ := l.allow("x", now); !ok {
			t.Fatal("refused within the burst")
		}
	}
	ok, retry := l.allow("x", now)
	if ok || retry != 100*time.Millisecond {
		t.Fatalf("over the burst: %v, retry %v", ok, retry)
	}
	// A minute later every bucket is full again and forgotten.
	if ok, _ := l.allow("y", now.Add(time.Minute)); !ok || l.len() != 1 {
		t.Fatalf("after a minute: %v, %d clients", ok, l.len())
	}
}

// Following next links walks every office once.
func TestServicesPagination(t *testing.T) {
	e := newServicesEnv(t)
	path := "/api/v1/services/passport/offices?near=41.9,12.5&radius_km=200&limit=1"
	var first struct{ Total int }
	seen := map[string]bool{}
	for n := 0; path != ""; n++ {
		if n > 10 {
			t.Fatal("the next links do not end")
		}
		e.clock.advance(time.Second)
		resp, b := e.do(t, "GET", path, "")
		if resp.StatusCode != 200 {
			t.Fatalf("%d: %s", resp.StatusCode, b)
		}
		var page struct {
			Total int
			Items []services.OfficeAvailability
			Next  string
		}
		if err := json.Unmarshal(b, &page); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			first.Total = page.Total
		}
		for _, it := range page.Items {
			if seen[it.Site] {
				t.Fatalf("%s twice", it.Site)
			}
			seen[it.Site] = true
		}
		if page.Next != "" && !strings.Contains(page.Next, "limit=1") {
			t.Fatalf("next %q lost the query", page.Next)
		}
		path = page.Next
	}
	if first.Total < 2 || len(seen) != first.Total {
		t.Fatalf("%d offices over the pages; total %d", len(seen), first.Total)
	}
}

// A site another instance holds: its office page redirects there, and the
// finder answers its devices with "elsewhere".
func TestServicesRemoteSite(t *testing.T) {
	e := newServicesEnv(t)
	po := e.officeWith(t, registry.TypeATM)
	e.operational(t, po.ID, "atm-1")
	e.live.setRemote(po.ID, "http://polis-2:8080")
	path := "/api/v1/offices/" + po.ID + "/services"
	resp, _ := e.do(t, "GET", path, "")
	if resp.StatusCode != 307 || resp.Header.Get("Location") != "http://polis-2:8080"+path {
		t.Fatalf("%d, Location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.live.setRemote(po.ID, "")
	if resp, _ := e.do(t, "GET", path, ""); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("owner unknown: %d", resp.StatusCode)
	}
	resp, b := e.do(t, "GET", "/api/v1/services/cash_withdrawal/offices?comune="+url.QueryEscape(po.Comune), "")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"reason":"elsewhere"`) {
		t.Fatalf("%d: %s", resp.StatusCode, b)
	}
}

// Without a finder the routes are not there.
func TestServicesNotMounted(t *testing.T) {
	e := newEnv(t)
	// Not through the contract, which documents the mounted routes.
	resp, err := http.Get(e.base + "/api/v1/services")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var er Error
	if err := json.NewDecoder(resp.Body).Decode(&er); err != nil || resp.StatusCode != http.StatusNotFound || er.Code != CodeNotFound {
		t.Fatalf("%d %+v %v", resp.StatusCode, er, err)
	}
}

// FuzzParseFindQuery: any query string is refused with a message or gives
// a query within the finder's bounds.
func FuzzParseFindQuery(f *testing.F) {
	for _, s := range []string{"near=41.9,12.5", "near=41.9,12.5&radius_km=200&limit=100&available=true", "comune=001002",
		"region=Lazio&cursor=YzF8", "near=1e2,3", "near=-0,-180&radius_km=0.001", "limit=0", "near=,", "radius_km=NaN&near=1,1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		v, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseFindQuery(v)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("an error without a message")
			}
			return
		}
		if q.Near == nil && q.Comune == "" && q.Region == "" {
			t.Fatalf("%q: accepted without a place", raw)
		}
		if q.Near != nil && !(q.Near.Lat >= -90 && q.Near.Lat <= 90 && q.Near.Lon >= -180 && q.Near.Lon <= 180) {
			t.Fatalf("%q: point %v accepted", raw, *q.Near)
		}
		if !(q.RadiusKm >= 0 && q.RadiusKm <= services.MaxRadiusKm) || q.Limit < 0 || q.Limit > services.MaxLimit {
			t.Fatalf("%q: radius %v, limit %d accepted", raw, q.RadiusKm, q.Limit)
		}
	})
}

// The citizen-services routes are exactly the ones the document lists
// under their paths, and each is public (no security) and answers 429.
func TestServicesDocumented(t *testing.T) {
	doc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	var documented, mounted []string
	for path, item := range doc.Paths.Map() {
		if !strings.HasPrefix(path, "/api/v1/services") && !strings.HasPrefix(path, "/api/v1/offices/") && path != "/api/v1/coworking" {
			continue
		}
		for method, op := range item.Operations() {
			documented = append(documented, method+" "+path)
			if op.Security != nil && len(*op.Security) > 0 {
				t.Fatalf("%s %s needs a token", method, path)
			}
			if method == "GET" && op.Responses.Status(429) == nil {
				t.Fatalf("%s %s does not document 429", method, path)
			}
		}
	}
	for _, rt := range (&v1{o: V1Options{Services: (*services.Finder)(nil)}}).serviceRoutes() {
		mounted = append(mounted, rt.method+" "+rt.path)
	}
	slices.Sort(documented)
	slices.Sort(mounted)
	if len(mounted) != 10 || !slices.Equal(documented, mounted) {
		t.Fatalf("documented %v\nmounted    %v", documented, mounted)
	}
	if (&v1{}).serviceRoutes() != nil {
		t.Fatal("routes without a finder")
	}
}
