package portal

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/net/html"
)

// maxCrawl bounds the crawl: the fixture has about 50 pages and 100 files.
const maxCrawl = 500

// crawled is one answer of the crawl.
type crawled struct {
	path   string
	status int
	ctype  string
	body   []byte
	doc    *doc // HTML pages only
}

// crawlSite follows every internal link from the home page and the main
// pages (pages and downloads alike), once each, and returns every answer.
// A link that does not answer 200 is an error.
func crawlSite(t *testing.T, h http.Handler) []*crawled {
	t.Helper()
	seen := map[string]bool{}
	var queue []string
	add := func(from, raw string) {
		u, err := url.Parse(raw)
		if err != nil {
			t.Errorf("%s: bad link %q: %v", from, raw, err)
			return
		}
		if u.Scheme != "" || u.Host != "" {
			if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "mailto" {
				t.Errorf("%s: link %q with scheme %q", from, raw, u.Scheme)
			}
			return // a citation or a mail address, not a page of ours
		}
		if u.Path == "" { // a fragment of the same page
			return
		}
		u.Fragment = ""
		k := u.String()
		if !seen[k] {
			seen[k] = true
			queue = append(queue, k)
		}
	}
	for _, p := range pageCases {
		add("(start)", p.path)
	}
	var out []*crawled
	for len(queue) > 0 {
		if len(out) >= maxCrawl {
			t.Fatalf("more than %d addresses: raise maxCrawl if the site grew", maxCrawl)
		}
		p := queue[0]
		queue = queue[1:]
		w := get(t, h, p)
		c := &crawled{path: p, status: w.Code, ctype: w.Header().Get("Content-Type"), body: w.Body.Bytes()}
		out = append(out, c)
		if w.Code != http.StatusOK {
			t.Errorf("%s: status %d, want 200", p, w.Code)
			continue
		}
		if !strings.HasPrefix(c.ctype, "text/html") {
			continue
		}
		d, err := parseDoc(c.body)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			continue
		}
		c.doc = d
		for _, l := range d.links() {
			add(p, l)
		}
		for _, r := range d.resources() {
			add(p, r)
		}
	}
	return out
}

// TestCrawl checks the site as a whole: every link answers, every
// fragment exists on its page, the browser loads nothing from elsewhere,
// and every table of every data page has its downloads.
func TestCrawl(t *testing.T) {
	h, _ := testPortal(t)
	pages := crawlSite(t, h)
	byPath := map[string]*crawled{}
	nPages := 0
	for _, c := range pages {
		byPath[c.path] = c
		if c.doc != nil {
			nPages++
		}
	}
	if nPages < 40 {
		t.Errorf("the crawl reached %d pages: the links should reach every page of the fixture", nPages)
	}
	for _, c := range pages {
		if c.doc == nil {
			continue
		}
		// Fragments point at ids that exist.
		for _, l := range c.doc.links() {
			u, err := url.Parse(l)
			if err != nil || u.Fragment == "" || u.Scheme != "" {
				continue
			}
			target := c
			if u.Path != "" {
				target = byPath[(&url.URL{Path: u.Path, RawQuery: u.RawQuery}).String()]
			}
			if target == nil || target.doc == nil {
				continue // a file, or a page already reported
			}
			if !target.doc.ids()[u.Fragment] {
				t.Errorf("%s links %s: no id %q there", c.path, l, u.Fragment)
			}
		}
		// Nothing the browser loads by itself comes from elsewhere.
		for _, r := range c.doc.resources() {
			if u, err := url.Parse(r); err != nil || u.Scheme != "" || u.Host != "" || !strings.HasPrefix(u.Path, "/") {
				t.Errorf("%s loads %q: every resource must be the portal's own, by an absolute path", c.path, r)
			}
		}
		// External links leave no referrer and no opener.
		for _, a := range c.doc.tag("a") {
			href, _ := attr(a, "href")
			if strings.HasPrefix(href, "http") {
				if rel, _ := attr(a, "rel"); !strings.Contains(rel, "noopener") && rel != "license" {
					t.Errorf("%s: external link %s without rel=noopener", c.path, href)
				}
			}
		}
		checkTableDownloads(t, c)
	}
}

// docPages are pages whose tables document rather than show data.
var docPages = map[string]bool{"/open-data": true, "/metodo": true}

