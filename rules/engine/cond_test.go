package engine_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// A tiny condition language for the script tests only (the real one is
// rules/dsl): comparisons joined by && and ||, && binding tighter.
//
//	cond    = and { "||" and }
//	and     = cmp { "&&" cmp }
//	cmp     = "true" | "false" | operand op operand
//	operand = "value" | "metric" | "site" | "asset" | "type" | number | "string"
//	op      = "==" | "!=" | "<" | "<=" | ">" | ">="

type cmpExpr struct {
	l, r operand
	op   string
	lit  int8 // 1 true, -1 false, 0 a comparison
}

type operand struct {
	field string // "" for a literal
	num   float64
	str   string
	isNum bool
}

// condExpr is a disjunction of conjunctions.
type condExpr [][]cmpExpr

func parseCond(src string) (condExpr, error) {
	toks, err := lexCond(src)
	if err != nil {
		return nil, err
	}
	var (
		c   condExpr
		and []cmpExpr
		i   int
	)
	for {
		if i >= len(toks) {
			return nil, fmt.Errorf("cannot parse condition %q: expected a comparison at the end", src)
		}
		var x cmpExpr
		switch toks[i] {
		case "true", "false":
			x.lit = 1
			if toks[i] == "false" {
				x.lit = -1
			}
			i++
		default:
			if i+2 >= len(toks) {
				return nil, fmt.Errorf("cannot parse condition %q: incomplete comparison at %q", src, toks[i])
			}
			if x.l, err = parseOperand(toks[i]); err != nil {
				return nil, fmt.Errorf("cannot parse condition %q: %w", src, err)
			}
			switch toks[i+1] {
			case "==", "!=", "<", "<=", ">", ">=":
				x.op = toks[i+1]
			default:
				return nil, fmt.Errorf("cannot parse condition %q: unknown operator %q", src, toks[i+1])
			}
			if x.r, err = parseOperand(toks[i+2]); err != nil {
				return nil, fmt.Errorf("cannot parse condition %q: %w", src, err)
			}
			if x.l.isNum != x.r.isNum && x.op != "==" && x.op != "!=" {
				return nil, fmt.Errorf("cannot parse condition %q: %s compares a number with a string", src, x.op)
			}
			i += 3
		}
		and = append(and, x)
		if i == len(toks) {
			return append(c, and), nil
		}
		switch toks[i] {
		case "&&":
		case "||":
			c, and = append(c, and), nil
		default:
			return nil, fmt.Errorf("cannot parse condition %q: expected && or || at %q", src, toks[i])
		}
		i++
	}
}

func lexCond(src string) ([]string, error) {
	var toks []string
	for i := 0; i < len(src); {
		ch := src[i]
		switch {
		case ch == ' ' || ch == '\t':
			i++
		case ch == '"':
			j := strings.IndexByte(src[i+1:], '"')
			if j < 0 {
				return nil, fmt.Errorf("cannot parse condition %q: unterminated string", src)
			}
			toks = append(toks, src[i:i+j+2])
			i += j + 2
		case strings.IndexByte("=!<>&|", ch) >= 0:
			j := i + 1
			for j < len(src) && strings.IndexByte("=!<>&|", src[j]) >= 0 {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		default:
			j := i + 1
			for j < len(src) && strings.IndexByte(" \t\"=!<>&|", src[j]) < 0 {
				j++
			}
			toks = append(toks, src[i:j])
			i = j
		}
	}
	return toks, nil
}

func parseOperand(tok string) (operand, error) {
	switch tok {
	case "value":
		return operand{field: tok, isNum: true}, nil
	case "metric", "site", "asset", "type":
		return operand{field: tok}, nil
	}
	if strings.HasPrefix(tok, `"`) {
		return operand{str: tok[1 : len(tok)-1]}, nil
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		return operand{}, fmt.Errorf("unknown operand %q", tok)
	}
	return operand{num: f, isNum: true}, nil
}

func (o operand) get(e engine.Eval) (float64, string) {
	switch o.field {
	case "value":
		return e.Value, ""
	case "metric":
		return 0, e.Metric
	case "site":
		return 0, e.Site
	case "asset":
		return 0, e.Asset
	case "type":
		return 0, e.AssetType
	}
	return o.num, o.str
}

func (c condExpr) eval(e engine.Eval) bool {
	for _, and := range c {
		ok := true
		for _, x := range and {
			if ok = x.eval(e); !ok {
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func (x cmpExpr) eval(e engine.Eval) bool {
	if x.lit != 0 {
		return x.lit > 0
	}
	ln, ls := x.l.get(e)
	rn, rs := x.r.get(e)
	if x.l.isNum != x.r.isNum {
		return x.op == "!="
	}
	var c int
	if x.l.isNum {
		c = cmpF(ln, rn)
	} else {
		c = strings.Compare(ls, rs)
	}
	switch x.op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	}
	return c >= 0
}

func cmpF(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestParseCond(t *testing.T) {
	ev := engine.Eval{Site: "PO-1", Asset: "gw-1", AssetType: "gw", Metric: "gw_up", Value: 0, TS: time.Unix(0, 0)}
	f := func(src string, want bool) {
		t.Helper()
		c, err := parseCond(src)
		if err != nil {
			t.Fatalf("unexpected error for %q: %s", src, err)
		}
		if got := c.eval(ev); got != want {
			t.Fatalf("unexpected result for %q; got %v; want %v", src, got, want)
		}
	}
	f(`value == 0`, true)
	f(`value > 30`, false)
	f(`metric == "gw_up" && value == 0`, true)
	f(`metric == "x" || value <= 0`, true)
	f(`false || true && false`, false)
	f(`type != "env"`, true)
	f(`value==0&&site=="PO-1"`, true)

	bad := func(src string) {
		t.Helper()
		if _, err := parseCond(src); err == nil {
			t.Fatalf("expected an error for %q", src)
		}
	}
	bad(``)
	bad(`value >`)
	bad(`value ~ 3`)
	bad(`value > "x"`)
	bad(`value > 3 &&`)
	bad(`"abc`)
	bad(`value > 3 value`)
}

func FuzzParseCond(f *testing.F) {
	for _, s := range []string{`value > 30`, `metric == "gw_up" && value == 0`, `true || false`, `value<=1&&type!="x"`} {
		f.Add(s)
	}
	// Seeds from the scripts: every cond and clear they use.
	files, _ := filepath.Glob("testdata/*.test")
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		for _, l := range strings.Split(string(src), "\n") {
			w := strings.Fields(l)
			for i := 0; i < len(w); i++ {
				if w[i] != "cond" && w[i] != "clear" {
					continue
				}
				j := i + 1
				for j < len(w) && !ruleKeys[w[j]] {
					j++
				}
				f.Add(strings.Join(w[i+1:j], " "))
			}
		}
	}
	f.Fuzz(func(t *testing.T, src string) {
		c, err := parseCond(src)
		if err != nil {
			return
		}
		c.eval(engine.Eval{Value: 31, Metric: "temp_c"})
	})
}
