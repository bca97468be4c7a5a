package svg

import (
	"html/template"
	"math"
	"strings"
	"testing"
	"time"
)

// FuzzRender feeds arbitrary labels, links, values, dates and sizes to the
// three drawings: Render must not panic and must give well-formed XML with
// the accessible structure, finite coordinates and nothing executable.
//
//	go test ./portal/svg -run '^$' -fuzz FuzzRender -fuzztime 60s
func FuzzRender(f *testing.F) {
	jan := day(2024, time.January, 31).Unix()
	f.Add("Uffici completati", "/regioni/lazio", 2548.0, 6933.0, 0.61, jan, jan+86400*300, 720, 320)
	f.Add(`<script>alert(1)</script>`, "javascript:alert(1)", math.NaN(), math.Inf(1), math.Inf(-1), int64(0), int64(-1), 0, 0)
	f.Add("valle-daosta", "https://example.org/?a=1&b=2", 0.0, 0.0, 0.0, jan, jan, -1, 1<<30)
	f.Add("trentino-alto-adigesudtirol", "", -1e300, 1e300, 1.0, int64(math.MinInt64), int64(math.MaxInt64), 1, 1)
	f.Add("\xff\x00\x1b]]><!--", " \x7f", 1e-300, math.Copysign(0, -1), 0.2, jan, jan+1, 5000, 5000)
	f.Fuzz(func(t *testing.T, label, href string, v1, v2, v3 float64, s1, s2 int64, w, h int) {
		t1, t2 := time.Unix(s1, 0).UTC(), time.Unix(s2, 0).UTC()
		line := LineChart{
			Title: label, Desc: label, Unit: label, TargetLabel: label, ID: label,
			Width: w, Height: h, Target: v3, Deadline: t2,
			Lines: []Line{
				{Name: label, Points: []Point{{At: t1, Value: v1}, {At: t2, Value: v2}, {At: t1.AddDate(0, 1, 0), Value: v3}}},
				{Name: label, Dashed: true, Points: []Point{{At: t2, Value: v2}}},
				{},
			},
			Marks: []Mark{{At: t1, Value: v3, Label: label}, {At: t2, Value: v1}},
		}
		bar := BarChart{Title: label, Desc: label, Unit: label, Width: w, Bars: []Bar{
			{Label: label, Value: v1, Max: v2, Note: label},
			{Label: label, Value: v2},
			{Value: v3, Max: v3},
		}}
		tiles := TileMap{Title: label, Desc: label, Legend: label, Tiles: []Tile{
			{Region: label, Label: label, Value: v1, Text: label, Href: href},
			{Region: "lazio", Label: label, Value: v2, Text: label, Href: href},
			{Region: "sicilia", Value: v3, Href: href},
		}}
		for name, out := range map[string]template.HTML{"line": line.Render(), "bar": bar.Render(), "tilemap": tiles.Render()} {
			root, err := parseSVG(out)
			if err != nil {
				t.Fatalf("%s: not well-formed: %v\n%s", name, err, out)
			}
			checkDrawing(t, root)
			if strings.Contains(string(out), "<script") || strings.Contains(strings.ToLower(string(out)), `href="javascript:`) {
				t.Fatalf("%s: executable content in\n%s", name, out)
			}
		}
	})
}
