package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Fleet is the static registry.
type Fleet interface {
	Sites() []*registry.Site
	Site(id string) (*registry.Site, bool)
}

// Live is the twin's live state. local=false means another instance owns the
// site; owner is that instance's base URL ("http://host:port", "" if unknown)
// and the API answers 307 Temporary Redirect to owner+same path+query (503
// JSON error if owner is "").
type Live interface {
	SiteState(site string, now time.Time) (v state.SiteView, local bool, owner string)
	AssetState(site, asset string, now time.Time) (v state.AssetView, local bool, owner string)
	// SetDesired stores desired properties (unless unconditional, only if
	// the current desired version is ifVersion; 0: nothing set yet) and
	// publishes them retained to the device; returns the new desired version
	// or state.ErrVersionMismatch / state.ErrUnknownAsset.
	SetDesired(site, asset string, props map[string]json.RawMessage, ifVersion uint64, unconditional bool, now time.Time) (version uint64, local bool, owner string, err error)
	// Transition moves an asset's lifecycle (operator call); errors from twin/lifecycle.
	Transition(site, asset string, to lifecycle.State, actor, cause string, now time.Time) (lifecycle.Event, error)
	// Subscribe streams twin changes until cancel is called; slow readers
	// lose updates (counted by the implementation), so a send must never
	// wait. The API holds one subscription while any stream is open and
	// fans it out to its streams itself (streamhub.go).
	Subscribe(buffer int) (updates <-chan Update, cancel func())
}

// LifecycleReader is optional on Live: when implemented, the API shows an
// asset's current lifecycle state from it rather than the state recorded in
// the registry (which lags behind transitions until the registry is saved).
type LifecycleReader interface {
	Lifecycle(site, asset string) (lifecycle.State, bool)
}

// Update is one twin change, as the stream sends it.
type Update struct {
	Site, Asset, AssetType, Region string
	Kind                           string   // "telemetry", "reported", "status", "event", "desired", "lifecycle"
	Status                         string   `json:",omitempty"`
	Metrics                        []string `json:",omitempty"`
	At                             time.Time
}

// History reads telemetry from ClickHouse.
type History interface {
	History(ctx context.Context, q HistoryQuery) (HistoryResult, error)
}

// The history types and the rule that picks the table are storage's:
// the API reads what storage answers.
type (
	HistoryQuery  = storage.HistoryQuery
	HistoryResult = storage.HistoryResult
	HistoryPoint  = storage.HistoryPoint
)

// V1Options are what the twin API reads and who may write.
type V1Options struct {
	Fleet   Fleet
	Live    Live
	History History // nil: the history route answers 503
	// Registrar, if set, mounts the bulk registry routes (POST
	// /api/v1/registry/import, GET /api/v1/registry/export; role
	// operator). nil: they are not mounted (404).
	Registrar Registrar
	// Alerts, if set, mounts the alert routes (/api/v1/alerts...,
	// /api/v1/silences...; reads open, writes operator or
	// facility_manager). nil: they are not mounted (404).
	Alerts AlertStore
	// Rules, if set, mounts the rule routes (/api/v1/rules...; reads open,
	// writes operator, backtests operator or facility_manager).
	Rules RuleStore
	// Milestones, if set, mounts GET /api/v1/milestones (public).
	Milestones MilestoneSource
	// SQL, if set, mounts POST /api/v1/sql (read-only queries; role
	// operator or analyst).
	SQL    SQLExecutor
	Tokens []Token
	Now    func() time.Time // default time.Now
	Logger *slog.Logger

	// LifecycleImport serves POST /api/v1/lifecycle/import (role
	// operator; lifecycleimport.go). nil: Live, when it is a
	// LifecycleImporter; without either the route answers 503.
	LifecycleImport LifecycleImporter

	// Services, if set, mounts the public citizen-services routes
	// (/api/v1/services..., /api/v1/offices/{site}/services,
	// /api/v1/coworking; services.go): no token, CORS, a rate limit per
	// client, ETag and Cache-Control.
	Services ServiceFinder
}

