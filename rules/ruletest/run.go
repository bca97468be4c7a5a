package ruletest

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Result counts the tests run and those that failed.
type Result struct {
	Tests, Failed int
}

// Run runs every fixture file of paths, writing PASS or FAIL per test to
// w. A fixture that cannot be used (unreadable, invalid, rule files that do
// not compile) is an error; the others still run and the errors come back
// joined. Failed tests are only counted in the Result.
func Run(paths []string, w io.Writer) (Result, error) {
	var total Result
	var errs []error
	for _, path := range paths {
		r, err := RunFile(path, w)
		total.Tests += r.Tests
		total.Failed += r.Failed
		if err != nil {
			errs = append(errs, err)
		}
	}
	return total, errors.Join(errs...)
}

// RunFile runs the tests of one fixture file.
func RunFile(path string, w io.Writer) (Result, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return Result{}, fmt.Errorf("cannot read rule test: %w", err)
	}
	f, err := parse(path, src)
	if err != nil {
		return Result{}, fmt.Errorf("cannot parse rule test %s:\n%w", path, err)
	}
	rs, err := f.loadRules()
	if err != nil {
		return Result{}, err
	}
	reg := registry.New()
	if err := reg.Add(f.sites...); err != nil {
		return Result{}, fmt.Errorf("cannot build the registry of %s: %w", path, err)
	}
	var res Result
	for _, t := range f.tests {
		fails, err := f.run(t, reg, rs)
		if err != nil {
			return res, fmt.Errorf("cannot run test %q of %s: %w", t.name, path, err)
		}
		res.Tests++
		verdict := "PASS"
		if len(fails) > 0 {
			res.Failed++
			verdict = "FAIL"
		}
		if _, err := fmt.Fprintf(w, "%s %s\n", verdict, t.name); err != nil {
			return res, fmt.Errorf("cannot write test results: %w", err)
		}
		for _, l := range fails {
			if _, err := fmt.Fprintf(w, "    %s\n", l); err != nil {
				return res, fmt.Errorf("cannot write test results: %w", err)
			}
		}
	}
	return res, nil
}

