package svg

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the test does not depend on the machine's zoneinfo
)

func TestFormatNumber(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		dec  int
		want string
	}{
		{0, 0, "0"},
		{7, 2, "7"},
		{999, 0, "999"},
		{1000, 0, "1.000"},
		{6933, 2, "6.933"},
		{1234567.5, 2, "1.234.567,5"},
		{-1234.25, 2, "-1.234,25"},
		{0.1 + 0.2, 2, "0,3"},
		{36.84, 1, "36,8"},
		{-0.001, 2, "0"}, // rounds to zero: no "-0"
		{math.Copysign(0, -1), 0, "0"},
		{2.5, 0, "3"},
		{1e18, 0, "1.000.000.000.000.000"}, // clamped to maxAbs
		{math.NaN(), 2, "n.d."},
		{math.Inf(-1), 2, "n.d."},
		{1.23456789, 9, "1,234568"}, // at most 6 decimals
	} {
		if got := FormatNumber(tc.v, tc.dec); got != tc.want {
			t.Errorf("FormatNumber(%v, %d) = %q, want %q", tc.v, tc.dec, got, tc.want)
		}
	}
	if got := FormatPercent(0.368); got != "36,8%" {
		t.Errorf("FormatPercent(0.368) = %q", got)
	}
	if got := FormatPercent(math.NaN()); got != "n.d." {
		t.Errorf("FormatPercent(NaN) = %q", got)
	}
}

