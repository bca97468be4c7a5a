package milestone

import (
	"cmp"
	"fmt"
	"github.com/polis-platform/polis/rules/internal/yamlpos"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"
)

// Line is the programme line a milestone belongs to.
type Line string

const (
	LineProgramma      Line = "programma"
	LineSportelloUnico Line = "sportello_unico"
	LineSpaziPerItalia Line = "spazi_per_italia"
)

// Lines lists every line, in the order of the programme's reports.
var Lines = []Line{LineProgramma, LineSportelloUnico, LineSpaziPerItalia}

// Kind says what a milestone counts.
type Kind string

const (
	CountAssets Kind = "assets"
	CountSites  Kind = "sites"
)

// DefaultStart is where the linear pace of a milestone starts unless the
// file says otherwise: works started in the first quarter of 2022.
var DefaultStart = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// Source is the public fact a target comes from.
type Source struct {
	Fact string `json:"fact"` // id in the facts table, e.g. F16
	URL  string `json:"url"`
}

// Milestone is one loaded, compiled milestone.
type Milestone struct {
	ID    string
	Title string
	// TitleIT is the title in Italian, for the public portal; "" when the
	// file has none (the portal then shows Title).
	TitleIT string
	Line    Line
	Count   Kind
	Where   string // the expression's source
	Target  int
	// Deadline and Start are dates (midnight UTC); a milestone is due by
	// the end of its deadline day in Europe/Rome.
	Deadline time.Time
	Start    time.Time
	Source   Source
	Pos      Position // of the milestone's mapping

	prog *vm.Program
}

// Position is where something is in a milestone file; Line and Col are 1-based.
type Position struct {
	File      string
	Line, Col int
}

func (p Position) String() string { return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col) }

// Error is one problem in a milestone file.
type Error struct {
	Pos       Position
	Milestone string // the milestone's id, when known
	Msg       string
}

