package dsl

import (
	"errors"
	"fmt"
	"github.com/polis-platform/polis/rules/internal/yamlpos"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Severities a rule may declare.
var Severities = []string{"info", "warning", "critical"}

// DefaultMetrics are the fleet's metric names (loadtest models); metric
// literals in rules are checked against them unless Options say otherwise.
var DefaultMetrics = []string{
	"available", "cassette1_pct", "cassette2_pct", "cassette3_pct", "cassette4_pct",
	"transactions_count", "cash_eur", "online", "session_count", "paper_pct",
	"interactions_count", "free_count", "occupied_count", "temp_c", "humidity_pct",
	"co2_ppm", "occupancy_count", "occupied", "lights_on", "power_kw", "energy_kwh",
	"energy_total_kwh", "inverter_state", "connector_state", "fault",
	"screen_on", "voltage_v", "uptime_s", "rssi_dbm",
}

// Options tune Load.
type Options struct {
	// Metrics are the known metric names; nil means DefaultMetrics.
	Metrics []string
	// AnyMetric turns the metric-name check off (a fleet with custom devices).
	AnyMetric bool
	// VMOnly runs every condition on the expr VM, thresholds included
	// (see fast.go): the general path, for tests that compare both.
	VMOnly bool
}

// Position is where something is in a rule file; Line and Col are 1-based.
type Position struct {
	File      string
	Line, Col int
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is one problem in a rule file.
type Error struct {
	Pos  Position
	Rule string // the rule's id, when known
	Msg  string
}

func (e *Error) Error() string {
	if e.Rule != "" {
		return fmt.Sprintf("%s: rule %q: %s", e.Pos, e.Rule, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Pos, e.Msg)
}

// ErrorList is every problem Load found, in file order.
type ErrorList []*Error

func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// posError is a position-only error from the compiler, completed by the loader.
type posError struct {
	line, col int
	msg       string
}

// File is a loaded rule file.
type File struct {
	Name   string
	Groups []*Group
}

// Group is a named list of rules.
type Group struct {
	Name  string
	Rules []*Rule
}

// Rules returns every rule of f in file order.
func (f *File) Rules() []*Rule {
	var out []*Rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	return out
}

// Rule is a compiled rule.
type Rule struct {
	ID, Group     string
	Scope         Scope
	For           time.Duration // condition must hold this long before firing
	KeepFiringFor time.Duration // keep firing this long after the condition stops
	Severity      string
	Labels        map[string]string
	Cond          *Program
	Clear         *Program // nil: resolve as soon as Cond is false
	Summary       *Template
	// NoDataAfter: an asset in scope silent this long puts the rule's alert
	// in the NoData state (0: never).
	NoDataAfter time.Duration
	// SiteDown marks a rule that detects its whole site down (the site
	// gateway offline): while its alert is open, the site's other alerts
	// are held back and linked to it.
	SiteDown bool
	// Uses is what Cond and Clear read (the summary is not counted: it is
	// rendered only when the alert changes).
	Uses Uses
	Pos  Position
	// Source is the rule's own YAML text, for the API and versions.
	Source string
}

// Scope says which assets a rule applies to; an empty list matches all.
type Scope struct {
	AssetTypes []string
	Regions    []string
	Sites      []string
	SiteLabels map[string]string // every pair must match
}

// Match reports whether an asset of type assetType at site is in scope.
func (s *Scope) Match(assetType string, site *SiteEnv) bool {
	in := func(list []string, v string) bool { return len(list) == 0 || slices.Contains(list, v) }
	if !in(s.AssetTypes, assetType) || !in(s.Regions, site.Region) || !in(s.Sites, site.ID) {
		return false
	}
	for k, v := range s.SiteLabels {
		if site.Labels[k] != v {
			return false
		}
	}
	return true
}

var (
	idRe    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	labelRe = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
	lineRe  = regexp.MustCompile(`line (\d+): `)
)

// maxErrors bounds the list so that a broken file does not flood the author.
const maxErrors = 20

type loader struct {
	yamlpos.Walker
	name    string
	lines   []string
	metrics map[string]bool
	vmOnly  bool
	errs    ErrorList
	rule    string // id of the rule being read
	ids     map[string]Position
}

func (l *loader) errAt(line, col int, msg string) {
	if len(l.errs) < maxErrors {
		l.errs = append(l.errs, &Error{Pos: Position{l.name, line, col}, Rule: l.rule, Msg: msg})
	}
}

// Load parses and compiles one rule file. name is used in positions. The
// error, if any, is an ErrorList.
func Load(name string, src []byte, opts Options) (*File, error) {
	l, root := parse(name, src, opts, "groups")
	if root == nil {
		return nil, l.errs
	}
	f := &File{Name: name}
	l.Mapping(root, func(key string, k, v *yaml.Node) {
		switch key {
		case "groups":
			l.Seq(v, func(n *yaml.Node) {
				if g := l.group(n); g != nil {
					f.Groups = append(f.Groups, g)
				}
			})
		default:
			l.Errorf(k, "unknown key %q (want groups)", key)
		}
	}, "groups")
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	return f, nil
}

// parse reads src as YAML; root is nil when it is not.
func parse(name string, src []byte, opts Options, want string) (*loader, *yaml.Node) {
	l := &loader{name: name, ids: map[string]Position{}, vmOnly: opts.VMOnly}
	l.Walker = yamlpos.Walker{Report: l.errAt, Kind: "rule files"}
	if !opts.AnyMetric {
		ms := opts.Metrics
		if ms == nil {
			ms = DefaultMetrics
		}
		l.metrics = make(map[string]bool, len(ms))
		for _, m := range ms {
			l.metrics[m] = true
		}
	}
	l.lines = strings.Split(string(src), "\n")
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 1
		if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		l.errAt(line, 1, lineRe.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), ""))
		return l, nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		l.errAt(1, 1, "empty file: want "+want)
		return l, nil
	}
	return l, doc.Content[0]
}

