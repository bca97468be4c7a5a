package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// testNow is the fakes' clock: a Tuesday at 10:00 in Rome, when post
// offices are open.
var testNow = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// Test tokens, in plaintext; the API only gets their hashes.
const (
	operatorToken = "op-secret-0123456789"
	managerToken  = "fm-secret-0123456789"
)

// testComuni place the fleet in a few real comuni.
var testComuni = []registry.Comune{
	{Code: "001002", Name: "Airasca", Region: "Piemonte", Province: "Torino", ProvinceCode: "TO", Population: 3800},
	{Code: "001272", Name: "Torino", Region: "Piemonte", Province: "Torino", ProvinceCode: "TO", Population: 850000, Capital: true},
	{Code: "058091", Name: "Roma", Region: "Lazio", Province: "Roma", ProvinceCode: "RM", Population: 2800000, Capital: true},
	{Code: "066001", Name: "Acciano", Region: "Abruzzo", Province: "L'Aquila", ProvinceCode: "AQ", Population: 300},
	{Code: "082002", Name: "Alia", Region: "Sicilia", Province: "Palermo", ProvinceCode: "PA", Population: 3600},
}

// fakeLive is Live over a real state.Store and lifecycle.Tracker. Sites in
// remote belong to another instance.
type fakeLive struct {
	store *state.Store
	track *lifecycle.Tracker
	reg   *registry.Registry

	mu     sync.Mutex
	remote map[string]string // site -> owner URL
	subs   map[int]chan Update
	nextID int
	setErr error // returned by SetDesired when set
}

func newFakeLive(t testing.TB, reg *registry.Registry) *fakeLive {
	t.Helper()
	l := &fakeLive{store: state.New(state.Options{}), track: lifecycle.NewTracker(lifecycle.Options{}), reg: reg,
		remote: map[string]string{}, subs: map[int]chan Update{}}
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			l.store.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	if err := reg.SeedTracker(l.track); err != nil {
		t.Fatal(err)
	}
	return l
}

// setRemote hands site to another instance at owner ("" = not known yet).
func (l *fakeLive) setRemote(site, owner string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.remote[site] = owner
}

func (l *fakeLive) failDesired(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.setErr = err
}

func (l *fakeLive) owner(site string) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	o, remote := l.remote[site]
	return o, !remote
}

func (l *fakeLive) SiteState(site string, now time.Time) (state.SiteView, bool, string) {
	if o, local := l.owner(site); !local {
		return state.SiteView{}, false, o
	}
	v, _ := l.store.Site(site, now)
	return v, true, ""
}

func (l *fakeLive) AssetState(site, asset string, now time.Time) (state.AssetView, bool, string) {
	if o, local := l.owner(site); !local {
		return state.AssetView{}, false, o
	}
	v, _ := l.store.Asset(site, asset, now)
	return v, true, ""
}

func (l *fakeLive) SetDesired(site, asset string, props map[string]json.RawMessage, ifVersion uint64, unconditional bool, now time.Time) (uint64, bool, string, error) {
	if o, local := l.owner(site); !local {
		return 0, false, o, nil
	}
	l.mu.Lock()
	setErr := l.setErr
	l.mu.Unlock()
	if setErr != nil {
		return 0, true, "", setErr
	}
	if !unconditional && ifVersion == 0 {
		if cur, ok := l.store.Asset(site, asset, now); ok && cur.DesiredVersion != 0 {
			return cur.DesiredVersion, true, "", state.ErrVersionMismatch
		}
	}
	v, err := l.store.SetDesired(site, asset, props, now, ifVersion)
	if err == nil {
		l.emit(Update{Site: site, Asset: asset, AssetType: registry.AssetTypeOf(asset), Kind: "desired", At: now})
	}
	return v, true, "", err
}

func (l *fakeLive) Transition(site, asset string, to lifecycle.State, actor, cause string, now time.Time) (lifecycle.Event, error) {
	return l.track.Transition(site, asset, to, actor, cause, now)
}

func (l *fakeLive) Lifecycle(site, asset string) (lifecycle.State, bool) {
	return l.track.State(site, asset)
}

