package registry

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/polis-platform/polis/italy"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// Public-investment codes. The twin stores them so that its sites and assets
// join to the national PNRR/PNC open data (Polis is a PNC programme):
//
//   - CUP, Codice Unico di Progetto: 15 characters, capital letters and
//     digits, one per funded project (law 144/1999, art. 11 of law 3/2003).
//   - CIG, Codice Identificativo Gara: 10 characters, capital letters and
//     digits, one per procurement contract (ANAC).
//
// Only the form is checked: the check characters of either code are not
// published as an algorithm.
var (
	cupRe = regexp.MustCompile(`^[A-Z0-9]{15}$`)
	cigRe = regexp.MustCompile(`^[A-Z0-9]{10}$`)
)

// ValidCUP reports whether s has the form of a CUP.
func ValidCUP(s string) bool { return cupRe.MatchString(s) }

// ValidCIG reports whether s has the form of a CIG.
func ValidCIG(s string) bool { return cigRe.MatchString(s) }

// Coworking describes what a coworking space offers. Workstations and
// meeting rooms that report occupancy are also assets (desk-N, room-N);
// these are the counts the programme announces.
type Coworking struct {
	Workstations int `json:"workstations"`
	MeetingRooms int `json:"meeting_rooms"`
	EventAreas   int `json:"event_areas"`
}

// Interval is an opening interval in minutes after local midnight,
// Open inclusive, Close exclusive; 0 <= Open < Close <= 1440.
type Interval struct {
	Open, Close int
}

// OpeningHours are a site's weekly opening hours in Italian local time
// (Europe/Rome), indexed by time.Weekday. Written as
// "Mon-Fri 08:20-13:45; Sat 08:20-12:45": clauses separated by ";" or a
// newline, each a list of days or day ranges (Mon..Sun, ranges going
// forward) and a comma-separated list of HH:MM-HH:MM intervals. Days not
// named are closed. Intervals past midnight are not supported: no site of
// the programme opens at night.
type OpeningHours struct {
	Days [7][]Interval
}

var dayNames = [7]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// weekOrder is Monday first, as Italian timetables are written.
var weekOrder = [7]time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday, time.Saturday, time.Sunday}

// HoursSyntaxError is a parse error with its 1-based line and column
// (counted in characters).
type HoursSyntaxError struct {
	Line, Col int
	Msg       string
}

func (e *HoursSyntaxError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Col, e.Msg) }

// ParseOpeningHours parses the form described on OpeningHours.
func ParseOpeningHours(s string) (*OpeningHours, error) {
	p := hoursParser{src: s}
	h, err := p.parse()
	if err != nil {
		return nil, fmt.Errorf("cannot parse opening hours: %w", err)
	}
	return h, nil
}

type hoursParser struct {
	src string
}