func TestFormatDates(t *testing.T) {
	rome, err := time.LoadLocation("Europe/Rome") // time/tzdata is embedded below
	if err != nil {
		t.Fatal(err)
	}
	// 23:30 UTC on 30 June is already 1 July in Rome: dates are read in
	// the time's own location.
	at := time.Date(2026, time.June, 30, 23, 30, 0, 0, time.UTC)
	for _, tc := range []struct{ got, want string }{
		{FormatDate(at), "30/06/2026"},
		{FormatDate(at.In(rome)), "01/07/2026"},
		{FormatDate(time.Date(987, time.March, 5, 0, 0, 0, 0, time.UTC)), "05/03/0987"},
		{FormatMonth(day(2023, time.February, 1)), "feb 2023"},
		{FormatMonth(day(2024, time.May, 31)), "mag 2024"},
		{FormatMonth(day(2025, time.December, 1)), "dic 2025"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tc := range []struct {
		lo, hi  float64
		n       int
		integer bool
		want    []float64
		dec     int
	}{
		{0, 6933, 5, true, []float64{0, 2000, 4000, 6000, 8000}, 0},
		{0, 48, 5, true, []float64{0, 10, 20, 30, 40, 50}, 0},
		{0, 0, 5, true, []float64{0, 1}, 0}, // all zero: integer counts get 0..1
		{0, 0, 5, false, []float64{0, 0.2, 0.4, 0.6, 0.8, 1}, 1},
		{0, 3, 5, true, []float64{0, 1, 2, 3}, 0}, // never 0,5 for counts
		{0, 0.37, 4, false, []float64{0, 0.1, 0.2, 0.3, 0.4}, 1},
		{-120, 400, 5, true, []float64{-200, 0, 200, 400}, 0},
		{0, 1e15, 5, true, []float64{0, 2e14, 4e14, 6e14, 8e14, 1e15}, 0},
		{5, 5 + 1e-9, 5, false, []float64{5, 5.2, 5.4, 5.6, 5.8, 6}, 1}, // degenerate span
	} {
		got, dec := niceTicks(tc.lo, tc.hi, tc.n, tc.integer)
		if !reflect.DeepEqual(got, tc.want) || dec != tc.dec {
			t.Errorf("niceTicks(%v, %v, %d, %v) = %v, %d; want %v, %d", tc.lo, tc.hi, tc.n, tc.integer, got, dec, tc.want, tc.dec)
		}
	}
	// Labels round the float noise away.
	ticks, dec := niceTicks(0, 0.37, 4, false)
	var labels []string
	for _, v := range ticks {
		labels = append(labels, FormatNumber(v, dec))
	}
	if got := strings.Join(labels, " "); got != "0 0,1 0,2 0,3 0,4" {
		t.Errorf("labels = %q", got)
	}
}

func TestTimeTicks(t *testing.T) {
	labels := func(ticks []timeTick) string {
		var s []string
		for _, tk := range ticks {
			s = append(s, tk.Label)
		}
		return strings.Join(s, " | ")
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		max      int
		want     string
	}{
		{"months", day(2024, time.January, 15), day(2024, time.June, 30), 8,
			"feb 2024 | mar 2024 | apr 2024 | mag 2024 | giu 2024"},
		{"quarters", day(2023, time.January, 1), day(2024, time.March, 1), 6,
			"gen 2023 | apr 2023 | lug 2023 | ott 2023 | gen 2024"},
		{"half years", day(2023, time.January, 31), day(2026, time.June, 30), 8,
			"lug 2023 | gen 2024 | lug 2024 | gen 2025 | lug 2025 | gen 2026"},
		{"years", day(2010, time.March, 1), day(2026, time.June, 30), 9,
			"2012 | 2014 | 2016 | 2018 | 2020 | 2022 | 2024 | 2026"},
		{"centuries", day(1000, time.January, 1), day(9999, time.December, 31), 9,
			"1000 | 2000 | 3000 | 4000 | 5000 | 6000 | 7000 | 8000 | 9000"},
		{"days", day(2024, time.November, 15), day(2024, time.December, 15), 5,
			"15/11/2024 | 22/11/2024 | 29/11/2024 | 06/12/2024 | 13/12/2024"},
		{"few days", day(2024, time.November, 28), day(2024, time.November, 30), 5,
			"28/11/2024 | 29/11/2024 | 30/11/2024"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ticks := timeTicks(tc.from, tc.to, tc.max)
			if got := labels(ticks); got != tc.want {
				t.Errorf("ticks = %q, want %q", got, tc.want)
			}
			if len(ticks) > tc.max {
				t.Errorf("%d ticks, at most %d wanted", len(ticks), tc.max)
			}
			for _, tk := range ticks {
				if tk.At.Before(tc.from) || tk.At.After(tc.to) {
					t.Errorf("tick %v outside [%v, %v]", tk.At, tc.from, tc.to)
				}
			}
		})
	}
}

func TestClean(t *testing.T) {
	for in, want := range map[string]string{
		"Emilia-Romagna":      "Emilia-Romagna",
		"a\x00b\x01c":         "a\uFFFDb\uFFFDc",
		"bad \xff utf8":       "bad \uFFFD utf8",
		"  two\n\tlines  ":    " two lines ",
		"Südtirol \uFFFE":     "Südtirol \uFFFD",
		"valore \u0085 C1":    "valore \uFFFD C1",
		"already \uFFFD fine": "already \uFFFD fine",
		"emoji 🇮🇹 è permesso": "emoji 🇮🇹 è permesso",
	} {
		if got := clean(in); got != want {
			t.Errorf("clean(%q) = %q, want %q", in, got, want)
		}
	}
	if got := esc(`<script>alert("x")</script> & 'y'`); got != `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#39;y&#39;` {
		t.Errorf("esc = %q", got)
	}
}

func TestSafeHref(t *testing.T) {
	for in, want := range map[string]string{
		"/trasparenza/regioni/lazio":        "/trasparenza/regioni/lazio",
		"regioni/lazio?anno=2025#uffici":    "regioni/lazio?anno=2025#uffici",
		"https://www.poste.it/polis":        "https://www.poste.it/polis",
		"  /spazi  ":                        "/spazi",
		"mailto:trasparenza@example.org":    "mailto:trasparenza@example.org",
		"javascript:alert(1)":               "",
		"JaVaScRiPt:alert(1)":               "",
		"data:text/html,<script>":           "",
		"vbscript:x":                        "",
		"java\x00script:alert(1)":           "",
		"/a b":                              "/a b",
		"java\tscript:alert(1)":             "",
		" \njavascript:alert(1)":            "",
		"":                                  "",
		"http://[::1":                       "",
		"/regioni/\"onmouseover=\"alert(1)": "/regioni/\"onmouseover=\"alert(1)", // escaped when written
	} {
		if got := safeHref(in); got != want {
			t.Errorf("safeHref(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRegionIndex(t *testing.T) {
	for in, want := range map[string]string{
		"valle-d-aosta":                 "valle-d-aosta",
		"valle-daosta":                  "valle-d-aosta",
		"Valle d'Aosta/Vallée d'Aoste":  "valle-d-aosta",
		"trentino-alto-adige":           "trentino-alto-adige",
		"trentino-alto-adigesudtirol":   "trentino-alto-adige",
		"Trentino-Alto Adige/Südtirol":  "trentino-alto-adige",
		"trentino-alto-adige-suedtirol": "trentino-alto-adige",
		"Friuli Venezia Giulia":         "friuli-venezia-giulia",
		"EMILIA-ROMAGNA":                "emilia-romagna",
		"sicilia":                       "sicilia",
	} {
		i, ok := RegionIndex(in)
		if !ok || regions[i].slug != want {
			t.Errorf("RegionIndex(%q) = %d, %v; want %s", in, i, ok, want)
		}
	}
	for _, in := range []string{"", "corsica", "trentino", "valle", "sicilia-orientale", "01", "lazio lazio"} {
		if i, ok := RegionIndex(in); ok {
			t.Errorf("RegionIndex(%q) = %d, want unknown", in, i)
		}
	}
	// Every region has a square of its own on the grid.
	seen := map[[2]int]string{}
	for _, r := range regions {
		if r.col < 0 || r.col >= tileCols || r.row < 0 || r.row >= tileRows {
			t.Errorf("%s at (%d,%d) is off the grid", r.slug, r.col, r.row)
		}
		if other, dup := seen[[2]int{r.col, r.row}]; dup {
			t.Errorf("%s and %s share a square", r.slug, other)
		}
		seen[[2]int{r.col, r.row}] = r.slug
	}
	if len(regions) != 20 || len(seen) != 20 {
		t.Errorf("%d regions on %d squares, want 20", len(regions), len(seen))
	}
}

// TestContrast checks WCAG 2.1 AA for every colour pair the drawings use:
// 4.5:1 for text, 3:1 for lines, marks and outlines (on the white
// background every drawing paints first).
func TestContrast(t *testing.T) {
	if got := contrast("#000000", "#FFFFFF"); math.Abs(got-21) > 1e-9 {
		t.Fatalf("contrast(black, white) = %v, want 21", got)
	}
	if got := contrast(colPrimary, colWhite); math.Abs(got-5.57) > 0.01 {
		t.Fatalf("contrast(#0066CC, white) = %.3f, want 5.57", got)
	}
	if got := contrast(colWhite, colWhite); got != 1 {
		t.Fatalf("contrast(white, white) = %v", got)
	}
	check := func(what, fg, bg string, min float64) {
		t.Helper()
		if c := contrast(fg, bg); c < min {
			t.Errorf("%s: %s on %s has contrast %.2f, want >= %.1f", what, fg, bg, c, min)
		}
	}
	for _, c := range []string{colText, colMuted, colDanger, colDark} {
		check("text", c, colWhite, 4.5)
	}
	for _, c := range append(append([]string{}, linePalette...), colDanger, colDark, colMuted, colPrimary) {
		check("graphic", c, colWhite, 3)
	}
	check("bar on its track", colPrimary, colTrack, 3)
	check("track outline", colMuted, colWhite, 3)
	for i, fill := range tileScale {
		check("tile label", textOn(fill), fill, 4.5)
		if i > 0 && luminance(fill) >= luminance(tileScale[i-1]) {
			t.Errorf("tile scale is not darker at class %d", i)
		}
	}
	// Light tiles are set apart from the page by their outline.
	check("tile outline", colMuted, tileScale[0], 3)
}
