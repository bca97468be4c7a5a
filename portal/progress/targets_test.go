package progress

import (
	"slices"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
)

// The real pack and facts: every disagreement issue #13 names is shown,
// each figure with its source, and intermediate targets never disagree.
func TestTargets_RealDisagreements(t *testing.T) {
	ms, facts := realPack(t)
	s := buildEmpty(t, ms, facts)
	by := map[string]Target{}
	for _, tg := range s.Targets {
		by[tg.ID] = tg
	}
	for id, want := range map[string][]string{
		"offices_completed_6933":      {"offices_completed_4764", "offices_completed_4800"},
		"offices_completed_4800":      {"offices_completed_6933", "offices_completed_4764"},
		"atm_installed_7000":          {"atm_installed_3000"},
		"atm_installed_3000":          {"atm_installed_7000"},
		"coworking_desks_10000":       {"coworking_desks_5000"},
		"totem_installed_4000":        {"totem_installed_4800"},
		"locker_installed_500":        {"locker_installed_4800"},
		"coworking_small_comuni_80":   {"coworking_small_comuni_70"},
		"coworking_completed_250":     nil, // 37, 30 and 80 are intermediate targets
		"offices_completed_1500_2023": nil,
		"pv_installed_1000":           nil,
	} {
		tg, ok := by[id]
		if !ok {
			t.Errorf("no target %s", id)
			continue
		}
		if !slices.Equal(tg.Disagrees, want) {
			t.Errorf("%s disagrees with %v, want %v", id, tg.Disagrees, want)
		}
	}
	for _, tg := range s.Targets {
		src := tg.Source
		switch {
		case src.Fact != "":
			f, ok := milestone.FactByID(facts, src.Fact)
			if !ok || src.Publisher != f.SourceKind || !src.Date.Equal(f.Date) || src.URL == "" {
				t.Errorf("%s: source %+v does not match fact %s", tg.ID, src, src.Fact)
			}
		case tg.Note == "" || src.Publisher == "":
			t.Errorf("%s has no fact and says nothing of its source: %+v", tg.ID, tg)
		}
	}
	// Titles are Italian: no pack title is shown in English.
	for _, m := range ms {
		if by[m.ID].Title != m.TitleIT {
			t.Errorf("%s: title %q, want the Italian %q", m.ID, by[m.ID].Title, m.TitleIT)
		}
	}
	// Poste's share: 400 M EUR (F07) and 320 M EUR disagree; the annual
	// PNC quotas of different years do not.
	var poste []string
	for _, f := range s.Funding {
		switch f.Measure {
		case "poste_share":
			poste = append(poste, f.ID)
		case "pnc_2022", "pnc_2023", "pnc_total":
			if len(f.Disagrees) != 0 {
				t.Errorf("funding %s disagrees with %v", f.ID, f.Disagrees)
			}
		}
	}
	slices.Sort(poste)
	if !slices.Equal(poste, []string{"F07", "poste_share_320"}) {
		t.Errorf("Poste's share: %v", poste)
	}
	for _, f := range s.Funding {
		if f.Measure == "poste_share" && len(f.Disagrees) != 1 {
			t.Errorf("%s: disagrees %v", f.ID, f.Disagrees)
		}
	}
}

// buildEmpty builds over an empty fleet at a fixed time.
func buildEmpty(t *testing.T, ms []*milestone.Milestone, facts []milestone.Fact) *Snapshot {
	t.Helper()
	c, err := newComputer(ms, facts, SupplementaryTargets, SupplementaryFunding, nil, DefaultDeadline)
	if err != nil {
		t.Fatal(err)
	}
	return c.build(buildInput{now: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)})
}

// Every progress figure of the facts table is published, mapped to a
// measure of the twin unless it counts something the twin does not.
func TestPublished_RealFacts(t *testing.T) {
	ms, facts := realPack(t)
	s := buildEmpty(t, ms, facts)
	unmapped := map[string]bool{"F24": true} // offices offering a new service: not a twin count
	n := 0
	for _, f := range facts {
		if f.Type != milestone.FactProgress {
			continue
		}
		n++
		i := slices.IndexFunc(s.Published, func(p Published) bool { return p.Fact == f.ID })
		if i < 0 {
			t.Errorf("progress fact %s is not published", f.ID)
			continue
		}
		p := s.Published[i]
		if unmapped[f.ID] != (p.Measure == "") {
			t.Errorf("fact %s (%s): measure %q", f.ID, f.Metric, p.Measure)
		}
		if p.Value != f.Value || !p.Date.Equal(f.Date) || p.Source.URL != f.SourceURL || p.Source.Publisher != f.SourceKind {
			t.Errorf("fact %s published as %+v", f.ID, p)
		}
	}
	if n < 15 {
		t.Fatalf("only %d progress facts", n)
	}
	// The published figures of 2024-11-30 are compared with the right counts.
	for id, measure := range map[string]string{"F30": "offices_completed", "F31": "totem_installed", "F32": "atm_installed",
		"F33": "showcase_installed", "F34": "evc_sites", "F35": "pv_installed", "F37": "locker_installed",
		"F29": "offices_started", "F41": "coworking_completed", "F45": "offices_completed"} {
		if i := slices.IndexFunc(s.Published, func(p Published) bool { return p.Fact == id }); i < 0 || s.Published[i].Measure != measure {
			t.Errorf("%s is not compared with %s", id, measure)
		}
	}
}

func TestStatus(t *testing.T) {
	start, due := date(2022, 1, 1), date(2026, 12, 31)
	for _, c := range []struct {
		name            string
		current, target int
		now             time.Time
		want            string
		expected        int
	}{
		{"achieved early", 100, 100, date(2023, 1, 1), milestone.StatusAchieved, 20},
		{"on track", 50, 100, date(2024, 1, 1), milestone.StatusOnTrack, 40},
		{"at risk", 10, 100, date(2024, 1, 1), milestone.StatusAtRisk, 40},
		// Due by the end of the deadline day in Rome: not late at 23:30 that day.
		{"last evening", 10, 100, time.Date(2026, 12, 31, 22, 30, 0, 0, time.UTC), milestone.StatusAtRisk, 100},
		{"late", 99, 100, time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC), milestone.StatusLate, 100},
		{"before start", 0, 100, date(2021, 6, 1), milestone.StatusOnTrack, 0},
	} {
		st, _, exp := status(c.current, c.target, start, due, c.now)
		if st != c.want || exp != c.expected {
			t.Errorf("%s: %s expecting %d, want %s expecting %d", c.name, st, exp, c.want, c.expected)
		}
	}
}

func TestMethods(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range Methods {
		if m.Anchor == "" || Slug(m.Anchor) != m.Anchor || m.Title == "" || len(m.Text) < 80 || seen[m.Anchor] {
			t.Errorf("method %+v", m)
		}
		seen[m.Anchor] = true
	}
	for _, a := range []string{MethodLevels, MethodCompleted, MethodStarted, MethodOperational, MethodWorkingNow,
		MethodTargets, MethodDisagree, MethodStatus, MethodReached, MethodTrend, MethodPace, MethodPublished,
		MethodFunding, MethodEnergy, MethodCoworking, MethodSuppliers, MethodFreshness} {
		if !seen[a] {
			t.Errorf("no method %q", a)
		}
	}
}