func (e *Error) Error() string {
	if e.Milestone != "" {
		return fmt.Sprintf("%s: milestone %q: %s", e.Pos, e.Milestone, e.Msg)
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

// maxErrors bounds the list so that a broken file does not flood the author.
const maxErrors = 20

// maxWhere bounds an expression; longer ones are not written by people.
const maxWhere = 4096

var (
	idRe   = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	factRe = regexp.MustCompile(`^F[0-9]+$`)
	dateRe = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}$`)
	lineRe = regexp.MustCompile(`line (\d+): `)
)

var milestoneKeys = []string{"id", "title", "title_it", "line", "count", "where", "target", "deadline", "start", "source"}

type loader struct {
	yamlpos.Walker
	name  string
	lines []string
	errs  ErrorList
	id    string // id of the milestone being read
	ids   map[string]Position
}

func (l *loader) errAt(line, col int, msg string) {
	switch {
	case len(l.errs) < maxErrors:
		l.errs = append(l.errs, &Error{Pos: Position{l.name, max(line, 1), max(col, 1)}, Milestone: l.id, Msg: msg})
	case len(l.errs) == maxErrors:
		l.errs = append(l.errs, &Error{Pos: Position{l.name, max(line, 1), max(col, 1)},
			Msg: fmt.Sprintf("more than %d errors, the rest are not shown", maxErrors)})
	}
}

// LoadFile reads and loads one milestone file; positions name path.
func LoadFile(path string) ([]*Milestone, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read milestone file: %w", err)
	}
	return Load(path, src)
}

// Load parses and compiles one milestone file. name is used in positions.
// The error, if any, is an ErrorList.
func Load(name string, src []byte) ([]*Milestone, error) {
	l := &loader{name: name, ids: map[string]Position{}, lines: strings.Split(string(src), "\n")}
	l.Walker = yamlpos.Walker{Report: l.errAt, Kind: "milestone files"}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 1
		if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		l.errAt(line, 1, lineRe.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), ""))
		return nil, l.errs
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		l.errAt(1, 1, "empty file: want a milestones list")
		return nil, l.errs
	}
	var out []*Milestone
	l.Mapping(doc.Content[0], func(key string, k, v *yaml.Node) {
		if key != "milestones" {
			l.Errorf(k, "unknown key %q (want milestones)", key)
			return
		}
		if v.Kind == yaml.SequenceNode && len(v.Content) == 0 {
			l.Errorf(v, "empty milestones list")
			return
		}
		l.Seq(v, func(n *yaml.Node) {
			if m := l.milestone(n); m != nil {
				out = append(out, m)
			}
		})
	}, "milestones")
	if len(l.errs) > 0 {
		l.sort()
		return nil, l.errs
	}
	return out, nil
}

// sort puts the errors in file order (a where is compiled after its
// milestone's other keys), keeping the too-many note last.
func (l *loader) sort() {
	errs := l.errs
	if len(errs) > maxErrors {
		errs = errs[:maxErrors]
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.Pos.Line, b.Pos.Line), cmp.Compare(a.Pos.Col, b.Pos.Col))
	})
}

// oneOf reads a string that must be one of want.
func oneOf[T ~string](l *loader, n *yaml.Node, what string, want []T) T {
	s, ok := l.Str(n)
	if !ok {
		return ""
	}
	for _, w := range want {
		if string(w) == s {
			return w
		}
	}
	names := make([]string, len(want))
	for i, w := range want {
		names[i] = string(w)
	}
	msg := fmt.Sprintf("bad %s %q: want %s", what, s, strings.Join(names, ", "))
	if sug := suggest(s, names); sug != "" {
		msg += fmt.Sprintf(" (did you mean %s?)", sug)
	}
	l.Errorf(n, "%s", msg)
	return ""
}

func (l *loader) date(n *yaml.Node, what string) (time.Time, bool) {
	s, ok := l.Str(n)
	if !ok {
		return time.Time{}, false
	}
	if !dateRe.MatchString(s) {
		l.Errorf(n, "bad %s %q: want a date as YYYY-MM-DD", what, s)
		return time.Time{}, false
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		l.Errorf(n, "bad %s %q: no such day", what, s)
		return time.Time{}, false
	}
	if t.Year() < 2000 || t.Year() > 2100 {
		l.Errorf(n, "bad %s %q: year out of range 2000-2100", what, s)
		return time.Time{}, false
	}
	return t, true
}

func (l *loader) target(n *yaml.Node) int {
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
		l.Errorf(n, "bad target %s: want a positive whole number", yamlpos.Kind(n))
		return 0
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		l.Errorf(n, "bad target %q: want a positive whole number", n.Value)
		return 0
	}
	// The bound keeps percentages and paces in exact float range; no
	// programme counts more than a billion of anything.
	if v <= 0 || v > 1e9 {
		l.Errorf(n, "bad target %s: want a positive whole number up to 1000000000", n.Value)
		return 0
	}
	return int(v)
}

func (l *loader) source(n *yaml.Node) Source {
	var s Source
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		switch key {
		case "fact":
			if f, ok := l.Str(v); ok {
				if !factRe.MatchString(f) {
					l.Errorf(v, "bad fact %q: want a fact id such as F16", f)
				}
				s.Fact = f
			}
		case "url":
			if u, ok := l.Str(v); ok {
				if p, err := url.Parse(u); err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" {
					l.Errorf(v, "bad url %q: want an http or https address", u)
				}
				s.URL = u
			}
		default:
			l.Errorf(k, "unknown key %q in source (want fact, url)", key)
		}
	}, "fact", "url")
	return s
}

func (l *loader) milestone(n *yaml.Node) *Milestone {
	m := &Milestone{Pos: Position{l.name, n.Line, n.Column}}
	l.id = ""
	defer func() { l.id = "" }()
	// The id first, so that every other error names the milestone.
	if n.Kind == yaml.MappingNode {
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value != "id" {
				continue
			}
			v := l.Resolve(n.Content[i+1])
			if s, ok := l.Str(v); ok {
				if !idRe.MatchString(s) {
					l.Errorf(v, "bad id %q: want lower case letters, digits and _, starting with a letter", s)
				} else if p, dup := l.ids[s]; dup {
					l.id = s
					l.Errorf(v, "duplicate id, first defined at %s", p)
				} else {
					l.id = s
					l.ids[s] = Position{l.name, v.Line, v.Column}
				}
				m.ID = s
			}
			break
		}
	}
	before := len(l.errs)
	var whereN, start *yaml.Node
	l.Mapping(n, func(key string, k, v *yaml.Node) {
		switch key {
		case "id":
		case "title":
			if s, ok := l.Str(v); ok {
				if strings.TrimSpace(s) == "" {
					l.Errorf(v, "empty title")
				}
				m.Title = s
			}
		case "title_it":
			if s, ok := l.Str(v); ok {
				if strings.TrimSpace(s) == "" {
					l.Errorf(v, "empty title_it")
				}
				m.TitleIT = s
			}
		case "line":
			m.Line = oneOf(l, v, "line", Lines)
		case "count":
			m.Count = oneOf(l, v, "count", []Kind{CountAssets, CountSites})
		case "where":
			whereN = v // compiled below, once count is known
		case "target":
			m.Target = l.target(v)
		case "deadline":
			m.Deadline, _ = l.date(v, "deadline")
		case "start":
			start = v
		case "source":
			m.Source = l.source(v)
		default:
			msg := fmt.Sprintf("unknown key %q (want %s)", key, strings.Join(milestoneKeys, ", "))
			if sug := suggest(key, milestoneKeys); sug != "" {
				msg = fmt.Sprintf("unknown key %q (did you mean %s?)", key, sug)
			}
			l.Errorf(k, "%s", msg)
		}
	}, "id", "title", "line", "count", "where", "target", "deadline", "source")
	m.Start = DefaultStart
	if start != nil {
		if t, ok := l.date(start, "start"); ok {
			m.Start = t
			if !m.Deadline.IsZero() && !t.Before(m.Deadline) {
				l.Errorf(start, "start %s is not before the deadline %s", t.Format(time.DateOnly), m.Deadline.Format(time.DateOnly))
			}
		}
	} else if !m.Deadline.IsZero() && !m.Deadline.After(DefaultStart) {
		l.Errorf(n, "deadline %s is not after the default start %s: set start", m.Deadline.Format(time.DateOnly), DefaultStart.Format(time.DateOnly))
	}
	// A where without a valid count cannot be type-checked against the
	// right environment; the count error is already reported.
	if whereN != nil && m.Count != "" {
		m.Where, m.prog = l.program(whereN, m.Count)
	}
	if len(l.errs) > before {
		return nil
	}
	return m
}

// program compiles a where expression and reports its faults at their
// place in the file.
func (l *loader) program(n *yaml.Node, count Kind) (string, *vm.Program) {
	s, ok := l.Str(n)
	if !ok {
		return "", nil
	}
	src, w := yamlpos.Text(l.lines, n, s)
	if strings.TrimSpace(src) == "" {
		l.Errorf(n, "where: empty expression")
		return "", nil
	}
	if len(src) > maxWhere {
		l.Errorf(n, "where: expression too long (%d bytes, at most %d)", len(src), maxWhere)
		return "", nil
	}
	p, pe := compile(src, count, w)
	if pe != nil {
		l.errAt(pe.line, pe.col, "where: "+pe.msg)
		return "", nil
	}
	return src, p
}
