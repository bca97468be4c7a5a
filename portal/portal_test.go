package portal

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"golang.org/x/net/html"

	"github.com/polis-platform/polis/portal/progress"
)

// pageCase is one route of the portal and what its page must show.
type pageCase struct {
	path   string
	h1     string   // the <h1>, exactly
	crumbs []string // the breadcrumb trail, Home to the page itself
	want   []string // substrings of the body
	tables []string // open data tables the page links (CSV and JSON each)
}

var pageCases = []pageCase{
	{path: "/", h1: "Il programma Polis in cifre", crumbs: []string{"Home"},
		want:   []string{"Le fonti non concordano", "6.933", "4.800", "Proiezione al ritmo attuale", "Ultimi traguardi", `href="/feed.atom"`, "Apparati funzionanti ora"},
		tables: []string{"obiettivi", "andamento", "dichiarazioni", "apparati", "regioni"}},
	{path: "/obiettivi", h1: "Obiettivi del programma", crumbs: []string{"Home", "Obiettivi del programma"},
		want: []string{"fonti diverse", "Valore attuale raggiunto il"}, tables: []string{"obiettivi"}},
	{path: "/regioni", h1: "Le regioni", crumbs: []string{"Home", "Le regioni"},
		want: []string{`href="/regioni/lazio"`, `href="/regioni/sardegna"`, "Mappa a tessere"}, tables: []string{"regioni"}},
	{path: "/regioni/lazio", h1: "Lazio", crumbs: []string{"Home", "Regioni", "Lazio"},
		want:   []string{`href="/province/rm"`, "la regione di questa pagina", "Apparati per stato"},
		tables: []string{"province", "andamento", "apparati", "regioni", "coworking"}},
	{path: "/province/rm", h1: "Provincia di Roma", crumbs: []string{"Home", "Regioni", "Lazio", "Provincia di Roma"},
		want:   []string{`href="/uffici/PO-058015-1"`, `href="/comuni/058015"`, "Campagnano di Roma"},
		tables: []string{"comuni", "uffici", "apparati", "coworking"}},
	{path: "/comuni/001001", h1: "Agliè", crumbs: []string{"Home", "Regioni", "Piemonte", "Provincia di Torino", "Agliè"},
		want: []string{"codice ISTAT 001001", `href="/uffici/PO-001001-1"`}, tables: []string{"uffici", "comuni"}},
	{path: "/uffici/PO-001001-1", h1: "Ufficio postale di Agliè (PO-001001-1)",
		crumbs: []string{"Home", "Regioni", "Piemonte", "Provincia di Torino", "Agliè", "Ufficio postale di Agliè (PO-001001-1)"},
		want: []string{"da lunedì a venerdì: 8:20–13:45", "Servizi disponibili ora", "Carta d&#39;identità elettronica", "L&#39;ATM è senza contanti",
			"16/03/2026 alle 14:00", "CUP (codice unico di progetto)", "Prodotta dall'impianto fotovoltaico", "Fornitori e contratti",
			`href="/uffici/PO-001001-1/servizi.csv"`},
		tables: []string{"apparati", "uffici", "fornitori"}},
	{path: "/uffici/PO-057027-1", h1: "Ufficio postale di Fara in Sabina (PO-057027-1)",
		crumbs: []string{"Home", "Regioni", "Lazio", "Provincia di Rieti", "Fara in Sabina", "Ufficio postale di Fara in Sabina (PO-057027-1)"},
		want:   []string{"L&#39;ATM non è raggiungibile", "0 servizi su 1 disponibili"}, tables: []string{"apparati"}},
	{path: "/uffici/PO-111027-1", h1: "Ufficio postale di Gesturi (PO-111027-1)",
		crumbs: []string{"Home", "Regioni", "Sardegna", "Provincia di Sud Sardegna", "Gesturi", "Ufficio postale di Gesturi (PO-111027-1)"},
		want:   []string{"servizi pubblici l'ufficio offre in questo momento non è disponibile"}, tables: []string{"apparati"}},
	{path: "/coworking", h1: "Spazi di coworking", crumbs: []string{"Home", "Spazi di coworking"},
		want: []string{`href="/coworking/CW-TO-1"`, "libere in questo momento", "10.000", "5.000"}, tables: []string{"coworking", "obiettivi"}},
	{path: "/coworking/CW-TO-1", h1: "Spazio di coworking di Torino (CW-TO-1)", crumbs: []string{"Home", "Coworking", "Spazio di coworking di Torino (CW-TO-1)"},
		want: []string{"Postazioni di lavoro", "libere ora"}, tables: []string{"apparati", "coworking"}},
	{path: "/fornitori", h1: "Fornitori", crumbs: []string{"Home", "Fornitori"},
		want: []string{"Chioschi Digitali Esempio S.r.l.", "CIG"}, tables: []string{"fornitori"}},
	{path: "/finanziamento", h1: "Finanziamento", crumbs: []string{"Home", "Finanziamento"},
		want: []string{"400 milioni di euro", "320 milioni di euro", "800 milioni di euro"}, tables: []string{"finanziamento"}},
	{path: "/metodo", h1: "Come calcoliamo", crumbs: []string{"Home", "Come calcoliamo"},
		want: []string{`id="interventi-conclusi"`, `id="funzionanti-ora"`, `id="` + methodServices + `"`, `id="aggiornamento"`}},
	{path: "/cerca?q=san", h1: "Risultati per «san»", crumbs: []string{"Home", "Risultati per «san»"},
		want: []string{"3 comuni trovati", `<label for="cerca-q"`}, tables: []string{"comuni"}},
	{path: "/cerca", h1: "Cerca un comune", crumbs: []string{"Home", "Cerca un comune"}, want: []string{`<label for="cerca-q"`, `method="get"`}},
	{path: "/open-data", h1: "Open data", crumbs: []string{"Home", "Open data"},
		want: []string{`href="/dati/"`, `href="/dati/catalogo.jsonld"`, `href="/dati/progetti.csv"`, "CC BY 4.0", "<code>"}},
	{path: "/dichiarazione-accessibilita", h1: "Dichiarazione di accessibilità", crumbs: []string{"Home", "Dichiarazione di accessibilità"},
		want: []string{"parzialmente conforme", "Contenuti non accessibili", "Meccanismo di feedback", "mailto:" + DefaultContact, "08/12/2026", "Difensore civico per il digitale"}},
	{path: "/segnalazioni", h1: "Segnalazioni e commenti", crumbs: []string{"Home", "Segnalazioni e commenti"},
		want: []string{DefaultContact, "Come segnalare"}},
}