// LoadRule parses and compiles one rule written as a YAML (or JSON)
// mapping with the keys of a rule in a file, as the API receives it. group
// names the rule's group. The error, if any, is an ErrorList.
func LoadRule(name, group string, src []byte, opts Options) (*Rule, error) {
	l, root := parse(name, src, opts, "a rule ("+ruleKeys+")")
	if root == nil {
		return nil, l.errs
	}
	r := l.ruleOf(root, group)
	if len(l.errs) > 0 {
		return nil, l.errs
	}
	r.Source = string(src)
	return r, nil
}

// LoadDir loads every *.yaml and *.yml of dir, in name order, and refuses
// an id used in two files.
func LoadDir(dir string, opts Options) ([]*File, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("cannot read rules directory %s: %w", dir, err)
	}
	var files []*File
	var errs ErrorList
	seen := map[string]Position{}
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || (ext != ".yaml" && ext != ".yml") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		src, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("cannot read rule file %s: %w", path, err)
		}
		f, err := Load(path, src, opts)
		var el ErrorList
		if errors.As(err, &el) {
			errs = append(errs, el...)
			continue
		}
		for _, r := range f.Rules() {
			if p, ok := seen[r.ID]; ok {
				errs = append(errs, &Error{Pos: r.Pos, Rule: r.ID, Msg: "duplicate id, first defined at " + p.String()})
			}
			seen[r.ID] = r.Pos
		}
		files = append(files, f)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return files, nil
}

func (l *loader) strings(n *yaml.Node) []string {
	var out []string
	l.Seq(n, func(c *yaml.Node) {
		if s, ok := l.Str(c); ok {
			out = append(out, s)
		}
	})
	return out
}

func (l *loader) strMap(n *yaml.Node) map[string]string {
	out := map[string]string{}
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		if !labelRe.MatchString(key) {
			l.Errorf(k, "bad label name %q: want letters, digits and _", key)
		}
		if s, ok := l.Str(v); ok {
			out[key] = s
		}
	})
	return out
}

func (l *loader) duration(n *yaml.Node) time.Duration {
	s, ok := l.Str(n)
	if !ok {
		return 0
	}
	d, err := ParseDuration(s)
	if err != nil {
		l.Errorf(n, "bad duration %q: %v", s, err)
	}
	return d
}

func (l *loader) group(n *yaml.Node) *Group {
	g := &Group{}
	var rules *yaml.Node
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			g.Name, _ = l.Str(v)
		case "rules":
			rules = v
		default:
			l.Errorf(k, "unknown key %q in group (want name, rules)", key)
		}
	}, "name", "rules")
	if rules != nil {
		l.Seq(rules, func(n *yaml.Node) {
			if r := l.ruleOf(n, g.Name); r != nil {
				g.Rules = append(g.Rules, r)
			}
		})
	}
	return g
}

var ruleKeys = "id, scope, expr, for, clear, keep_firing_for, no_data_after, site_down, severity, labels, summary"

