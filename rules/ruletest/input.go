package ruletest

import (
	"cmp"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
)

// inputs reads a test's input list and expands its series. Entries must be
// in order of their (first) time; a series may overlap later entries, and
// events at one instant keep the order they are listed in.
func (p *parser) inputs(f *fixture, n *yaml.Node) []input {
	var out []input
	var last time.Duration
	lastLine := 0
	p.seq(n, "input", func(n *yaml.Node) {
		in, from, to, step, ok := p.input(f, n)
		if !ok {
			return
		}
		if from < last {
			p.errorf(n, "input at %s is before the entry of line %d (at %s): list inputs in time order", fmtOffset(from), lastLine, fmtOffset(last))
			return
		}
		last, lastLine = from, n.Line
		count := int64((to-from)/step) + 1
		if len(out)+int(count) > maxInputs {
			p.errorf(n, "more than %d input events in one test: make the series' step longer", maxInputs)
			return
		}
		for i := range count {
			in.at = from + time.Duration(i)*step
			out = append(out, in)
		}
	})
	slices.SortStableFunc(out, func(a, b input) int { return cmp.Compare(a.at, b.at) })
	return out
}

// input reads one entry; a single event has from == to.
func (p *parser) input(f *fixture, n *yaml.Node) (in input, from, to, step time.Duration, ok bool) {
	before := len(p.errs)
	step = f.interval
	kinds := 0
	p.mapping(n, "input", inputKeys, []string{"at", "asset"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "at":
			from, to, step = p.series(v, f.interval)
		case "asset":
			in.site, in.asset, _ = p.asset(f, v)
		case "m":
			kinds++
			in.kind = record.KindTelemetry
			in.points = p.points(v)
		case "status":
			kinds++
			in.kind = record.KindStatus
			if s, ok := p.str(v, "status"); ok {
				if s != "online" && s != "offline" {
					p.errorf(v, "bad status %q: want online or offline", s)
				}
				in.status = s
			}
		case "reported":
			kinds++
			in.kind = record.KindReported
			in.body = p.reported(v)
		}
	})
	if len(p.errs) == before && kinds != 1 {
		p.errorf(n, "input: want exactly one of m (telemetry), status or reported, got %d", kinds)
	}
	return in, from, to, step, len(p.errs) == before
}

// series reads an offset, "10m", or a series, "1m..30m/1m" (every step
// from 1m to 30m, both included; the step defaults to the interval).
func (p *parser) series(n *yaml.Node, interval time.Duration) (from, to, step time.Duration) {
	s, ok := p.str(n, "at")
	if !ok {
		return
	}
	step = interval
	lo, rest, isSeries := strings.Cut(s, "..")
	bad := func(format string, args ...any) {
		p.errorf(n, "at %q: %s", s, fmt.Sprintf(format, args...))
	}
	var err error
	if from, err = parseDuration(strings.TrimSpace(lo)); err != nil {
		bad("bad duration %q: %v", lo, err)
		return
	}
	if !isSeries {
		return from, from, step
	}
	hi, st, hasStep := strings.Cut(rest, "/")
	if to, err = parseDuration(strings.TrimSpace(hi)); err != nil {
		bad("bad duration %q: %v (want FROM..TO/STEP, e.g. 1m..30m/1m)", hi, err)
		return
	}
	if hasStep {
		if step, err = parseDuration(strings.TrimSpace(st)); err != nil {
			bad("bad step %q: %v", st, err)
			return
		}
	}
	switch {
	case to < from:
		bad("the series ends before it starts")
	case step <= 0:
		bad("the step must be positive")
	}
	return from, to, step
}

// points reads a telemetry mapping metric: value, sorted by metric so that
// runs are deterministic.
func (p *parser) points(n *yaml.Node) []metricValue {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "m: want a mapping of metric: value, got %s", kind(n))
		return nil
	}
	var out []metricValue
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := p.str(k, "metric")
		if !ok {
			continue
		}
		switch {
		case seen[name]:
			p.errorf(k, "duplicate metric %q", name)
			continue
		case !slices.Contains(dsl.DefaultMetrics, name):
			p.errorf(k, "unknown metric %q: not a fleet metric%s", name, didYouMean(name, dsl.DefaultMetrics))
			continue
		}
		seen[name] = true
		if val, ok := p.number(v, "metric "+name); ok {
			out = append(out, metricValue{name, val})
		}
	}
	if len(out) == 0 && len(n.Content) == 0 {
		p.errorf(n, "m: want at least one metric")
	}
	slices.SortFunc(out, func(a, b metricValue) int { return strings.Compare(a.metric, b.metric) })
	return out
}

