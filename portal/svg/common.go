package svg

import (
	"fmt"
	"hash/fnv"
	"html/template"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Colours from Bootstrap Italia's palette. Text colours reach 4.5:1 on
// white and graphic colours 3:1 (TestContrast checks every pair we draw).
const (
	colWhite     = "#FFFFFF"
	colText      = "#1A1A1A" // body text
	colMuted     = "#5C6F82" // secondary text, axes, outlines ($gray-secondary)
	colGrid      = "#D9DADB" // gridlines: decorative, no contrast needed
	colPrimary   = "#0066CC" // $primary
	colSuccess   = "#008055" // $success
	colWarning   = "#A66300" // $warning (the accessible, dark variant)
	colDanger    = "#CC334D" // $danger
	colDark      = "#17324D" // $dark
	colTrack     = "#F2F7FC" // $lightgrey-a3: bar tracks, always outlined in colMuted
	fontFamily   = "Titillium Web, Geneva, Tahoma, sans-serif"
	emptyMessage = "Nessun dato disponibile"
)

// linePalette colours the lines of a LineChart in order; linePatterns
// gives each line a dash pattern too, so lines differ without colour.
// The two lists have coprime lengths, so colour and pattern pairs repeat
// only after 20 lines.
var (
	linePalette  = []string{colPrimary, colWarning, colSuccess, colDark}
	linePatterns = []string{"", "10 4", "2 3", "10 3 2 3", "16 4 4 4"}
)

// maxAbs bounds the values drawn: beyond it a figure is not a count of
// anything the portal shows, and float arithmetic on it loses meaning.
const maxAbs = 1e15

// clean makes s safe to put in XML 1.0 text: invalid UTF-8 and characters
// XML forbids (control characters, U+FFFE, U+FFFF) become U+FFFD, and
// runs of white space become one space (kept at the ends, so that
// pieces of one text can be escaped apart).
func clean(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		i += n
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == ' ':
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		case r == utf8.RuneError && n <= 1, r < 0x20, r == 0xFFFE, r == 0xFFFF, r >= 0x7F && r < 0xA0:
			r = '\uFFFD'
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// esc cleans s and escapes it for XML text and attribute values.
func esc(s string) string { return template.HTMLEscapeString(clean(s)) }

// truncate shortens s to at most n runes, ending with an ellipsis when cut.
func truncate(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimSpace(string(r[:n-1])) + "…"
}

// textWidth estimates the width in user units of s drawn at size px: the
// renderer cannot measure fonts, so layout uses an average glyph width.
func textWidth(s string, size float64) float64 {
	return float64(utf8.RuneCountInString(s)) * size * 0.56
}

// chartID is the prefix of the element ids of one drawing: the ID the
// caller gave (reduced to [A-Za-z0-9_-]) or a hash of the kind, title and
// description, so that several charts on a page do not clash.
func chartID(kind, given, title, desc string) string {
	var b strings.Builder
	for _, r := range given {
		if r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' {
			b.WriteRune(r)
		}
	}
	if b.Len() > 0 {
		return "polis-" + b.String()
	}
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(title))
	h.Write([]byte{0})
	h.Write([]byte(desc))
	return fmt.Sprintf("polis-%s-%016x", kind, h.Sum64())
}

// canvas accumulates one <svg> element.
type canvas struct {
	b strings.Builder
}

func (c *canvas) raw(s string) { c.b.WriteString(s) }

func (c *canvas) f(format string, args ...any) { fmt.Fprintf(&c.b, format, args...) }

