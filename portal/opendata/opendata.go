// Package opendata serves the portal's open data: every table the portal
// shows as CSV and JSON (the big ones also as Parquet) with documented
// columns, the project-level export in the national layout, a DCAT-AP_IT
// catalogue in JSON-LD that dati.gov.it can harvest, and an Atom feed of
// targets achieved and offices becoming operational. Everything is under
// CC BY 4.0 and made only of the public types of portal/progress.
//
// Routes (mount the Handler, unstripped, at /dati/ and /feed.atom):
//
//	GET /dati/                       index: tables, columns, formats, licence (JSON)
//	GET /dati/{table}.csv            RFC 4180, comma, UTF-8, ISO dates, dot decimals
//	GET /dati/progetti.csv           national layout: ';', UTF-8 with BOM, dd/mm/yyyy, decimal comma
//	GET /dati/{table}.json           {"columns": [...], "rows": [{...}]}
//	GET /dati/{table}.parquet        comuni, andamento, uffici, apparati
//	GET /dati/catalogo.jsonld        DCAT-AP_IT catalogue
//	GET /feed.atom                   Atom feed
//
// ?regione={slug} and ?provincia={sigla} select one area's rows of the
// tables that list places (Table.Filters).
//
// Each body is built once per snapshot and kept (ETag = hash of the body,
// Last-Modified = the snapshot's time); Cache-Control lets caches keep it
// for a minute, the pace at which the snapshot changes.
package opendata

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "time/tzdata" // Europe/Rome must load on hosts without zoneinfo

	"github.com/polis-platform/polis/portal/progress"
)

// The licence of every table, stated in the index, the catalogue, the
// feed and a Link header on every download.
const (
	LicenceURL  = "https://creativecommons.org/licenses/by/4.0/"
	LicenceName = "Creative Commons Attribuzione 4.0 Internazionale (CC BY 4.0)"
)

// CacheControl is sent with every download. The snapshot is recomputed
// from the live twin about once a minute, so a cache (a browser, a proxy,
// a harvester) may keep a body that long without showing stale figures
// for longer than the portal itself would; after that the ETag makes
// revalidation a 304.
const CacheControl = "public, max-age=60"

// Defaults of Options.
const (
	DefaultFeedLimit  = 200
	DefaultCacheBytes = 256 << 20
)

// DefaultHolder names the rights holder and publisher when Options has
// none. A deployment registered on dati.gov.it sets its own (its IPA code
// and official name).
var DefaultHolder = Agent{ID: "polis", Name: "Piattaforma Polis"}

// Agent is an organisation of the catalogue: the rights holder and
// publisher of the data.
type Agent struct {
	ID   string // for a public administration its IPA code, else its VAT number
	Name string // official name
}

// Options configure the Handler.
type Options struct {
	// Snapshot returns the current snapshot; nil until the first one is
	// ready (the Handler answers 503 until then). Required.
	Snapshot func() *progress.Snapshot
	// BaseURL is the absolute URL of the portal ("https://polis.example.it")
	// used by the catalogue and the feed, whose ids derive from its host.
	// Empty: the scheme and Host of each request.
	BaseURL string
	// Now is the clock, used for a snapshot without a time. Default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Holder is the rights holder and publisher in the catalogue and the
	// author of the feed. Default DefaultHolder.
	Holder Agent
	// ContactEmail is the catalogue's contact point's mail; empty: the
	// contact point gives only the portal's address.
	ContactEmail string
	// FeedLimit bounds the feed's entries (newest first). Default
	// DefaultFeedLimit; the whole history is in the tables.
	FeedLimit int
	// CacheBytes bounds the bodies kept per snapshot (their gzip
	// encodings, made on demand, come on top: a third or less); past it a
	// body is served but rebuilt on the next request. Default
	// DefaultCacheBytes.
	CacheBytes int64
}

// Handler serves the open data of the current snapshot.
type Handler struct {
	o   Options
	log *slog.Logger

	mu  sync.Mutex // serialises replacing cur
	cur atomic.Pointer[state]
}

