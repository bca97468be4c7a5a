package svg

import (
	"bytes"
	"flag"
	"html/template"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.svg from the output")

func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// monthly returns cumulative counts at the end of each month from the
// month of start, one value per month.
func monthly(startY int, startM time.Month, values ...float64) []Point {
	pts := make([]Point, len(values))
	for i, v := range values {
		// Day 0 of the next month is the last day of this one.
		pts[i] = Point{At: time.Date(startY, startM+time.Month(i)+1, 0, 0, 0, 0, 0, time.UTC), Value: v}
	}
	return pts
}

// officesChart is the portal's main chart with the programme's public
// figures (polis_fatti_pubblici.csv: F15, F26, F30, F45; target F28).
func officesChart() LineChart {
	return LineChart{
		Title: "Uffici Polis completati",
		Desc:  "Uffici postali con tutti gli interventi conclusi secondo il gemello digitale, a fine mese",
		Lines: []Line{
			{Name: "Uffici completati (gemello digitale)", Points: monthly(2023, time.January,
				12, 45, 98, 170, 260, 365, 480, 600, 730, 880, 1050, 1490,
				1560, 1640, 1730, 1830, 1930, 2040, 2150, 2260, 2370, 2460, 2545, 2790,
				2900, 3020, 3150, 3290, 3440, 3600, 3760, 3930, 4100, 4280, 4460, 4650)},
			{Name: "ATM evoluti installati", Points: monthly(2024, time.January,
				180, 240, 300, 350, 400, 450, 500, 560, 610, 660, 733, 790)},
			{Name: "Proiezione al ritmo attuale", Dashed: true, Points: []Point{
				{At: day(2025, time.December, 31), Value: 4650},
				{At: day(2026, time.June, 30), Value: 5680},
			}},
		},
		Target:      6933,
		TargetLabel: "Obiettivo PNRR: 6.933 interventi (F28)",
		Deadline:    day(2026, time.June, 30),
		Marks: []Mark{
			{At: day(2023, time.February, 1), Value: 40, Label: "F15: 40 uffici con lavori completati (Poste, 01/02/2023)"},
			{At: day(2023, time.December, 31), Value: 1500, Label: "F26: circa 1.500 uffici completati (audizione AD Poste, 31/12/2023)"},
			{At: day(2024, time.November, 30), Value: 2548, Label: "F30: 2.548 interventi conclusi (Poste, 30/11/2024)"},
			{At: day(2026, time.January, 16), Value: 4700, Label: "F45: circa 4.700 interventi conclusi (Poste, 16/01/2026)"},
		},
		Unit: "uffici",
	}
}

func assetsChart() BarChart {
	return BarChart{
		Title: "Apparati installati rispetto agli obiettivi",
		Desc:  "Conteggio del gemello digitale; obiettivi pubblicati da Poste Italiane il 01/02/2023",
		Bars: []Bar{
			{Label: "Chioschi self-service PA (totem)", Value: 845, Max: 4000, Note: "di 4.000 (fonte F17)"},
			{Label: "ATM Postamat evoluti", Value: 733, Max: 7000, Note: "di 7.000 (fonte F16)"},
			{Label: "Colonnine di ricarica", Value: 354, Max: 5000, Note: "di 5.000 (fonte F19)"},
			{Label: "Impianti fotovoltaici", Value: 264, Max: 1000, Note: "di 1.000 (fonte F20)"},
			{Label: "Sensori ambientali e smart building", Value: 102, Max: 1000, Note: "di 1.000 (fonte F21)"},
			{Label: "Locker pacchi", Value: 20, Max: 500, Note: "di 500 (fonte F18)"},
		},
		Unit: "unità",
	}
}

func coworkingChart() BarChart {
	return BarChart{
		Title: "Spazi per l'Italia: interventi per stato",
		Bars: []Bar{
			{Label: "Interventi avviati", Value: 83, Note: "al 30/11/2024 (fonte F40)"},
			{Label: "Interventi conclusi", Value: 48, Note: "al 30/11/2024 (fonte F41)"},
			{Label: "Interventi conclusi nel gemello digitale", Value: 51.5},
		},
		Unit: "spazi",
	}
}

// regionShares are offices completed / offices in the programme, one per
// region, with the slug variants the registry's names can give.
var regionShares = []struct {
	slug string
	v    float64
}{
	{"piemonte", 0.58}, {"valle-daosta", 0.41}, {"lombardia", 0.63}, {"trentino-alto-adigesudtirol", 0.72},
	{"veneto", 0.66}, {"friuli-venezia-giulia", 0.69}, {"liguria", 0.47}, {"emilia-romagna", 0.61},
	{"toscana", 0.55}, {"umbria", 0.52}, {"marche", 0.57}, {"lazio", 0.49}, {"abruzzo", 0.44},
	{"campania", 0.38}, {"puglia", 0.42}, {"basilicata", 0.19}, {"calabria", 0.27},
	{"sicilia", 0.31}, {"sardegna", 0.83},
}

func regionsMap() TileMap {
	m := TileMap{
		Title:  "Uffici completati per regione",
		Desc:   "Quota degli uffici del programma con tutti gli interventi conclusi",
		Legend: "uffici completati",
	}
	names := map[string]string{"valle-daosta": "Valle d'Aosta", "trentino-alto-adigesudtirol": "Trentino-Alto Adige/Südtirol"}
	for _, r := range regionShares {
		i, _ := RegionIndex(r.slug)
		name := regions[i].name
		if n, ok := names[r.slug]; ok {
			name = n
		}
		m.Tiles = append(m.Tiles, Tile{
			Region: r.slug,
			Value:  r.v,
			Text:   name + ": " + FormatPercent(r.v) + " degli uffici completati",
			Href:   "/trasparenza/regioni/" + regions[i].slug,
		})
	}
	// Molise has no tile (no data); a tile outside Italy is ignored.
	m.Tiles = append(m.Tiles, Tile{Region: "corsica", Value: 0.5, Text: "Corsica"})
	return m
}

// goldenCases are the drawings kept in testdata/NAME.golden.svg.
var goldenCases = []struct {
	name   string
	render func() template.HTML
}{
	{"linechart", func() template.HTML { return officesChart().Render() }},
	{"linechart-onepoint", func() template.HTML {
		return LineChart{Title: "Spazi di coworking aperti", Unit: "spazi",
			Lines: []Line{{Name: "Spazi aperti", Points: []Point{{At: day(2024, time.November, 30), Value: 48}}}}}.Render()
	}},
	{"linechart-empty", func() template.HTML {
		return LineChart{Title: "Locker installati", Lines: []Line{{Name: "Locker"}}, Unit: "locker"}.Render()
	}},
	{"barchart", func() template.HTML { return assetsChart().Render() }},
	{"barchart-relative", func() template.HTML { return coworkingChart().Render() }},
	{"tilemap", func() template.HTML { return regionsMap().Render() }},
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := []byte(tc.render())
			golden := filepath.Join("testdata", tc.name+".golden.svg")
			if *update {
				if err := os.MkdirAll("testdata", 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./portal/svg -run TestGolden -update)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from the output (run go test ./portal/svg -run TestGolden -update and look at it)", golden)
			}
			checkDrawing(t, mustParse(t, template.HTML(got)))
		})
	}
}