// TestPages checks every route: status, type, language, one h1, the
// breadcrumbs, the skip link, the footer's links, no script, and the
// downloads of each table the page shows.
func TestPages(t *testing.T) {
	h, _ := testPortal(t)
	for _, c := range pageCases {
		t.Run(c.path, func(t *testing.T) {
			w := get(t, h, c.path)
			if w.Code != http.StatusOK {
				t.Fatalf("status %d, want 200", w.Code)
			}
			if ct := w.Header().Get("Content-Type"); ct != "text/html; charset=utf-8" {
				t.Errorf("Content-Type %q", ct)
			}
			body := w.Body.String()
			d := checkPage(t, w.Body.Bytes())
			if h1 := d.tag("h1"); len(h1) != 1 || text(h1[0]) != c.h1 {
				t.Errorf("h1 = %v, want one %q", texts(h1), c.h1)
			}
			if got := crumbs(d); strings.Join(got, " / ") != strings.Join(c.crumbs, " / ") {
				t.Errorf("breadcrumbs %q, want %q", got, c.crumbs)
			}
			for _, s := range c.want {
				if !strings.Contains(body, s) {
					t.Errorf("the page lacks %q", s)
				}
			}
			for _, table := range c.tables {
				for _, ext := range []string{".csv", ".json"} {
					if !strings.Contains(body, `href="/dati/`+table+ext) {
						t.Errorf("no %s download of table %s", ext, table)
					}
				}
			}
		})
	}
}