// New returns the Handler. It panics without Options.Snapshot, a
// programming error.
func New(o Options) *Handler {
	if o.Snapshot == nil {
		panic("opendata.New: Options.Snapshot is required")
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Holder.ID == "" || o.Holder.Name == "" {
		o.Holder = DefaultHolder
	}
	if o.FeedLimit <= 0 {
		o.FeedLimit = DefaultFeedLimit
	}
	if o.CacheBytes <= 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	return &Handler{o: o, log: o.Logger.With("component", "opendata")}
}

// Media types of the answers.
const (
	ctypeCSV     = "text/csv; charset=utf-8; header=present"
	ctypeJSON    = "application/json"
	ctypeParquet = "application/vnd.apache.parquet"
	ctypeJSONLD  = "application/ld+json"
	ctypeAtom    = "application/atom+xml; charset=utf-8"
)

var formatTypes = map[string]string{FormatCSV: ctypeCSV, FormatJSON: ctypeJSON, FormatParquet: ctypeParquet}

// ServeHTTP answers GET and HEAD on the paths of the package comment.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.fail(w, r, http.StatusMethodNotAllowed, "method_not_allowed",
			fmt.Sprintf("il metodo %s non è ammesso: i dati aperti si leggono con GET (o HEAD)", r.Method), nil)
		return
	}
	p := r.URL.Path
	switch {
	case p == "/dati":
		http.Redirect(w, r, IndexPath, http.StatusMovedPermanently)
		return
	case p != FeedPath && !strings.HasPrefix(p, IndexPath):
		h.notFound(w, r, fmt.Sprintf("%s non è un indirizzo dei dati aperti", p))
		return
	}
	st := h.state()
	if st == nil {
		w.Header().Set("Retry-After", "60")
		h.fail(w, r, http.StatusServiceUnavailable, "unavailable",
			"i dati non sono ancora pronti: il portale sta leggendo lo stato del programma, riprovare tra un minuto", nil)
		return
	}
	switch p {
	case IndexPath:
		h.serve(w, r, st, "index", ctypeJSON, "", func() ([]byte, error) { return index(st) })
	case CatalogPath:
		base := h.base(r)
		h.serve(w, r, st, "catalog "+base, ctypeJSONLD, "", func() ([]byte, error) {
			return catalog(base, st.at, h.o.Holder, h.o.ContactEmail)
		})
	case FeedPath:
		base := h.base(r)
		h.serve(w, r, st, "feed "+base, ctypeAtom, "", func() ([]byte, error) {
			return feed(base, st.view.s, st.at, h.o.Holder, h.o.FeedLimit)
		})
	default:
		h.table(w, r, st, strings.TrimPrefix(p, IndexPath))
	}
}

// table serves /dati/{name}.{format}[?filters].
func (h *Handler) table(w http.ResponseWriter, r *http.Request, st *state, file string) {
	name, format, ok := strings.Cut(file, ".")
	s := specByName(name)
	if !ok || s == nil || strings.Contains(format, "/") {
		h.notFound(w, r, fmt.Sprintf("la tabella %q non esiste", file))
		return
	}
	t := s.table()
	if !t.HasFormat(format) {
		h.fail(w, r, http.StatusNotFound, "unknown_format",
			fmt.Sprintf("la tabella %s non è disponibile in formato %q: formati disponibili %s", name, format, strings.Join(t.Formats, ", ")),
			map[string]any{"formats": formatPaths(t)})
		return
	}
	f, err := parseFilter(r.URL.RawQuery, t, st.view)
	if err != nil {
		var fe *filterError
		if errors.As(err, &fe) && fe.status == http.StatusNotFound {
			h.fail(w, r, fe.status, "unknown_area", fe.msg, map[string]any{"valid": fe.valid})
			return
		}
		h.fail(w, r, http.StatusBadRequest, "bad_parameter", err.Error(), map[string]any{"filters": t.Filters})
		return
	}
	disposition := "attachment"
	if format == FormatJSON {
		disposition = "inline" // a browser shows it
	}
	fname := "polis-" + name
	for _, part := range []string{f.Regione, f.Provincia} {
		if part != "" {
			fname += "-" + part
		}
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf("%s; filename=%q", disposition, fname+"."+format))
	h.serve(w, r, st, "table "+name+"."+format+f.query(), formatTypes[format], format, func() ([]byte, error) {
		return encode(s, st.view, f, format, bodyMeta{modified: st.at})
	})
}

