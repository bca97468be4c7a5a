package svg

import (
	"html/template"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// desc returns the text of a drawing's <desc>.
func desc(t *testing.T, root *node) string {
	t.Helper()
	d := root.byName("desc")
	if len(d) != 1 {
		t.Fatalf("%d <desc> elements", len(d))
	}
	return d[0].Text
}

// texts returns the visible texts of a drawing (its <text> elements).
func texts(root *node) []string {
	var out []string
	for _, n := range root.byName("text") {
		out = append(out, n.allText())
	}
	return out
}

const hostile = `<script>alert("x")</script>&amp;]]><!--'"` + "\x00\x1b\xff"

func TestHostileLabels(t *testing.T) {
	at := day(2024, time.March, 1)
	for name, out := range map[string]template.HTML{
		"line": LineChart{Title: hostile, Desc: hostile, Unit: hostile, TargetLabel: hostile, Target: 10, Deadline: at, ID: hostile,
			Lines: []Line{{Name: hostile, Points: []Point{{At: at, Value: 3}, {At: at.AddDate(0, 2, 0), Value: 5}}}},
			Marks: []Mark{{At: at, Value: 4, Label: hostile}}}.Render(),
		"bar": BarChart{Title: hostile, Desc: hostile, Unit: hostile, ID: hostile,
			Bars: []Bar{{Label: hostile, Value: 1, Max: 2, Note: hostile}}}.Render(),
		"tilemap": TileMap{Title: hostile, Desc: hostile, Legend: hostile, ID: hostile, Tiles: []Tile{
			{Region: "lazio", Label: hostile, Text: hostile, Href: `/x"><script>alert(1)</script>`, Value: 0.5},
			{Region: "toscana", Text: "Toscana", Href: "javascript:alert(1)", Value: 0.5},
			{Region: hostile, Text: hostile, Value: 0.5},
		}}.Render(),
	} {
		t.Run(name, func(t *testing.T) {
			for _, bad := range []string{"<script", "<!--", "]]>", "\x00", "\x1b", "\xff", "javascript:"} {
				if strings.Contains(string(out), bad) {
					t.Errorf("output contains %q unescaped", bad)
				}
			}
			root := mustParse(t, out)
			checkDrawing(t, root)
			// The hostile text is still there for people to read, as text.
			if !strings.Contains(root.byName("title")[0].Text, `<script>alert("x")</script>&amp;`) {
				t.Errorf("title = %q, want the label as text", root.byName("title")[0].Text)
			}
		})
	}
}

func TestDeterministic(t *testing.T) {
	for _, tc := range goldenCases {
		if a, b := tc.render(), tc.render(); a != b {
			t.Errorf("%s: two renders differ", tc.name)
		}
	}
	// The tile map draws in its own order, not the input's.
	m := regionsMap()
	want := m.Render()
	slices.Reverse(m.Tiles)
	m.Tiles[len(m.Tiles)-1], m.Tiles[0] = m.Tiles[0], m.Tiles[len(m.Tiles)-1]
	if got := m.Render(); got != want {
		t.Error("tile map output depends on the order of the tiles")
	}
	// Lines are drawn in date order and the caller's slice is untouched.
	c := officesChart()
	wantLine := c.Render()
	pts := c.Lines[0].Points
	slices.Reverse(pts)
	first := pts[0]
	if got := c.Render(); got != wantLine {
		t.Error("line chart output depends on the order of the points")
	}
	if pts[0] != first {
		t.Error("Render reordered the caller's points")
	}
}

func TestIDs(t *testing.T) {
	idOf := func(out template.HTML) string {
		root := mustParse(t, out)
		return strings.Fields(root.Attr["aria-labelledby"])[0]
	}
	a := idOf(LineChart{Title: "Uffici completati"}.Render())
	b := idOf(LineChart{Title: "ATM installati"}.Render())
	c := idOf(BarChart{Title: "Uffici completati"}.Render())
	d := idOf(TileMap{Title: "Uffici completati"}.Render())
	if len(map[string]bool{a: true, b: true, c: true, d: true}) != 4 {
		t.Errorf("ids clash: %s %s %s %s", a, b, c, d)
	}
	if a != idOf(LineChart{Title: "Uffici completati"}.Render()) {
		t.Error("id is not stable")
	}
	if got := idOf(LineChart{Title: "x", ID: "grafico <1>"}.Render()); got != "polis-grafico1-title" {
		t.Errorf("given ID gave %q", got)
	}
	if got := idOf(LineChart{Title: "x", ID: "<>"}.Render()); !strings.HasPrefix(got, "polis-linechart-") {
		t.Errorf("an ID with no usable character gave %q, want the hash", got)
	}
}

// plot is where a line chart's axes say the plot is.
type plot struct{ left, right, top, bottom float64 }

func plotOf(t *testing.T, root *node) plot {
	t.Helper()
	ax, ay := root.byClass("polis-axis-x"), root.byClass("polis-axis-y")
	if len(ax) != 1 || len(ay) != 1 {
		t.Fatalf("%d x axes and %d y axes", len(ax), len(ay))
	}
	return plot{left: ax[0].f(t, "x1"), right: ax[0].f(t, "x2"), top: ay[0].f(t, "y1"), bottom: ay[0].f(t, "y2")}
}

func (p plot) contains(x, y float64) bool {
	return x >= p.left-0.05 && x <= p.right+0.05 && y >= p.top-0.05 && y <= p.bottom+0.05
}

func TestLineChartDescribes(t *testing.T) {
	root := mustParse(t, officesChart().Render())
	got := desc(t, root)
	for _, want := range []string{
		"Uffici postali con tutti gli interventi conclusi secondo il gemello digitale, a fine mese.",
		"Periodo: dal 31/01/2023 al 30/06/2026.",
		"Uffici completati (gemello digitale): ultimo valore 4.650 uffici al 31/12/2025.",
		"ATM evoluti installati: ultimo valore 790 uffici al 31/12/2024.",
		"Obiettivo: 6.933 uffici (Obiettivo PNRR: 6.933 interventi (F28)).",
		"Scadenza: 30/06/2026.",
		"Dati pubblicati: F15: 40 uffici con lavori completati (Poste, 01/02/2023); F26:",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("desc lacks %q:\n%s", want, got)
		}
	}
	vis := strings.Join(texts(root), "|")
	for _, want := range []string{"scadenza 30/06/2026", "Obiettivo PNRR: 6.933 interventi (F28)", "uffici", "gen 2024", "8.000", "dato pubblicato"} {
		if !strings.Contains(vis, want) {
			t.Errorf("no text %q in %s", want, vis)
		}
	}
	// Each line has its own colour and dash pattern.
	styles := map[string]bool{}
	for _, l := range root.byName("polyline") {
		styles[l.Attr["stroke"]+"/"+l.Attr["stroke-dasharray"]] = true
	}
	if len(styles) != 3 {
		t.Errorf("3 lines drawn in %d styles: %v", len(styles), styles)
	}
	dashes := map[string]bool{}
	for _, l := range root.byName("polyline") {
		dashes[l.Attr["stroke-dasharray"]] = true
	}
	if len(dashes) != 3 {
		t.Errorf("lines differ only by colour: dash patterns %v", dashes)
	}
	if marks := root.byClass("polis-mark"); len(marks) != 4 || marks[0].byName("title")[0].Text != "F15: 40 uffici con lavori completati (Poste, 01/02/2023)" {
		t.Errorf("marks = %d, want 4 with their label as tooltip", len(marks))
	}
}

