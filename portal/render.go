package portal

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/opendata"
	"github.com/polis-platform/polis/portal/progress"
)

//go:embed templates
var templateFS embed.FS

// shared are the templates every page is parsed with: the layout and the
// partials.
var shared = []string{"templates/layout.html", "templates/partials.html"}

// parsePages parses each page template with the shared ones, by file name.
func parsePages(funcs template.FuncMap) (map[string]*template.Template, error) {
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		if n == shared[0] || n == shared[1] {
			continue
		}
		t, err := template.New(path.Base(n)).Funcs(funcs).ParseFS(templateFS, append([]string{n}, shared...)...)
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", n, err)
		}
		pages[path.Base(n)] = t
	}
	return pages, nil
}

// download is one table's links to the open data (portal/opendata): a
// link per format the table has, filtered to the region or province the
// page shows when the table takes that filter.
type download struct {
	What  string // Italian, completes the links' names: "delle province del Lazio"
	Links []downloadLink
}

type downloadLink struct {
	Format, Href string
	Whole        bool // the file has all of Italy, not only the page's part
}

// download makes the links of a table; filter is "", "regione=slug" or
// "provincia=slug". A table or filter opendata does not have is a bug of
// a template: the page fails to render, and the tests see it.
func (h *Handler) download(table, filter, what string) (download, error) {
	t, ok := opendata.TableByName(table)
	if !ok {
		return download{}, fmt.Errorf("no open data table %q", table)
	}
	var f opendata.Filter
	if filter != "" {
		k, slug, _ := strings.Cut(filter, "=")
		if !t.HasFilter(k) {
			return download{}, fmt.Errorf("open data table %q takes no filter %q", table, k)
		}
		switch k {
		case opendata.FilterRegione:
			f.Regione = slug
		case opendata.FilterProvincia:
			f.Provincia = slug
		}
	}
	d := download{What: what}
	for _, format := range t.Formats {
		l := downloadLink{Format: strings.ToUpper(format), Href: opendata.Path(table, format, f)}
		if format == opendata.FormatParquet && !f.IsZero() { // the Parquet files are whole
			l.Href, l.Whole = opendata.Path(table, format, opendata.Filter{}), true
		}
		d.Links = append(d.Links, l)
	}
	return d, nil
}

func (h *Handler) funcs() template.FuncMap {
	return template.FuncMap{
		"int":           func(n int) string { return formatInt(int64(n)) },
		"prepA":         prepA,
		"num":           formatNum,
		"dec":           formatDec,
		"pct":           formatPercent,
		"eur":           formatEUR,
		"date":          formatDate,
		"datetime":      formatDateTime,
		"month":         formatMonth,
		"isodate":       isoDate,
		"isotime":       isoDateTime,
		"hours":         italianHours,
		"static":        h.assets.url,
		"typename":      progress.TypeName,
		"line":          lineName,
		"status":        statusName,
		"statusclass":   statusClass,
		"state":         stateName,
		"method":        func(anchor string) string { return "/metodo#" + url.PathEscape(anchor) },
		"dl":            h.download,
		"q":             url.QueryEscape,
		"share":         share,
		"zero":          func(t time.Time) bool { return t.IsZero() },
		"add":           func(a, b int) int { return a + b },
		"join":          strings.Join,
		"percent":       func(p float64) string { return formatPercent(p) },
		"sprite":        func(icon string) string { return h.assets.url(vendorSprite) + "#" + icon },
		"navItem":       navItem,
		"methodOf":      methodOf,
		"dict":          dict,
		"areaHref":      areaHref,
		"workingNow":    workingNow,
		"installedAll":  installedAll,
		"channel":       channelName,
		"kwh":           kwh,
		"hasType":       hasType,
		"slug":          progress.Slug,
		"officePath":    officePath,
		"officeDL":      h.officeDL,
		"targetValue":   targetValue,
		"targetCurrent": targetCurrent,
		"upper":         strings.ToUpper,
		"paragraphs": func(s string) []string {
			return strings.Split(strings.TrimSpace(s), "\n\n")
		},
		"coltype":     columnType,
		"sourceLabel": sourceLabel,
		"external": func(u string) bool {
			return strings.HasPrefix(u, "http://") || strings.HasPrefix(u, "https://")
		},
	}
}

// share is part/whole in percent; 0 when whole is 0.
func share(part, whole int) float64 {
	if whole <= 0 {
		return 0
	}
	return 100 * float64(part) / float64(whole)
}

// navEntry is one entry of the main menu.
type navEntry struct {
	Href, Name      string
	Active, Current bool // Active: the page is in this section; Current: it is the entry's page
}

func navItem(v *view, key, href, name string) navEntry {
	return navEntry{Href: href, Name: name, Active: v.Nav == key, Current: v.Path == href}
}
