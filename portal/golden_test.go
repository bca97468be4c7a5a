package portal

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// goldenPages are one page of each kind, rendered from progress.Fixture.
var goldenPages = []struct{ name, path string }{
	{"panoramica", "/"},
	{"obiettivi", "/obiettivi"},
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

// assetVersion is the content hash in static URLs: it changes with every
// release of Bootstrap Italia and with the style sheet, which is not what
// these files watch.
var assetVersion = regexp.MustCompile(`\?v=[0-9a-f]{16}`)

// vendorLinks and vendorIcons are what links Bootstrap Italia's files,
// present only once npm has installed them (scripts/install-deps): the
// pages are otherwise the same, so that a clean clone compares equal too.
var (
	vendorLinks = regexp.MustCompile(`(?m)^\s*<link[^>]*/static/(vendor/|css/fonts\.css)[^>]*>\n`)
	vendorIcons = regexp.MustCompile(`<svg[^>]*><use href="/static/vendor/[^"]*"></use></svg>`)
)

// normalise takes out what a golden file does not watch.
func normalise(page string) string {
	page = assetVersion.ReplaceAllString(page, "?v=VERSION")
	return vendorIcons.ReplaceAllString(vendorLinks.ReplaceAllString(page, ""), "")
}

// TestGolden compares each page with testdata/golden/{name}.html; run
// with -update to rewrite them (then read the diff).
func TestGolden(t *testing.T) {
	h, _ := testPortal(t)
	for _, g := range goldenPages {
		t.Run(g.name, func(t *testing.T) {
			w := get(t, h, g.path)
			got := normalise(w.Body.String())
			file := filepath.Join("testdata", "golden", g.name+".html")
			if *update {
				if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to create it)", err)
			}
			if got != normalise(string(want)) {
				t.Errorf("%s differs from %s (go test -run TestGolden -update rewrites it):\n%s", g.path, file, firstDiff(string(want), got))
			}
		})
	}
}

// firstDiff shows the first line that differs, with its neighbours.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(wl) || i < len(gl); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\n- " + w + "\n+ " + g
		}
	}
	return "(same lines, different line ends)"
}
