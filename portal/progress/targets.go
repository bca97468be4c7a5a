package progress

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
)

// A targetDef is one target as the builder counts it: a milestone of the
// pack, or a Supplementary figure.
type targetDef struct {
	ID       string
	Title    string
	Line     milestone.Line
	Measure  int // index in the measureSet
	Target   int
	Start    time.Time
	Deadline time.Time
	Source   SourceRef
	Note     string
	Method   string
}

// Supplementary is a programme figure that no row of the facts table
// records but that public statements disagree on, so the portal shows it
// beside the others (issue #13: 4,800 or 6,933 offices, 3,000 or 7,000
// ATMs, 5,000 or 10,000 workstations, 320 or 400 M EUR): its source is
// named as far as it is known, and Note says what is missing.
type Supplementary struct {
	ID       string
	Title    string // Italian
	Line     milestone.Line
	Measure  string // a measure key (offices_completed, atm_installed...)
	Target   int
	Deadline time.Time
	// Fact is the facts-table row the figure is quoted in (its note), if
	// any; its URL and publisher become the Source.
	Fact      string
	Publisher string // when Fact is empty
	Note      string
}

// articleA is how the figures of the first press article the design notes
// cite are attributed: its address was not recorded.
const (
	articleA     = "articolo di stampa (indirizzo non registrato)"
	articleANote = "Cifra riportata da un articolo di stampa di cui non è registrato l'indirizzo: non verificabile, " +
		"la mostriamo perché discorda da quella di un'altra fonte."
)

// SupplementaryTargets are the targets added to the milestone pack.
// Article A gives July 2026 for completion.
var SupplementaryTargets = []Supplementary{
	{ID: "offices_completed_4800", Title: "Uffici postali con intervento concluso (4.800, Il Sole 24 Ore, 2022)",
		Line: milestone.LineSportelloUnico, Measure: "offices_completed", Target: 4800, Deadline: date(2026, 12, 31),
		Fact: "F13", Note: "Cifra citata nello stesso articolo del Sole 24 Ore che riporta 4.764 comuni (nota della riga F13)."},
	{ID: "atm_installed_3000", Title: "ATM evoluti installati (3.000)", Line: milestone.LineSportelloUnico,
		Measure: "atm_installed", Target: 3000, Deadline: date(2026, 7, 31), Publisher: articleA, Note: articleANote},
	{ID: "totem_installed_4800", Title: "Totem self-service installati (4.800)", Line: milestone.LineSportelloUnico,
		Measure: "totem_installed", Target: 4800, Deadline: date(2026, 7, 31), Publisher: articleA, Note: articleANote},
	{ID: "locker_installed_4800", Title: "Locker per pacchi installati (4.800)", Line: milestone.LineSportelloUnico,
		Measure: "locker_installed", Target: 4800, Deadline: date(2026, 7, 31), Publisher: articleA, Note: articleANote},
	{ID: "coworking_desks_5000", Title: "Postazioni di coworking in servizio (5.000)", Line: milestone.LineSpaziPerItalia,
		Measure: "coworking_desks", Target: 5000, Deadline: date(2026, 7, 31), Publisher: articleA, Note: articleANote},
}

// SupplementaryFunding are funding figures with no row in the facts table.
var SupplementaryFunding = []Funding{
	{ID: "poste_share_320", Line: milestone.LineProgramma, What: "quota a carico di Poste Italiane",
		Amount: 320_000_000, Measure: "poste_share", Source: SourceRef{Publisher: articleA}, Note: articleANote},
}

func date(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }

// fundingMeasures says what each funding fact of the table is: facts of
// the same measure with different amounts disagree. Unlisted funding facts
// get their own id as measure.
var fundingMeasures = map[string]string{
	"F01": "pnc_total", "F02": "pnc_2022", "F03": "pnc_2023", "F04": "pnc_2024", "F05": "pnc_2025",
	"F06": "pnc_2026", "F07": "poste_share", "F43": "spazi_investment",
}

// publishedMeasures maps the progress facts (avanzamento) to the measure
// of the twin they state, where the twin counts the same thing. F24
// counts offices offering a new service (not a twin count). F12's offices
// were being completed: it is compared with completed offices, the
// nearest count. Unlisted progress facts have no measure.
var publishedMeasures = map[string]string{
	"F12": "offices_completed", "F15": "offices_completed", "F25": "offices_sardegna",
	"F26": "offices_completed", "F27": "offices_completed", "F29": "offices_started",
	"F30": "offices_completed", "F31": "totem_installed", "F32": "atm_installed",
	"F33": "showcase_installed", "F34": "evc_sites", "F35": "pv_installed",
	"F36": "smart_building_installed", "F37": "locker_installed", "F40": "coworking_started",
	"F41": "coworking_completed", "F45": "offices_completed",
}

