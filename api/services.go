package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/twin/registry"
)

// ServiceFinder answers the citizen-services routes from the live twin;
// *services.Finder implements it.
type ServiceFinder interface {
	Catalogue() *services.Catalogue
	// Office answers every service the site's kind offers, in catalogue
	// order; false for an unknown site.
	Office(site string, now time.Time) ([]services.Availability, bool)
	// Find and Coworking answer a query, or fail with
	// services.ErrUnknownService or a *services.QueryError.
	Find(q services.Query, now time.Time) (services.Page, error)
	Coworking(q services.Query, now time.Time) (services.CoworkingPage, error)
}

// How long clients and caches may keep an answer: the catalogue changes
// with a release; availability with the twin, whose devices report every
// one to five minutes and whose status changes arrive within a second, so
// ten seconds is as fresh as a person can use and still spares the server
// repeated identical requests.
const (
	catalogueMaxAge    = time.Hour
	availabilityMaxAge = 10 * time.Second
)

// Per-client rate of the public citizen-services routes: a browser or app
// showing a map asks a few times a second at most; a client over it gets
// 429 with Retry-After.
const (
	publicRate  = 20 // requests per second, sustained
	publicBurst = 40
	// maxPublicClients bounds the clients the limiter remembers.
	maxPublicClients = 100_000
)

const limitPublicRate = "services_rate"

// publicAPI serves the citizen-services routes: public, CORS-enabled,
// rate-limited per client, cached by ETag.
type publicAPI struct {
	a   *v1
	lim *clientLimiter
}

// serviceRoutes are the citizen-services routes, mounted when
// V1Options.Services is set.
func (a *v1) serviceRoutes() []route {
	if a.o.Services == nil {
		return nil
	}
	p := &publicAPI{a: a, lim: newClientLimiter(publicRate, publicBurst, maxPublicClients)}
	rts := []route{
		{method: "GET", path: "/api/v1/services", h: p.handle(p.listServices)},
		{method: "GET", path: "/api/v1/services/{id}", h: p.handle(p.getService)},
		{method: "GET", path: "/api/v1/services/{id}/offices", h: p.handle(p.serviceOffices)},
		{method: "GET", path: "/api/v1/offices/{site}/services", h: p.handle(p.officeServices)},
		{method: "GET", path: "/api/v1/coworking", h: p.handle(p.coworking)},
	}
	for _, rt := range slices.Clone(rts) {
		rts = append(rts, route{method: "OPTIONS", path: rt.path, h: http.HandlerFunc(preflight)})
	}
	return rts
}

// cors lets any web page call these routes and read the headers a client
// needs (the ETag to revalidate, Retry-After after a 429, Location after
// a 307).
func cors(h http.Header) {
	h.Set("Access-Control-Allow-Origin", "*")
	h.Set("Access-Control-Expose-Headers", "ETag, Retry-After, Location")
}

// preflight answers a browser's CORS preflight: GET and HEAD, with the
// headers a client may send; browsers may keep the answer a day.
func preflight(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	cors(h)
	h.Set("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS")
	h.Set("Access-Control-Allow-Headers", "Accept, If-None-Match")
	h.Set("Access-Control-Max-Age", "86400")
	w.WriteHeader(http.StatusNoContent)
}

// handle wraps a handler with CORS and the per-client rate limit.
func (p *publicAPI) handle(h func(http.ResponseWriter, *http.Request)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cors(w.Header())
		client := p.a.clientAddr(r)
		if ok, retry := p.lim.allow(client, p.a.o.Now()); !ok {
			if p.a.m != nil {
				p.a.m.limited.WithLabelValues(limitPublicRate).Inc()
			}
			tooMany(w, retry, fmt.Sprintf("more than %d requests a second (bursts of %d) came from your address to the public services API; retry in %d s",
				publicRate, publicBurst, retrySeconds(retry)))
			return
		}
		h(w, r)
	})
}

