package svg_test

import (
	"fmt"
	"html"
	"html/template"
	"regexp"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/svg"
)

// descOf returns what a screen reader announces after the title: the text
// of the drawing's <desc>, unescaped.
func descOf(out template.HTML) string {
	m := regexp.MustCompile(`<desc id="[^"]+">([^<]*)</desc>`).FindStringSubmatch(string(out))
	if m == nil {
		return ""
	}
	return html.UnescapeString(m[1])
}

func ExampleLineChart_Render() {
	at := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	chart := svg.LineChart{
		Title: "Uffici Polis completati",
		Lines: []svg.Line{{Name: "Uffici completati", Points: []svg.Point{
			{At: at(2023, time.December, 31), Value: 1490},
			{At: at(2024, time.June, 30), Value: 2040},
			{At: at(2024, time.December, 31), Value: 2790},
		}}},
		Target:      6933,
		TargetLabel: "obiettivo 2026",
		Deadline:    at(2026, time.June, 30),
		Marks:       []svg.Mark{{At: at(2024, time.November, 30), Value: 2548, Label: "F30: 2.548 interventi conclusi"}},
		Unit:        "uffici",
	}
	out := chart.Render() // template.HTML: put it in a page with {{.}}
	fmt.Println(descOf(out))
	// Output:
	// Periodo: dal 31/12/2023 al 30/06/2026. Uffici completati: ultimo valore 2.790 uffici al 31/12/2024. Obiettivo: 6.933 uffici (obiettivo 2026). Scadenza: 30/06/2026. Dato pubblicato: F30: 2.548 interventi conclusi.
}

func ExampleBarChart_Render() {
	chart := svg.BarChart{
		Title: "Apparati installati",
		Bars: []svg.Bar{
			{Label: "ATM evoluti", Value: 733, Max: 7000, Note: "di 7.000 (fonte F16)"},
			{Label: "Locker", Value: 20, Max: 500},
		},
		Unit: "unità",
	}
	fmt.Println(descOf(chart.Render()))
	// Output:
	// ATM evoluti: 733 unità (10,5%) di 7.000 (fonte F16). Locker: 20 unità (4%) su 500.
}

func ExampleTileMap_Render() {
	m := svg.TileMap{
		Title:  "Uffici completati per regione",
		Legend: "uffici completati",
		Tiles: []svg.Tile{
			{Region: "emilia-romagna", Label: "ER", Value: 0.61, Text: "Emilia-Romagna: 61% degli uffici completati", Href: "/regioni/emilia-romagna"},
			{Region: "valle-daosta", Value: 0.41},
			{Region: "corsica", Value: 0.5},
		},
	}
	out := m.Render()
	// Render returns template.HTML, which html/template inserts as is.
	var page strings.Builder
	tmpl := template.Must(template.New("page").Parse(`<figure>{{.}}</figure>`))
	if err := tmpl.Execute(&page, out); err != nil {
		fmt.Println(err)
	}
	fmt.Println(strings.HasPrefix(page.String(), `<figure><svg xmlns="http://www.w3.org/2000/svg"`))
	fmt.Println(strings.Contains(string(out), `<a class="polis-tile" data-region="emilia-romagna" href="/regioni/emilia-romagna" aria-label="Emilia-Romagna: 61% degli uffici completati">`))
	fmt.Println(descOf(out))
	// Output:
	// true
	// true
	// Mappa delle 20 regioni italiane, colorate per uffici completati in 5 classi da 0 a 100%. Valle d'Aosta: 41%; Emilia-Romagna: 61% degli uffici completati. Senza dati: Trentino-Alto Adige, Piemonte, Lombardia, Veneto, Friuli-Venezia Giulia, Liguria, Marche, Toscana, Umbria, Abruzzo, Lazio, Molise, Puglia, Sardegna, Campania, Basilicata, Calabria, Sicilia. 1 voce ignorata (regione non riconosciuta o ripetuta: corsica).
}

func ExampleFormatNumber() {
	fmt.Println(svg.FormatNumber(1234567.891, 2), svg.FormatPercent(0.368), svg.FormatDate(time.Date(2026, 6, 30, 0, 0, 0, 0, time.UTC)), svg.FormatMonth(time.Date(2023, 2, 1, 0, 0, 0, 0, time.UTC)))
	// Output: 1.234.567,89 36,8% 30/06/2026 feb 2023
}