func formatPaths(t Table) map[string]string {
	out := make(map[string]string, len(t.Formats))
	for _, f := range t.Formats {
		out[f] = Path(t.Name, f, Filter{})
	}
	return out
}

// base is the portal's absolute URL: Options.BaseURL, or the request's.
func (h *Handler) base(r *http.Request) string {
	if h.o.BaseURL != "" {
		return h.o.BaseURL
	}
	scheme := "http"
	if r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https") {
		scheme = "https"
	}
	host := r.Host
	if host == "" {
		host = "localhost"
	}
	return scheme + "://" + host
}

// serve answers with the body under key, building it once per snapshot.
// http.ServeContent answers If-None-Match, If-Modified-Since, HEAD and
// Range from the ETag and Last-Modified set here.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request, st *state, key, ctype, format string, build func() ([]byte, error)) {
	b, err := st.get(r.Context(), key, func() ([]byte, error) {
		start := time.Now()
		data, err := build()
		if err == nil {
			h.log.Debug("open data body built", "key", key, "bytes", len(data), "took", time.Since(start))
		}
		return data, err
	})
	if err != nil {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return // the client left while another request built the body
		}
		h.log.Error("open data body failed", "key", key, "err", err)
		h.fail(w, r, http.StatusInternalServerError, "internal", "errore interno nel preparare i dati: riprovare più tardi", nil)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ctype)
	hd.Set("Cache-Control", CacheControl)
	hd.Set("Access-Control-Allow-Origin", "*") // open data: any site may read it
	hd.Set("Access-Control-Expose-Headers", "ETag, Link, Content-Disposition")
	hd.Add("Link", "<"+LicenceURL+`>; rel="license"`)
	data, etag := b.data, b.etag
	if format != FormatParquet { // Parquet is compressed already
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			if gz, gzTag := b.gzipped(); gz != nil {
				data, etag = gz, gzTag
				hd.Set("Content-Encoding", "gzip")
			}
		}
	}
	hd.Set("ETag", etag)
	http.ServeContent(w, r, "", st.at, bytes.NewReader(data))
}

// fail answers an error as JSON: a code, an Italian message that says
// what to do, where the tables are, and extra fields (valid values).
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, status int, code, msg string, extra map[string]any) {
	if status >= 500 {
		h.log.Warn("open data request failed", "path", r.URL.Path, "status", status, "code", code)
	}
	body := map[string]any{"error": code, "message": msg, "index": IndexPath}
	for k, v := range extra {
		body[k] = v
	}
	b, err := json.MarshalIndent(body, "", " ")
	if err != nil { // cannot happen: the values are strings, slices and maps of them
		b = []byte(`{"error":"internal"}`)
	}
	hd := w.Header()
	hd.Del("Content-Disposition")
	hd.Set("Content-Type", ctypeJSON)
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(append(b, '\n'))
	}
}

// notFound lists the tables and their URLs, so that a person who mistyped
// one sees the right ones.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, msg string) {
	type entry struct {
		Name    string            `json:"name"`
		Title   string            `json:"title"`
		Formats map[string]string `json:"formats"`
	}
	var list []entry
	for _, s := range specs {
		t := s.table()
		list = append(list, entry{t.Name, t.Title, formatPaths(t)})
	}
	h.fail(w, r, http.StatusNotFound, "not_found", msg+": le tabelle disponibili sono elencate qui sotto e in "+IndexPath,
		map[string]any{"tables": list, "catalogue": CatalogPath, "feed": FeedPath})
}