// sourceOf makes the SourceRef of a fact id, from the facts table when it
// has the row.
func sourceOf(facts []milestone.Fact, id, url string) SourceRef {
	ref := SourceRef{Fact: id, URL: url}
	if f, ok := milestone.FactByID(facts, id); ok {
		ref.Publisher, ref.Date = f.SourceKind, f.Date
		if ref.URL == "" {
			ref.URL = f.SourceURL
		}
	}
	return ref
}

// targetDefs makes the targets: the pack's milestones then the
// supplementary ones whose measure exists.
func targetDefs(pack []*milestone.Milestone, keys []string, set *measureSet, facts []milestone.Fact, extra []Supplementary) ([]targetDef, error) {
	var out []targetDef
	seen := map[string]bool{}
	for j, m := range pack {
		mi := set.byKey[keys[j]]
		title := m.TitleIT
		if title == "" {
			title = m.Title
		}
		out = append(out, targetDef{ID: m.ID, Title: title, Line: m.Line, Measure: mi, Target: m.Target,
			Start: m.Start, Deadline: m.Deadline, Source: sourceOf(facts, m.Source.Fact, m.Source.URL),
			Method: set.list[mi].Method})
		seen[m.ID] = true
	}
	for _, x := range extra {
		mi, ok := set.byKey[x.Measure]
		if !ok {
			return nil, fmt.Errorf("cannot add target %s: no measure %q", x.ID, x.Measure)
		}
		if seen[x.ID] {
			return nil, fmt.Errorf("cannot add target %s: the milestones have that id", x.ID)
		}
		seen[x.ID] = true
		src := SourceRef{Publisher: x.Publisher}
		if x.Fact != "" {
			src = sourceOf(facts, x.Fact, "")
		}
		out = append(out, targetDef{ID: x.ID, Title: x.Title, Line: x.Line, Measure: mi, Target: x.Target,
			Start: milestone.DefaultStart, Deadline: x.Deadline, Source: src, Note: x.Note, Method: set.list[mi].Method})
	}
	return out, nil
}

// disagreements fills Disagrees: final targets (due in the deadline's
// year) of the same measure with different figures.
func disagreements(ts []Target, deadline time.Time) {
	final := func(t *Target) bool { return t.Deadline.Year() == deadline.Year() }
	for i := range ts {
		ts[i].Disagrees = nil
		if !final(&ts[i]) {
			continue
		}
		for j := range ts {
			if i != j && final(&ts[j]) && ts[j].Measure == ts[i].Measure && ts[j].Target != ts[i].Target {
				ts[i].Disagrees = append(ts[i].Disagrees, ts[j].ID)
			}
		}
	}
}

// fundingDisagreements fills Funding.Disagrees: same measure, other amount.
func fundingDisagreements(fs []Funding) {
	for i := range fs {
		fs[i].Disagrees = nil
		for j := range fs {
			if i != j && fs[j].Measure == fs[i].Measure && fs[j].Amount != fs[i].Amount {
				fs[i].Disagrees = append(fs[i].Disagrees, fs[j].ID)
			}
		}
	}
}

// funding makes the funding list: the table's finanziamento facts, then
// the supplementary figures, each with its measure.
func funding(facts []milestone.Fact, extra []Funding) []Funding {
	var out []Funding
	for _, f := range facts {
		if f.Type != milestone.FactFunding || !f.HasValue {
			continue
		}
		m := fundingMeasures[f.ID]
		if m == "" {
			m = strings.ToLower(f.ID)
		}
		out = append(out, Funding{ID: f.ID, Fact: f.ID, Date: f.Date, Line: f.Line, What: f.Metric, Amount: f.Value,
			Source: SourceRef{Fact: f.ID, URL: f.SourceURL, Publisher: f.SourceKind, Date: f.Date}, Note: f.Note, Measure: m})
	}
	for _, x := range extra {
		x.Disagrees = slices.Clone(x.Disagrees)
		out = append(out, x)
	}
	fundingDisagreements(out)
	return out
}

// status is milestone.Progress's status, percent and expected count for a
// count current against a target due by the end of deadline's day
// (Europe/Rome), with a linear pace from start.
func status(current, target int, start, deadline, now time.Time) (st string, percent float64, expected int) {
	if target <= 0 {
		return milestone.StatusLate, 0, 0
	}
	percent = math.Round(float64(current)*1000/float64(target)) / 10
	from := time.Date(start.Year(), start.Month(), start.Day(), 0, 0, 0, 0, rome)
	due := time.Date(deadline.Year(), deadline.Month(), deadline.Day()+1, 0, 0, 0, 0, rome)
	frac := 1.0
	if span := due.Sub(from); span > 0 {
		frac = min(max(float64(now.Sub(from))/float64(span), 0), 1)
	}
	expected = int(math.Ceil(frac*float64(target) - 1e-9))
	switch {
	case current >= target:
		st = milestone.StatusAchieved
	case !now.Before(due):
		st = milestone.StatusLate
	case current < expected:
		st = milestone.StatusAtRisk
	default:
		st = milestone.StatusOnTrack
	}
	return st, percent, expected
}