// checkPage checks what every HTML page must have and returns it parsed.
func checkPage(t *testing.T, body []byte) *doc {
	t.Helper()
	d, err := parseDoc(body)
	if err != nil {
		t.Fatalf("parsing: %v", err)
	}
	if !bytes.HasPrefix(body, []byte("<!doctype html>\n<html lang=\"it\">")) {
		t.Errorf("the page does not start with <!doctype html><html lang=\"it\">")
	}
	if s := d.tag("script"); len(s) > 0 {
		t.Errorf("%d <script> elements: the portal runs no script", len(s))
	}
	as := d.tag("a")
	if len(as) == 0 || text(as[0]) != "Vai al contenuto principale" {
		t.Errorf("the first link is not the skip link")
	} else if href, _ := attr(as[0], "href"); href != "#contenuto" || !d.ids()["contenuto"] {
		t.Errorf("the skip link goes to %q, and #contenuto must exist", href)
	}
	if main := d.tag("main"); len(main) != 1 {
		t.Errorf("%d <main>, want 1", len(main))
	}
	body2 := string(body)
	for _, footer := range []string{`href="/dichiarazione-accessibilita"`, `href="/segnalazioni"`, `href="/open-data"`, `href="/metodo"`, "CC BY 4.0", "Polis — Case dei Servizi di Cittadinanza Digitale"} {
		if !strings.Contains(body2, footer) {
			t.Errorf("header or footer lacks %q", footer)
		}
	}
	// Every input has a label.
	ids := map[string]bool{}
	for _, l := range d.tag("label") {
		if f, ok := attr(l, "for"); ok {
			ids[f] = true
		}
	}
	for _, in := range d.tag("input") {
		id, _ := attr(in, "id")
		if !ids[id] {
			t.Errorf("an input (id %q) has no label", id)
		}
	}
	// Every table has a caption and header cells with a scope.
	for _, tb := range d.tag("table") {
		if !contains(tb, func(n *html.Node) bool { return n.Data == "caption" }) {
			t.Errorf("a table has no caption")
		}
	}
	for _, th := range d.tag("th") {
		if _, ok := attr(th, "scope"); !ok {
			t.Errorf("a <th> (%q) has no scope", text(th))
		}
	}
	return d
}

func texts(ns []*html.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, text(n))
	}
	return out
}

// crumbs is the breadcrumb trail, with exactly one current item, last.
func crumbs(d *doc) []string {
	var out []string
	for _, n := range d.all(func(n *html.Node) bool { return hasClass(n, "breadcrumb-item") }) {
		out = append(out, strings.TrimSpace(strings.TrimSuffix(text(n), "/")))
	}
	return out
}

func TestPagesSecurityHeaders(t *testing.T) {
	h, _ := testPortal(t)
	for _, p := range []string{"/", "/uffici/PO-001001-1", "/nessuna", "/static/css/portal.css"} {
		w := get(t, h, p)
		for k, want := range map[string]string{
			"Content-Security-Policy": contentSecurityPolicy,
			"X-Content-Type-Options":  "nosniff",
			"Referrer-Policy":         "strict-origin-when-cross-origin",
			"X-Frame-Options":         "DENY",
		} {
			if got := w.Header().Get(k); got != want {
				t.Errorf("%s: %s = %q, want %q", p, k, got, want)
			}
		}
	}
	for _, directive := range []string{"default-src 'self'", "script-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(contentSecurityPolicy, directive) {
			t.Errorf("the CSP lacks %q", directive)
		}
	}
	if strings.Contains(contentSecurityPolicy, "unsafe-inline") || strings.Contains(contentSecurityPolicy, "unsafe-eval") {
		t.Errorf("the CSP allows inline script or style: %s", contentSecurityPolicy)
	}
	// The hash is of the exact attribute value (RFC: base64 of SHA-256).
	if got := styleHash("height:auto;max-width:100%"); got != "'sha256-3/lBkHSaY0NyDNLKXdi1Lq66msqU9T40pS/nzCYdKFE='" {
		t.Errorf("styleHash = %s, the hash Chromium reports for that style", got)
	}
}