// writeCached writes v as JSON with its ETag (a hash of the body) and
// Cache-Control, or 304 Not Modified when If-None-Match has that ETag.
func writeCached(w http.ResponseWriter, r *http.Request, maxAge time.Duration, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		WriteError(w, CodeInternal, "cannot encode the answer: "+err.Error())
		return
	}
	h := fnv.New64a()
	h.Write(buf.Bytes())
	etag := `"` + strconv.FormatUint(h.Sum64(), 16) + `"`
	hdr := w.Header()
	hdr.Set("ETag", etag)
	hdr.Set("Cache-Control", fmt.Sprintf("public, max-age=%d", int(maxAge.Seconds())))
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hdr.Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// etagMatches is If-None-Match's weak comparison (RFC 9110 13.1.2): any
// listed tag equal to etag, W/ or not, or "*".
func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func (p *publicAPI) listServices(w http.ResponseWriter, r *http.Request) {
	if !onlyParams(w, r) {
		return
	}
	writeCached(w, r, catalogueMaxAge, p.a.o.Services.Catalogue())
}

// service returns the path's service or answers 404.
func (p *publicAPI) service(w http.ResponseWriter, r *http.Request) (*services.Service, bool) {
	id := r.PathValue("id")
	s, ok := p.a.o.Services.Catalogue().Service(id)
	if !ok {
		WriteError(w, CodeUnknownService, fmt.Sprintf("unknown service %q; GET /api/v1/services lists them", id))
	}
	return s, ok
}

func (p *publicAPI) getService(w http.ResponseWriter, r *http.Request) {
	s, ok := p.service(w, r)
	if !ok || !onlyParams(w, r) {
		return
	}
	writeCached(w, r, catalogueMaxAge, s)
}

// findParams are the query parameters of the finder routes.
var findParams = []string{"near", "radius_km", "comune", "region", "available", "limit", "cursor"}

// maxParamLen bounds a parameter's value.
const maxParamLen = 200

// badParam is a parameter the finder routes refuse, with what to send.
type badParam struct{ msg string }

func (e *badParam) Error() string { return e.msg }

func badParamf(format string, args ...any) error { return &badParam{fmt.Sprintf(format, args...)} }

// onlyParams refuses any query parameter on a route that takes none.
func onlyParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for name := range r.URL.Query() {
		if !slices.Contains(allowed, name) {
			msg := fmt.Sprintf("unknown parameter %q; this route takes none", name)
			if len(allowed) > 0 {
				msg = fmt.Sprintf("unknown parameter %q; this route takes %s", name, strings.Join(allowed, ", "))
			}
			WriteError(w, CodeBadParameter, msg)
			return false
		}
	}
	return true
}

// parseFindQuery reads the finder's parameters. It is pure, and fuzzed.
func parseFindQuery(v url.Values) (services.Query, error) {
	var q services.Query
	for name, vals := range v {
		if !slices.Contains(findParams, name) {
			return q, badParamf("unknown parameter %q; this route takes %s", name, strings.Join(findParams, ", "))
		}
		if len(vals) > 1 {
			return q, badParamf("parameter %q given %d times; give it once", name, len(vals))
		}
		if len(vals[0]) > maxParamLen {
			return q, badParamf("parameter %q is %d bytes long; at most %d", name, len(vals[0]), maxParamLen)
		}
	}
	get := func(name string) string { return strings.TrimSpace(v.Get(name)) }
	if s := get("near"); s != "" {
		lat, lon, ok := parseLatLon(s)
		if !ok {
			return q, badParamf("near must be lat,lon in degrees, e.g. near=41.9,12.5; got %q", s)
		}
		q.Near = &registry.LatLon{Lat: lat, Lon: lon}
	}
	if s := get("radius_km"); s != "" {
		r, err := strconv.ParseFloat(s, 64)
		if err != nil || !(r > 0 && r <= services.MaxRadiusKm) {
			return q, badParamf("radius_km must be between 0 and %g (km, default %g); got %q", services.MaxRadiusKm, services.DefaultRadiusKm, s)
		}
		if q.Near == nil {
			return q, badParamf("radius_km needs a point: add near=lat,lon, e.g. near=41.9,12.5")
		}
		q.RadiusKm = r
	}
	if s := get("comune"); s != "" {
		if s[0] >= '0' && s[0] <= '9' && !isDigits(s, 6) {
			return q, badParamf("comune %q: an ISTAT code has 6 digits (e.g. 001002); or give the comune's name", s)
		}
		q.Comune = s
	}
	q.Region = get("region")
	if s := get("available"); s != "" {
		b, err := strconv.ParseBool(s)
		if err != nil || (s != "true" && s != "false") {
			return q, badParamf("available must be true or false; got %q", s)
		}
		q.Available = &b
	}
	if s := get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > services.MaxLimit {
			return q, badParamf("limit must be a whole number from 1 to %d (default %d); got %q", services.MaxLimit, services.DefaultLimit, s)
		}
		q.Limit = n
	}
	q.Cursor = get("cursor")
	if q.Near == nil && q.Comune == "" && q.Region == "" {
		return q, badParamf("say where: near=lat,lon in degrees (e.g. near=41.9,12.5), comune (ISTAT code or name) or region")
	}
	return q, nil
}

