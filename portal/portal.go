// Package portal is the public transparency portal of the Polis programme:
// server-rendered Italian pages, built with the national design system
// (Bootstrap Italia, embedded in the binary), that show what was promised
// and what the live twin says is installed and working, down to each
// office. It renders a progress.Snapshot from memory; it runs no script in
// the browser, and each page reads the same with JavaScript off.
//
// The open data downloads (/dati/, /feed.atom) are portal/opendata's; this
// package links to them and, when Options.OpenData is set, routes them.
package portal

//go:generate ../scripts/portal-assets

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/services"
)

// ServiceAnswers says which public services an office offers right now
// (services.Finder does). ok is false for a site it does not know.
type ServiceAnswers interface {
	Office(site string, now time.Time) (avail []services.Availability, ok bool)
}

// Options configure a Handler.
type Options struct {
	// Snapshot returns the newest snapshot; nil while none has been
	// computed yet (pages that need figures then answer 503).
	Snapshot func() *progress.Snapshot
	// Services answers the office pages' "what it offers now"; nil: those
	// pages say that the service is not available.
	Services ServiceAnswers
	// OpenData, if set, serves /dati/ and /feed.atom (portal/opendata's
	// handler); nil: those paths are left to whoever mounts this handler,
	// and answer 404 here.
	OpenData http.Handler
	// Now is the clock (time.Now if nil).
	Now func() time.Time
	// Logger (slog.Default if nil).
	Logger *slog.Logger
	// BaseURL is the public address of the portal (https://polis.example.it),
	// used for canonical links; empty: none.
	BaseURL string
	// Contact is the address the feedback and accessibility pages give
	// (DefaultContact if empty).
	Contact string
}

// DefaultContact is the feedback address used when Options.Contact is
// empty. The operator of a real deployment sets its own.
const DefaultContact = "trasparenza@polis.example"

// Handler serves the portal.
type Handler struct {
	o      Options
	log    *slog.Logger
	assets *assets
	pages  map[string]*template.Template
	mux    *http.ServeMux
	cache  *pageCache

	searchMu   sync.Mutex
	searchSnap *progress.Snapshot
	searchIx   *searchIndex
}

var _ http.Handler = (*Handler)(nil)

// New builds the handler: it parses every template and loads the embedded
// assets, so that a broken template fails here and not on a request.
func New(o Options) (*Handler, error) { return newHandler(o, staticFS) }

// newHandler is New over the static files of fsys (tests give one without
// the design system).
func newHandler(o Options, fsys fs.FS) (*Handler, error) {
	if o.Snapshot == nil {
		return nil, errors.New("portal: Options.Snapshot is required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Contact == "" {
		o.Contact = DefaultContact
	}
	o.BaseURL = strings.TrimRight(o.BaseURL, "/")
	h := &Handler{o: o, log: o.Logger.With("component", "portal"), mux: http.NewServeMux(), cache: newPageCache(maxCachedPages)}
	var err error
	if h.assets, err = loadAssets(fsys); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	if !h.assets.vendor {
		h.log.Warn("the Bootstrap Italia files are missing from this build: pages are served with the portal's own style sheet only; run scripts/install-deps (make deps) and rebuild",
			"want", "portal/static/"+vendorCSS)
	}
	if h.pages, err = parsePages(h.funcs()); err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	h.routes()
	return h, nil
}

// ServeHTTP answers with the security headers every page and asset carries.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	// No script runs on the portal; the charts are inline SVG drawn with
	// presentation attributes, so no inline style is needed either. data:
	// images and fonts are those Bootstrap Italia's style sheet embeds.
	hd.Set("Content-Security-Policy", contentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "strict-origin-when-cross-origin")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Permissions-Policy", "geolocation=(), camera=(), microphone=()")
	h.mux.ServeHTTP(w, r)
}