func TestLineChartEdgeCases(t *testing.T) {
	at := day(2024, time.January, 31)
	month := func(i int) time.Time { return time.Date(2024, time.February+time.Month(i), 0, 0, 0, 0, 0, time.UTC) }
	for _, tc := range []struct {
		name  string
		chart LineChart
		check func(t *testing.T, root *node, desc string)
	}{
		{"no lines", LineChart{Title: "Vuoto"}, func(t *testing.T, root *node, desc string) {
			if !slices.Contains(texts(root), emptyMessage) || !strings.Contains(desc, emptyMessage) {
				t.Errorf("no %q shown and told", emptyMessage)
			}
			if len(root.byClass("polis-legend")) != 0 {
				t.Error("a legend for nothing")
			}
		}},
		{"only a target", LineChart{Title: "Solo obiettivo", Target: 250, Unit: "spazi"}, func(t *testing.T, root *node, desc string) {
			if !strings.Contains(desc, emptyMessage) || !strings.Contains(desc, "Obiettivo: 250 spazi.") {
				t.Errorf("desc = %q", desc)
			}
		}},
		{"an empty line among others", LineChart{Lines: []Line{
			{Name: "Locker", Points: nil},
			{Name: "ATM", Points: []Point{{At: month(0), Value: 10}, {At: month(1), Value: 20}}},
		}}, func(t *testing.T, root *node, desc string) {
			if !strings.Contains(desc, "Locker: nessun dato.") || !strings.Contains(desc, "ATM: ultimo valore 20 al 29/02/2024.") {
				t.Errorf("desc = %q", desc)
			}
			if !slices.Contains(texts(root), "Locker") {
				t.Error("the empty line is not in the legend")
			}
			if n := len(root.byName("polyline")); n != 1 {
				t.Errorf("%d polylines, want 1", n)
			}
		}},
		{"one point", LineChart{Lines: []Line{{Name: "Spazi", Points: []Point{{At: at, Value: 48}}}}}, func(t *testing.T, root *node, desc string) {
			p := plotOf(t, root)
			dots := root.byClass("polis-line")[0].byName("circle")
			if len(dots) != 1 {
				t.Fatalf("one point drawn as %d circles", len(dots))
			}
			if cx := dots[0].f(t, "cx"); math.Abs(cx-(p.left+p.right)/2) > 0.5 {
				t.Errorf("the only point is at x=%v, not centred in %v..%v", cx, p.left, p.right)
			}
			if !strings.Contains(desc, "ultimo valore 48 al 31/01/2024") {
				t.Errorf("desc = %q", desc)
			}
		}},
		{"all zero", LineChart{Lines: []Line{{Name: "Locker", Points: []Point{{At: month(0)}, {At: month(1)}, {At: month(2)}}}}}, func(t *testing.T, root *node, desc string) {
			p := plotOf(t, root)
			var yLabels []string
			for _, n := range root.byClass("polis-grid")[0].byName("text") {
				yLabels = append(yLabels, n.Text)
			}
			if !slices.Equal(yLabels, []string{"0", "1"}) {
				t.Errorf("y labels = %v, want [0 1]", yLabels)
			}
			pts := root.byName("polyline")[0].Attr["points"]
			for _, xy := range strings.Fields(pts) {
				if !strings.HasSuffix(xy, ","+num(p.bottom)) {
					t.Errorf("zero drawn at %s, not on the x axis y=%v", xy, p.bottom)
				}
			}
		}},
		{"marks and deadline outside the lines", LineChart{
			Lines:    []Line{{Name: "Uffici", Points: []Point{{At: month(3), Value: 100}, {At: month(4), Value: 150}}}},
			Marks:    []Mark{{At: month(-6), Value: 20, Label: "prima"}, {At: month(8), Value: 900, Label: "dopo"}},
			Deadline: day(2025, time.June, 30),
			Target:   1000,
		}, func(t *testing.T, root *node, desc string) {
			p := plotOf(t, root)
			for _, m := range root.byClass("polis-mark") {
				if !p.contains(m.f(t, "cx"), m.f(t, "cy")) {
					t.Errorf("mark %q at (%v,%v) outside the plot %+v", m.byName("title")[0].Text, m.Attr["cx"], m.Attr["cy"], p)
				}
			}
			dl := root.byClass("polis-deadline")[0]
			if x := dl.byName("line")[0].f(t, "x1"); math.Abs(x-p.right) > 0.05 {
				t.Errorf("the deadline, the latest date, is at x=%v, not at the right end %v", x, p.right)
			}
			if got := dl.byName("text")[0].Text; got != "scadenza 30/06/2025" {
				t.Errorf("deadline label %q", got)
			}
			if y := root.byClass("polis-target")[0].byName("line")[0].f(t, "y1"); y < p.top || y > p.bottom {
				t.Errorf("target at y=%v outside %v..%v", y, p.top, p.bottom)
			}
			if !strings.Contains(desc, "Periodo: dal 31/07/2023 al 30/06/2025.") {
				t.Errorf("desc = %q", desc)
			}
		}},
		{"invalid values", LineChart{Lines: []Line{{Name: "Uffici", Points: []Point{
			{At: month(0), Value: 1}, {At: month(1), Value: math.NaN()}, {At: month(2), Value: math.Inf(1)},
			{At: time.Time{}, Value: 5}, {At: month(3), Value: 4},
		}}}, Marks: []Mark{{At: month(1), Value: math.Inf(-1)}}, Target: math.NaN()}, func(t *testing.T, root *node, desc string) {
			if !strings.Contains(desc, "4 valori non validi non sono mostrati.") {
				t.Errorf("desc = %q", desc)
			}
			if n := len(strings.Fields(root.byName("polyline")[0].Attr["points"])); n != 2 {
				t.Errorf("%d points drawn, want the 2 valid ones", n)
			}
			if len(root.byClass("polis-target")) != 0 || len(root.byClass("polis-mark")) != 0 {
				t.Error("a NaN target or an infinite mark was drawn")
			}
		}},
		{"unsorted points", LineChart{Lines: []Line{{Name: "Uffici", Points: []Point{
			{At: month(2), Value: 30}, {At: month(0), Value: 10}, {At: month(1), Value: 20},
		}}}}, func(t *testing.T, root *node, desc string) {
			prev := math.Inf(-1)
			for _, xy := range strings.Fields(root.byName("polyline")[0].Attr["points"]) {
				x, _, _ := strings.Cut(xy, ",")
				n := (&node{Attr: map[string]string{"x": x}}).f(t, "x")
				if n <= prev {
					t.Errorf("points not in date order: %s", root.byName("polyline")[0].Attr["points"])
				}
				prev = n
			}
			if !strings.Contains(desc, "ultimo valore 30 al 31/03/2024") {
				t.Errorf("desc = %q", desc)
			}
		}},
		{"negative values", LineChart{Lines: []Line{{Name: "Saldo", Points: []Point{{At: month(0), Value: -120.5}, {At: month(1), Value: 300}}}}}, func(t *testing.T, root *node, desc string) {
			p := plotOf(t, root)
			var yLabels []string
			for _, n := range root.byClass("polis-grid")[0].byName("text") {
				yLabels = append(yLabels, n.Text)
			}
			if yLabels[0] != "-200" {
				t.Errorf("y labels = %v, want them to start at -200", yLabels)
			}
			if y := root.byClass("polis-axis-x")[0].f(t, "y1"); y >= p.bottom {
				t.Errorf("the zero line (y=%v) is not above the bottom (%v)", y, p.bottom)
			}
		}},
		{"many lines grow the viewBox", LineChart{Height: 200, Lines: func() []Line {
			var ls []Line
			for i := range 24 {
				ls = append(ls, Line{Name: strings.Repeat("serie molto lunga ", 2) + FormatNumber(float64(i), 0), Points: []Point{{At: month(0), Value: float64(i)}, {At: month(1), Value: float64(i + 1)}}})
			}
			return ls
		}()}, func(t *testing.T, root *node, desc string) {
			p := plotOf(t, root)
			if p.bottom-p.top < linePlotMinH-0.05 {
				t.Errorf("plot is %v high, want at least %v", p.bottom-p.top, linePlotMinH)
			}
			if vb := strings.Fields(root.Attr["viewBox"]); vb[3] == "200" {
				t.Error("viewBox did not grow for the legend")
			}
		}},
		{"extreme values and sizes", LineChart{Width: -5, Height: 1 << 40, Lines: []Line{{Name: "x", Points: []Point{
			{At: day(1000, time.January, 1), Value: -math.MaxFloat64}, {At: day(9999, time.December, 31), Value: math.MaxFloat64},
			{At: day(10000, time.January, 1), Value: 1},
		}}}}, func(t *testing.T, root *node, desc string) {
			if vb := root.Attr["viewBox"]; vb != "0 0 720 4000" {
				t.Errorf("viewBox = %q", vb)
			}
			if !strings.Contains(desc, "1 valore non valido non è mostrato.") {
				t.Errorf("desc = %q", desc)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := tc.chart.Render()
			root := mustParse(t, out)
			checkDrawing(t, root)
			tc.check(t, root, desc(t, root))
		})
	}
}

func TestBarChart(t *testing.T) {
	root := mustParse(t, assetsChart().Render())
	checkDrawing(t, root)
	d := desc(t, root)
	for _, want := range []string{
		"Conteggio del gemello digitale; obiettivi pubblicati da Poste Italiane il 01/02/2023.",
		"ATM Postamat evoluti: 733 unità (10,5%) di 7.000 (fonte F16).",
		"Locker pacchi: 20 unità (4%) di 500 (fonte F18).",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("desc lacks %q:\n%s", want, d)
		}
	}
	bars := root.byClass("polis-bar")
	if len(bars) != 6 {
		t.Fatalf("%d bars, want 6", len(bars))
	}
	track := bars[1].byClass("polis-track")[0]
	value := bars[1].byClass("polis-value")[0]
	if got, want := value.f(t, "width"), track.f(t, "width")*733/7000; math.Abs(got-want) > 0.1 {
		t.Errorf("733 of 7000 drawn %v wide, want %v", got, want)
	}
	if got := bars[1].byClass("polis-percent")[0].Text; got != "10,5%" {
		t.Errorf("percentage %q", got)
	}

	for _, tc := range []struct {
		name  string
		bar   Bar
		frac  float64 // of the bar area; -1: no value bar
		track bool
		text  string // the line under the bar
		pct   string
	}{
		{"half", Bar{Label: "a", Value: 50, Max: 100}, 0.5, true, "50 su 100", "50%"},
		{"over the max", Bar{Label: "a", Value: 120, Max: 100, Note: "oltre l'obiettivo"}, 1, true, "120 oltre l'obiettivo", "120%"},
		{"zero", Bar{Label: "a", Value: 0, Max: 100}, -1, true, "0 su 100", "0%"},
		{"negative", Bar{Label: "a", Value: -5, Max: 100}, -1, true, "-5 su 100", "-5%"},
		{"NaN value", Bar{Label: "a", Value: math.NaN(), Max: 100}, -1, true, "n.d. su 100", ""},
		{"no max", Bar{Label: "a", Value: 7}, 1, false, "7", ""},
		{"NaN max", Bar{Label: "a", Value: 7, Max: math.NaN()}, 1, false, "7", ""},
		{"tiny", Bar{Label: "a", Value: 1, Max: 1e9}, 2.0 / 688, true, "1 su 1.000.000.000", "0%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := mustParse(t, BarChart{Bars: []Bar{tc.bar}}.Render())
			checkDrawing(t, root)
			bar := root.byClass("polis-bar")[0]
			if got := len(bar.byClass("polis-track")) == 1; got != tc.track {
				t.Errorf("track drawn: %v, want %v", got, tc.track)
			}
			v := bar.byClass("polis-value")
			switch {
			case tc.frac < 0 && len(v) != 0:
				t.Errorf("a bar drawn for %v", tc.bar.Value)
			case tc.frac >= 0 && len(v) != 1:
				t.Errorf("no bar drawn for %v", tc.bar.Value)
			case tc.frac >= 0:
				if got := v[0].f(t, "width"); math.Abs(got-tc.frac*688) > 0.1 {
					t.Errorf("bar %v wide, want %v", got, tc.frac*688)
				}
			}
			ts := texts(bar)
			if got := ts[len(ts)-1]; got != tc.text {
				t.Errorf("value line %q, want %q", got, tc.text)
			}
			pct := ""
			if p := bar.byClass("polis-percent"); len(p) == 1 {
				pct = p[0].Text
			}
			if pct != tc.pct {
				t.Errorf("percentage %q, want %q", pct, tc.pct)
			}
		})
	}

	// Bars without Max share the scale of the largest.
	root = mustParse(t, coworkingChart().Render())
	var widths []float64
	for _, v := range root.byClass("polis-value") {
		widths = append(widths, v.f(t, "width"))
	}
	if len(widths) != 3 || widths[0] != 688 || math.Abs(widths[1]-688*48.0/83) > 0.1 {
		t.Errorf("relative widths %v", widths)
	}
	if len(root.byClass("polis-track")) != 0 || len(root.byClass("polis-percent")) != 0 {
		t.Error("track or percentage without Max")
	}

	root = mustParse(t, BarChart{Title: "Vuoto"}.Render())
	checkDrawing(t, root)
	if !slices.Contains(texts(root), emptyMessage) || !strings.Contains(desc(t, root), emptyMessage) {
		t.Error("an empty bar chart does not say so")
	}
}

