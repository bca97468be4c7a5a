package svg

import (
	"html/template"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Default and extreme sizes of a LineChart's viewBox.
const (
	lineDefaultW, lineDefaultH = 720, 320
	lineMinW, lineMinH         = 320, 200
	lineMaxSide                = 4000
	linePlotMinH               = 80 // the viewBox grows rather than squash the plot under the legend
)

// Dates outside these years are input errors (a zero time.Time, a
// timestamp in milliseconds read as seconds) and are not drawn.
const minYear, maxYear = 1000, 9999

func validTime(t time.Time) bool {
	return !t.IsZero() && t.Year() >= minYear && t.Year() <= maxYear
}

// seconds is t on a float axis; Unix seconds keep their precision for the
// years validTime accepts, unlike UnixNano.
func seconds(t time.Time) float64 { return float64(t.Unix()) + float64(t.Nanosecond())/1e9 }

// series is a Line ready to draw: valid points in date order and its style.
type series struct {
	name        string
	pts         []Point
	color, dash string
}

// lineData is what a LineChart draws once invalid input is set aside.
type lineData struct {
	series    []series
	marks     []Mark
	target    float64 // 0: none
	deadline  time.Time
	skipped   int // points and marks not drawn because invalid
	hasX      bool
	tMin      time.Time
	tMax      time.Time
	vMin      float64
	vMax      float64
	integers  bool // every value is whole: integer y ticks
	hasValues bool
}

func (c LineChart) data() lineData {
	d := lineData{integers: true}
	see := func(t time.Time, v float64, withValue bool) {
		if !d.hasX || t.Before(d.tMin) {
			d.tMin = t
		}
		if !d.hasX || t.After(d.tMax) {
			d.tMax = t
		}
		d.hasX = true
		if withValue {
			d.seeValue(v)
		}
	}
	for i, l := range c.Lines {
		s := series{name: strings.TrimSpace(l.Name), color: linePalette[i%len(linePalette)], dash: linePatterns[i%len(linePatterns)]}
		if s.name == "" {
			s.name = "Serie " + strconv.Itoa(i+1)
		}
		if l.Dashed && s.dash == "" {
			// A projection keeps its colour but must not look measured.
			s.dash = "6 4"
		}
		for _, p := range l.Points {
			if !validTime(p.At) || !finite(p.Value) {
				d.skipped++
				continue
			}
			p.Value = clampValue(p.Value)
			s.pts = append(s.pts, p)
			see(p.At, p.Value, true)
		}
		sort.SliceStable(s.pts, func(a, b int) bool { return s.pts[a].At.Before(s.pts[b].At) })
		d.series = append(d.series, s)
	}
	for _, m := range c.Marks {
		if !validTime(m.At) || !finite(m.Value) {
			d.skipped++
			continue
		}
		m.Value = clampValue(m.Value)
		d.marks = append(d.marks, m)
		see(m.At, m.Value, true)
	}
	sort.SliceStable(d.marks, func(a, b int) bool { return d.marks[a].At.Before(d.marks[b].At) })
	if validTime(c.Deadline) {
		d.deadline = c.Deadline
		see(c.Deadline, 0, false)
	}
	if finite(c.Target) && c.Target != 0 {
		d.target = clampValue(c.Target)
		d.seeValue(d.target)
	}
	return d
}

func (d *lineData) seeValue(v float64) {
	if !d.hasValues || v < d.vMin {
		d.vMin = v
	}
	if !d.hasValues || v > d.vMax {
		d.vMax = v
	}
	d.hasValues = true
	if v != math.Trunc(v) {
		d.integers = false
	}
}

// markLabel is a mark's text, or its date and value when it has none.
func markLabel(m Mark, unit string) string {
	if l := strings.TrimSpace(m.Label); l != "" {
		return l
	}
	return FormatDate(m.At) + ": " + withUnit(FormatNumber(m.Value, 2), unit)
}

// sentence ends s with a full stop unless it ends with punctuation.
func sentence(s string) string {
	s = strings.TrimSpace(s)
	if s == "" || strings.ContainsAny(s[len(s)-1:], ".!?:;") {
		return s
	}
	return s + "."
}

// describe says in words what the chart shows.
func (c LineChart) describe(d lineData) string {
	var parts []string
	if c.Desc != "" {
		parts = append(parts, sentence(c.Desc))
	}
	if !d.hasX {
		parts = append(parts, emptyMessage+".")
	} else {
		parts = append(parts, "Periodo: dal "+FormatDate(d.tMin)+" al "+FormatDate(d.tMax)+".")
	}
	for _, s := range d.series {
		if len(s.pts) == 0 {
			parts = append(parts, s.name+": nessun dato.")
			continue
		}
		last := s.pts[len(s.pts)-1]
		parts = append(parts, s.name+": ultimo valore "+withUnit(FormatNumber(last.Value, 2), c.Unit)+" al "+FormatDate(last.At)+".")
	}
	if d.target != 0 {
		t := "Obiettivo: " + withUnit(FormatNumber(d.target, 2), c.Unit)
		if l := strings.TrimSpace(c.TargetLabel); l != "" {
			t += " (" + l + ")"
		}
		parts = append(parts, t+".")
	}
	if !d.deadline.IsZero() {
		parts = append(parts, "Scadenza: "+FormatDate(d.deadline)+".")
	}
	if len(d.marks) > 0 {
		labels := make([]string, len(d.marks))
		for i, m := range d.marks {
			labels[i] = markLabel(m, c.Unit)
		}
		head := "Dato pubblicato: "
		if len(labels) > 1 {
			head = "Dati pubblicati: "
		}
		parts = append(parts, sentence(head+strings.Join(labels, "; ")))
	}
	switch d.skipped {
	case 0:
	case 1:
		parts = append(parts, "1 valore non valido non è mostrato.")
	default:
		parts = append(parts, strconv.Itoa(d.skipped)+" valori non validi non sono mostrati.")
	}
	return strings.Join(parts, " ")
}

// legendItem is one entry of a legend.
type legendItem struct {
	kind        string // "line", "target", "deadline", "mark"
	color, dash string
	label       string
	x, y        float64 // set by layoutLegend
}

// layoutLegend flows items left to right from x0, wrapping at x1, and
// returns the number of rows.
func layoutLegend(items []legendItem, x0, x1 float64) int {
	if len(items) == 0 {
		return 0
	}
	x, row := x0, 0
	for i := range items {
		w := 30 + textWidth(items[i].label, 12) + 18
		if x > x0 && x+w > x1 {
			x, row = x0, row+1
		}
		items[i].x, items[i].y = x, float64(row)*20
		x += w
	}
	return row + 1
}

func clampSide(v, def, min int) int {
	switch {
	case v <= 0:
		return def
	case v < min:
		return min
	case v > lineMaxSide:
		return lineMaxSide
	}
	return v
}

func (c LineChart) render() template.HTML {
	d := c.data()
	w := clampSide(c.Width, lineDefaultW, lineMinW)
	h := clampSide(c.Height, lineDefaultH, lineMinH)
	title := strings.TrimSpace(c.Title)
	if title == "" {
		title = "Grafico"
	}
	id := chartID("linechart", c.ID, c.Title, c.Desc)
	desc := c.describe(d)

	// Legend first: its rows decide how tall the plot can be.
	var legend []legendItem
	for _, s := range d.series {
		legend = append(legend, legendItem{kind: "line", color: s.color, dash: s.dash, label: truncate(s.name, 40)})
	}
	if d.target != 0 {
		l := strings.TrimSpace(c.TargetLabel)
		if l == "" {
			l = "obiettivo"
		}
		legend = append(legend, legendItem{kind: "target", color: colDanger, dash: "6 4", label: truncate(l, 40)})
	}
	if !d.deadline.IsZero() {
		legend = append(legend, legendItem{kind: "deadline", color: colDark, dash: "2 3", label: "scadenza"})
	}
	if len(d.marks) > 0 {
		legend = append(legend, legendItem{kind: "mark", color: colText, label: "dato pubblicato"})
	}
	if !d.hasX {
		legend = nil // nothing drawn, nothing to explain
	}
	rows := layoutLegend(legend, 16, float64(w-16))

	const top, right = 36.0, 28.0
	bottomBlock := 28.0 + float64(rows)*20 + 8
	if float64(h)-bottomBlock-top < linePlotMinH {
		h = int(math.Ceil(top + linePlotMinH + bottomBlock))
	}
	bottom := float64(h) - bottomBlock

	var cv canvas
	cv.open("linechart", id, w, h, title, desc)
	if !d.hasX {
		cv.f(`<rect class="polis-plot" x="16" y="%s" width="%d" height="%s" fill="none" stroke="%s" stroke-dasharray="4 4"/>`,
			num(top), w-32, num(bottom-top), colMuted)
		cv.text(float64(w)/2, (top+bottom)/2, 14, colMuted, "middle", "", emptyMessage)
		return cv.close()
	}

	// Y axis: from 0 (or the lowest value if negative) with round ticks.
	nTicks := int(math.Max(2, math.Min(5, (bottom-top)/40)))
	yTicks, yDec := niceTicks(math.Min(0, d.vMin), math.Max(0, d.vMax), nTicks, d.integers)
	yLo, yHi := yTicks[0], yTicks[len(yTicks)-1]
	labelW := 0.0
	yLabels := make([]string, len(yTicks))
	for i, v := range yTicks {
		yLabels[i] = FormatNumber(v, yDec)
		labelW = math.Max(labelW, textWidth(yLabels[i], 11))
	}
	left := math.Min(16+labelW, float64(w)/3)
	yOf := func(v float64) float64 { return bottom - (v-yLo)/(yHi-yLo)*(bottom-top) }

	// X axis: the dates of every point, mark and the deadline; a single
	// date gets a month around it.
	t0, t1 := d.tMin, d.tMax
	if t1.Sub(t0) < 24*time.Hour {
		t0, t1 = t0.AddDate(0, 0, -15), t1.AddDate(0, 0, 15)
	}
	s0, s1 := seconds(t0), seconds(t1)
	xOf := func(t time.Time) float64 { return left + (seconds(t)-s0)/(s1-s0)*(float64(w)-right-left) }

	if u := strings.TrimSpace(c.Unit); u != "" {
		cv.text(left, 16, 12, colMuted, "", `class="polis-unit"`, truncate(u, 60))
	}
	cv.raw(`<g class="polis-grid">`)
	for i, v := range yTicks {
		y := yOf(v)
		cv.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(left), num(y), num(float64(w)-right), num(y), colGrid)
		cv.text(left-8, y+4, 11, colMuted, "end", "", yLabels[i])
	}
	cv.raw(`</g><g class="polis-xticks">`)
	for _, tk := range timeTicks(t0, t1, int((float64(w)-right-left)/72)) {
		x := xOf(tk.At)
		cv.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(x), num(bottom), num(x), num(bottom+5), colMuted)
		// Labels at the ends shift inwards rather than leave the viewBox.
		half := textWidth(tk.Label, 11)/2 + 2
		cv.text(math.Max(half, math.Min(float64(w)-half, x)), bottom+18, 11, colMuted, "middle", "", tk.Label)
	}
	cv.raw(`</g>`)
	cv.f(`<line class="polis-axis-y" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(left), num(top), num(left), num(bottom), colMuted)
	cv.f(`<line class="polis-axis-x" x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="1"/>`, num(left), num(yOf(0)), num(float64(w)-right), num(yOf(0)), colMuted)

	maxChars := int((float64(w) - right - left) / (12 * 0.56))
	if d.target != 0 {
		y := yOf(d.target)
		label := strings.TrimSpace(c.TargetLabel)
		if label == "" {
			label = "obiettivo " + withUnit(FormatNumber(d.target, 2), c.Unit)
		}
		cv.f(`<g class="polis-target"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="6 4"/>`,
			num(left), num(y), num(float64(w)-right), num(y), colDanger)
		cv.text(left+4, y-5, 12, colDanger, "", halo, truncate(label, maxChars))
		cv.raw(`</g>`)
	}
	if !d.deadline.IsZero() {
		x := xOf(d.deadline)
		label := "scadenza " + FormatDate(d.deadline)
		lx, anchor := x+4, "start"
		if x > (left+float64(w)-right)/2 {
			lx, anchor = x-4, "end"
		}
		cv.f(`<g class="polis-deadline"><line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="2 3"/>`,
			num(x), num(top), num(x), num(bottom), colDark)
		cv.text(lx, top+14, 12, colDark, anchor, halo, label)
		cv.raw(`</g>`)
	}

	for _, s := range d.series {
		if len(s.pts) == 0 {
			continue
		}
		last := s.pts[len(s.pts)-1]
		cv.f(`<g class="polis-line"><title>%s</title>`, esc(s.name+": ultimo valore "+withUnit(FormatNumber(last.Value, 2), c.Unit)+" al "+FormatDate(last.At)))
		if len(s.pts) == 1 {
			// A line of one point is invisible: draw the point.
			cv.f(`<circle cx="%s" cy="%s" r="4" fill="%s"/>`, num(xOf(last.At)), num(yOf(last.Value)), s.color)
		} else {
			var pts strings.Builder
			for i, p := range s.pts {
				if i > 0 {
					pts.WriteByte(' ')
				}
				pts.WriteString(num(xOf(p.At)) + "," + num(yOf(p.Value)))
			}
			cv.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2.5" stroke-linejoin="round" stroke-linecap="round"`, pts.String(), s.color)
			if s.dash != "" {
				cv.f(` stroke-dasharray="%s"`, s.dash)
			}
			cv.raw(`/>`)
		}
		cv.raw(`</g>`)
	}

	for _, m := range d.marks {
		cv.f(`<circle class="polis-mark" cx="%s" cy="%s" r="5" fill="%s" stroke="%s" stroke-width="2"><title>%s</title></circle>`,
			num(xOf(m.At)), num(yOf(m.Value)), colWhite, colText, esc(markLabel(m, c.Unit)))
	}

	ly := bottom + 28 + 14
	cv.raw(`<g class="polis-legend">`)
	for _, it := range legend {
		x, y := it.x, ly+it.y
		switch it.kind {
		case "mark":
			cv.f(`<circle cx="%s" cy="%s" r="5" fill="%s" stroke="%s" stroke-width="2"/>`, num(x+12), num(y-4), colWhite, it.color)
		case "deadline":
			cv.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2" stroke-dasharray="%s"/>`, num(x+12), num(y-11), num(x+12), num(y+3), it.color, it.dash)
		default:
			cv.f(`<line x1="%s" y1="%s" x2="%s" y2="%s" stroke="%s" stroke-width="2.5"`, num(x), num(y-4), num(x+24), num(y-4), it.color)
			if it.dash != "" {
				cv.f(` stroke-dasharray="%s"`, it.dash)
			}
			cv.raw(`/>`)
		}
		cv.text(x+30, y, 12, colText, "", "", it.label)
	}
	cv.raw(`</g>`)
	return cv.close()
}