// contentSecurityPolicy allows nothing but the portal's own files. The one
// inline style allowed, by its hash, is the attribute portal/svg puts on
// every chart (style="height:auto;max-width:100%"): 'unsafe-hashes'
// allows that exact attribute value and no other.
var contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-hashes' " + styleHash(svgStyle) +
	"; img-src 'self' data:; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// svgStyle is the style attribute of portal/svg's charts.
const svgStyle = "height:auto;max-width:100%"

// styleHash is the CSP source of an inline style's SHA-256.
func styleHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// errNotFound is what a page builder returns for a slug or id it does not
// know: the answer is the 404 page.
var errNotFound = errors.New("not found")

// redirect is what a page builder returns when the page lives at another
// address: the answer is a permanent redirect there.
type redirect struct{ to string }

func (r *redirect) Error() string { return "moved to " + r.to }

func redirectTo(path string) error { return &redirect{to: path} }

// view is what a page template renders.
type view struct {
	Title   string  // <title> and <h1>
	Crumbs  []crumb // between Home and the page itself
	Nav     string  // the menu entry that is current
	Path    string
	Snap    *progress.Snapshot
	Now     time.Time
	Data    any
	Status  int  // 0: 200
	Live    bool // shows live answers (services now): cached for liveTTL only
	NoCache bool // never cached (searches: any query is a page)
	Canon   string
	Vendor  bool
	Contact string
}

type crumb struct {
	Name, Href string
}

// builder makes the view of one page; snap is nil only for pages that do
// not need figures.
type builder func(r *http.Request, snap *progress.Snapshot) (*view, error)

// pageRoute registers a page: template tmpl filled by build. needsSnap
// pages answer 503 until a snapshot exists.
func (h *Handler) pageRoute(pattern, tmpl string, needsSnap bool, build builder) {
	t, ok := h.pages[tmpl]
	if !ok {
		panic("BUG: no template " + tmpl)
	}
	h.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		snap := h.o.Snapshot()
		if snap == nil && needsSnap {
			h.unavailable(w, r)
			return
		}
		key := r.URL.Path
		if r.URL.RawQuery != "" {
			key += "?" + r.URL.RawQuery
		}
		if p, ok := h.cache.get(snap, key, h.o.Now()); ok {
			h.writePage(w, r, p)
			return
		}
		v, err := build(r, snap)
		var moved *redirect
		if errors.As(err, &moved) {
			http.Redirect(w, r, moved.to, http.StatusMovedPermanently)
			return
		}
		if errors.Is(err, errNotFound) {
			h.notFound(w, r)
			return
		}
		if err != nil {
			h.fail(w, r, err)
			return
		}
		p, err := h.render(r.Context(), t, v, snap)
		if err != nil {
			h.fail(w, r, err)
			return
		}
		switch now := h.o.Now(); {
		case v.NoCache:
		case v.Live:
			p.expires = now.Add(liveTTL)
			h.cache.put(snap, key, p, now)
		default:
			h.cache.put(snap, key, p, now)
		}
		h.writePage(w, r, p)
	})
}

// rendered is a page ready to send.
type rendered struct {
	status  int
	body    []byte
	etag    string
	expires time.Time // zero: good until the next snapshot

	gzOnce sync.Once
	gz     []byte // body gzipped, made on the first request that takes it
}

// minGzip is the smallest page worth compressing.
const minGzip = 1024

// gzipped returns the body compressed, once per rendered page.
func (p *rendered) gzipped() []byte {
	p.gzOnce.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.DefaultCompression)
		zw.Write(p.body)
		zw.Close()
		p.gz = b.Bytes()
	})
	return p.gz
}

// liveTTL is how long a page with live answers (an office's services now)
// is served from the cache: the page says when its answer was given, and
// a citizen reading it gains nothing from a fresher one every request.
const liveTTL = 10 * time.Second