// v1 is the API under /api/v1/: sites and their assets' twins (desired
// state, lifecycle, history), the stream, the OpenAPI document and, when
// their dependencies are given, the registry, alerts and silences, rules and
// milestones.
type v1 struct {
	o          V1Options
	lim        Limits // the server's, with defaults
	log        *slog.Logger
	auth       *authenticator
	hub        *streamHub
	m          *metrics
	clientAddr func(*http.Request) string
	heartbeat  time.Duration
	closing    chan struct{} // closed when the server shuts down
}

// heartbeatEvery is how often the stream sends a comment line (a variable
// so that tests need not wait 15 s).
var heartbeatEvery = 15 * time.Second

// MountV1 adds the routes of /api/v1/ to s. It fails on missing
// dependencies or badly configured tokens.
func (s *Server) MountV1(o V1Options) error {
	if o.Fleet == nil || o.Live == nil {
		return errors.New("cannot mount twin API: Fleet and Live are required")
	}
	if err := checkTokens(o.Tokens); err != nil {
		return fmt.Errorf("cannot mount twin API: %w", err)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = s.log
	}
	doc, err := openAPIJSON()
	if err != nil {
		return fmt.Errorf("cannot mount twin API: %w", err)
	}
	a := &v1{o: o, lim: s.o.Limits, log: o.Logger.With("component", "api.v1"), hub: newStreamHub(o.Live, s.o.Limits, s.m), m: s.m,
		clientAddr: s.clientAddr, heartbeat: heartbeatEvery, closing: make(chan struct{})}
	s.v1 = a
	a.auth = newAuthenticator(o.Tokens)
	a.auth.limit(newFailureLimiter(s.o.AuthFailuresPerMinute), s.clientAddr, s.m, a.log)
	// Streams never go idle: end them when the server shuts down, or
	// Shutdown would wait for its deadline.
	s.srv.RegisterOnShutdown(func() { close(a.closing) })
	for _, rt := range a.routes(doc) {
		s.Handle(rt.method+" "+rt.path, a.bodyLimit(rt))
	}
	// Any other method on a known path: 405 in JSON rather than the
	// mux's plain text.
	allow := map[string][]string{}
	var paths []string
	for _, rt := range a.routes(doc) {
		if allow[rt.path] == nil {
			paths = append(paths, rt.path)
		}
		allow[rt.path] = append(allow[rt.path], rt.method)
	}
	// One pattern per method, not a method-less one: "/api/v1/rules/check"
	// for every method would conflict with "GET /api/v1/rules/{id}".
	for _, p := range paths {
		for _, m := range []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"} {
			if !slices.Contains(allow[p], m) && !(m == "HEAD" && slices.Contains(allow[p], "GET")) {
				s.Handle(m+" "+p, methodNotAllowed(allow[p]))
			}
		}
	}
	return nil
}

type route struct {
	method, path string
	h            http.Handler
	// importBody marks the registry import: its body may be
	// MaxImportBytes rather than MaxBodyBytes.
	importBody bool
}

// bodyLimit bounds the body of rt's requests: MaxImportBytes for the
// registry import, MaxBodyBytes for every other route. The handlers read
// r.Body and answer its errors through bodyError (413, 408, 400).
func (a *v1) bodyLimit(rt route) http.Handler {
	limit := a.lim.MaxBodyBytes
	if rt.importBody {
		limit = a.lim.MaxImportBytes
	}
	if limit < 0 {
		return rt.h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		rt.h.ServeHTTP(w, r)
	})
}

