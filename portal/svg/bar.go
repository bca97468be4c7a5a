package svg

import (
	"html/template"
	"math"
	"strconv"
	"strings"
)

// Layout of a BarChart: one row per bar with the label (and percentage)
// on top, the bar, and the value with its note below.
const (
	barDefaultW = 720
	barMinW     = 320
	barRowH     = 64
	barPad      = 16.0
	barTop      = 8.0
)

// barRow is a Bar ready to draw.
type barRow struct {
	label   string
	value   string  // formatted with unit, or "n.d."
	detail  string  // value, scale and note: the visible line under the bar
	percent string  // "" without Max
	frac    float64 // 0..1 of the bar area
	hasMax  bool
	valid   bool
}

func (c BarChart) rows() []barRow {
	// Bars without a Max share one scale: the largest of their values.
	relMax := 0.0
	for _, b := range c.Bars {
		if !(finite(b.Max) && b.Max > 0) && finite(b.Value) {
			relMax = math.Max(relMax, clampValue(b.Value))
		}
	}
	rows := make([]barRow, len(c.Bars))
	for i, b := range c.Bars {
		r := barRow{label: strings.TrimSpace(b.Label), hasMax: finite(b.Max) && b.Max > 0, valid: finite(b.Value)}
		if r.label == "" {
			r.label = "Voce " + strconv.Itoa(i+1)
		}
		v := clampValue(b.Value)
		maxV := clampValue(b.Max)
		r.value = "n.d."
		if r.valid {
			r.value = withUnit(FormatNumber(v, 2), c.Unit)
		}
		r.detail = r.value
		note := strings.TrimSpace(b.Note)
		if r.hasMax && note == "" {
			r.detail += " su " + FormatNumber(maxV, 2)
		}
		if note != "" {
			r.detail += " " + note
		}
		switch {
		case !r.valid:
		case r.hasMax:
			r.frac = v / maxV
			r.percent = FormatPercent(r.frac)
		case relMax > 0:
			r.frac = v / relMax
		}
		r.frac = math.Max(0, math.Min(1, r.frac))
		rows[i] = r
	}
	return rows
}

func (c BarChart) describe(rows []barRow) string {
	var parts []string
	if c.Desc != "" {
		parts = append(parts, sentence(c.Desc))
	}
	if len(rows) == 0 {
		parts = append(parts, emptyMessage+".")
	}
	for _, r := range rows {
		s := r.label + ": " + r.value
		if r.percent != "" {
			s += " (" + r.percent + ")"
		}
		if d := strings.TrimPrefix(r.detail, r.value); d != "" {
			s += d
		}
		parts = append(parts, sentence(s))
	}
	return strings.Join(parts, " ")
}

func (c BarChart) render() template.HTML {
	rows := c.rows()
	w := clampSide(c.Width, barDefaultW, barMinW)
	n := max(len(rows), 1)
	h := int(barTop) + n*barRowH + 4
	title := strings.TrimSpace(c.Title)
	if title == "" {
		title = "Grafico a barre"
	}
	var cv canvas
	cv.open("barchart", chartID("barchart", c.ID, c.Title, c.Desc), w, h, title, c.describe(rows))
	if len(rows) == 0 {
		cv.text(float64(w)/2, barTop+barRowH/2, 14, colMuted, "middle", "", emptyMessage)
		return cv.close()
	}
	barW := float64(w) - 2*barPad
	for i, r := range rows {
		y0 := barTop + float64(i*barRowH)
		full := r.label + ": " + r.detail
		if r.percent != "" {
			full = r.label + ": " + r.value + " (" + r.percent + ")" + strings.TrimPrefix(r.detail, r.value)
		}
		cv.f(`<g class="polis-bar"><title>%s</title>`, esc(full))
		labelRoom := barW
		if r.percent != "" {
			cv.text(float64(w)-barPad, y0+16, 14, colText, "end", `font-weight="600" class="polis-percent"`, r.percent)
			labelRoom -= textWidth(r.percent, 14) + 16
		}
		cv.text(barPad, y0+16, 14, colText, "", `font-weight="600"`, truncate(r.label, int(labelRoom/(14*0.56))))
		if r.hasMax {
			cv.f(`<rect class="polis-track" x="%s" y="%s" width="%s" height="16" rx="2" fill="%s" stroke="%s" stroke-width="1"/>`,
				num(barPad), num(y0+24), num(barW), colTrack, colMuted)
		}
		if r.frac > 0 {
			cv.f(`<rect class="polis-value" x="%s" y="%s" width="%s" height="16" rx="2" fill="%s"/>`,
				num(barPad), num(y0+24), num(math.Max(2, r.frac*barW)), colPrimary)
		}
		detail := truncate(r.detail, int(barW/(13*0.56)))
		cv.f(`<text x="%s" y="%s" font-size="13" fill="%s">`, num(barPad), num(y0+56), colText)
		if strings.HasPrefix(detail, r.value) {
			cv.f(`<tspan font-weight="600">%s</tspan>%s`, esc(r.value), esc(strings.TrimPrefix(detail, r.value)))
		} else {
			cv.raw(esc(detail))
		}
		cv.raw(`</text></g>`)
	}
	return cv.close()
}