func (h *Handler) render(ctx context.Context, t *template.Template, v *view, snap *progress.Snapshot) (*rendered, error) {
	v.Snap = snap
	if v.Now.IsZero() {
		v.Now = h.o.Now()
	}
	v.Vendor = h.assets.vendor
	v.Contact = h.o.Contact
	if h.o.BaseURL != "" {
		v.Canon = h.o.BaseURL + v.Path
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "layout", v); err != nil {
		return nil, fmt.Errorf("rendering %s: %w", v.Path, err)
	}
	status := v.Status
	if status == 0 {
		status = http.StatusOK
	}
	return &rendered{status: status, body: b.Bytes(), etag: bodyETag(b.Bytes())}, nil
}

// writePage sends a rendered page with its ETag, gzipped for clients
// that take it (a page of tables shrinks about eight times).
func (h *Handler) writePage(w http.ResponseWriter, r *http.Request, p *rendered) {
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	body, etag := p.body, p.etag
	if len(p.body) >= minGzip {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = p.gzipped(), strings.TrimSuffix(p.etag, `"`)+`-gz"`
			hd.Set("Content-Encoding", "gzip")
		}
	}
	if p.status == http.StatusOK {
		if p.expires.IsZero() {
			hd.Set("Cache-Control", "public, max-age=30") // the snapshot changes every few seconds
		} else {
			hd.Set("Cache-Control", "public, max-age="+strconv.Itoa(int(liveTTL/time.Second)))
		}
		hd.Set("ETag", etag)
		if etagMatch(r.Header.Get("If-None-Match"), etag) {
			w.WriteHeader(http.StatusNotModified)
			return
		}
	} else {
		hd.Set("Cache-Control", "no-store")
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(p.status)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

// fail answers 500 with the Italian error page and logs what failed.
func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	h.log.Error("portal page failed", "path", r.URL.Path, "err", err)
	h.errorPage(w, r, http.StatusInternalServerError, "Errore del servizio",
		"Non è stato possibile mostrare questa pagina per un errore del servizio. Riprova tra qualche minuto; se l'errore continua, segnalacelo.")
}

// unavailable answers 503 while no snapshot exists yet (just after start).
func (h *Handler) unavailable(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", "30")
	h.errorPage(w, r, http.StatusServiceUnavailable, "Dati non ancora disponibili",
		"Il portale sta calcolando i dati dal gemello digitale del programma. Riprova tra qualche secondo.")
}

// notFound answers 404 with the Italian page.
func (h *Handler) notFound(w http.ResponseWriter, r *http.Request) {
	h.errorPage(w, r, http.StatusNotFound, "Pagina non trovata",
		"La pagina che cerchi non esiste o è stata spostata. Controlla l'indirizzo, oppure cerca un comune.")
}

type errorData struct {
	Message string
	Status  int
}

func (h *Handler) errorPage(w http.ResponseWriter, r *http.Request, status int, title, msg string) {
	v := &view{Title: title, Path: r.URL.Path, Status: status, Data: errorData{Message: msg, Status: status}}
	p, err := h.render(r.Context(), h.pages["error.html"], v, nil)
	if err != nil { // the error page itself failed: plain text, still Italian
		h.log.Error("portal error page failed", "err", err)
		http.Error(w, title+": "+msg, status)
		return
	}
	h.writePage(w, r, p)
}

// catchAll answers every path no page matched: GET and HEAD get the 404
// page, after a redirect when only a trailing slash was in the way; other
// methods get 405 (the portal takes no input but its search's query).
func (h *Handler) catchAll(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		h.errorPage(w, r, http.StatusMethodNotAllowed, "Metodo non consentito",
			"Il portale si consulta soltanto: questa pagina non accetta invii.")
		return
	}
	if p := r.URL.Path; len(p) > 1 && strings.HasSuffix(p, "/") {
		trimmed := r.Clone(r.Context())
		trimmed.URL.Path = strings.TrimRight(p, "/")
		if _, pattern := h.mux.Handler(trimmed); pattern != "/" && pattern != "" {
			target := trimmed.URL.Path
			if r.URL.RawQuery != "" {
				target += "?" + r.URL.RawQuery
			}
			http.Redirect(w, r, target, http.StatusMovedPermanently)
			return
		}
	}
	h.notFound(w, r)
}