// checkTableDownloads: every table of a data page sits in a section (or a
// chart's figure inside one) that has its download links.
func checkTableDownloads(t *testing.T, c *crawled) {
	t.Helper()
	if docPages[c.path] {
		return
	}
	for _, tb := range c.doc.tag("table") {
		scope := ancestor(tb, func(n *html.Node) bool { return n.Data == "section" || n.Data == "main" })
		if scope == nil || !contains(scope, func(n *html.Node) bool { return hasClass(n, "downloads") }) {
			caption := ""
			for _, cp := range c.doc.tag("caption") {
				if cp.Parent == tb {
					caption = text(cp)
				}
			}
			t.Errorf("%s: table %q has no download links in its section", c.path, caption)
		}
	}
}

// leaks are what no page and no download may show: credentials, hashes,
// internal addresses and MQTT logins (SITE/ASSET).
var leaks = []struct {
	name string
	re   *regexp.Regexp
}{
	{"loopback address", regexp.MustCompile(`127\.0\.0\.1|localhost:|\[::1\]`)},
	{"internal port", regexp.MustCompile(`:(9092|9000|8123|1883|8883)\b`)},
	{"private network address", regexp.MustCompile(`\b(10\.\d+\.\d+\.\d+|192\.168\.\d+\.\d+|172\.(1[6-9]|2\d|3[01])\.\d+\.\d+)\b`)},
	{"secret word", regexp.MustCompile(`(?i)secret|passw(or)?d|token|api[_-]?key|credential`)},
	{"bcrypt or argon2 hash", regexp.MustCompile(`\$2[aby]\$\d\d\$|\$argon2`)},
	{"salted hash field", regexp.MustCompile(`(?i)"(salt|hash|secret_hash)"`)},
	{"MQTT login", regexp.MustCompile(`\b(PO-\d{6}-\d+|CW-[A-Z]{2}-\d+)/[a-z]+-\d+`)},
	{"private key", regexp.MustCompile(`BEGIN [A-Z ]*PRIVATE KEY`)},
	{"file of the server", regexp.MustCompile(`var/credentials|var/registry|/etc/|/root/`)},
}

// TestNothingPrivateLeaks greps every page and every download the crawl
// reaches. Device ids may appear only as the public asset ids (atm-1),
// never as MQTT logins; the words of secrets appear nowhere (the portal's
// Italian text has no reason to say them).
func TestNothingPrivateLeaks(t *testing.T) {
	h, _ := testPortal(t)
	pages := crawlSite(t, h)
	files := 0
	for _, c := range pages {
		if strings.HasPrefix(c.path, "/static/") {
			continue // the design system's own files, checked as resources
		}
		files++
		body := string(c.body)
		for _, l := range leaks {
			if loc := l.re.FindStringIndex(body); loc != nil {
				from, to := max(loc[0]-60, 0), min(loc[1]+60, len(body))
				t.Errorf("%s shows a %s: …%s…", c.path, l.name, body[from:to])
			}
		}
	}
	if files < 100 {
		t.Errorf("checked %d pages and downloads: the crawl should reach every table", files)
	}
}

// TestLeakPatterns: each pattern finds what it is for (a leak test that
// cannot fail is no test).
func TestLeakPatterns(t *testing.T) {
	for _, c := range []struct{ name, sample string }{
		{"loopback address", "http://127.0.0.1:8080/api"},
		{"internal port", "kafka at host:9092"},
		{"private network address", "10.1.2.3"},
		{"secret word", "the Password is"},
		{"bcrypt or argon2 hash", "$2a$10$abcdefghijk"},
		{"salted hash field", `{"salt":"x"}`},
		{"MQTT login", "PO-001002-1/env-1"},
		{"private key", "-----BEGIN RSA PRIVATE KEY-----"},
		{"file of the server", "see var/credentials.csv"},
	} {
		found := false
		for _, l := range leaks {
			if l.name == c.name && l.re.MatchString(c.sample) {
				found = true
			}
		}
		if !found {
			t.Errorf("pattern %q does not match %q", c.name, c.sample)
		}
	}
	for _, l := range leaks {
		if l.re.MatchString("Ufficio postale PO-001002-1, apparato atm-1, CUP J11B22000000120, 4.800 uffici, fonte F16") {
			t.Errorf("pattern %q matches public text", l.name)
		}
	}
}
