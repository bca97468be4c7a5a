package dsl

import (
	"errors"
	"fmt"
	"github.com/polis-platform/polis/rules/internal/yamlpos"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Program is a compiled, type-checked condition.
type Program struct {
	Source string
	Uses   Uses
	prog   *vm.Program
	vms    sync.Pool // *vm.VM: a VM reuses its stack between runs
	// fast is the condition as a threshold (fast.go), nil for other shapes.
	fast *threshold
}

// Eval runs the condition on env. The history and time functions use
// env.TS as now, never the wall clock.
func (p *Program) Eval(env *Env) (bool, error) {
	if p.fast != nil {
		return p.fast.eval(env), nil
	}
	v, err := p.run(env)
	if err != nil {
		return false, err
	}
	b, _ := v.(bool) // AsBool at compile time makes this a bool
	return b, nil
}

func (p *Program) run(env *Env) (any, error) {
	env.bind()
	m, _ := p.vms.Get().(*vm.VM)
	if m == nil {
		m = &vm.VM{}
	}
	v, err := m.Run(p.prog, env)
	p.vms.Put(m)
	if err != nil {
		return nil, fmt.Errorf("cannot evaluate %q: %w", p.Source, err)
	}
	return v, nil
}

// Template is a compiled summary: literal text with {{ expr }} parts, each
// an expression over the same Env as the conditions, type-checked at load.
type Template struct {
	Source string
	lits   []string // len(lits) == len(parts)+1
	parts  []*Program
}

// Render fills the template. Numbers print in the shortest form that
// round-trips (use round(x) or x / 1000 in the expression to shape them).
func (t *Template) Render(env *Env) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		b.WriteString(t.lits[i])
		v, err := p.run(env)
		if err != nil {
			return "", err
		}
		b.WriteString(format(v))
	}
	b.WriteString(t.lits[len(t.parts)])
	return b.String(), nil
}

func format(v any) string {
	switch x := v.(type) {
	case float64:
		if math.IsNaN(x) {
			return "n/a"
		}
		return strconv.FormatFloat(x, 'f', -1, 64)
	case string:
		return x
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

type where = yamlpos.Where

// compileOptions are shared by every expression; building them once keeps
// Load cheap.
var compileOptions = []expr.Option{
	expr.Env(Env{}),
	// min and max are history functions here; now() would read the wall clock.
	expr.DisableBuiltin("min"),
	expr.DisableBuiltin("max"),
	expr.DisableBuiltin("now"),
}

// compile compiles src; errors are positioned with w and explained for rule
// authors. metrics, when non-empty, are the known metric names.
func compile(src string, asBool bool, w where, metrics map[string]bool) (*Program, *posError) {
	opts := compileOptions
	if asBool {
		opts = append(opts[:len(opts):len(opts)], expr.AsBool())
	}
	prog, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			return nil, &posError{line: w.Line, col: w.Col, msg: err.Error()}
		}
		line, col := w.At(fe.Line, fe.Column)
		return nil, &posError{line: line, col: col, msg: explain(fe.Message)}
	}
	if pe := lint(prog.Node(), src, w, metrics); pe != nil {
		return nil, pe
	}
	p := &Program{Source: src, prog: prog, Uses: analyze(prog.Node())}
	if t, ok := thresholdOf(prog.Node()); ok && asBool {
		p.fast = &t
	}
	return p, nil
}

// topNames are the names a rule may use bare.
var topNames = append([]string{"metric", "value", "ts", "asset", "site"}, funcNames...)

var memberNames = []string{"id", "type", "status", "props", "metrics", "region", "province", "kind",
	"open_now", "labels", "assets", "chargers", "chargers_free", "lockers", "locker_free", "totems",
	"totems_up", "atms", "atms_up", "pvs", "pv_power_kw", "pv_energy_today_kwh", "temp_c",
	"humidity_pct", "co2_ppm", "desks", "desks_occupied", "rooms", "rooms_occupied"}

var msgReplacer = strings.NewReplacer("dsl.AssetEnv", "asset", "dsl.SiteEnv", "site", "dsl.Env", "the environment")

// explain adds a did-you-mean to expr's unknown-name messages.
func explain(msg string) string {
	msg = strings.TrimSpace(msgReplacer.Replace(msg))
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "..."
	}
	for _, p := range []struct {
		prefix string
		names  []string
	}{{"unknown name ", topNames}, {"unknown func ", funcNames}} {
		if name, ok := strings.CutPrefix(msg, p.prefix); ok {
			if s := suggest(strings.TrimSpace(name), p.names); s != "" {
				return msg + " (did you mean " + s + "?)"
			}
		}
	}
	if i := strings.Index(msg, " has no field "); i >= 0 {
		name := strings.TrimSpace(msg[i+len(" has no field "):])
		if s := suggest(name, memberNames); s != "" {
			return msg + " (did you mean " + s + "?)"
		}
	}
	return msg
}

