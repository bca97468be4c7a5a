package svg

import (
	"html/template"
	"math"
	"strconv"
	"strings"
)

// region is one of Italy's 20 regions and its square on the tile grid.
type region struct {
	slug, name, abbr string
	col, row         int
}

// regions in grid order, north to south and west to east: the order the
// tiles are drawn and so the keyboard's tab order. The grid keeps the
// neighbours of each region next to it where a square grid allows.
var regions = []region{
	{"valle-d-aosta", "Valle d'Aosta", "VDA", 0, 0},
	{"trentino-alto-adige", "Trentino-Alto Adige", "TAA", 2, 0},
	{"piemonte", "Piemonte", "PIE", 0, 1},
	{"lombardia", "Lombardia", "LOM", 1, 1},
	{"veneto", "Veneto", "VEN", 2, 1},
	{"friuli-venezia-giulia", "Friuli-Venezia Giulia", "FVG", 3, 1},
	{"liguria", "Liguria", "LIG", 0, 2},
	{"emilia-romagna", "Emilia-Romagna", "EMR", 1, 2},
	{"marche", "Marche", "MAR", 2, 2},
	{"toscana", "Toscana", "TOS", 1, 3},
	{"umbria", "Umbria", "UMB", 2, 3},
	{"abruzzo", "Abruzzo", "ABR", 3, 3},
	{"lazio", "Lazio", "LAZ", 2, 4},
	{"molise", "Molise", "MOL", 3, 4},
	{"puglia", "Puglia", "PUG", 4, 4},
	{"sardegna", "Sardegna", "SAR", 0, 5},
	{"campania", "Campania", "CAM", 3, 5},
	{"basilicata", "Basilicata", "BAS", 4, 5},
	{"calabria", "Calabria", "CAL", 4, 6},
	{"sicilia", "Sicilia", "SIC", 3, 7},
}

// regionKeys maps a region's key (see regionKey) to its index in regions.
// Besides each slug it holds the bilingual official names, which slug
// makers render in several ways: "Valle d'Aosta/Vallée d'Aoste" and
// "Trentino-Alto Adige/Südtirol".
var regionKeys = func() map[string]int {
	m := make(map[string]int, len(regions)+3)
	for i, r := range regions {
		m[regionKey(r.slug)] = i
	}
	m["valledaostavalleedaoste"] = 0
	m["trentinoaltoadigesudtirol"] = 1
	m["trentinoaltoadigesuedtirol"] = 1
	return m
}()

// regionKey reduces a slug or name to its ASCII letters, lower case, with
// accents dropped, so that "valle-d-aosta", "valle-daosta" and
// "Valle d'Aosta" all read "valledaosta", and "trentino-alto-adigesudtirol"
// and "Trentino-Alto Adige/Südtirol" read "trentinoaltoadigesudtirol".
func regionKey(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r)
		case strings.ContainsRune("àáâä", r):
			b.WriteByte('a')
		case strings.ContainsRune("èéêë", r):
			b.WriteByte('e')
		case strings.ContainsRune("ìíîï", r):
			b.WriteByte('i')
		case strings.ContainsRune("òóôö", r):
			b.WriteByte('o')
		case strings.ContainsRune("ùúûü", r):
			b.WriteByte('u')
		}
	}
	return b.String()
}

// RegionIndex returns the position of a region in the tile map's order
// (0..19) for a slug or name such as "emilia-romagna", "valle-daosta" or
// "Trentino-Alto Adige/Südtirol", and false for anything else.
func RegionIndex(slug string) (int, bool) {
	i, ok := regionKeys[regionKey(slug)]
	return i, ok
}

// tileScale is the sequential colour scale of the tiles, light to dark
// blue around $primary, in five classes of 20 points each.
var tileScale = []string{"#E6F0FA", "#99C2EB", "#4D94DB", "#0066CC", "#003D7A"}

// tileClass is the class of a value in 0..1 (clamped).
func tileClass(v float64) int {
	return int(math.Min(float64(len(tileScale)-1), math.Max(0, math.Floor(v*float64(len(tileScale))))))
}

// Layout of a TileMap.
const (
	tileSize   = 56.0
	tileGap    = 6.0
	tileMargin = 8.0
	tileCols   = 5
	tileRows   = 8
	tileMapW   = 520
)

// placed is a region with the tile given for it, if any.
type placed struct {
	region
	tile Tile
	has  bool // a tile was given with a finite value
	text string
	href string
}

func (m TileMap) place() (cells []placed, ignored []string) {
	cells = make([]placed, len(regions))
	seen := make([]bool, len(regions))
	for i, r := range regions {
		cells[i] = placed{region: r}
	}
	for _, t := range m.Tiles {
		i, ok := RegionIndex(t.Region)
		if !ok || seen[i] {
			// Unknown regions and second tiles for a region are left out
			// and told in the description.
			ignored = append(ignored, truncate(strings.TrimSpace(t.Region), 40))
			continue
		}
		seen[i] = true
		cells[i].tile = t
		cells[i].has = finite(t.Value)
	}
	for i := range cells {
		c := &cells[i]
		c.text = strings.TrimSpace(c.tile.Text)
		if c.text == "" {
			if c.has {
				c.text = c.name + ": " + FormatPercent(math.Max(0, math.Min(1, c.tile.Value)))
			} else {
				c.text = c.name + ": nessun dato"
			}
		}
		c.href = safeHref(c.tile.Href)
	}
	return cells, ignored
}

