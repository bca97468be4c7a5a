package ruletest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/polis-platform/polis/rules/dsl"
)

// loadRules reads the fixture's rule files, resolved against its directory,
// and checks that every expected alert names one of their rules.
func (f *fixture) loadRules() ([]*dsl.Rule, error) {
	p := &parser{file: f.path}
	dir := filepath.Dir(f.path)
	var paths []string
	for _, rp := range f.rules {
		glob := rp.glob
		if !filepath.IsAbs(glob) {
			glob = filepath.Join(dir, glob)
		}
		m, err := filepath.Glob(glob)
		switch {
		case err != nil:
			p.errAt(rp.line, rp.col, fmt.Sprintf("rule_files: bad pattern %q: %v", rp.glob, err))
		case len(m) == 0:
			p.errAt(rp.line, rp.col, fmt.Sprintf("rule_files: %q matches no file (looked for %s)", rp.glob, glob))
		}
		for _, path := range m {
			if !slices.Contains(paths, path) {
				paths = append(paths, path)
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	var rules []*dsl.Rule
	seen := map[string]dsl.Position{}
	var dups dsl.ErrorList
	for _, path := range paths {
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read rule file of %s: %w", f.path, err)
		}
		file, err := dsl.Load(path, src, dsl.Options{})
		if err != nil {
			return nil, fmt.Errorf("cannot load rule file %s of %s:\n%w", path, f.path, err)
		}
		for _, r := range file.Rules() {
			if first, dup := seen[r.ID]; dup {
				dups = append(dups, &dsl.Error{Pos: r.Pos, Rule: r.ID, Msg: "duplicate id, first defined at " + first.String()})
			}
			seen[r.ID] = r.Pos
			rules = append(rules, r)
		}
	}
	if len(dups) > 0 {
		return nil, fmt.Errorf("cannot load the rule files of %s:\n%w", f.path, dups)
	}
	ids := make([]string, 0, len(seen))
	for id := range seen {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, t := range f.tests {
		for _, e := range t.expects {
			for _, w := range e.alerts {
				if _, ok := seen[w.rule]; !ok {
					p.errAt(w.ruleLine, w.ruleCol, fmt.Sprintf("unknown rule %q: not in rule_files%s", w.rule, didYouMean(w.rule, ids)))
				}
			}
		}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return rules, nil
}