func TestNotFound(t *testing.T) {
	h, _ := testPortal(t)
	for _, p := range []string{"/regioni/atlantide", "/province/zz", "/comuni/999999", "/comuni/abc", "/uffici/PO-000000-1", "/uffici/nessuno",
		"/coworking/CW-XX-9", "/pagina", "/regioni/lazio/altro", "/uffici/PO-001001-1/servizi.xml", "/static/nulla.css", "/dati/", "/feed.atom"} {
		t.Run(p, func(t *testing.T) {
			o := func(o *Options) { o.OpenData = nil } // /dati/ is not this handler's without it
			h := h
			if strings.HasPrefix(p, "/dati/") || p == "/feed.atom" {
				h, _ = testPortal(t, o)
			}
			w := get(t, h, p)
			if w.Code != http.StatusNotFound {
				t.Fatalf("status %d, want 404", w.Code)
			}
			if strings.HasPrefix(p, "/static/") {
				return
			}
			d := checkPage(t, w.Body.Bytes())
			if h1 := d.tag("h1"); len(h1) != 1 || text(h1[0]) != "Pagina non trovata" {
				t.Errorf("h1 %v", texts(h1))
			}
			if w.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("a 404 is cached: %q", w.Header().Get("Cache-Control"))
			}
		})
	}
}

func TestRedirects(t *testing.T) {
	h, _ := testPortal(t)
	for _, c := range []struct{ from, to string }{
		{"/regioni/lazio/", "/regioni/lazio"},
		{"/regioni/", "/regioni"},
		{"/cerca/?q=agli", "/cerca?q=agli"},
		{"/uffici/CW-TO-1", "/coworking/CW-TO-1"},
		{"/coworking/PO-001001-1", "/uffici/PO-001001-1"},
	} {
		w := get(t, h, c.from)
		if w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != c.to {
			t.Errorf("%s: %d to %q, want 301 to %q", c.from, w.Code, w.Header().Get("Location"), c.to)
		}
	}
	w := get(t, h, "/favicon.ico")
	if w.Code != http.StatusMovedPermanently || !strings.HasPrefix(w.Header().Get("Location"), "/static/img/favicon.svg?v=") {
		t.Errorf("/favicon.ico: %d %q", w.Code, w.Header().Get("Location"))
	}
}

func TestMethodNotAllowed(t *testing.T) {
	h, _ := testPortal(t)
	for _, m := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest(m, "/regioni/lazio", strings.NewReader("x=1")))
		if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, w.Code, w.Header().Get("Allow"))
		}
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(http.MethodHead, "/regioni/lazio", nil))
	if w.Code != http.StatusOK || w.Body.Len() != 0 || w.Header().Get("Content-Length") == "0" {
		t.Errorf("HEAD: %d, %d bytes, Content-Length %q", w.Code, w.Body.Len(), w.Header().Get("Content-Length"))
	}
}

func TestNoSnapshotYet(t *testing.T) {
	h, _ := testPortal(t, func(o *Options) { o.Snapshot = func() *progress.Snapshot { return nil } })
	w := get(t, h, "/")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" {
		t.Fatalf("/ without a snapshot: %d, Retry-After %q", w.Code, w.Header().Get("Retry-After"))
	}
	if !strings.Contains(w.Body.String(), "Dati non ancora disponibili") {
		t.Errorf("the 503 page does not say why")
	}
	// Pages that need no figures answer all the same.
	for _, p := range []string{"/metodo", "/open-data", "/dichiarazione-accessibilita", "/segnalazioni"} {
		if w := get(t, h, p); w.Code != http.StatusOK {
			t.Errorf("%s without a snapshot: %d", p, w.Code)
		}
	}
}