func (l *fakeLive) Subscribe(buffer int) (<-chan Update, func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	id := l.nextID
	l.nextID++
	ch := make(chan Update, buffer)
	l.subs[id] = ch
	return ch, func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		delete(l.subs, id)
	}
}

func (l *fakeLive) subscribers() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs)
}

// emit sends u to every subscriber that has room, as the real one does.
func (l *fakeLive) emit(u Update) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, ch := range l.subs {
		select {
		case ch <- u:
		default:
		}
	}
}

// report applies a device's reported state.
func (l *fakeLive) report(t *testing.T, site, asset, body string, at time.Time) {
	t.Helper()
	l.store.Apply(&record.Record{V: record.Version, Kind: record.KindReported, Site: site, Asset: asset,
		Received: at.UnixMilli(), TS: at.UnixMilli(), Body: json.RawMessage(body)})
}

// telemetry applies one telemetry point.
func (l *fakeLive) telemetry(site, asset, metric string, v float64, at time.Time) {
	l.store.Apply(&record.Record{V: record.Version, Kind: record.KindTelemetry, Site: site, Asset: asset,
		Received: at.UnixMilli(), Points: []record.Point{{Metric: metric, TS: at.UnixMilli(), Value: v}}})
}

// fakeHistory answers with two points at the resolution ChooseResolution picks.
type fakeHistory struct {
	mu   sync.Mutex
	last HistoryQuery
}

func (h *fakeHistory) History(_ context.Context, q HistoryQuery) (HistoryResult, error) {
	h.mu.Lock()
	h.last = q
	h.mu.Unlock()
	if q.Metric == "broken_x" {
		return HistoryResult{}, errors.New("clickhouse: connection refused")
	}
	return HistoryResult{Resolution: ChooseResolution(q.From, q.To, q.Step), Points: []HistoryPoint{
		{TS: q.From, Value: 21, Min: 20, Max: 22, Count: 60},
		{TS: q.From.Add(time.Minute), Value: 21.5, Min: 21, Max: 22, Count: 60},
	}}, nil
}

// fakeRegistrar is Registrar over the env's real registry, as the
// platform's will be (minus saving it).
type fakeRegistrar struct {
	reg *registry.Registry
}

func (f *fakeRegistrar) Import(r io.Reader, strict bool) (*registry.ImportReport, error) {
	return registry.ImportCSV(f.reg, r, registry.ImportOptions{Strict: strict})
}

func (f *fakeRegistrar) Export(w io.Writer) error { return registry.ExportCSV(w, f.reg) }

// syncBuffer collects logs from the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

type env struct {
	logs *syncBuffer
	base string
	srv  *Server
	reg  *registry.Registry
	live *fakeLive
	hist *fakeHistory
}

func testFleet(t *testing.T) *registry.Registry {
	t.Helper()
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 6, Coworking: 2, Seed: 7, Comuni: testComuni})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// newEnv starts the API on a loopback port with the fakes.
func newEnv(t *testing.T) *env { t.Helper(); return newEnvWith(t, nil) }

// newEnvWith is newEnv with the options changed by edit before mounting.
func newEnvWith(t *testing.T, edit func(*V1Options)) *env {
	t.Helper()
	return newEnvLimits(t, Limits{}, edit)
}

