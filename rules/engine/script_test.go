package engine_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// Script tests, in the spirit of Prometheus' promqltest. One command a line,
// '#' starts a comment. Times are HH:MM[:SS] on one day, UTC.
//
//	options [flap_window D] [flap_threshold N] [reminder D] [escalate D] [max_lateness D] [max_age D] [inhibit_grace D]
//	rule ID [cond EXPR] [clear EXPR] [for D] [keep_firing_for D] [nodata D] [severity S] [label K=V] [sitedown]
//	at TIME SITE/ASSET METRIC VALUE [rules ID,ID]   observe (default: every rule)
//	timer TIME SITE/ASSET [VALUE]                        a clock evaluation of every rule (value defaults to 0)
//	tick TIME
//	ack TIME RULE SITE/ASSET USER [COMMENT...]
//	assign TIME RULE SITE/ASSET USER
//	silence ID FROM TO LABEL=VALUE|LABEL=~REGEX...
//	unsilence ID
//	expect RULE SITE/ASSET STATE [silenced] [flapping] [acked] [occurrence=N] [assignee=U] [inhibited_by=RULE:SITE/ASSET] [not_inhibited]
//	expect notify KIND RULE SITE/ASSET [level=N] [held]
//	expect late | expect none
//
// Strict: every delivered notification of a step must be matched by an
// "expect notify" before the next step. Held (undelivered) ones may be
// checked with "held".

var day = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.test")
	if err != nil || len(files) == 0 {
		t.Fatalf("no script tests: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			s := &script{t: t, file: f, eng: engine.New(engine.Options{})}
			s.run(string(src))
		})
	}
}

type script struct {
	t       *testing.T
	file    string
	line    int
	eng     *engine.Engine
	opts    engine.Options
	rules   []engine.Rule
	last    []engine.Notification
	matched []bool
	lastErr error
}

func (s *script) fatalf(format string, args ...any) {
	s.t.Helper()
	s.t.Fatalf("%s:%d: %s", s.file, s.line, fmt.Sprintf(format, args...))
}

func (s *script) run(src string) {
	for i, l := range strings.Split(src, "\n") {
		s.line = i + 1
		if j := strings.IndexByte(l, '#'); j >= 0 {
			l = l[:j]
		}
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		if f[0] != "expect" {
			s.checkMatched()
		}
		s.exec(f)
	}
	s.checkMatched()
}

func (s *script) checkMatched() {
	s.t.Helper()
	for i, n := range s.last {
		if n.Deliver && !s.matched[i] {
			s.fatalf("unexpected notification %s %s %s/%s (level %d)", n.Kind, n.Alert.RuleID, n.Alert.Site, n.Alert.Asset, n.Level)
		}
	}
	s.last, s.matched, s.lastErr = nil, nil, nil
}

func (s *script) step(ns []engine.Notification, err error) {
	s.last, s.matched, s.lastErr = ns, make([]bool, len(ns)), err
}