func TestServicesNotAvailable(t *testing.T) {
	h, _ := testPortal(t, func(o *Options) { o.Services = nil })
	w := get(t, h, "/uffici/PO-001001-1")
	if w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "non è disponibile") || strings.Contains(w.Body.String(), "servizi.csv") {
		t.Errorf("office page without the services: %d; it must say they are not available and offer no download", w.Code)
	}
	if w := get(t, h, "/uffici/PO-001001-1/servizi.json"); w.Code != http.StatusServiceUnavailable {
		t.Errorf("servizi.json without the services: %d, want 503", w.Code)
	}
}

func TestServicesDownloads(t *testing.T) {
	h, _ := testPortal(t)
	w := get(t, h, "/uffici/PO-001001-1/servizi.json")
	if w.Code != http.StatusOK || w.Header().Get("Content-Type") != "application/json; charset=utf-8" {
		t.Fatalf("servizi.json: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var doc servicesDoc
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Site != "PO-001001-1" || len(doc.Services) != 3 || doc.Services[2].Reason != "atm_no_cash" || !doc.At.Equal(testNow) {
		t.Errorf("servizi.json: %+v", doc)
	}
	w = get(t, h, "/uffici/PO-001001-1/servizi.csv")
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"sede", "servizio", "nome", "disponibile", "canale", "motivo", "messaggio", "previsto_il"},
		{"PO-001001-1", "cie", "Carta d'identità elettronica", "true", "counter", "", "", ""},
		{"PO-001001-1", "certificato_nascita", "Certificato di nascita", "true", "totem", "", "", ""},
		{"PO-001001-1", "prelievo", "Prelievo di contanti", "false", "atm", "atm_no_cash", "L'ATM è senza contanti", "2026-03-16T13:00:00Z"},
	}
	if got, _ := json.Marshal(rows); string(got) != mustJSON(want) {
		t.Errorf("servizi.csv:\n%s\nwant\n%s", got, mustJSON(want))
	}
	for _, p := range []string{"/uffici/PO-111027-1/servizi.csv", "/uffici/CW-TO-1/servizi.csv", "/uffici/PO-9/servizi.csv"} {
		if w := get(t, h, p); w.Code == http.StatusOK {
			t.Errorf("%s: 200 for an office the services do not know", p)
		}
	}
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func TestPageCacheFollowsSnapshot(t *testing.T) {
	first := progress.Fixture(testNow)
	second := progress.Fixture(testNow.Add(time.Hour))
	cur := first
	h, _ := testPortal(t, func(o *Options) { o.Snapshot = func() *progress.Snapshot { return cur } })
	a := get(t, h, "/regioni/lazio")
	b := get(t, h, "/regioni/lazio")
	if a.Body.String() != b.Body.String() || a.Header().Get("ETag") == "" || a.Header().Get("ETag") != b.Header().Get("ETag") {
		t.Fatalf("the same snapshot gave two pages or no ETag")
	}
	if got := len(h.cache.pages); got != 1 {
		t.Errorf("%d pages cached, want 1", got)
	}
	cur = second
	c := get(t, h, "/regioni/lazio")
	if c.Body.String() == a.Body.String() {
		t.Errorf("a new snapshot served the old page")
	}
	if !strings.Contains(c.Body.String(), formatDateTime(second.At)) {
		t.Errorf("the page does not show the new snapshot's time")
	}
	// If-None-Match answers 304.
	r := httptest.NewRequest(http.MethodGet, "/regioni/lazio", nil)
	r.Header.Set("If-None-Match", c.Header().Get("ETag"))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified || w.Body.Len() != 0 {
		t.Errorf("If-None-Match: %d with %d bytes", w.Code, w.Body.Len())
	}
	// An office with the services' answers is cached for liveTTL only;
	// searches are not cached.
	get(t, h, "/uffici/PO-001001-1")
	get(t, h, "/cerca?q=roma")
	if _, ok := h.cache.get(second, "/uffici/PO-001001-1", testNow.Add(liveTTL-time.Second)); !ok {
		t.Errorf("an office page was not cached")
	}
	if _, ok := h.cache.get(second, "/uffici/PO-001001-1", testNow.Add(liveTTL)); ok {
		t.Errorf("an office page with live answers was served after liveTTL")
	}
	if _, ok := h.cache.get(second, "/cerca?q=roma", testNow); ok {
		t.Errorf("a search was cached")
	}
}

func TestPageCacheBound(t *testing.T) {
	c := newPageCache(2)
	s := &progress.Snapshot{}
	for _, k := range []string{"a", "b", "c"} {
		c.put(s, k, &rendered{}, testNow)
	}
	if len(c.pages) != 2 {
		t.Errorf("%d pages, bound 2", len(c.pages))
	}
	if _, ok := c.get(s, "c", testNow); !ok {
		t.Errorf("a full cache refused a new page")
	}
	if _, ok := c.get(&progress.Snapshot{}, "a", testNow); ok {
		t.Errorf("a page of another snapshot was served")
	}
	c.put(s, "c", &rendered{body: []byte("new"), expires: testNow.Add(time.Second)}, testNow)
	if p, _ := c.get(s, "c", testNow); p == nil || string(p.body) != "new" || len(c.pages) != 2 {
		t.Errorf("a full cache did not replace a page it holds")
	}
	// Full, with an expired page: the expired one makes room, the other stays.
	var other string
	for k := range c.pages {
		if k != "c" {
			other = k
		}
	}
	c.put(s, "d", &rendered{}, testNow.Add(time.Second))
	_, okD := c.get(s, "d", testNow)
	_, okOther := c.get(s, other, testNow)
	if !okD || !okOther || len(c.pages) != 2 {
		t.Errorf("the expired page did not make room: %d pages, d %v, %s %v", len(c.pages), okD, other, okOther)
	}
	off := newPageCache(0)
	off.put(s, "a", &rendered{}, testNow)
	if len(off.pages) != 0 {
		t.Errorf("a cache of size 0 kept a page")
	}
}

func TestETagMatch(t *testing.T) {
	for _, c := range []struct {
		header string
		want   bool
	}{
		{`"abc"`, true}, {`W/"abc"`, true}, {`"x", "abc"`, true}, {`*`, true},
		{`"abcd"`, false}, {``, false}, {`abc`, false},
	} {
		if got := etagMatch(c.header, `"abc"`); got != c.want {
			t.Errorf("etagMatch(%q) = %v", c.header, got)
		}
	}
}

func TestNewRequiresSnapshot(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Fatal("New without Options.Snapshot succeeded")
	}
}

