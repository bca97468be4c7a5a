package portal

import (
	"html/template"
	"math"
	"strings"
	"time"

	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/portal/svg"
)

// chart is a drawing and the data it shows as a table: every chart has a
// text alternative (the SVG's desc) and its figures in words.
type chart struct {
	SVG     template.HTML
	Caption string
	Head    []string   // the table's column headings
	Rows    [][]string // formatted cells, one row per point
}

// trendChart draws an area's offices completed month by month. With t
// (the area's target), it adds the target, the projection at the current
// pace to the deadline and, with marks, the published figures of the
// same measure at their dates.
func trendChart(title string, a *progress.Area, t *progress.Target, snap *progress.Snapshot, marks bool) chart {
	c := svg.LineChart{Title: title, Unit: "uffici"}
	twin := svg.Line{Name: "Gemello digitale"}
	for _, p := range a.Trend.Points {
		twin.Points = append(twin.Points, svg.Point{At: p.Date, Value: p.Value})
	}
	c.Lines = append(c.Lines, twin)
	ch := chart{Caption: "Uffici con intervento concluso, a fine mese", Head: []string{"Mese", "Uffici con intervento concluso (gemello digitale)"}}
	for _, p := range a.Trend.Points {
		ch.Rows = append(ch.Rows, []string{formatMonth(p.Date), formatNum(p.Value)})
	}
	var desc []string
	if n := len(a.Trend.Points); n > 0 {
		last := a.Trend.Points[n-1]
		desc = append(desc, "Secondo il gemello digitale, a "+formatMonth(last.Date)+" gli uffici con intervento concluso sono "+formatNum(last.Value)+".")
	} else {
		desc = append(desc, "Lo storico delle installazioni non è ancora disponibile.")
	}
	if t != nil {
		c.Target = float64(t.Target)
		c.TargetLabel = "Obiettivo: " + formatInt(int64(t.Target)) + " uffici (fonte " + sourceLabel(t.Source) + ")"
		c.Deadline = t.Deadline
		if c.Deadline.IsZero() {
			c.Deadline = snap.Deadline
		}
		desc = append(desc, "L'obiettivo è di "+formatInt(int64(t.Target))+" uffici entro il "+formatDate(c.Deadline)+" (fonte "+sourceLabel(t.Source)+").")
		if p := projectionLine(t, snap.At, c.Deadline); len(p.Points) > 0 {
			c.Lines = append(c.Lines, p)
			end := p.Points[len(p.Points)-1]
			desc = append(desc, "Al ritmo degli ultimi sei mesi si arriverebbe a "+formatNum(math.Round(end.Value))+" uffici il "+formatDate(end.At)+" (linea tratteggiata).")
		}
		if marks {
			var n int
			for _, p := range snap.Published {
				if p.Measure != t.Measure {
					continue
				}
				n++
				c.Marks = append(c.Marks, svg.Mark{At: p.Date, Value: p.Value,
					Label: p.Fact + ": " + formatNum(p.Value) + " " + p.Metric + " (" + p.Source.Publisher + ", " + formatDate(p.Date) + ")"})
			}
			if n > 0 {
				desc = append(desc, "I punti segnano le "+formatInt(int64(n))+" cifre pubblicate dalle fonti alle loro date; il confronto è nella tabella delle dichiarazioni.")
			}
		}
	}
	c.Desc = strings.Join(desc, " ")
	ch.SVG = c.Render()
	return ch
}

// projectionLine goes from the count now to where the current pace takes
// it: the target, if reached before the deadline, or the deadline.
func projectionLine(t *progress.Target, now, deadline time.Time) svg.Line {
	l := svg.Line{Name: "Proiezione al ritmo attuale", Dashed: true}
	if t.Pace <= 0 || t.Current >= t.Target || deadline.IsZero() || !deadline.After(now) {
		return l
	}
	end, value := deadline, float64(t.Current)+t.Pace*deadline.Sub(now).Hours()/24
	if !t.Projected.IsZero() && t.Projected.Before(deadline) {
		end, value = t.Projected, float64(t.Target)
	}
	l.Points = []svg.Point{{At: now, Value: float64(t.Current)}, {At: end, Value: value}}
	return l
}

