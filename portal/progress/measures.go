package progress

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
)

// A measure is one thing the portal counts over the fleet: a where
// expression of package rules/milestone, evaluated site by site. The
// programme's targets (milestones) each count one measure; several
// targets with the same count and where (the same thing, different
// figures or deadlines) share it. measures.yaml adds the counts the
// published progress figures need that no target counts (offices
// started, sites with a charger...).
//
//go:embed measures.yaml
var measuresYAML []byte

type measure struct {
	Key    string // "offices_completed"
	Name   string // Italian
	Method string // anchor of its method
	ms     *milestone.Milestone
	c      cmeasure
}

// measureSet is every measure, in a fixed order: per-site counts are
// []int32 indexed like list.
type measureSet struct {
	list  []*measure
	local []int // asset-local measures (eval.go)
	wide  []int // the others
	// wideMs are the milestones of wide, for one milestone.Compute.
	wideMs []*milestone.Milestone
	byKey  map[string]int
	ms     []*milestone.Milestone // list[i].ms, for milestone.Compute
}

var trailingNumbers = regexp.MustCompile(`(_[0-9]+)+$`)

// normWhere identifies a count: what is counted and the where expression,
// spaces collapsed.
func normWhere(m *milestone.Milestone) string {
	return string(m.Count) + "|" + strings.Join(strings.Fields(m.Where), " ")
}

// newMeasureSet loads the built-in measures and gives every milestone of
// pack its measure. It returns, per milestone of pack, its measure's key.
func newMeasureSet(pack []*milestone.Milestone) (*measureSet, []string, error) {
	builtin, err := milestone.Load("portal/progress/measures.yaml", measuresYAML)
	if err != nil {
		return nil, nil, fmt.Errorf("BUG: cannot load the built-in measures: %w", err)
	}
	set := &measureSet{byKey: map[string]int{}}
	byWhere := map[string]int{}
	add := func(key, name string, m *milestone.Milestone) int {
		i := len(set.list)
		set.list = append(set.list, &measure{Key: key, Name: name, Method: methodOfCount(m), ms: m, c: compileMeasure(m)})
		if set.list[i].c.assetLocal {
			set.local = append(set.local, i)
		} else {
			set.wide = append(set.wide, i)
			set.wideMs = append(set.wideMs, m)
		}
		set.byKey[key] = i
		set.ms = append(set.ms, m)
		byWhere[normWhere(m)] = i
		return i
	}
	for _, m := range builtin {
		add(m.ID, m.Title, m)
	}
	keys := make([]string, len(pack))
	for j, m := range pack {
		if i, ok := byWhere[normWhere(m)]; ok {
			keys[j] = set.list[i].Key
			continue
		}
		// A count no built-in measure makes: named after the milestone,
		// without the figures that end its id (coworking_small_comuni_80).
		key := trailingNumbers.ReplaceAllString(m.ID, "")
		if key == "" {
			key = m.ID
		}
		for n := 2; ; n++ {
			if _, taken := set.byKey[key]; !taken {
				break
			}
			key = fmt.Sprintf("%s_%d", trailingNumbers.ReplaceAllString(m.ID, ""), n)
		}
		name := m.TitleIT
		if name == "" {
			name = m.Title
		}
		keys[j] = set.list[add(key, name, m)].Key
	}
	return set, keys, nil
}

// methodOfCount is the method anchor of a count: sites completed, sites
// started, or assets at a level.
func methodOfCount(m *milestone.Milestone) string {
	switch {
	case m.Count == milestone.CountSites && strings.Contains(m.Where, "all_assets_in"):
		return MethodCompleted
	case m.Count == milestone.CountSites:
		return MethodStarted
	default:
		return MethodLevels
	}
}

// timeZero is the now of the counts: a count does not depend on it.
var timeZero time.Time
