package portal

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/polis-platform/polis/internal/testutil"
)

// The browser test drives Debian's Chromium (never a downloaded browser)
// over the portal served on 127.0.0.1 with progress.Fixture and the real
// open data handler. It crawls every internal link from the home page and
// checks, page by page: no console error, no uncaught exception, no
// request outside the portal, every link answering 200, and no serious or
// critical axe-core violation of WCAG 2.1 A and AA. It writes screenshots
// of the main pages at desktop and phone widths to $POLIS_TEST_OUT/portal
// (or a new folder under the system's temporary folder, which it logs),
// and checks that the first Tab focuses the skip link.

// chromiumPath is where Debian installs Chromium (scripts/install-deps).
const chromiumPath = "/usr/bin/chromium"

// axePath is axe-core as npm installs it (scripts/install-deps).
const axePath = "web/node_modules/axe-core/axe.min.js"

// Crawl bounds: the fixture has about 50 pages; the bounds only stop a
// crawl that a bug makes endless.
const (
	maxBrowserPages = 150
	maxDataLinks    = 400
)

// mainPages are screenshotted at both widths.
var mainPages = []struct{ name, path string }{
	{"panoramica", "/"},
	{"regioni", "/regioni"},
	{"regione", "/regioni/lazio"},
	{"provincia", "/province/rm"},
	{"comune", "/comuni/001001"},
	{"ufficio", "/uffici/PO-001001-1"},
	{"coworking", "/coworking"},
	{"spazio-coworking", "/coworking/CW-TO-1"},
	{"fornitori", "/fornitori"},
	{"finanziamento", "/finanziamento"},
	{"metodo", "/metodo"},
	{"cerca", "/cerca?q=san"},
	{"open-data", "/open-data"},
	{"accessibilita", "/dichiarazione-accessibilita"},
	{"segnalazioni", "/segnalazioni"},
	{"404", "/pagina-che-non-esiste"},
}