// state returns the state of the current snapshot, replacing the kept one
// when the snapshot changed (by pointer or time); nil when there is none.
func (h *Handler) state() *state {
	s := h.o.Snapshot()
	if s == nil {
		return nil
	}
	if cur := h.cur.Load(); cur != nil && cur.view.s == s && cur.snapAt.Equal(s.At) {
		return cur
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if cur := h.cur.Load(); cur != nil && cur.view.s == s && cur.snapAt.Equal(s.At) {
		return cur
	}
	at := s.At
	if at.IsZero() {
		at = h.o.Now()
	}
	st := &state{view: newView(s), snapAt: s.At, at: at, limit: h.o.CacheBytes, bodies: map[string]*entry{}}
	h.cur.Store(st)
	return st
}

// state is one snapshot and the bodies built from it.
type state struct {
	view   *view
	snapAt time.Time // the snapshot's At, to notice a snapshot changed in place
	at     time.Time // Last-Modified and the time of every body

	mu     sync.Mutex
	bodies map[string]*entry
	size   int64
	limit  int64
}

type entry struct {
	done chan struct{}
	b    *body
	err  error
}

// body is a built answer with its strong ETag and, made on first demand,
// its gzip encoding.
type body struct {
	data   []byte
	etag   string
	gzOnce sync.Once
	gz     []byte
	gzTag  string
}

func etagOf(b []byte) string {
	sum := sha256.Sum256(b)
	return `"` + hex.EncodeToString(sum[:16]) + `"`
}

// gzipped is the body gzipped and its ETag, or nil when gzip does not
// make it smaller.
func (b *body) gzipped() ([]byte, string) {
	b.gzOnce.Do(func() {
		if len(b.data) < 1024 {
			return
		}
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b.data) // writes to a bytes.Buffer do not fail
		zw.Close()
		if buf.Len() < len(b.data) {
			b.gz = buf.Bytes()
			b.gzTag = strings.TrimSuffix(b.etag, `"`) + `-gzip"`
		}
	})
	return b.gz, b.gzTag
}

// get returns the body under key, building it with build if no request
// has; concurrent requests for the same key wait for one build. A failed
// build is forgotten, so that the next request tries again.
func (st *state) get(ctx context.Context, key string, build func() ([]byte, error)) (*body, error) {
	st.mu.Lock()
	e, ok := st.bodies[key]
	if !ok {
		e = &entry{done: make(chan struct{})}
		st.bodies[key] = e
	}
	st.mu.Unlock()
	if ok {
		select {
		case <-e.done:
			return e.b, e.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	data, err := build()
	if err == nil {
		e.b = &body{data: data, etag: etagOf(data)}
	}
	e.err = err
	close(e.done)
	st.mu.Lock()
	if err != nil || st.size+int64(len(data)) > st.limit {
		delete(st.bodies, key) // failed, or no room: build again next time
	} else {
		st.size += int64(len(data))
	}
	st.mu.Unlock()
	return e.b, e.err
}

// acceptsGzip reports whether an Accept-Encoding header accepts gzip
// (RFC 9110 §12.5.3): listed, or covered by *, with a q above zero.
func acceptsGzip(header string) bool {
	star, gz := false, -1
	for part := range strings.SplitSeq(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		ok := true
		for p := range strings.SplitSeq(params, ";") {
			k, v, _ := strings.Cut(p, "=")
			if strings.EqualFold(strings.TrimSpace(k), "q") {
				v = strings.TrimSpace(v)
				ok = v != "" && strings.Trim(v, "0.") != "" // q=0, q=0.0, q=0.000 refuse
			}
		}
		switch coding {
		case "gzip", "x-gzip":
			gz = 0
			if ok {
				gz = 1
			}
		case "*":
			star = ok
		}
	}
	if gz >= 0 {
		return gz == 1
	}
	return star
}