// targetBars draws, for each asset type with a national target, how many
// are installed out of the (first) target.
func targetBars(rows []typeRow) chart {
	c := svg.BarChart{Title: "Apparati installati rispetto agli obiettivi", Unit: "apparati"}
	ch := chart{Caption: "Apparati installati e obiettivi", Head: []string{"Apparato", "Installati", "Obiettivo", "Fonte"}}
	var desc []string
	for _, r := range rows {
		if len(r.Targets) == 0 {
			continue
		}
		t := r.Targets[0]
		note := "di " + formatInt(int64(t.Target)) + " (fonte " + sourceLabel(t.Source) + ")"
		for _, o := range r.Targets[1:] {
			note += "; " + formatInt(int64(o.Target)) + " per la fonte " + sourceLabel(o.Source)
		}
		c.Bars = append(c.Bars, svg.Bar{Label: r.Name, Value: float64(r.Counts.Installed), Max: float64(t.Target), Note: note})
		desc = append(desc, r.Name+": "+formatInt(int64(r.Counts.Installed))+" installati "+note)
		for _, tg := range r.Targets {
			ch.Rows = append(ch.Rows, []string{r.Name, formatInt(int64(r.Counts.Installed)), formatInt(int64(tg.Target)), sourceLabel(tg.Source)})
		}
	}
	if len(c.Bars) == 0 {
		return chart{}
	}
	c.Desc = strings.Join(desc, ". ") + "."
	ch.SVG = c.Render()
	return ch
}

// regionMap draws the regions coloured by the share of their offices with
// the intervention concluded. The map is a picture (role="img"), so its
// tiles are not links, which would nest interactive elements in an image:
// the table of regions that goes with every map has the links.
func regionMap(snap *progress.Snapshot, current string) chart {
	m := svg.TileMap{Title: "Uffici con intervento concluso, per regione",
		Legend: "Quota degli uffici del programma con intervento concluso"}
	ch := chart{Caption: "Uffici con intervento concluso, per regione", Head: []string{"Regione", "Uffici", "Con intervento concluso", "Quota"}}
	var best, worst *progress.Area
	for _, a := range snap.Regions {
		v := math.NaN()
		if a.Offices > 0 {
			v = float64(a.OfficesCompleted) / float64(a.Offices)
		}
		text := a.Name + ": " + formatInt(int64(a.OfficesCompleted)) + " uffici su " + formatInt(int64(a.Offices)) + " con intervento concluso (" + formatPercent(share(a.OfficesCompleted, a.Offices)) + ")"
		tile := svg.Tile{Region: a.Slug, Value: v, Text: text}
		if a.Slug == current {
			tile.Text += ", la regione di questa pagina"
		}
		m.Tiles = append(m.Tiles, tile)
		ch.Rows = append(ch.Rows, []string{a.Name, formatInt(int64(a.Offices)), formatInt(int64(a.OfficesCompleted)), formatPercent(share(a.OfficesCompleted, a.Offices))})
		if a.Offices > 0 {
			if best == nil || share(a.OfficesCompleted, a.Offices) > share(best.OfficesCompleted, best.Offices) {
				best = a
			}
			if worst == nil || share(a.OfficesCompleted, a.Offices) < share(worst.OfficesCompleted, worst.Offices) {
				worst = a
			}
		}
	}
	desc := "Mappa a tessere delle regioni italiane, colorate secondo la quota di uffici con intervento concluso."
	if best != nil && worst != nil {
		desc += " La quota più alta è in " + best.Name + " (" + formatPercent(share(best.OfficesCompleted, best.Offices)) + "), la più bassa in " + worst.Name + " (" + formatPercent(share(worst.OfficesCompleted, worst.Offices)) + ")."
	}
	if current != "" {
		if a := snap.Region(current); a != nil {
			desc += " Questa pagina riguarda " + a.Name + ": " + formatPercent(share(a.OfficesCompleted, a.Offices)) + "."
		}
	}
	m.Desc = desc
	ch.SVG = m.Render()
	return ch
}