func (p *hoursParser) errAt(off int, format string, args ...any) error {
	line, col := 1, 1
	for _, r := range p.src[:off] {
		if r == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return &HoursSyntaxError{Line: line, Col: col, Msg: fmt.Sprintf(format, args...)}
}

func (p *hoursParser) parse() (*OpeningHours, error) {
	h := &OpeningHours{}
	found := false
	start := 0
	for i := 0; i <= len(p.src); i++ {
		if i < len(p.src) && p.src[i] != ';' && p.src[i] != '\n' {
			continue
		}
		n, err := p.clause(h, start, i)
		if err != nil {
			return nil, err
		}
		found = found || n > 0
		start = i + 1
	}
	if !found {
		return nil, p.errAt(0, "no opening hours, want e.g. \"Mon-Fri 08:20-13:45\"")
	}
	for d := range h.Days {
		slices.SortFunc(h.Days[d], func(a, b Interval) int { return a.Open - b.Open })
	}
	return h, nil
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

// clause parses src[from:to] into h and returns the number of intervals added.
func (p *hoursParser) clause(h *OpeningHours, from, to int) (int, error) {
	for from < to && isSpace(p.src[from]) {
		from++
	}
	for to > from && isSpace(p.src[to-1]) {
		to--
	}
	if from == to {
		return 0, nil
	}
	sp := from
	for sp < to && !isSpace(p.src[sp]) {
		sp++
	}
	if sp == to {
		return 0, p.errAt(from, "want days then hours, e.g. \"Mon-Fri 08:20-13:45\"")
	}
	days, err := p.days(from, sp)
	if err != nil {
		return 0, err
	}
	n := 0
	for off := sp; off < to; {
		for off < to && isSpace(p.src[off]) {
			off++
		}
		end := strings.IndexByte(p.src[off:to], ',')
		if end < 0 {
			end = to
		} else {
			end += off
		}
		iv, err := p.interval(off, end)
		if err != nil {
			return 0, err
		}
		for _, d := range days {
			for _, o := range h.Days[d] {
				if iv.Open < o.Close && o.Open < iv.Close {
					return 0, p.errAt(off, "%s overlaps %s on %s", iv, o, dayNames[d])
				}
			}
			h.Days[d] = append(h.Days[d], iv)
		}
		n++
		off = end + 1
		if end < to && off >= to {
			return 0, p.errAt(end, "interval expected after \",\"")
		}
	}
	return n, nil
}

func (p *hoursParser) days(from, to int) ([]time.Weekday, error) {
	var out []time.Weekday
	for off := from; off <= to; {
		end := strings.IndexByte(p.src[off:to], ',')
		if end < 0 {
			end = to
		} else {
			end += off
		}
		part := p.src[off:end]
		a, b, isRange := strings.Cut(part, "-")
		first, ok := dayIndex(a)
		if !ok {
			return nil, p.errAt(off, "unknown day %q, want Mon, Tue, Wed, Thu, Fri, Sat or Sun", a)
		}
		last := first
		if isRange {
			if last, ok = dayIndex(b); !ok {
				return nil, p.errAt(off+len(a)+1, "unknown day %q, want Mon, Tue, Wed, Thu, Fri, Sat or Sun", b)
			}
			if last < first {
				return nil, p.errAt(off, "day range %q goes backwards, write it Monday first", part)
			}
		}
		for i := first; i <= last; i++ {
			if slices.Contains(out, weekOrder[i]) {
				return nil, p.errAt(off, "%s named twice in one clause", dayNames[weekOrder[i]])
			}
			out = append(out, weekOrder[i])
		}
		off = end + 1
	}
	return out, nil
}

// dayIndex returns the position of a day name in weekOrder.
func dayIndex(s string) (int, bool) {
	for i, d := range weekOrder {
		if strings.EqualFold(s, dayNames[d]) {
			return i, true
		}
	}
	return 0, false
}

func (p *hoursParser) interval(from, to int) (Interval, error) {
	for to > from && isSpace(p.src[to-1]) {
		to--
	}
	s := p.src[from:to]
	if len(s) != 11 || s[5] != '-' {
		return Interval{}, p.errAt(from, "interval %q, want HH:MM-HH:MM", s)
	}
	open, ok := clock(s[:5])
	if !ok || open == 24*60 {
		return Interval{}, p.errAt(from, "time %q, want HH:MM from 00:00 to 23:59", s[:5])
	}
	cl, ok := clock(s[6:])
	if !ok {
		return Interval{}, p.errAt(from+6, "time %q, want HH:MM from 00:00 to 24:00", s[6:])
	}
	if cl <= open {
		return Interval{}, p.errAt(from, "interval %q closes before it opens (no overnight intervals)", s)
	}
	return Interval{open, cl}, nil
}

// clock parses "HH:MM" into minutes after midnight; "24:00" is 1440.
func clock(s string) (int, bool) {
	if len(s) != 5 || s[2] != ':' || !isDigits(s[:2], 2) || !isDigits(s[3:], 2) {
		return 0, false
	}
	h, _ := strconv.Atoi(s[:2])
	m, _ := strconv.Atoi(s[3:])
	if m > 59 || h > 24 || (h == 24 && m != 0) {
		return 0, false
	}
	return h*60 + m, true
}

func (iv Interval) String() string {
	return fmt.Sprintf("%02d:%02d-%02d:%02d", iv.Open/60, iv.Open%60, iv.Close/60, iv.Close%60)
}

// String writes the hours in canonical form, Monday first, consecutive days
// with the same intervals grouped: ParseOpeningHours(h.String()) equals h.
func (h OpeningHours) String() string {
	var clauses []string
	for i := 0; i < 7; {
		d := weekOrder[i]
		j := i + 1
		for j < 7 && slices.Equal(h.Days[weekOrder[j]], h.Days[d]) {
			j++
		}
		if len(h.Days[d]) > 0 {
			days := dayNames[d]
			if j-i > 1 {
				days += "-" + dayNames[weekOrder[j-1]]
			}
			ivs := make([]string, len(h.Days[d]))
			for k, iv := range h.Days[d] {
				ivs[k] = iv.String()
			}
			clauses = append(clauses, days+" "+strings.Join(ivs, ","))
		}
		i = j
	}
	return strings.Join(clauses, "; ")
}

// MarshalText writes the canonical form, so registry files stay readable.
func (h OpeningHours) MarshalText() ([]byte, error) { return []byte(h.String()), nil }

// UnmarshalText parses the form described on OpeningHours.
func (h *OpeningHours) UnmarshalText(b []byte) error {
	p, err := ParseOpeningHours(string(b))
	if err != nil {
		return err
	}
	*h = *p
	return nil
}

func rome() *time.Location { return italy.Rome }

// OpenAt reports whether the site is open at t, read in Europe/Rome time.
func (h *OpeningHours) OpenAt(t time.Time) bool {
	lt := t.In(rome())
	m := lt.Hour()*60 + lt.Minute()
	for _, iv := range h.Days[lt.Weekday()] {
		if iv.Open <= m && m < iv.Close {
			return true
		}
	}
	return false
}

// check returns what is wrong with hours built by hand rather than parsed.
func (h *OpeningHours) check() string {
	for d, ivs := range h.Days {
		for i, iv := range ivs {
			if iv.Open < 0 || iv.Close > 24*60 || iv.Open >= iv.Close {
				return fmt.Sprintf("%s: interval %d..%d is not within 00:00-24:00 or is empty", dayNames[d], iv.Open, iv.Close)
			}
			if i > 0 && ivs[i-1].Close > iv.Open {
				return fmt.Sprintf("%s: intervals are not sorted or overlap", dayNames[d])
			}
		}
	}
	return ""
}

// Problem is one thing wrong with a site, naming the field.
type Problem struct {
	Field string // "cup", "assets[atm-1].lifecycle", ...
	Msg   string
}

// ValidationError lists every problem found in one site.
type ValidationError struct {
	Site     string
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Msg
	}
	return fmt.Sprintf("invalid site %q: %s", e.Site, strings.Join(parts, "; "))
}

// Validate checks every field of the site and its assets and returns a
// *ValidationError listing all problems, or nil. Registry.Add checks only
// ids, so that registries written before these fields still load.
func (s *Site) Validate() error {
	var ps []Problem
	bad := func(field, format string, args ...any) {
		ps = append(ps, Problem{field, fmt.Sprintf(format, args...)})
	}
	text := func(field, v string) {
		if v != "" && (!cleanText(v) || len(v) > 200) {
			bad(field, "%q holds invalid UTF-8 or control characters, or is over 200 bytes", v)
		}
	}
	if !ValidSiteID(s.ID) {
		bad("id", "%q must look like PO-<ISTAT code>-<n> or CW-<province>-<n>", s.ID)
	}
	switch s.Kind {
	case KindPostOffice:
		if ValidSiteID(s.ID) && !strings.HasPrefix(s.ID, "PO-") {
			bad("kind", "post office with a coworking id")
		}
		if !isDigits(s.Comune, 6) {
			bad("comune", "%q is not a 6-digit ISTAT code", s.Comune)
		} else if strings.HasPrefix(s.ID, "PO-") && ValidSiteID(s.ID) && s.ID[3:9] != s.Comune {
			bad("comune", "%s differs from the code in the id", s.Comune)
		}
		if s.Coworking != nil {
			bad("coworking", "set on a post office")
		}
	case KindCoworking:
		if ValidSiteID(s.ID) && !strings.HasPrefix(s.ID, "CW-") {
			bad("kind", "coworking space with a post-office id")
		}
		if s.Comune != "" && !isDigits(s.Comune, 6) {
			bad("comune", "%q is not a 6-digit ISTAT code", s.Comune)
		}
		if s.Province != "" && strings.HasPrefix(s.ID, "CW-") && ValidSiteID(s.ID) && s.ID[3:5] != s.Province {
			bad("province", "%s differs from the province in the id", s.Province)
		}
		if c := s.Coworking; c != nil && (c.Workstations < 0 || c.MeetingRooms < 0 || c.EventAreas < 0) {
			bad("coworking", "negative count")
		}
	default:
		bad("kind", "%q, want %s or %s", s.Kind, KindPostOffice, KindCoworking)
	}
	if s.Province != "" && !isUpper(s.Province, 2) {
		bad("province", "%q is not a 2-letter province code", s.Province)
	}
	text("name", s.Name)
	text("region", s.Region)
	text("province_name", s.ProvinceName)
	text("address", s.Address)
	if s.Population < 0 {
		bad("population", "%d is negative", s.Population)
	}
	if ia := s.InnerArea; ia != "" && (len(ia) != 1 || ia[0] < 'A' || ia[0] > 'F') {
		bad("inner_area", "%q is not a class A..F", ia)
	}
	if s.Lat != 0 || s.Lon != 0 {
		if !(s.Lat >= 35 && s.Lat <= 48) {
			bad("lat", "%g is outside Italy (35..48)", s.Lat)
		}
		if !(s.Lon >= 6 && s.Lon <= 19) {
			bad("lon", "%g is outside Italy (6..19)", s.Lon)
		}
	}
	if s.CUP != "" && !ValidCUP(s.CUP) {
		bad("cup", "%q is not 15 capital letters or digits", s.CUP)
	}
	if s.CIG != "" && !ValidCIG(s.CIG) {
		bad("cig", "%q is not 10 capital letters or digits", s.CIG)
	}
	if s.OpeningHours != nil {
		if msg := s.OpeningHours.check(); msg != "" {
			bad("opening_hours", "%s", msg)
		}
	}
	seen := map[string]bool{}
	for i, a := range s.Assets {
		if a == nil {
			bad(fmt.Sprintf("assets[%d]", i), "nil asset")
			continue
		}
		f := "assets[" + a.ID + "]"
		if !ValidAssetID(a.ID) {
			bad(f+".id", "%q must look like <type>-<n>", a.ID)
		} else if seen[a.ID] {
			bad(f+".id", "listed twice")
		}
		seen[a.ID] = true
		if a.Type == "" || (ValidAssetID(a.ID) && a.Type != AssetTypeOf(a.ID)) {
			bad(f+".type", "%q does not match the id, want %q", a.Type, AssetTypeOf(a.ID))
		}
		if a.SecretHash != "" && !validHashForm(a.SecretHash) {
			bad(f+".secret_hash", "not a sha256$<salt>$<hash> or bcrypt hash")
		}
		text(f+".supplier", a.Supplier)
		if a.CIG != "" && !ValidCIG(a.CIG) {
			bad(f+".cig", "%q is not 10 capital letters or digits", a.CIG)
		}
		if a.Lifecycle != "" && !a.Lifecycle.Valid() {
			bad(f+".lifecycle", "%q is not a lifecycle state", a.Lifecycle)
		}
		if !a.InstalledAt.IsZero() && a.Lifecycle == lifecycle.Planned {
			bad(f+".installed_at", "set on a planned asset")
		}
	}
	if len(ps) == 0 {
		return nil
	}
	return &ValidationError{Site: s.ID, Problems: ps}
}

var sha256HashRe = regexp.MustCompile(`^sha256\$[0-9a-f]{32}\$[0-9a-f]{64}$`)

// validHashForm reports whether h looks like a hash credential.Check understands.
func validHashForm(h string) bool {
	if strings.HasPrefix(h, "$2") {
		return len(h) == 60 && cleanText(h)
	}
	return sha256HashRe.MatchString(h)
}

// Hours the generator gives demo sites: Poste's usual small-office
// timetable, and a working day for coworking spaces.
const (
	PostOfficeHours = "Mon-Fri 08:20-13:45; Sat 08:20-12:45"
	CoworkingHours  = "Mon-Fri 08:00-20:00"
)

var demoStreets = []string{"Via Roma", "Piazza Municipio", "Corso Italia", "Via Garibaldi", "Via Mazzini", "Piazza della Repubblica", "Via Vittorio Emanuele"}

// decorate fills the descriptive fields of generated sites from its own
// random stream, so the layout drawn before stays what it was. Lifecycle
// states are spread as a programme near its end would look: most assets
// operational, some still planned, installed or in acceptance, a few faulty.
func decorate(sites []*Site, rng interface {
	IntN(int) int
	Float64() float64
}) {
	po := MustParseOpeningHours(PostOfficeHours)
	cw := MustParseOpeningHours(CoworkingHours)
	start := time.Date(2022, 3, 1, 0, 0, 0, 0, time.UTC) // works started Q1 2022
	const days = 4 * 365
	for _, s := range sites {
		place := s.Name
		if place == "" {
			place = s.Comune
			if place == "" {
				place = s.Province
			}
		}
		s.Address = fmt.Sprintf("%s %d, %s", demoStreets[rng.IntN(len(demoStreets))], 1+rng.IntN(120), place)
		switch s.Kind {
		case KindPostOffice:
			s.OpeningHours = po.clone()
		case KindCoworking:
			s.OpeningHours = cw.clone()
			c := &Coworking{EventAreas: rng.IntN(2)}
			for _, a := range s.Assets {
				switch a.Type {
				case TypeDesk:
					c.Workstations++
				case TypeRoom:
					c.MeetingRooms++
				}
			}
			s.Coworking = c
		}
		for _, a := range s.Assets {
			a.Supplier = fmt.Sprintf("demo-supplier-%s-%d", a.Type, 1+rng.IntN(3))
			u := rng.Float64()
			switch {
			case u < 0.78:
				a.Lifecycle = lifecycle.Operational
			case u < 0.84:
				a.Lifecycle = lifecycle.Commissioned
			case u < 0.90:
				a.Lifecycle = lifecycle.Installed
			case u < 0.96:
				a.Lifecycle = lifecycle.Planned
			default:
				a.Lifecycle = lifecycle.Faulty
			}
			if a.Lifecycle != lifecycle.Planned {
				a.InstalledAt = start.AddDate(0, 0, rng.IntN(days))
			}
		}
	}
}

// MustParseOpeningHours is ParseOpeningHours for constants; it panics on error.
func MustParseOpeningHours(s string) *OpeningHours {
	h, err := ParseOpeningHours(s)
	if err != nil {
		panic("BUG: " + err.Error())
	}
	return h
}

func (h *OpeningHours) clone() *OpeningHours {
	c := &OpeningHours{}
	for d, ivs := range h.Days {
		c.Days[d] = slices.Clone(ivs)
	}
	return c
}

// SeedTracker adds every asset of the registry to t in its recorded
// lifecycle state, the way the twin learns the fleet at start. An asset with
// no recorded state (a registry written before lifecycles) starts as planned:
// counting it as anything more would report progress nobody has shown; its
// telemetry then moves it on by evidence.
func (r *Registry) SeedTracker(t *lifecycle.Tracker) error {
	for _, s := range r.Sites() {
		for _, a := range s.Assets {
			st := a.Lifecycle
			if st == "" {
				st = lifecycle.Planned
			}
			if err := t.Add(s.ID, a.ID, st); err != nil {
				return fmt.Errorf("cannot seed lifecycle tracker: %w", err)
			}
		}
	}
	return nil
}
