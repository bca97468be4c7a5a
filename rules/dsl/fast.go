package dsl

import (
	"math"

	"github.com/expr-lang/expr/ast"
)

// A threshold is the commonest rule shape: one reading compared with a
// number (value > 1000, last("paper_pct") < 10, asset.metrics.x == 0).
// The expr VM costs a few hundred nanoseconds per run (a pooled VM, the
// environment read through reflection, a boxed float64); with a thousand
// rules that is most of a point's cost. A threshold is recognised at
// compile time and evaluated as one float comparison instead. The VM stays
// the definition: fast_test.go checks that both give the same result on
// every operand and operator, NaN and infinities included.

// operand is what a threshold reads.
type operand uint8

const (
	opValue   operand = iota + 1 // value: the incoming point's value
	opLast                       // last("m"): latest value, NaN when absent
	opMetrics                    // asset.metrics["m"]: latest value, 0 when absent
)

// cmpOp is a comparison, read as "operand op constant".
type cmpOp uint8

const (
	cmpLT cmpOp = iota + 1
	cmpLE
	cmpGT
	cmpGE
	cmpEQ
	cmpNE
)

// threshold is a compiled "operand op k".
type threshold struct {
	what   operand
	metric string // for opLast and opMetrics
	op     cmpOp
	k      float64
}

// read fetches the operand from env, as the VM would.
func (t *threshold) read(env *Env) float64 {
	switch t.what {
	case opValue:
		return env.Value
	case opLast:
		if v, ok := env.Asset.Metrics[t.metric]; ok {
			return v
		}
		return math.NaN()
	default: // opMetrics: expr reads a missing map key as the zero value
		return env.Asset.Metrics[t.metric]
	}
}

// eval compares with Go's float semantics, which are expr's for a float64
// against an int or float64 constant (the constant is converted to
// float64; NaN compares false except with !=).
func (t *threshold) eval(env *Env) bool {
	v := t.read(env)
	switch t.op {
	case cmpLT:
		return v < t.k
	case cmpLE:
		return v <= t.k
	case cmpGT:
		return v > t.k
	case cmpGE:
		return v >= t.k
	case cmpEQ:
		return v == t.k
	default:
		return v != t.k
	}
}

// mirrored is the operator with its sides swapped: 3 < x is x > 3.
var mirrored = map[string]string{"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}

var cmpOps = map[string]cmpOp{"<": cmpLT, "<=": cmpLE, ">": cmpGT, ">=": cmpGE, "==": cmpEQ, "!=": cmpNE}

// thresholdOf recognises a threshold in a compiled (type-checked,
// optimised) condition; ok is false for any other shape, which the VM runs.
func thresholdOf(root ast.Node) (t threshold, ok bool) {
	b, ok := root.(*ast.BinaryNode)
	if !ok || cmpOps[b.Operator] == 0 {
		return t, false
	}
	op, left, right := b.Operator, b.Left, b.Right
	if _, isNum := number(left); isNum {
		op, left, right = mirrored[op], right, left
	}
	k, ok := number(right)
	if !ok {
		return t, false
	}
	t.op, t.k = cmpOps[op], k
	switch n := left.(type) {
	case *ast.IdentifierNode:
		if n.Value != "value" {
			return t, false
		}
		t.what = opValue
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "last" || len(n.Arguments) != 1 {
			return t, false
		}
		s, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			return t, false
		}
		t.what, t.metric = opLast, s.Value
	case *ast.MemberNode:
		inner, ok := n.Node.(*ast.MemberNode)
		if !ok || !isProp(inner, "asset", "metrics") || n.Optional || inner.Optional {
			return t, false
		}
		s, ok := n.Property.(*ast.StringNode)
		if !ok {
			return t, false
		}
		t.what, t.metric = opMetrics, s.Value
	default:
		return t, false
	}
	return t, true
}

// number reads a numeric literal, signed or not.
func number(n ast.Node) (float64, bool) {
	switch n := n.(type) {
	case *ast.IntegerNode:
		return float64(n.Value), true
	case *ast.FloatNode:
		return n.Value, true
	case *ast.UnaryNode:
		if i, isInt := n.Node.(*ast.IntegerNode); isInt && n.Operator == "-" {
			return float64(-i.Value), true // negated as an int, as the VM does
		}
		v, ok := number(n.Node)
		switch {
		case !ok:
			return 0, false
		case n.Operator == "-":
			return -v, true
		case n.Operator == "+":
			return v, true
		}
	}
	return 0, false
}