func (a *v1) routes(doc []byte) []route {
	rts := []route{
		{method: "GET", path: "/api/v1/{$}", h: http.HandlerFunc(a.index)},
		{method: "GET", path: "/api/v1/openapi.json", h: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc)
		})},
		{method: "GET", path: "/api/v1/sites", h: http.HandlerFunc(a.listSites)},
		{method: "GET", path: "/api/v1/sites/{site}", h: http.HandlerFunc(a.getSite)},
		{method: "GET", path: "/api/v1/sites/{site}/assets/{asset}", h: http.HandlerFunc(a.getAsset)},
		{method: "PATCH", path: "/api/v1/sites/{site}/assets/{asset}/desired", h: http.HandlerFunc(a.patchDesired)},
		{method: "POST", path: "/api/v1/sites/{site}/assets/{asset}/lifecycle", h: http.HandlerFunc(a.postLifecycle)},
		{method: "POST", path: "/api/v1/lifecycle/import", h: http.HandlerFunc(a.importLifecycle), importBody: true},
		{method: "GET", path: "/api/v1/sites/{site}/assets/{asset}/history", h: http.HandlerFunc(a.history)},
		{method: "GET", path: "/api/v1/stream", h: http.HandlerFunc(a.stream)},
	}
	if a.o.Registrar != nil {
		rts = append(rts,
			route{method: "POST", path: "/api/v1/registry/import", h: http.HandlerFunc(a.importRegistry), importBody: true},
			route{method: "GET", path: "/api/v1/registry/export", h: http.HandlerFunc(a.exportRegistry)},
		)
	}
	if a.o.Alerts != nil {
		rts = append(rts, a.alertRoutes()...)
	}
	if a.o.Rules != nil {
		rts = append(rts, a.ruleRoutes()...)
	}
	if a.o.Milestones != nil {
		rts = append(rts, route{method: "GET", path: "/api/v1/milestones", h: http.HandlerFunc(a.listMilestones)})
	}
	if a.o.SQL != nil {
		rts = append(rts, a.sqlRoutes()...)
	}
	rts = append(rts, a.serviceRoutes()...) // none unless Services is set
	return rts
}

func methodNotAllowed(methods []string) http.Handler {
	allow := ""
	for i, m := range methods {
		if i > 0 {
			allow += ", "
		}
		allow += m
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", allow)
		WriteError(w, CodeMethodNotAllowed,
			fmt.Sprintf("%s is not served on %s; use %s", r.Method, r.URL.Path, allow))
	})
}

func (a *v1) index(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{
		"openapi": "/api/v1/openapi.json",
		"sites":   "/api/v1/sites",
		"stream":  "/api/v1/stream",
	})
}

// site finds the site named in the path or writes a 404.
func (a *v1) site(w http.ResponseWriter, r *http.Request) (*registry.Site, bool) {
	id := r.PathValue("site")
	s, ok := a.o.Fleet.Site(id)
	if !ok {
		WriteError(w, CodeUnknownSite,
			fmt.Sprintf("no site %q; ids look like PO-<ISTAT code>-<n> or CW-<province>-<n>; list them at /api/v1/sites", id))
		return nil, false
	}
	return s, true
}

// asset finds the site and asset named in the path or writes a 404.
func (a *v1) asset(w http.ResponseWriter, r *http.Request) (*registry.Site, *registry.Asset, bool) {
	s, ok := a.site(w, r)
	if !ok {
		return nil, nil, false
	}
	id := r.PathValue("asset")
	for _, as := range s.Assets {
		if as.ID == id {
			return s, as, true
		}
	}
	WriteError(w, CodeUnknownAsset,
		fmt.Sprintf("site %s has no asset %q; its assets are listed at /api/v1/sites/%s", s.ID, id, s.ID))
	return nil, nil, false
}

// elsewhere answers a request for a site another instance owns: 307 to the
// owner, or 503 while the owner is not known.
func elsewhere(w http.ResponseWriter, r *http.Request, site, owner string) {
	if owner == "" {
		w.Header().Set("Retry-After", "1")
		WriteError(w, CodeOwnerUnknown,
			fmt.Sprintf("site %s is served by another instance, which is not known yet (the fleet is being rebalanced); retry in a second", site))
		return
	}
	loc := owner + r.URL.RequestURI()
	w.Header().Set("Location", loc)
	WriteError(w, CodeMoved, fmt.Sprintf("site %s is served by %s; repeat the request there", site, owner))
}