func TestTileMap(t *testing.T) {
	root := mustParse(t, regionsMap().Render())
	checkDrawing(t, root)
	tiles := root.byClass("polis-tile")
	if len(tiles) != 20 {
		t.Fatalf("%d tiles, want 20", len(tiles))
	}
	byRegion := map[string]*node{}
	for _, n := range tiles {
		byRegion[n.Attr["data-region"]] = n
	}
	// Slug variants land on their region.
	vda := byRegion["valle-d-aosta"]
	if vda.Name != "a" || vda.Attr["href"] != "/trasparenza/regioni/valle-d-aosta" || vda.Attr["aria-label"] != "Valle d'Aosta: 41% degli uffici completati" {
		t.Errorf("Valle d'Aosta tile = <%s %v>", vda.Name, vda.Attr)
	}
	if taa := byRegion["trentino-alto-adige"]; taa.byName("title")[0].Text != "Trentino-Alto Adige/Südtirol: 72% degli uffici completati" {
		t.Errorf("Trentino tile title %q", taa.byName("title")[0].Text)
	}
	// Molise has no data: a plain group with a dashed outline.
	mol := byRegion["molise"]
	if mol.Name != "g" || mol.byName("rect")[0].Attr["stroke-dasharray"] == "" || mol.byName("title")[0].Text != "Molise: nessun dato" {
		t.Errorf("Molise tile = <%s %v>", mol.Name, mol.Attr)
	}
	d := desc(t, root)
	for _, want := range []string{
		"Mappa delle 20 regioni italiane, colorate per uffici completati in 5 classi da 0 a 100%.",
		"Sardegna: 83% degli uffici completati",
		"Senza dati: Molise.",
		"1 voce ignorata (regione non riconosciuta o ripetuta: corsica).",
	} {
		if !strings.Contains(d, want) {
			t.Errorf("desc lacks %q:\n%s", want, d)
		}
	}
	if !slices.Contains(texts(root), "nessun dato") {
		t.Error("legend lacks the no-data entry")
	}

	for _, tc := range []struct {
		name  string
		tile  Tile
		fill  string // "": no data
		label string
		link  bool
		text  string
	}{
		{"zero", Tile{Region: "lazio", Value: 0}, tileScale[0], "LAZ", false, "Lazio: 0%"},
		{"class edge", Tile{Region: "lazio", Value: 0.2}, tileScale[1], "LAZ", false, "Lazio: 20%"},
		{"one", Tile{Region: "lazio", Value: 1}, tileScale[4], "LAZ", false, "Lazio: 100%"},
		{"above one", Tile{Region: "lazio", Value: 7}, tileScale[4], "LAZ", false, "Lazio: 100%"},
		{"below zero", Tile{Region: "lazio", Value: -1}, tileScale[0], "LAZ", false, "Lazio: 0%"},
		{"NaN", Tile{Region: "lazio", Value: math.NaN(), Label: "LZ"}, "", "LZ", false, "Lazio: nessun dato"},
		{"infinite", Tile{Region: "lazio", Value: math.Inf(1)}, "", "LAZ", false, "Lazio: nessun dato"},
		{"link", Tile{Region: "lazio", Value: 0.5, Href: "/regioni/lazio", Text: "Lazio: metà"}, tileScale[2], "LAZ", true, "Lazio: metà"},
		{"unsafe link", Tile{Region: "lazio", Value: 0.5, Href: "javascript:alert(1)"}, tileScale[2], "LAZ", false, "Lazio: 50%"},
		{"long label", Tile{Region: "lazio", Value: 0.5, Label: "Regione Lazio"}, tileScale[2], "Regio…", false, "Lazio: 50%"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := mustParse(t, TileMap{Tiles: []Tile{tc.tile}}.Render())
			checkDrawing(t, root)
			var tile *node
			for _, n := range root.byClass("polis-tile") {
				if n.Attr["data-region"] == "lazio" {
					tile = n
				}
			}
			rect := tile.byName("rect")[0]
			if tc.fill == "" {
				if rect.Attr["fill"] != colWhite || rect.Attr["stroke-dasharray"] == "" {
					t.Errorf("no-data tile drawn %v", rect.Attr)
				}
			} else if rect.Attr["fill"] != tc.fill {
				t.Errorf("fill %s, want %s", rect.Attr["fill"], tc.fill)
			}
			if got := tile.byName("text")[0].Text; got != tc.label {
				t.Errorf("label %q, want %q", got, tc.label)
			}
			if got := tile.Name == "a"; got != tc.link {
				t.Errorf("linked: %v, want %v", got, tc.link)
			}
			if tc.link && tile.Attr["aria-label"] != tc.text {
				t.Errorf("aria-label %q, want %q", tile.Attr["aria-label"], tc.text)
			}
			if got := tile.byName("title")[0].Text; got != tc.text {
				t.Errorf("title %q, want %q", got, tc.text)
			}
			if n := len(root.byClass("polis-tile")); n != 20 {
				t.Errorf("%d tiles, want all 20", n)
			}
		})
	}

	// A second tile for a region is ignored, and told.
	root = mustParse(t, TileMap{Tiles: []Tile{
		{Region: "lazio", Value: 0.1}, {Region: "Lazio", Value: 0.9}, {Region: "atlantide"}, {Region: ""},
	}}.Render())
	if got := root.all(func(n *node) bool { return n.Attr["data-region"] == "lazio" })[0].byName("rect")[0].Attr["fill"]; got != tileScale[0] {
		t.Errorf("the second Lazio tile won: fill %s", got)
	}
	if d := desc(t, root); !strings.Contains(d, "3 voci ignorate (regione non riconosciuta o ripetuta: Lazio, atlantide, ).") {
		t.Errorf("desc = %q", d)
	}
}

// BenchmarkRender measures the portal's three drawings with realistic
// inputs (the golden ones).
func BenchmarkRender(b *testing.B) {
	line, bar, tiles := officesChart(), assetsChart(), regionsMap()
	b.Run("LineChart", func(b *testing.B) {
		for b.Loop() {
			_ = line.Render()
		}
	})
	b.Run("BarChart", func(b *testing.B) {
		for b.Loop() {
			_ = bar.Render()
		}
	})
	b.Run("TileMap", func(b *testing.B) {
		for b.Loop() {
			_ = tiles.Render()
		}
	})
}