// TestMissingDesignSystem: a build without Bootstrap Italia's files (a
// clean clone before make deps) serves plain pages that link none of
// them, and says so in the log.
func TestMissingDesignSystem(t *testing.T) {
	bare := fstest.MapFS{}
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(p, "static/vendor/") {
			return err
		}
		b, err := fs.ReadFile(staticFS, p)
		bare[p] = &fstest.MapFile{Data: b}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	snap := progress.Fixture(testNow)
	h, err := newHandler(Options{Snapshot: func() *progress.Snapshot { return snap }, Now: func() time.Time { return testNow },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))}, bare)
	if err != nil {
		t.Fatal(err)
	}
	if h.assets.vendor {
		t.Fatal("vendor files found in a file system without them")
	}
	if !strings.Contains(logs.String(), "Bootstrap Italia files are missing") {
		t.Errorf("no warning in the log: %q", logs.String())
	}
	w := get(t, h, "/")
	if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "bootstrap-italia") || !strings.Contains(w.Body.String(), "css/portal.css") {
		t.Errorf("without the design system: %d; the page must link portal.css only", w.Code)
	}
	checkPage(t, w.Body.Bytes())
}

// TestFormats checks the Italian formats of numbers and dates.
func TestFormats(t *testing.T) {
	for _, c := range []struct {
		got, want string
	}{
		{formatInt(0), "0"}, {formatInt(999), "999"}, {formatInt(1000), "1.000"}, {formatInt(1234567), "1.234.567"}, {formatInt(-4800), "-4.800"},
		{formatDec(1234.5, 1), "1.234,5"}, {formatDec(0.05, 1), "0,1"}, {formatDec(-0.04, 1), "0,0"}, {formatDec(-1234.56, 2), "-1.234,56"},
		{formatNum(6933), "6.933"}, {formatNum(12.25), "12,2"}, {formatNum(12.26), "12,3"},
		{formatPercent(61.234), "61,2%"}, {formatPercent(100), "100,0%"},
		{formatEUR(320e6), "320 milioni di euro"}, {formatEUR(162.62e6), "162,62 milioni di euro"}, {formatEUR(1234.5), "1.234,50 €"},
		{formatDate(time.Date(2024, 11, 30, 23, 30, 0, 0, time.UTC)), "01/12/2024"}, // midnight in Rome
		{formatDate(time.Time{}), "non disponibile"},
		{formatDateTime(time.Date(2026, 3, 16, 9, 30, 0, 0, time.UTC)), "16/03/2026 alle 10:30"},
		{formatMonth(time.Date(2024, 11, 30, 12, 0, 0, 0, rome)), "novembre 2024"},
		{kwh(-1, true), "non disponibile"}, {kwh(1234.56, true), "1.234,6"}, {kwh(0, false), "nessun impianto"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestItalianHours(t *testing.T) {
	for _, c := range []struct {
		in   string
		want []string
	}{
		{"Mon-Fri 08:20-13:45; Sat 08:20-12:45", []string{"da lunedì a venerdì: 8:20–13:45", "sabato: 8:20–12:45"}},
		{"lun-ven 08:20-13:45; sab 08:20-12:45", []string{"da lunedì a venerdì: 8:20–13:45", "sabato: 8:20–12:45"}},
		{"Mon,Tue 08:00-12:00,14:00-17:30", []string{"lunedì e martedì: 8:00–12:00, 14:00–17:30"}},
		{"Sun 09:00-12:00", []string{"domenica: 9:00–12:00"}},
		{"", nil},
		{"su appuntamento", []string{"su appuntamento"}},
	} {
		if got := italianHours(c.in); strings.Join(got, "|") != strings.Join(c.want, "|") {
			t.Errorf("italianHours(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestPageGzip(t *testing.T) {
	h, _ := testPortal(t)
	plain := get(t, h, "/regioni/lazio")
	r := httptest.NewRequest(http.MethodGet, "/regioni/lazio", nil)
	r.Header.Set("Accept-Encoding", "gzip")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Header().Get("Content-Encoding") != "gzip" || w.Header().Get("ETag") == plain.Header().Get("ETag") || w.Header().Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip: %v", w.Header())
	}
	if w.Body.Len()*4 > plain.Body.Len() {
		t.Errorf("gzip gives %d bytes of %d", w.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(b, plain.Body.Bytes()) {
		t.Errorf("the gzipped page is not the page: %v", err)
	}
	r.Header.Set("If-None-Match", w.Header().Get("ETag"))
	w = httptest.NewRecorder()
	h.ServeHTTP(w, r)
	if w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match on the gzipped page: %d", w.Code)
	}
	if off := get(t, h, "/uffici/PO-001001-1"); off.Header().Get("Cache-Control") != "public, max-age=10" {
		t.Errorf("an office page with live answers: Cache-Control %q", off.Header().Get("Cache-Control"))
	}
}