// reported reads reported properties as the JSON body a device sends.
func (p *parser) reported(n *yaml.Node) json.RawMessage {
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		p.errorf(n, "reported: want a mapping of properties, got %s", kind(n))
		return nil
	}
	props := map[string]any{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		name, ok := p.str(k, "property")
		if !ok {
			continue
		}
		if _, dup := props[name]; dup {
			p.errorf(k, "duplicate property %q", name)
			continue
		}
		var x any
		if err := v.Decode(&x); err != nil {
			p.errorf(v, "reported %s: %v", name, err)
			continue
		}
		b, err := json.Marshal(x)
		if err != nil {
			p.errorf(v, "reported %s: cannot write it as JSON: %v", name, err)
			continue
		}
		props[name] = json.RawMessage(b)
	}
	b, err := json.Marshal(props)
	if err != nil { // unreachable: every value is JSON already
		p.errorf(n, "reported: %v", err)
	}
	return b
}

// expects reads the expect list; times must increase.
func (p *parser) expects(f *fixture, n *yaml.Node) []expect {
	var out []expect
	p.seq(n, "expect", func(n *yaml.Node) {
		var e expect
		before := len(p.errs)
		keys := map[[3]string]int{}
		p.mapping(n, "expect", expKeys, []string{"at", "alerts"}, func(key string, k, v *yaml.Node) {
			switch key {
			case "at":
				e.at, _ = p.duration(v, "at")
			case "alerts":
				p.seq(v, "alerts", func(a *yaml.Node) {
					w, ok := p.wantAlert(f, a)
					if !ok {
						return
					}
					key := [3]string{w.rule, w.site, w.asset}
					if line, dup := keys[key]; dup {
						p.errorf(a, "alert %s %s/%s already expected at line %d: a rule has one alert per asset", w.rule, w.site, w.asset, line)
						return
					}
					keys[key] = a.Line
					e.alerts = append(e.alerts, w)
				})
			}
		})
		if len(p.errs) > before {
			return
		}
		if len(out) > 0 && e.at <= out[len(out)-1].at {
			p.errorf(n, "expect at %s is not after the previous one (at %s): list expects in time order", fmtOffset(e.at), fmtOffset(out[len(out)-1].at))
			return
		}
		out = append(out, e)
	})
	return out
}

// wantStates are the states an expectation may name.
var wantStates = []string{"pending", "firing", "nodata", "resolved"}

func (p *parser) wantAlert(f *fixture, n *yaml.Node) (wantAlert, bool) {
	w := wantAlert{line: n.Line, col: n.Column, state: engine.StateFiring}
	before := len(p.errs)
	p.mapping(n, "alert", alertKeys, []string{"rule", "asset"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "rule":
			w.rule, _ = p.str(v, "rule")
			w.ruleLine, w.ruleCol = v.Line, v.Column
		case "asset":
			w.site, w.asset, _ = p.asset(f, v)
		case "state":
			if s, ok := p.str(v, "state"); ok {
				if !slices.Contains(wantStates, s) {
					p.errorf(v, "bad state %q: want %s", s, strings.Join(wantStates, ", "))
					return
				}
				w.state, _ = engine.ParseState(s)
			}
		case "summary":
			if s, ok := p.str(v, "summary"); ok {
				w.summary = &s
			}
		case "held_by":
			if s, ok := p.str(v, "held_by"); ok {
				w.heldBy = &s
			}
		case "labels":
			w.labels = map[string]string{}
			if v.Kind != yaml.MappingNode {
				p.errorf(v, "labels: want a mapping, got %s", kind(v))
			} else {
				for i := 0; i+1 < len(v.Content); i += 2 {
					name, ok1 := p.str(v.Content[i], "label name")
					val, ok2 := p.str(v.Content[i+1], "label "+name)
					if ok1 && ok2 {
						w.labels[name] = val
					}
				}
			}
		}
	})
	return w, len(p.errs) == before
}