// lint checks what the type checker cannot: window literals parse, and
// metric literals name a known metric.
func lint(root ast.Node, src string, w where, metrics map[string]bool) *posError {
	var first *posError
	fail := func(n ast.Node, format string, args ...any) {
		if first != nil {
			return
		}
		l, c := yamlpos.OffsetLineCol(src, n.Location().From)
		line, col := w.At(l, c)
		first = &posError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
	}
	metric := func(n ast.Node) {
		s, ok := n.(*ast.StringNode)
		if !ok || len(metrics) == 0 || metrics[s.Value] || s.Value == "" { // "": a timer evaluation
			return
		}
		msg := fmt.Sprintf("unknown metric %q", s.Value)
		if sug := suggestMetric(s.Value, metrics); sug != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sug)
		}
		fail(n, "%s", msg)
	}
	ast.Find(root, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if !ok {
				break
			}
			if windowFuncs[id.Value] && len(n.Arguments) == 2 {
				metric(n.Arguments[0])
				if s, ok := n.Arguments[1].(*ast.StringNode); ok {
					if _, err := ParseDuration(s.Value); err != nil {
						fail(s, "%s: bad window %q: %v", id.Value, s.Value, err)
					}
				}
			}
			if (id.Value == "province_avg" || id.Value == "last") && len(n.Arguments) == 1 {
				metric(n.Arguments[0])
			}
		case *ast.MemberNode:
			if inner, ok := n.Node.(*ast.MemberNode); ok && isProp(inner, "asset", "metrics") {
				metric(n.Property)
			}
		case *ast.BinaryNode:
			if n.Operator == "==" || n.Operator == "!=" {
				if isIdent(n.Left, "metric") {
					metric(n.Right)
				} else if isIdent(n.Right, "metric") {
					metric(n.Left)
				}
			}
		}
		return false
	})
	return first
}

func isIdent(n ast.Node, name string) bool {
	id, ok := n.(*ast.IdentifierNode)
	return ok && id.Value == name
}

func isProp(m *ast.MemberNode, obj, prop string) bool {
	s, ok := m.Property.(*ast.StringNode)
	return ok && s.Value == prop && isIdent(m.Node, obj)
}

// maxParts bounds a summary's expressions; positions cost a scan each.
const maxParts = 64

// compileTemplate splits src on {{ }} and compiles each expression. w is
// the position of src's first character.
func compileTemplate(src string, w where, metrics map[string]bool) (*Template, *posError) {
	t := &Template{Source: src}
	rest, off := src, 0
	for {
		i := strings.Index(rest, "{{")
		if i < 0 {
			if j := strings.Index(rest, "}}"); j >= 0 {
				return nil, tmplError(src, off+j, w, "unexpected }} without {{")
			}
			t.lits = append(t.lits, rest)
			return t, nil
		}
		if len(t.parts) == maxParts {
			return nil, tmplError(src, off+i, w, fmt.Sprintf("more than %d {{ }} parts", maxParts))
		}
		j := strings.Index(rest[i+2:], "}}")
		if j < 0 {
			return nil, tmplError(src, off+i, w, "unclosed {{")
		}
		body := rest[i+2 : i+2+j]
		if strings.TrimSpace(body) == "" {
			return nil, tmplError(src, off+i, w, "empty {{ }}")
		}
		// The expression's own errors are positioned inside body.
		l, c := yamlpos.OffsetLineCol(src, runeCount(src[:off+i+2]))
		bl, bc := w.At(l, c)
		p, pe := compile(body, false, where{Line: bl, Col: bc}, metrics)
		if pe != nil {
			pe.msg = "summary: " + pe.msg
			return nil, pe
		}
		t.lits = append(t.lits, rest[:i])
		t.parts = append(t.parts, p)
		rest, off = rest[i+2+j+2:], off+i+2+j+2
	}
}

func tmplError(src string, byteOff int, w where, msg string) *posError {
	l, c := yamlpos.OffsetLineCol(src, runeCount(src[:byteOff]))
	line, col := w.At(l, c)
	return &posError{line: line, col: col, msg: "summary: " + msg}
}

func runeCount(s string) int { return len([]rune(s)) }

// suggest returns the closest of names to s, or "" when none is close.
func suggest(s string, names []string) string { return Suggest(s, names) }

// Suggest returns the closest of names to s (Levenshtein distance under 3,
// under 2 for names of 3 bytes or less), or "" when none is close enough
// to be a typo. The did-you-mean of every Polis file format.
func Suggest(s string, names []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 3
	if len(s) <= 3 {
		bestD = 2
	}
	for _, n := range names {
		if d := levenshtein(s, n); d < bestD {
			best, bestD = n, d
		}
	}
	return best
}

func suggestMetric(s string, metrics map[string]bool) string {
	names := make([]string, 0, len(metrics))
	for m := range metrics {
		names = append(names, m)
	}
	// Deterministic among ties.
	slices.Sort(names)
	return suggest(s, names)
}

// levenshtein is the optimal string alignment distance in bytes: the
// Levenshtein distance with a swap of two neighbours counted as one edit,
// the commonest typo ("tset" for "test").
func levenshtein(a, b string) int {
	pp := make([]int, len(b)+1) // row i-2
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], pp[j-2]+1)
			}
		}
		pp, prev, cur = prev, cur, pp
	}
	return prev[len(b)]
}