// parseLatLon reads "lat,lon" in degrees.
func parseLatLon(s string) (float64, float64, bool) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		return 0, 0, false
	}
	lat, err1 := strconv.ParseFloat(strings.TrimSpace(a), 64)
	lon, err2 := strconv.ParseFloat(strings.TrimSpace(b), 64)
	if err1 != nil || err2 != nil || math.IsNaN(lat) || math.IsNaN(lon) || lat < -90 || lat > 90 || lon < -180 || lon > 180 {
		return 0, 0, false
	}
	return lat, lon, true
}

// findError answers an error of Find or Coworking.
func findError(w http.ResponseWriter, err error) {
	var qe *services.QueryError
	switch {
	case errors.Is(err, services.ErrUnknownService):
		WriteError(w, CodeUnknownService, err.Error()+"; GET /api/v1/services lists them")
	case errors.As(err, &qe):
		WriteError(w, CodeBadParameter, qe.Param+": "+qe.Msg)
	default:
		WriteError(w, CodeInternal, err.Error())
	}
}

// nextLink is the path of the next page: the same query with cursor.
func nextLink(r *http.Request, cursor string) string {
	if cursor == "" {
		return ""
	}
	q := url.Values{}
	for k, v := range r.URL.Query() {
		if k != "cursor" {
			q[k] = v
		}
	}
	q.Set("cursor", cursor)
	return r.URL.Path + "?" + q.Encode()
}

type serviceRef struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

type point struct {
	Lat float64 `json:"lat"`
	Lon float64 `json:"lon"`
}

// findMeta is what every finder page says about its query.
type findMeta struct {
	Near      *point  `json:"near,omitempty"`
	RadiusKm  float64 `json:"radius_km,omitempty"`
	Limit     int     `json:"limit"`
	Total     int     `json:"total"`
	Available int     `json:"available"`
	Next      string  `json:"next,omitempty"`
}

func metaOf(q services.Query, total, available int, next string) findMeta {
	m := findMeta{Limit: q.Limit, Total: total, Available: available, Next: next}
	if m.Limit == 0 {
		m.Limit = services.DefaultLimit
	}
	if q.Near != nil {
		m.Near = &point{q.Near.Lat, q.Near.Lon}
		m.RadiusKm = q.RadiusKm
		if m.RadiusKm == 0 {
			m.RadiusKm = services.DefaultRadiusKm
		}
	}
	return m
}

type officePage struct {
	Service serviceRef `json:"service"`
	findMeta
	Items []services.OfficeAvailability `json:"items"`
}

func (p *publicAPI) serviceOffices(w http.ResponseWriter, r *http.Request) {
	s, ok := p.service(w, r)
	if !ok {
		return
	}
	q, err := parseFindQuery(r.URL.Query())
	if err != nil {
		WriteError(w, CodeBadParameter, err.Error())
		return
	}
	q.Service = s.ID
	page, err := p.a.o.Services.Find(q, p.a.o.Now())
	if err != nil {
		findError(w, err)
		return
	}
	writeCached(w, r, availabilityMaxAge, officePage{Service: serviceRef{s.ID, s.Name},
		findMeta: metaOf(q, page.Total, page.Available, nextLink(r, page.Next)), Items: page.Items})
}

type coworkingPage struct {
	findMeta
	Items []services.CoworkingSpace `json:"items"`
}

func (p *publicAPI) coworking(w http.ResponseWriter, r *http.Request) {
	q, err := parseFindQuery(r.URL.Query())
	if err != nil {
		WriteError(w, CodeBadParameter, err.Error())
		return
	}
	page, err := p.a.o.Services.Coworking(q, p.a.o.Now())
	if err != nil {
		findError(w, err)
		return
	}
	writeCached(w, r, availabilityMaxAge, coworkingPage{findMeta: metaOf(q, page.Total, page.Available, nextLink(r, page.Next)), Items: page.Items})
}

