package portal

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/italy"
	"github.com/polis-platform/polis/twin/registry"
)

// rome is where the portal's dates are read: an Italian public site gives
// Italian local dates whatever the server's zone.
var rome = italy.Rome

// formatInt writes n the Italian way: a dot between thousands (1.234.567).
func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	first := len(s) % 3
	if first == 0 {
		first = 3
	}
	b.WriteString(s[:first])
	for i := first; i < len(s); i += 3 {
		b.WriteByte('.')
		b.WriteString(s[i : i+3])
	}
	return b.String()
}

// formatDec writes f with exactly dec decimals, Italian style: dots between
// thousands and a decimal comma (1.234,5). NaN and infinities are "n.d."
// (non disponibile), never a figure.
func formatDec(f float64, dec int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n.d."
	}
	s := strconv.FormatFloat(f, 'f', dec, 64)
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	intPart, frac, _ := strings.Cut(s, ".")
	n, err := strconv.ParseInt(intPart, 10, 64)
	if err != nil { // beyond int64: keep the digits, ungrouped
		return s
	}
	out := formatInt(n)
	if frac != "" {
		out += "," + frac
	}
	if neg && strings.Trim(out, "0.,") != "" {
		out = "-" + out
	}
	return out
}

// formatNum writes f with no decimals when it is whole and one otherwise:
// counts stay counts (1.234) and measures keep their tenth (12,5).
func formatNum(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return formatInt(int64(f))
	}
	return formatDec(f, 1)
}

// formatPercent writes a share given in percent (61.23 → "61,2%").
func formatPercent(p float64) string {
	if math.IsNaN(p) || math.IsInf(p, 0) {
		return "n.d."
	}
	return formatDec(p, 1) + "%"
}

// formatEUR writes an amount of euro: whole millions as "320 milioni di
// euro", others with the thousands grouped.
func formatEUR(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "n.d."
	}
	if f >= 1e6 && math.Mod(f, 1e4) == 0 {
		m := formatDec(f/1e6, 2)
		m = strings.TrimSuffix(strings.TrimSuffix(m, "0"), ",0")
		return m + " milioni di euro"
	}
	return formatDec(f, 2) + " €"
}

// formatDate writes t as dd/mm/yyyy in Italian time; the zero time is
// "non disponibile".
func formatDate(t time.Time) string {
	if t.IsZero() {
		return "non disponibile"
	}
	return t.In(rome).Format("02/01/2006")
}

// formatDateTime writes t as "dd/mm/yyyy alle hh:mm" in Italian time.
func formatDateTime(t time.Time) string {
	if t.IsZero() {
		return "non disponibile"
	}
	t = t.In(rome)
	return t.Format("02/01/2006") + " alle " + t.Format("15:04")
}

// isoDate is the machine-readable date of a <time> element.
func isoDate(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(rome).Format("2006-01-02")
}

// isoDateTime is the machine-readable instant of a <time> element.
func isoDateTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.In(rome).Format(time.RFC3339)
}

var monthNames = [...]string{"gennaio", "febbraio", "marzo", "aprile", "maggio", "giugno", "luglio", "agosto", "settembre", "ottobre", "novembre", "dicembre"}

// formatMonth writes the month of t in words ("novembre 2024").
func formatMonth(t time.Time) string {
	if t.IsZero() {
		return "non disponibile"
	}
	t = t.In(rome)
	return monthNames[t.Month()-1] + " " + strconv.Itoa(t.Year())
}

// weekdayNames are Italian day names, indexed by time.Weekday.
var weekdayNames = [7]string{"domenica", "lunedì", "martedì", "mercoledì", "giovedì", "venerdì", "sabato"}

// mondayFirst is the order of an Italian timetable.
var mondayFirst = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// dayAbbrev reads the short Italian day names (as portal/progress writes
// opening hours: "lun-ven 08:20-13:45") back into the registry's.
var dayAbbrev = strings.NewReplacer("lun", "Mon", "mar", "Tue", "mer", "Wed", "gio", "Thu",
	"ven", "Fri", "sab", "Sat", "dom", "Sun")

// italianHours writes opening hours, in the registry's form ("Mon-Fri
// 08:20-13:45; Sat 08:20-12:45") or with short Italian day names, in
// words, one line per run of days with the same hours ("da lunedì a
// venerdì: 8:20–13:45"). Text that parses neither way is returned as it
// is: it is still better than nothing.
func italianHours(s string) []string {
	if strings.TrimSpace(s) == "" {
		return nil
	}
	h, err := registry.ParseOpeningHours(s)
	if err != nil {
		if h, err = registry.ParseOpeningHours(dayAbbrev.Replace(s)); err != nil {
			return []string{s}
		}
	}
	var out []string
	for i := 0; i < len(mondayFirst); {
		day := mondayFirst[i]
		j := i + 1
		for j < len(mondayFirst) && sameIntervals(h.Days[day], h.Days[mondayFirst[j]]) {
			j++
		}
		if len(h.Days[day]) > 0 {
			days := weekdayNames[day]
			switch {
			case j-i == 2:
				days += " e " + weekdayNames[mondayFirst[j-1]]
			case j-i > 2:
				days = "da " + days + " a " + weekdayNames[mondayFirst[j-1]]
			}
			spans := make([]string, len(h.Days[day]))
			for k, iv := range h.Days[day] {
				spans[k] = clock(iv.Open) + "–" + clock(iv.Close)
			}
			out = append(out, days+": "+strings.Join(spans, ", "))
		}
		i = j
	}
	if len(out) == 0 {
		return []string{"sempre chiuso"}
	}
	return out
}

func sameIntervals(a, b []registry.Interval) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// clock writes minutes after midnight as 8:20 (Italian timetables drop the
// leading zero of the hour).
func clock(min int) string {
	return strconv.Itoa(min/60) + ":" + strconv.Itoa(min%60/10) + strconv.Itoa(min%10)
}

// prepA is the preposition "a" before a place name: "ad" before a word
// that starts with a (ad Agliè, ad Alberobello), as Italian writes it.
func prepA(name string) string {
	if r := strings.ToLower(name); strings.HasPrefix(r, "a") || strings.HasPrefix(r, "à") {
		return "ad"
	}
	return "a"
}