func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test: not with -short")
	}
	_, err := exec.LookPath(chromiumPath)
	testutil.Need(t, err == nil, "browser test skipped: Debian's Chromium is not installed at %s (scripts/install-deps installs it: apt-get install chromium)", chromiumPath)
	h, _ := testPortal(t)
	srv := httptest.NewServer(h) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	ctx := newBrowser(t)

	t.Run("crawl", func(t *testing.T) {
		axe, err := os.ReadFile(axePath)
		if err != nil {
			t.Logf("axe-core is not installed (%s: %v): the crawl runs without the accessibility checks; scripts/install-deps installs it (npm ci in portal/web)", axePath, err)
		}
		c := &crawler{t: t, ctx: ctx, base: srv.URL, axe: string(axe)}
		c.run()
		testutil.Need(t, axe != nil, "axe-core not installed: accessibility not checked")
	})
	t.Run("screenshots", func(t *testing.T) {
		dir := screenshotDir(t)
		for _, p := range mainPages {
			for _, vp := range []struct {
				name string
				w, h int64
				mob  bool
			}{{"desktop", 1366, 900, false}, {"telefono", 390, 844, true}} {
				opts := []chromedp.EmulateViewportOption{}
				if vp.mob {
					opts = append(opts, chromedp.EmulateMobile)
				}
				shot, err := runFor(ctx, 30*time.Second, func(ctx context.Context) ([]byte, error) {
					if err := chromedp.Do(ctx, chromedp.EmulateViewport(vp.w, vp.h, opts...), chromedp.Navigate(srv.URL+p.path)); err != nil {
						return nil, err
					}
					return chromedp.Run(ctx, chromedp.FullScreenshot(100))
				})
				if err != nil {
					t.Errorf("screenshot of %s at %s width: %v", p.path, vp.name, err)
					continue
				}
				if err := os.WriteFile(filepath.Join(dir, p.name+"-"+vp.name+".png"), shot, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, err := runFor(ctx, 10*time.Second, func(ctx context.Context) (chromedp.Void, error) {
			return chromedp.Run(ctx, chromedp.EmulateReset())
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshots of %d pages at desktop (1366×900) and phone (390×844) widths in %s", len(mainPages), dir)
	})
	t.Run("keyboard", func(t *testing.T) {
		type focused struct {
			Text    string `json:"text"`
			Href    string `json:"href"`
			ID      string `json:"id"`
			Outline string `json:"outline"`
			Visible bool   `json:"visible"`
		}
		const read = `(() => { const e = document.activeElement, s = getComputedStyle(e), r = e.getBoundingClientRect();
			return {text: e.textContent.trim(), href: e.getAttribute('href') || '', id: e.id,
				outline: s.outlineStyle + ' ' + s.outlineWidth, visible: r.width > 1 && r.height > 1}; })()`
		first, err := runFor(ctx, 30*time.Second, func(ctx context.Context) (focused, error) {
			if err := chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/"), chromedp.KeyEvent(kb.Tab)); err != nil {
				return focused{}, err
			}
			return chromedp.Run(ctx, chromedp.Evaluate[focused](read))
		})
		if err != nil {
			t.Fatal(err)
		}
		if first.Text != "Vai al contenuto principale" || first.Href != "#contenuto" {
			t.Fatalf("the first Tab focuses %+v, want the skip link to #contenuto", first)
		}
		if !first.Visible || strings.HasPrefix(first.Outline, "none") {
			t.Errorf("the focused skip link is not visible with a focus ring: %+v", first)
		}
		after, err := runFor(ctx, 30*time.Second, func(ctx context.Context) (focused, error) {
			if err := chromedp.Do(ctx, chromedp.KeyEvent(kb.Enter)); err != nil {
				return focused{}, err
			}
			return chromedp.Run(ctx, chromedp.Evaluate[focused](read))
		})
		if err != nil {
			t.Fatal(err)
		}
		if after.ID != "contenuto" {
			t.Errorf("after Enter on the skip link the focus is on %+v, want the main content (#contenuto)", after)
		}
	})
}

// newBrowser starts Chromium with the flags that work on a machine with no
// network but loopback, and a fresh profile; it stops with the test.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("hide-scrollbars", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1366, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	var mu sync.Mutex
	ctx, cancel := chromedp.NewContext(actx,
		chromedp.WithErrorf(func(format string, args ...any) {
			mu.Lock()
			defer mu.Unlock()
			t.Logf("chromedp: "+format, args...)
		}),
		chromedp.WithListener(events.listen))
	t.Cleanup(func() { cancel(); cancelAlloc() })
	// The first Do starts the browser; it must not run under a timeout
	// (that would stop the browser with it), so it only opens the tab.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("starting %s: %v", chromiumPath, err)
	}
	return ctx
}

// runFor runs f on ctx's tab with a timeout for this step only.
func runFor[T any](ctx context.Context, d time.Duration, f func(context.Context) (T, error)) (T, error) {
	c, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	return f(c)
}

// pageEvents collects what the tab reports while a page loads: console
// errors, uncaught exceptions, browser log errors (a failed load, a CSP
// violation) and every URL the page requested.
type pageEvents struct {
	mu       sync.Mutex
	problems []string
	requests []string
}

// events is the one collector of the test's tab (the listener is set when
// the tab is made).
var events = &pageEvents{}

func (e *pageEvents) listen(ev any) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch ev := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeAssert {
			var args []string
			for _, a := range ev.Args {
				args = append(args, string(a.Value)+a.Description)
			}
			e.problems = append(e.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
		}
	case *runtime.EventExceptionThrown:
		msg := ev.ExceptionDetails.Text
		if ev.ExceptionDetails.Exception != nil {
			msg += " " + ev.ExceptionDetails.Exception.Description
		}
		e.problems = append(e.problems, "exception: "+msg)
	case *log.EventEntryAdded:
		if ev.Entry.Level == log.EntryLevelError {
			e.problems = append(e.problems, fmt.Sprintf("log (%s): %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL))
		}
	case *network.EventRequestWillBeSent:
		e.requests = append(e.requests, ev.Request.URL)
	}
}

// take returns and clears what was collected.
func (e *pageEvents) take() (problems, requests []string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	problems, requests = e.problems, e.requests
	e.problems, e.requests = nil, nil
	return problems, requests
}

// axeViolation is one failed axe-core rule with its nodes.
type axeViolation struct {
	ID     string `json:"id"`
	Impact string `json:"impact"`
	Help   string `json:"help"`
	URL    string `json:"helpUrl"`
	Nodes  []struct {
		Target  string `json:"target"`
		HTML    string `json:"html"`
		Summary string `json:"summary"`
	} `json:"nodes"`
}

// axeRun runs axe-core with the WCAG 2.1 A and AA rules and returns the
// violations, nodes flattened for printing.
const axeRun = `axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}, resultTypes: ['violations']})
	.then(r => r.violations.map(v => ({id: v.id, impact: v.impact || '', help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({target: n.target.join(' '), html: n.html, summary: n.failureSummary || ''}))})))`

type crawler struct {
	t    *testing.T
	ctx  context.Context
	base string
	axe  string

	seen  map[string]bool
	queue []string
	data  []string // links to files (open data, feed), checked over HTTP
	pages int
}

func (c *crawler) run() {
	c.seen = map[string]bool{}
	for _, p := range mainPages {
		if p.name != "404" {
			c.enqueue(c.base + p.path)
		}
	}
	for len(c.queue) > 0 && c.pages < maxBrowserPages {
		u := c.queue[0]
		c.queue = c.queue[1:]
		c.visit(u)
	}
	if len(c.queue) > 0 {
		c.t.Errorf("crawl stopped at %d pages with %d left: raise maxBrowserPages if the site grew", c.pages, len(c.queue))
	}
	client := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for i, u := range c.data {
		if i >= maxDataLinks {
			c.t.Errorf("%d data links, checked the first %d", len(c.data), maxDataLinks)
			break
		}
		resp, err := client.Get(u)
		if err != nil {
			c.t.Errorf("GET %s: %v", u, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			c.t.Errorf("GET %s: %s, want 200", u, resp.Status)
		}
	}
	c.t.Logf("crawled %d pages in the browser and checked %d data links", c.pages, len(c.data))
	if c.pages < 30 {
		c.t.Errorf("crawled only %d pages: the links from the home page should reach every page of the fixture", c.pages)
	}
}

// enqueue adds an internal link, without its fragment: pages to the
// browser's queue, files to the HTTP checks.
func (c *crawler) enqueue(raw string) {
	u, err := url.Parse(raw)
	if err != nil {
		c.t.Errorf("bad link %q: %v", raw, err)
		return
	}
	if u.Scheme+"://"+u.Host != c.base {
		return // external: a citation, not a request of the page
	}
	u.Fragment = ""
	key := u.String()
	if c.seen[key] {
		return
	}
	c.seen[key] = true
	if isDataPath(u.Path) {
		c.data = append(c.data, key)
		return
	}
	c.queue = append(c.queue, key)
}

// isDataPath: files to download, not pages to render.
func isDataPath(p string) bool {
	if strings.HasPrefix(p, "/dati/") || strings.HasPrefix(p, "/static/") || p == "/feed.atom" {
		return true
	}
	for _, ext := range []string{".csv", ".json", ".parquet", ".jsonld", ".atom"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}

func (c *crawler) visit(u string) {
	c.pages++
	events.take()
	type loaded struct {
		status int64
		links  []string
	}
	res, err := runFor(c.ctx, 60*time.Second, func(ctx context.Context) (loaded, error) {
		resp, err := chromedp.RunResponse(ctx, chromedp.Navigate(u))
		if err != nil {
			return loaded{}, err
		}
		// Fonts load after layout: wait for them, so that a font that
		// fails to load is reported on its page.
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.fonts.ready.then(() => true)`, chromedp.EvalAwaitPromise)); err != nil {
			return loaded{}, err
		}
		links, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('a[href]'), a => new URL(a.getAttribute('href'), document.baseURI).href)`))
		if err != nil {
			return loaded{}, err
		}
		var status int64
		if resp != nil {
			status = resp.Status
		}
		return loaded{status, links}, nil
	})
	if err != nil {
		c.t.Errorf("%s: %v", u, err)
		return
	}
	if res.status != http.StatusOK {
		c.t.Errorf("%s answered %d, want 200", u, res.status)
	}
	for _, l := range res.links {
		c.enqueue(l)
	}
	if c.axe != "" {
		c.checkAxe(u)
	}
	problems, requests := events.take()
	for _, p := range problems {
		if len(p) > 400 {
			p = p[:400] + "…"
		}
		c.t.Errorf("%s: %s", u, p)
	}
	for _, r := range requests {
		if !strings.HasPrefix(r, c.base+"/") && !strings.HasPrefix(r, "data:") {
			c.t.Errorf("%s requested %s, outside the portal", u, r)
		}
	}
}

func (c *crawler) checkAxe(u string) {
	vs, err := runFor(c.ctx, 60*time.Second, func(ctx context.Context) ([]axeViolation, error) {
		if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](c.axe)); err != nil {
			return nil, fmt.Errorf("injecting axe-core: %w", err)
		}
		return chromedp.Run(ctx, chromedp.Evaluate[[]axeViolation](axeRun, chromedp.EvalAwaitPromise))
	})
	if err != nil {
		c.t.Errorf("%s: axe: %v", u, err)
		return
	}
	for _, v := range vs {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: axe %s (%s): %s — %s", u, v.ID, v.Impact, v.Help, v.URL)
		for _, n := range v.Nodes {
			fmt.Fprintf(&b, "\n\t%s\n\t\t%s\n\t\t%s", n.Target, n.HTML, strings.ReplaceAll(n.Summary, "\n", "\n\t\t"))
		}
		if v.Impact == "serious" || v.Impact == "critical" {
			c.t.Error(b.String())
		} else {
			c.t.Log(b.String())
		}
	}
}

// screenshotDir is $POLIS_TEST_OUT/portal, or polis-portal-screenshots
// under the system's temporary folder; each run replaces the files, and
// the folder is kept after the test.
func screenshotDir(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "polis-portal-screenshots")
	if out := os.Getenv("POLIS_TEST_OUT"); out != "" {
		dir = filepath.Join(out, "portal")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}