func (m TileMap) describe(cells []placed, ignored []string) string {
	var parts []string
	if m.Desc != "" {
		parts = append(parts, sentence(m.Desc))
	}
	var with, without []string
	for _, c := range cells {
		if c.has {
			with = append(with, c.text)
		} else {
			without = append(without, c.name)
		}
	}
	head := "Mappa delle 20 regioni italiane"
	if l := strings.TrimSpace(m.Legend); l != "" {
		head += ", colorate per " + l
	}
	parts = append(parts, head+" in 5 classi da 0 a 100%.")
	if len(with) > 0 {
		parts = append(parts, sentence(strings.Join(with, "; ")))
	}
	if len(without) > 0 {
		parts = append(parts, "Senza dati: "+strings.Join(without, ", ")+".")
	}
	switch n := len(ignored); {
	case n == 1:
		parts = append(parts, "1 voce ignorata (regione non riconosciuta o ripetuta: "+ignored[0]+").")
	case n > 1:
		shown := ignored[:min(n, 5)]
		more := ""
		if n > len(shown) {
			more = "…"
		}
		parts = append(parts, strconv.Itoa(n)+" voci ignorate (regione non riconosciuta o ripetuta: "+strings.Join(shown, ", ")+more+").")
	}
	return strings.Join(parts, " ")
}

func (m TileMap) render() template.HTML {
	cells, ignored := m.place()
	title := strings.TrimSpace(m.Title)
	if title == "" {
		title = "Mappa delle regioni"
	}
	h := int(2*tileMargin + tileRows*(tileSize+tileGap) - tileGap)
	var cv canvas
	cv.open("tilemap", chartID("tilemap", m.ID, m.Title, m.Desc), tileMapW, h, title, m.describe(cells, ignored))

	missing := false
	for _, c := range cells {
		x := tileMargin + float64(c.col)*(tileSize+tileGap)
		y := tileMargin + float64(c.row)*(tileSize+tileGap)
		fill, ink, dash, value := colWhite, colMuted, ` stroke-dasharray="3 2"`, "n.d."
		if c.has {
			v := math.Max(0, math.Min(1, c.tile.Value))
			fill = tileScale[tileClass(v)]
			ink, dash, value = textOn(fill), "", FormatNumber(v*100, 0)+"%"
		} else {
			missing = true
		}
		label := strings.TrimSpace(c.tile.Label)
		if label == "" {
			label = c.abbr
		}
		if c.href != "" {
			cv.f(`<a class="polis-tile" data-region="%s" href="%s" aria-label="%s">`, c.slug, esc(c.href), esc(c.text))
		} else {
			cv.f(`<g class="polis-tile" data-region="%s">`, c.slug)
		}
		cv.f(`<title>%s</title>`, esc(c.text))
		cv.f(`<rect x="%s" y="%s" width="%s" height="%s" rx="4" fill="%s" stroke="%s" stroke-width="1"%s/>`,
			num(x), num(y), num(tileSize), num(tileSize), fill, colMuted, dash)
		cv.text(x+tileSize/2, y+tileSize/2, 14, ink, "middle", `font-weight="600"`, truncate(label, 6))
		cv.text(x+tileSize/2, y+tileSize/2+16, 11, ink, "middle", "", value)
		if c.href != "" {
			cv.raw(`</a>`)
		} else {
			cv.raw(`</g>`)
		}
	}

	// Legend to the right of the grid, whose right-hand columns are empty
	// in the north.
	lx := tileMargin + tileCols*(tileSize+tileGap) + 18
	ly := tileMargin + 14
	cv.raw(`<g class="polis-legend">`)
	if l := strings.TrimSpace(m.Legend); l != "" {
		cv.text(lx, ly, 13, colText, "", `font-weight="600"`, truncate(l, 24))
		ly += 10
	}
	for i, col := range tileScale {
		y := ly + float64(i)*24
		cv.f(`<rect x="%s" y="%s" width="18" height="18" rx="2" fill="%s" stroke="%s" stroke-width="1"/>`, num(lx), num(y), col, colMuted)
		from, to := i*100/len(tileScale), (i+1)*100/len(tileScale)
		cv.text(lx+26, y+14, 12, colText, "", "", strconv.Itoa(from)+"–"+strconv.Itoa(to)+"%")
	}
	if missing {
		y := ly + float64(len(tileScale))*24
		cv.f(`<rect x="%s" y="%s" width="18" height="18" rx="2" fill="%s" stroke="%s" stroke-width="1" stroke-dasharray="3 2"/>`, num(lx), num(y), colWhite, colMuted)
		cv.text(lx+26, y+14, 12, colText, "", "", "nessun dato")
	}
	cv.raw(`</g>`)
	return cv.close()
}