func (l *loader) ruleOf(n *yaml.Node, group string) *Rule {
	r := &Rule{Group: group, Pos: Position{l.name, n.Line, n.Column}}
	l.rule = ""
	defer func() { l.rule = "" }()
	// The id first, so that every other error names the rule.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == "id" {
				v := n.Content[i+1]
				if s, ok := l.Str(v); ok {
					r.ID, l.rule = s, s
					if !idRe.MatchString(s) {
						l.Errorf(v, "bad id %q: want lower case letters, digits and _", s)
					} else if p, dup := l.ids[s]; dup {
						l.Errorf(v, "duplicate id %q, first defined at %s", s, p)
					} else {
						l.ids[s] = Position{l.name, v.Line, v.Column}
					}
				}
				break
			}
		}
	}
	before := len(l.errs)
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		switch key {
		case "id":
		case "scope":
			r.Scope = l.scope(v)
		case "expr":
			r.Cond = l.program(v, true, "expr")
		case "clear":
			r.Clear = l.program(v, true, "clear")
		case "for":
			r.For = l.duration(v)
		case "keep_firing_for":
			r.KeepFiringFor = l.duration(v)
		case "no_data_after":
			r.NoDataAfter = l.duration(v)
		case "site_down":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				l.Errorf(v, "site_down: want true or false, got %s", yamlpos.Kind(v))
			} else {
				r.SiteDown = v.Value == "true"
			}
		case "severity":
			if s, ok := l.Str(v); ok {
				if !slices.Contains(Severities, s) {
					l.Errorf(v, "bad severity %q: want info, warning or critical", s)
				}
				r.Severity = s
			}
		case "labels":
			r.Labels = l.strMap(v)
		case "summary":
			if s, ok := l.Str(v); ok {
				src, w := yamlpos.Text(l.lines, v, s)
				t, pe := compileTemplate(src, w, l.metrics)
				if pe != nil {
					l.errAt(pe.line, pe.col, pe.msg)
				} else if v.Style == yaml.FoldedStyle {
					// Fold the text only after compiling, so positions hold.
					for i := range t.lits {
						t.lits[i] = strings.ReplaceAll(t.lits[i], "\n", " ")
					}
				}
				r.Summary = t
			}
		default:
			l.Errorf(k, "unknown key %q (want %s)", key, ruleKeys)
		}
	}, "id", "expr", "severity")
	if len(l.errs) > before {
		return nil
	}
	if r.Summary == nil {
		r.Summary = &Template{lits: []string{""}}
	}
	r.Uses = r.Cond.Uses
	if r.Clear != nil {
		r.Uses.merge(r.Clear.Uses)
	}
	r.Source = l.source(n)
	return r
}

func (l *loader) scope(n *yaml.Node) Scope {
	var s Scope
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		switch key {
		case "asset_types":
			s.AssetTypes = l.strings(v)
		case "regions":
			s.Regions = l.strings(v)
		case "sites":
			s.Sites = l.strings(v)
		case "site_labels":
			s.SiteLabels = l.strMap(v)
		default:
			l.Errorf(k, "unknown key %q in scope (want asset_types, regions, sites, site_labels)", key)
		}
	})
	return s
}

func (l *loader) program(n *yaml.Node, asBool bool, what string) *Program {
	s, ok := l.Str(n)
	if !ok {
		return nil
	}
	src, w := yamlpos.Text(l.lines, n, s)
	metrics := l.metrics
	if strings.TrimSpace(src) == "" {
		l.Errorf(n, "%s: empty expression", what)
		return nil
	}
	p, pe := compile(src, asBool, w, metrics)
	if pe != nil {
		l.errAt(pe.line, pe.col, what+": "+pe.msg)
		return p
	}
	if l.vmOnly {
		p.fast = nil
	}
	return p
}

// source returns the text of a rule's mapping node: from its line to the
// line before the next rule or the end of its indentation.
func (l *loader) source(n *yaml.Node) string {
	first := n.Line - 1
	if first < 0 || first >= len(l.lines) {
		return ""
	}
	// The item starts at "- id:" (column of the mapping minus "- ").
	indent := n.Column - 1
	end := first + 1
	for ; end < len(l.lines); end++ {
		line := strings.TrimRight(l.lines[end], "\r")
		t := strings.TrimLeft(line, " ")
		if t == "" || strings.HasPrefix(t, "#") && len(line)-len(t) >= indent {
			continue
		}
		if len(line)-len(t) < indent {
			break
		}
	}
	for end > first+1 && strings.TrimSpace(l.lines[end-1]) == "" {
		end--
	}
	out := make([]string, 0, end-first)
	for i := first; i < end; i++ {
		line := strings.TrimRight(l.lines[i], "\r")
		if i == first {
			line = line[min(indent, len(line)):]
		} else if len(line) >= indent {
			line = line[indent:]
		} else {
			line = strings.TrimLeft(line, " ")
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}