func (s *script) exec(f []string) {
	s.t.Helper()
	switch f[0] {
	case "options":
		s.options(f[1:])
	case "rule":
		s.rule(f[1:])
	case "at":
		if len(f) != 5 && !(len(f) == 7 && f[5] == "rules") {
			s.fatalf("usage: at TIME SITE/ASSET METRIC VALUE [rules ID,ID]")
		}
		site, asset := s.asset(f[2])
		v, err := strconv.ParseFloat(f[4], 64)
		if err != nil {
			s.fatalf("bad value %q", f[4])
		}
		ids := make([]string, 0, len(s.rules))
		if len(f) == 7 {
			ids = strings.Split(f[6], ",")
		} else {
			for _, r := range s.rules {
				ids = append(ids, r.ID)
			}
		}
		typ, _, _ := strings.Cut(asset, "-")
		s.step(s.eng.Observe(engine.Eval{Site: site, Asset: asset, AssetType: typ, Metric: f[3], Value: v, TS: s.time(f[1])}, ids...))
		if s.lastErr != nil && !errors.Is(s.lastErr, engine.ErrLate) {
			s.fatalf("cannot observe: %s", s.lastErr)
		}
	case "timer":
		if len(f) != 3 && len(f) != 4 {
			s.fatalf("usage: timer TIME SITE/ASSET [VALUE]")
		}
		site, asset := s.asset(f[2])
		var v float64
		if len(f) == 4 {
			var err error
			if v, err = strconv.ParseFloat(f[3], 64); err != nil {
				s.fatalf("bad value %q", f[3])
			}
		}
		ids := make([]string, 0, len(s.rules))
		for _, r := range s.rules {
			ids = append(ids, r.ID)
		}
		typ, _, _ := strings.Cut(asset, "-")
		s.step(s.eng.Observe(engine.Eval{Site: site, Asset: asset, AssetType: typ, Value: v, TS: s.time(f[1]), Timer: true}, ids...))
		if s.lastErr != nil {
			s.fatalf("cannot evaluate on the clock: %s", s.lastErr)
		}
	case "tick":
		s.need(f, 2)
		s.step(s.eng.Tick(s.time(f[1])), nil)
	case "ack":
		if len(f) < 5 {
			s.fatalf("usage: ack TIME RULE SITE/ASSET USER [COMMENT...]")
		}
		n, err := s.eng.Ack(s.fp(f[2], f[3]), f[4], strings.Join(f[5:], " "), s.time(f[1]))
		if err != nil {
			s.fatalf("%s", err)
		}
		s.step([]engine.Notification{n}, nil)
	case "assign":
		s.need(f, 5)
		n, err := s.eng.Assign(s.fp(f[2], f[3]), f[4], s.time(f[1]))
		if err != nil {
			s.fatalf("%s", err)
		}
		s.step([]engine.Notification{n}, nil)
	case "silence":
		if len(f) < 5 {
			s.fatalf("usage: silence ID FROM TO MATCHER...")
		}
		sl := engine.Silence{ID: f[1], Start: s.time(f[2]), End: s.time(f[3]), CreatedBy: "script"}
		for _, m := range f[4:] {
			k, v, ok := strings.Cut(m, "=")
			if !ok {
				s.fatalf("bad matcher %q", m)
			}
			re := strings.HasPrefix(v, "~")
			sl.Matchers = append(sl.Matchers, engine.Matcher{Label: k, Value: strings.TrimPrefix(v, "~"), Regex: re})
		}
		if err := s.eng.Silence(sl); err != nil {
			s.fatalf("%s", err)
		}
	case "unsilence":
		s.need(f, 2)
		if err := s.eng.Unsilence(f[1]); err != nil {
			s.fatalf("%s", err)
		}
	case "expect":
		s.expect(f[1:])
	default:
		s.fatalf("unknown command %q", f[0])
	}
}

func (s *script) need(f []string, n int) {
	s.t.Helper()
	if len(f) != n {
		s.fatalf("%s takes %d arguments", f[0], n-1)
	}
}

func (s *script) options(f []string) {
	s.t.Helper()
	for i := 0; i+1 < len(f); i += 2 {
		k, v := f[i], f[i+1]
		if k == "flap_threshold" {
			n, err := strconv.Atoi(v)
			if err != nil {
				s.fatalf("bad %s %q", k, v)
			}
			s.opts.FlapThreshold = n
			continue
		}
		d := s.dur(v)
		switch k {
		case "flap_window":
			s.opts.FlapWindow = d
		case "reminder":
			s.opts.ReminderEvery = d
		case "escalate":
			s.opts.EscalateAfter = d
		case "max_lateness":
			s.opts.MaxLateness = d
		case "max_age":
			s.opts.MaxAge = d
		case "inhibit_grace":
			s.opts.InhibitGrace = d
		default:
			s.fatalf("unknown option %q", k)
		}
	}
	if len(f)%2 != 0 {
		s.fatalf("options take key value pairs")
	}
	s.eng = engine.New(s.opts)
	if err := s.eng.SetRules(s.rules); err != nil {
		s.fatalf("%s", err)
	}
}

var ruleKeys = map[string]bool{"cond": true, "clear": true, "for": true, "keep_firing_for": true, "nodata": true, "severity": true, "label": true, "sitedown": true}

func (s *script) rule(f []string) {
	s.t.Helper()
	if len(f) == 0 {
		s.fatalf("rule needs an id")
	}
	r := engine.Rule{ID: f[0], Severity: "warning"}
	r.Summary = func(e engine.Eval) string { return fmt.Sprintf("%s %s=%g", r.ID, e.Metric, e.Value) }
	for i := 1; i < len(f); {
		k := f[i]
		j := i + 1
		for j < len(f) && !ruleKeys[f[j]] {
			j++
		}
		arg := strings.Join(f[i+1:j], " ")
		switch k {
		case "cond", "clear":
			c, err := parseCond(arg)
			if err != nil {
				s.fatalf("%s", err)
			}
			fn := func(e engine.Eval) (bool, error) { return c.eval(e), nil }
			if k == "cond" {
				r.Cond = fn
			} else {
				r.Clear = fn
			}
		case "for":
			r.For = s.dur(arg)
		case "keep_firing_for":
			r.KeepFiringFor = s.dur(arg)
		case "nodata":
			r.NoDataAfter = s.dur(arg)
		case "severity":
			r.Severity = arg
		case "label":
			lk, lv, ok := strings.Cut(arg, "=")
			if !ok {
				s.fatalf("bad label %q", arg)
			}
			if r.Labels == nil {
				r.Labels = map[string]string{}
			}
			r.Labels[lk] = lv
		case "sitedown":
			r.SiteDown = true
		default:
			s.fatalf("unknown rule keyword %q", k)
		}
		i = j
	}
	if r.Cond == nil {
		r.Cond = func(engine.Eval) (bool, error) { return false, nil }
	}
	s.rules = append(s.rules, r)
	if err := s.eng.SetRules(s.rules); err != nil {
		s.fatalf("%s", err)
	}
}