// officeServices is GET /api/v1/offices/{site}/services: what the site
// offers now, as the public portal's office page shows it.
type officeServices struct {
	Site         string            `json:"site"`
	Kind         registry.SiteKind `json:"kind"`
	Name         string            `json:"name,omitempty"`
	Comune       string            `json:"comune,omitempty"`
	Province     string            `json:"province,omitempty"`
	Region       string            `json:"region,omitempty"`
	Address      string            `json:"address,omitempty"`
	Lat          float64           `json:"lat,omitempty"`
	Lon          float64           `json:"lon,omitempty"`
	OpeningHours string            `json:"opening_hours,omitempty"`
	OpenNow      bool              `json:"open_now"`
	// ClosedReason (office_closed, holiday, hours_unknown), Holiday and
	// NextOpening say why and until when the site is closed.
	ClosedReason string                  `json:"closed_reason,omitempty"`
	Holiday      string                  `json:"holiday,omitempty"`
	NextOpening  time.Time               `json:"next_opening,omitzero"`
	Services     []services.Availability `json:"services"`
}

func (p *publicAPI) officeServices(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("site")
	s, ok := p.a.o.Fleet.Site(id)
	if !ok {
		WriteError(w, CodeUnknownSite, fmt.Sprintf("no site %q; find offices with GET /api/v1/services/{id}/offices, list sites at /api/v1/sites", id))
		return
	}
	if !onlyParams(w, r) {
		return
	}
	now := p.a.o.Now()
	// The owner of the site's live state answers in full (its assets);
	// the others redirect there, as every site route does.
	if _, local, owner := p.a.o.Live.SiteState(s.ID, now); !local {
		elsewhere(w, r, s.ID, owner)
		return
	}
	avs, ok := p.a.o.Services.Office(s.ID, now)
	if !ok { // in the registry, not yet in the finder's index (refreshed every 30 s)
		w.Header().Set("Retry-After", "30")
		WriteError(w, CodeUnavailable, fmt.Sprintf("site %s was added moments ago; its services are listed within 30 s", s.ID))
		return
	}
	h := services.Hours(s, now)
	out := officeServices{Site: s.ID, Kind: s.Kind, Name: s.Name, Comune: s.Comune, Province: s.Province, Region: s.Region,
		Address: s.Address, Lat: s.Lat, Lon: s.Lon, OpenNow: h.Open, ClosedReason: h.Reason, Holiday: h.Holiday,
		NextOpening: h.NextOpening, Services: avs}
	if s.OpeningHours != nil {
		out.OpeningHours = s.OpeningHours.String()
	}
	writeCached(w, r, availabilityMaxAge, out)
}

// clientLimiter is a token bucket per client address. Its memory is
// bounded: a bucket idle long enough to be full again is the same as a
// new one and is forgotten at the next sweep; beyond max clients the
// least recently seen go first.
type clientLimiter struct {
	r     rate.Limit
	burst int
	max   int
	idle  time.Duration // after which a bucket is full again

	mu        sync.Mutex
	clients   map[string]*clientBucket
	lastSweep time.Time
}

type clientBucket struct {
	lim  *rate.Limiter
	seen time.Time
}

func newClientLimiter(perSecond float64, burst, max int) *clientLimiter {
	return &clientLimiter{r: rate.Limit(perSecond), burst: burst, max: max,
		idle:    time.Duration(float64(burst) / perSecond * float64(time.Second)),
		clients: map[string]*clientBucket{}}
}

// allow takes a token of client's bucket at now; false, with how long
// until one is back, when it is empty.
func (l *clientLimiter) allow(client string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) >= time.Minute || len(l.clients) >= l.max {
		l.sweep(now)
	}
	b, ok := l.clients[client]
	if !ok {
		b = &clientBucket{lim: rate.NewLimiter(l.r, l.burst)}
		l.clients[client] = b
	}
	b.seen = now
	res := b.lim.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep forgets idle buckets, then, if still too many, the tenth seen
// longest ago; the caller holds l.mu.
func (l *clientLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, b := range l.clients {
		if now.Sub(b.seen) >= l.idle {
			delete(l.clients, k)
		}
	}
	if len(l.clients) < l.max {
		return
	}
	keys := slices.Collect(maps.Keys(l.clients))
	slices.SortFunc(keys, func(x, y string) int { return l.clients[x].seen.Compare(l.clients[y].seen) })
	for _, k := range keys[:len(keys)/10+1] {
		delete(l.clients, k)
	}
}

// len is how many clients the limiter remembers.
func (l *clientLimiter) len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clients)
}