// run plays one test on a fresh twin and evaluator and returns its
// failures, one line each.
func (f *fixture) run(t *test, reg *registry.Registry, rs []*dsl.Rule) ([]string, error) {
	store := state.New(state.Options{})
	for _, s := range f.sites {
		for _, a := range s.Assets {
			store.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	ev, err := rules.NewEvaluator(reg, rs, engine.Options{}, 0)
	if err != nil {
		return nil, err
	}
	r := &runner{t: t, store: store, ev: ev, seen: map[string]bool{}}
	in, e := 0, 0
	var tick time.Duration
	for e < len(t.expects) {
		now := min(tick, t.expects[e].at)
		for ; in < len(t.inputs) && t.inputs[in].at <= now; in++ {
			r.apply(&t.inputs[in])
		}
		_, err := ev.Tick(t.start.Add(now))
		r.evalErr(now, err)
		if now == t.expects[e].at {
			r.check(&t.expects[e])
			e++
		}
		if now == tick {
			tick += f.interval
		}
	}
	return r.fails, nil
}

// runner is the state of one test run.
type runner struct {
	t     *test
	store *state.Store
	ev    *rules.Evaluator
	fails []string
	seen  map[string]bool // evaluation errors already reported
}

func (r *runner) failf(at time.Duration, format string, args ...any) {
	r.fails = append(r.fails, fmt.Sprintf("at %s (%s): %s", fmtOffset(at), r.t.start.Add(at).Format(time.RFC3339), fmt.Sprintf(format, args...)))
}

// evalErr reports an evaluation error (a rule that fails at run time, a
// point refused as late) once per test: it is the same on every tick.
func (r *runner) evalErr(at time.Duration, err error) {
	if err == nil || r.seen[err.Error()] {
		return
	}
	r.seen[err.Error()] = true
	r.failf(at, "evaluation error: %v", err)
}

// apply feeds one input to the twin and the evaluator as the platform does
// (rules.Service.Applied): telemetry goes to Point; a record that changed
// the connection or the status runs the asset's clock rules through Status.
func (r *runner) apply(in *input) {
	at := r.t.start.Add(in.at)
	ms := at.UnixMilli()
	rec := &record.Record{V: record.Version, Kind: in.kind, Site: in.site, Asset: in.asset, Received: ms}
	switch in.kind {
	case record.KindTelemetry:
		rec.Points = make([]record.Point, len(in.points))
		for i, p := range in.points {
			rec.Points[i] = record.Point{Metric: p.metric, TS: ms, Value: p.value}
		}
	case record.KindStatus:
		rec.TS, rec.Status = ms, in.status
	case record.KindReported:
		rec.TS, rec.Body = ms, in.body
	}
	c := r.store.Apply(rec)
	if !c.Known {
		r.failf(in.at, "the twin refused the record of %s/%s", in.site, in.asset)
		return
	}
	_, err := r.ev.Applied(r.store, rec, c) // as the platform does
	r.evalErr(in.at, err)
}

// open says whether an alert of that state is listed by default.
func open(s engine.State) bool {
	return s == engine.StatePending || s == engine.StateFiring || s == engine.StateNoData
}

// check compares the alerts with an expectation.
func (r *runner) check(e *expect) {
	type key struct{ rule, site, asset string }
	alerts := r.ev.Engine().Alerts(engine.Filter{})
	slices.SortFunc(alerts, func(a, b engine.Alert) int {
		return cmp.Or(cmp.Compare(a.RuleID, b.RuleID), cmp.Compare(a.Site, b.Site), cmp.Compare(a.Asset, b.Asset))
	})
	got := make(map[key]engine.Alert, len(alerts))
	for _, a := range alerts {
		got[key{a.RuleID, a.Site, a.Asset}] = a
	}
	expected := map[key]bool{}
	for _, w := range e.alerts {
		k := key{w.rule, w.site, w.asset}
		expected[k] = true
		a, ok := got[k]
		if !ok || a.State != w.state {
			msg := fmt.Sprintf("missing %s %s %s/%s", w.state, w.rule, w.site, w.asset)
			if ok {
				msg += fmt.Sprintf(" (it is %s)", a.State)
			}
			r.failf(e.at, "%s", msg)
			continue
		}
		if w.summary != nil && a.Summary != *w.summary {
			r.failf(e.at, "%s %s %s/%s: summary = %q, want %q", a.State, w.rule, w.site, w.asset, a.Summary, *w.summary)
		}
		if w.heldBy != nil {
			holder := ""
			for _, b := range alerts {
				if a.InhibitedBy != "" && b.Fingerprint == a.InhibitedBy {
					holder = b.RuleID
				}
			}
			if holder != *w.heldBy {
				r.failf(e.at, "%s %s %s/%s: held back by %q, want %q", a.State, w.rule, w.site, w.asset, holder, *w.heldBy)
			}
		}
		names := make([]string, 0, len(w.labels))
		for n := range w.labels {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			if v, ok := a.Labels[n]; !ok {
				r.failf(e.at, "%s %s %s/%s: no label %s, want %q", a.State, w.rule, w.site, w.asset, n, w.labels[n])
			} else if v != w.labels[n] {
				r.failf(e.at, "%s %s %s/%s: label %s = %q, want %q", a.State, w.rule, w.site, w.asset, n, v, w.labels[n])
			}
		}
	}
	for _, a := range alerts {
		if open(a.State) && !expected[key{a.RuleID, a.Site, a.Asset}] {
			r.failf(e.at, "unexpected %s %s %s/%s: %q", a.State, a.RuleID, a.Site, a.Asset, a.Summary)
		}
	}
}