func (s *script) expect(f []string) {
	s.t.Helper()
	if len(f) == 0 {
		s.fatalf("expect what?")
	}
	switch f[0] {
	case "late":
		if !errors.Is(s.lastErr, engine.ErrLate) {
			s.fatalf("expected the point to be late; got err %v", s.lastErr)
		}
		return
	case "none":
		for _, n := range s.last {
			if n.Deliver {
				s.fatalf("expected no notification; got %s %s %s/%s", n.Kind, n.Alert.RuleID, n.Alert.Site, n.Alert.Asset)
			}
		}
		return
	case "notify":
		s.expectNotify(f[1:])
		return
	}
	if len(f) < 3 {
		s.fatalf("usage: expect RULE SITE/ASSET STATE [flags]")
	}
	a, ok := s.eng.Get(s.fp(f[0], f[1]))
	if !ok {
		if f[2] == "inactive" && len(f) == 3 {
			return
		}
		s.fatalf("no alert %s %s", f[0], f[1])
	}
	if a.State.String() != f[2] {
		s.fatalf("unexpected state of %s %s; got %s; want %s", f[0], f[1], a.State, f[2])
	}
	for _, fl := range f[3:] {
		k, v, _ := strings.Cut(fl, "=")
		var got, want string
		switch k {
		case "silenced":
			got, want = strconv.FormatBool(a.Silenced), "true"
		case "flapping":
			got, want = strconv.FormatBool(a.Flapping), "true"
		case "acked":
			got, want = strconv.FormatBool(a.Ack != nil), "true"
		case "not_inhibited":
			got, want = a.InhibitedBy, ""
		case "occurrence":
			got, want = strconv.Itoa(a.Occurrence), v
		case "assignee":
			got, want = a.Assignee, v
		case "inhibited_by":
			r, sa, _ := strings.Cut(v, ":")
			got, want = a.InhibitedBy, s.fp(r, sa)
		default:
			s.fatalf("unknown flag %q", fl)
		}
		if got != want {
			s.fatalf("unexpected %s of %s %s; got %q; want %q", k, f[0], f[1], got, want)
		}
	}
}

func (s *script) expectNotify(f []string) {
	s.t.Helper()
	if len(f) < 3 {
		s.fatalf("usage: expect notify KIND RULE SITE/ASSET [level=N] [held]")
	}
	site, asset := s.asset(f[2])
	level, held := -1, false
	for _, fl := range f[3:] {
		switch {
		case fl == "held":
			held = true
		case strings.HasPrefix(fl, "level="):
			level, _ = strconv.Atoi(strings.TrimPrefix(fl, "level="))
		default:
			s.fatalf("unknown flag %q", fl)
		}
	}
	for i, n := range s.last {
		if string(n.Kind) == f[0] && n.Alert.RuleID == f[1] && n.Alert.Site == site && n.Alert.Asset == asset &&
			n.Deliver != held && (level < 0 || n.Level == level) && !s.matched[i] {
			s.matched[i] = true
			return
		}
	}
	var got []string
	for _, n := range s.last {
		got = append(got, fmt.Sprintf("%s %s %s/%s deliver=%v level=%d", n.Kind, n.Alert.RuleID, n.Alert.Site, n.Alert.Asset, n.Deliver, n.Level))
	}
	s.fatalf("no notification %s; got %q", strings.Join(f, " "), got)
}

func (s *script) asset(sa string) (string, string) {
	s.t.Helper()
	site, asset, ok := strings.Cut(sa, "/")
	if !ok {
		s.fatalf("bad SITE/ASSET %q", sa)
	}
	return site, asset
}

func (s *script) fp(rule, sa string) string {
	site, asset := s.asset(sa)
	return engine.Fingerprint(rule, site, asset)
}

func (s *script) time(v string) time.Time {
	s.t.Helper()
	for _, layout := range []string{"15:04", "15:04:05"} {
		if t, err := time.Parse(layout, v); err == nil {
			return day.Add(time.Duration(t.Hour())*time.Hour + time.Duration(t.Minute())*time.Minute + time.Duration(t.Second())*time.Second)
		}
	}
	s.fatalf("bad time %q", v)
	return time.Time{}
}

func (s *script) dur(v string) time.Duration {
	s.t.Helper()
	d, err := time.ParseDuration(v)
	if err != nil {
		s.fatalf("bad duration %q", v)
	}
	return d
}