func (a *v1) lifecycleOf(site string, as *registry.Asset) lifecycle.State {
	if lr, ok := a.o.Live.(LifecycleReader); ok {
		if st, ok := lr.Lifecycle(site, as.ID); ok {
			return st
		}
	}
	if as.Lifecycle == "" {
		return lifecycle.Planned
	}
	return as.Lifecycle
}

func (a *v1) getSite(w http.ResponseWriter, r *http.Request) {
	s, ok := a.site(w, r)
	if !ok {
		return
	}
	now := a.o.Now()
	v, local, owner := a.o.Live.SiteState(s.ID, now)
	if !local {
		elsewhere(w, r, s.ID, owner)
		return
	}
	d := siteDetail{siteSummary: summary(s), ProvinceName: s.ProvinceName, InnerArea: s.InnerArea, Address: s.Address,
		CUP: s.CUP, CIG: s.CIG, Live: liveOf(v)}
	if s.OpeningHours != nil {
		d.OpeningHours = s.OpeningHours.String()
		open := s.OpeningHours.OpenAt(now)
		d.OpenNow = &open
	}
	if c := s.Coworking; c != nil {
		d.Coworking = &coworkingDTO{Workstations: c.Workstations, MeetingRooms: c.MeetingRooms, EventAreas: c.EventAreas}
	}
	d.Assets = make([]assetSummary, 0, len(s.Assets))
	for _, as := range s.Assets {
		av, _, _ := a.o.Live.AssetState(s.ID, as.ID, now)
		d.Assets = append(d.Assets, assetSummary{
			ID: as.ID, Type: as.Type, Supplier: as.Supplier, CIG: as.CIG,
			Lifecycle: string(a.lifecycleOf(s.ID, as)), InstalledAt: as.InstalledAt,
			Status: av.Status.String(), LastSeen: av.LastSeen,
		})
	}
	writeJSON(w, http.StatusOK, d)
}

func (a *v1) getAsset(w http.ResponseWriter, r *http.Request) {
	s, as, ok := a.asset(w, r)
	if !ok {
		return
	}
	v, local, owner := a.o.Live.AssetState(s.ID, as.ID, a.o.Now())
	if !local {
		elsewhere(w, r, s.ID, owner)
		return
	}
	w.Header().Set("ETag", etag(v.DesiredVersion))
	writeJSON(w, http.StatusOK, a.assetDetail(s, as, v))
}

func etag(v uint64) string { return fmt.Sprintf("%q", fmt.Sprint(v)) }

func (a *v1) assetDetail(s *registry.Site, as *registry.Asset, v state.AssetView) assetDTO {
	d := assetDTO{
		Site: s.ID, ID: as.ID, Type: as.Type, Supplier: as.Supplier, CIG: as.CIG,
		Lifecycle: string(a.lifecycleOf(s.ID, as)), InstalledAt: as.InstalledAt,
		Status: v.Status.String(), Connection: v.Connection, StatusTS: v.StatusTS, LastSeen: v.LastSeen,
		Version: v.Version, Metrics: map[string]metricDTO{}, Reported: props(v.Reported), Desired: props(v.Desired),
		DesiredVersion: v.DesiredVersion, Delta: v.Delta, LastEvent: v.LastEvent, LastEventTS: v.LastEventTS,
	}
	for n, m := range v.Metrics {
		d.Metrics[n] = metricDTO{Value: m.Value, TS: m.TS, Arrival: m.Arrival}
	}
	if d.Delta == nil {
		d.Delta = map[string]json.RawMessage{}
	}
	return d
}

func props(in map[string]state.PropView) map[string]propDTO {
	out := make(map[string]propDTO, len(in))
	for n, p := range in {
		out[n] = propDTO{Value: p.Value, TS: p.TS, Version: p.Version}
	}
	return out
}