// newEnvLimits is newEnvWith on a server with limits l.
func newEnvLimits(t *testing.T, l Limits, edit func(*V1Options)) *env {
	t.Helper()
	reg := testFleet(t)
	e := &env{reg: reg, live: newFakeLive(t, reg), hist: &fakeHistory{}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(Options{Addr: "127.0.0.1:0", Logger: log, Limits: l})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = s
	o := V1Options{Fleet: reg, Live: e.live, History: e.hist, Registrar: &fakeRegistrar{reg: reg},
		Now: func() time.Time { return testNow },
		Tokens: []Token{
			{Name: "ops", Role: RoleOperator, Hash: credential.Hash(operatorToken)},
			{Name: "facility", Role: RoleFacilityManager, Hash: credential.Hash(managerToken)},
		}}
	if edit != nil {
		edit(&o)
	}
	err = s.MountV1(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	e.base = "http://" + s.Addr()
	return e
}

// contract is the OpenAPI document every response is checked against.
var contract = sync.OnceValues(func() (*openapi3.T, error) {
	b, err := openAPIJSON()
	if err != nil {
		return nil, err
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		return nil, err
	}
	return doc, doc.Validate(context.Background())
})

var contractRouter = sync.OnceValues(func() (routers.Router, error) {
	doc, err := contract()
	if err != nil {
		return nil, err
	}
	return legacy.NewRouter(doc)
})

func init() {
	// The stream's body is text; its events are checked one by one.
	openapi3filter.RegisterBodyDecoder("text/event-stream",
		func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
}

var noRedirects = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	Timeout:       10 * time.Second,
}

// do sends a request and checks the response against the OpenAPI
// document: its status must be documented for the route, its headers and
// body must match. Every test request goes through here.
func (e *env) do(t *testing.T, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	return e.doWith(t, noRedirects, method, path, body, hdr...)
}

// doWith is do with another client (one that connects from another
// address: clientFrom).
func (e *env) doWith(t *testing.T, cl *http.Client, method, path, body string, hdr ...string) (*http.Response, []byte) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	checkContract(t, req, resp, b, false)
	return resp, b
}

// checkContract validates one response. Answers on paths or methods the
// document does not list (404 for an unknown path, 405) must still be the
// documented Error.
func checkContract(t *testing.T, req *http.Request, resp *http.Response, body []byte, skipBody bool) {
	t.Helper()
	doc, err := contract()
	if err != nil {
		t.Fatalf("openapi.yaml does not validate: %v", err)
	}
	rt, err := contractRouter()
	if err != nil {
		t.Fatal(err)
	}
	checkErrorCode(t, req, resp, body)
	route, params, err := rt.FindRoute(req)
	if err != nil {
		if resp.StatusCode != http.StatusNotFound && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Fatalf("%s %s: answered %d but the OpenAPI document has no such route: %v", req.Method, req.URL.Path, resp.StatusCode, err)
		}
		checkError(t, doc, resp, body)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true, ExcludeResponseBody: skipBody},
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s: response %d does not match the OpenAPI document: %v\nbody: %s", req.Method, req.URL, resp.StatusCode, err, body)
	}
}

// checkErrorCode checks that an error's code is in the catalogue and came
// with the catalogue's status.
func checkErrorCode(t *testing.T, req *http.Request, resp *http.Response, body []byte) {
	t.Helper()
	if resp.StatusCode < 300 || resp.Header.Get("Content-Type") != "application/json" {
		return
	}
	var e struct {
		Code ErrorCode `json:"code"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Code == "" {
		return // not an error body (an import's report on 422); the contract decides
	}
	spec, ok := errorSpecs[e.Code]
	switch {
	case !ok:
		t.Fatalf("%s %s: error code %q is not in the catalogue: %s", req.Method, req.URL, e.Code, body)
	case spec.Status != resp.StatusCode:
		t.Fatalf("%s %s: error %q with status %d; the catalogue says %d", req.Method, req.URL, e.Code, resp.StatusCode, spec.Status)
	}
}

func checkError(t *testing.T, doc *openapi3.T, resp *http.Response, body []byte) {
	t.Helper()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error with Content-Type %q, want application/json", ct)
	}
	var v any
	if err := json.Unmarshal(body, &v); err != nil {
		t.Fatalf("error body is not JSON: %v: %s", err, body)
	}
	if err := doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		t.Fatalf("error body does not match the Error schema: %v: %s", err, body)
	}
}

// decodeError returns the JSON error of a response.
func decodeError(t *testing.T, b []byte) Error {
	t.Helper()
	var e Error
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("cannot decode error %s: %v", b, err)
	}
	if e.Code == "" || e.Message == "" {
		t.Fatalf("error without code or message: %s", b)
	}
	return e
}

// firstSite returns a post office with an env sensor and its id.
func (e *env) postOffice(t *testing.T) *registry.Site {
	t.Helper()
	for _, s := range e.reg.Sites() {
		if s.Kind == registry.KindPostOffice {
			return s
		}
	}
	t.Fatal("no post office in the test fleet")
	return nil
}

func bearer(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