// open writes the <svg> start tag with its accessible name and
// description, and a white background so the contrast we checked holds
// whatever the page behind.
func (c *canvas) open(kind, id string, w, h int, title, desc string) {
	c.f(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="100%%" style="height:auto;max-width:100%%" `+
		`role="img" aria-labelledby="%s-title %s-desc" focusable="false" class="polis-chart polis-%s" font-family="%s">`,
		w, h, id, id, kind, fontFamily)
	c.f(`<title id="%s-title">%s</title><desc id="%s-desc">%s</desc>`, id, esc(title), id, esc(desc))
	c.f(`<rect width="%d" height="%d" fill="%s"/>`, w, h, colWhite)
}

func (c *canvas) close() template.HTML {
	c.raw("</svg>")
	return template.HTML(c.b.String()) // safe: every text and attribute went through esc
}

// text writes a <text> element; s is escaped here.
func (c *canvas) text(x, y float64, size int, fill, anchor, extra, s string) {
	c.f(`<text x="%s" y="%s" font-size="%d" fill="%s"`, num(x), num(y), size, fill)
	if anchor != "" && anchor != "start" {
		c.f(` text-anchor="%s"`, anchor)
	}
	if extra != "" {
		c.raw(" " + extra)
	}
	c.f(`>%s</text>`, esc(s))
}

// halo makes a label legible over lines and gridlines.
const halo = `stroke="#FFFFFF" stroke-width="3" paint-order="stroke"`

// num formats a coordinate: one decimal at most, never "-0", never NaN.
func num(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "0"
	}
	v = math.Round(v*10) / 10
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// finite reports whether v can be drawn.
func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

// clampValue bounds a finite value to ±maxAbs.
func clampValue(v float64) float64 { return math.Max(-maxAbs, math.Min(maxAbs, v)) }

// FormatNumber formats v the Italian way: '.' between thousands, ',' before
// the decimals, at most dec decimals and no trailing zeros ("1.234,5").
// NaN and infinities read "n.d." (non disponibile).
func FormatNumber(v float64, dec int) string {
	if !finite(v) {
		return "n.d."
	}
	if dec < 0 {
		dec = 0
	}
	if dec > 6 {
		dec = 6
	}
	v = clampValue(v)
	// Half away from zero, as people round (strconv rounds half to even).
	p := math.Pow(10, float64(dec))
	s := strconv.FormatFloat(math.Round(math.Abs(v)*p)/p, 'f', dec, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	frac = strings.TrimRight(frac, "0")
	var b strings.Builder
	if v < 0 && (strings.Trim(intPart, "0") != "" || frac != "") {
		b.WriteByte('-')
	}
	for i, d := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte('.')
		}
		b.WriteRune(d)
	}
	if frac != "" {
		b.WriteByte(',')
		b.WriteString(frac)
	}
	return b.String()
}

// FormatPercent formats a fraction (0.368) as an Italian percentage
// ("36,8%").
func FormatPercent(frac float64) string {
	if !finite(frac) {
		return "n.d."
	}
	return FormatNumber(frac*100, 1) + "%"
}

// withUnit joins a formatted number and a unit.
func withUnit(n, unit string) string {
	if unit = strings.TrimSpace(unit); unit == "" {
		return n
	}
	return n + " " + unit
}

// FormatDate formats t as dd/mm/yyyy in its own location.
func FormatDate(t time.Time) string {
	return fmt.Sprintf("%02d/%02d/%04d", t.Day(), int(t.Month()), t.Year())
}

// monthAbbr are the Italian month abbreviations, lower case as in running
// text ("feb 2023").
var monthAbbr = [12]string{"gen", "feb", "mar", "apr", "mag", "giu", "lug", "ago", "set", "ott", "nov", "dic"}

// FormatMonth formats t as "feb 2023".
func FormatMonth(t time.Time) string {
	return fmt.Sprintf("%s %d", monthAbbr[t.Month()-1], t.Year())
}

// safeHref returns href if it is a relative URL or an http, https or
// mailto one, and "" otherwise (javascript: and data: URLs are dropped).
func safeHref(href string) string {
	href = strings.TrimSpace(href)
	if href == "" {
		return ""
	}
	// url.Parse refuses control characters, which browsers would strip
	// before reading the scheme ("java\tscript:").
	u, err := url.Parse(href)
	if err != nil {
		return ""
	}
	switch strings.ToLower(u.Scheme) {
	case "", "http", "https", "mailto":
		return href
	}
	return ""
}

// luminance is the WCAG 2.1 relative luminance of a #RRGGBB colour.
func luminance(hex string) float64 {
	if len(hex) != 7 || hex[0] != '#' {
		return 0
	}
	n, err := strconv.ParseUint(hex[1:], 16, 32)
	if err != nil {
		return 0
	}
	ch := func(v uint64) float64 {
		c := float64(v) / 255
		if c <= 0.04045 {
			return c / 12.92
		}
		return math.Pow((c+0.055)/1.055, 2.4)
	}
	return 0.2126*ch(n>>16&0xFF) + 0.7152*ch(n>>8&0xFF) + 0.0722*ch(n&0xFF)
}

// contrast is the WCAG 2.1 contrast ratio of two #RRGGBB colours (1..21).
func contrast(a, b string) float64 {
	la, lb := luminance(a), luminance(b)
	if la < lb {
		la, lb = lb, la
	}
	return (la + 0.05) / (lb + 0.05)
}

// textOn picks the text colour (colText or white) that reads best on fill.
func textOn(fill string) string {
	if contrast(colText, fill) >= contrast(colWhite, fill) {
		return colText
	}
	return colWhite
}
