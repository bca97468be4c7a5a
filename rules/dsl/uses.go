package dsl

import (
	"slices"

	"github.com/expr-lang/expr/ast"
)

// Uses is what an expression reads, so that the rules service evaluates a
// rule only on the points that can change it and builds only the twin
// views it needs.
type Uses struct {
	// Metrics are the metric names the expression reads by literal; with
	// AnyMetric unset, a point of another metric cannot change the result
	// except through time, which timer evaluations cover.
	Metrics []string
	// AnyMetric: a metric is named by something other than a literal
	// (avg(metric, "5m")), or the expression reads value: every point
	// counts.
	AnyMetric bool
	// Timer: the result changes with time alone (silent_for, hour,
	// weekday, holiday, open_now), with the connection status
	// (asset.status) or with reported properties (asset.props), none of
	// which comes with a telemetry point, so the rule is also evaluated on
	// a clock and when the asset's status or properties change.
	Timer bool
	// ProvinceMetrics are the arguments of province_avg.
	ProvinceMetrics []string
}

// merge adds o to u.
func (u *Uses) merge(o Uses) {
	u.Metrics = union(u.Metrics, o.Metrics)
	u.ProvinceMetrics = union(u.ProvinceMetrics, o.ProvinceMetrics)
	u.AnyMetric = u.AnyMetric || o.AnyMetric
	u.Timer = u.Timer || o.Timer
}

func union(a, b []string) []string {
	for _, s := range b {
		if !slices.Contains(a, s) {
			a = append(a, s)
		}
	}
	slices.Sort(a)
	return a
}

// clockFuncs change value with time alone.
var clockFuncs = map[string]bool{"silent_for": true, "hour": true, "weekday": true, "holiday": true, "open_now": true}

// metricReaders take a metric name as their first argument.
var metricReaders = map[string]bool{"avg": true, "min": true, "max": true, "delta": true,
	"rate": true, "count_over": true, "last": true, "province_avg": true}

// analyze walks a compiled expression.
func analyze(root ast.Node) Uses {
	var u Uses
	readsValue, namesMetric := false, false
	add := func(n ast.Node, list *[]string) {
		if s, ok := n.(*ast.StringNode); ok {
			*list = union(*list, []string{s.Value})
			return
		}
		u.AnyMetric = true
	}
	ast.Find(root, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if !ok {
				break
			}
			switch {
			case clockFuncs[id.Value]:
				u.Timer = true
			case len(n.Arguments) == 0:
			case id.Value == "province_avg":
				add(n.Arguments[0], &u.ProvinceMetrics)
				add(n.Arguments[0], &u.Metrics)
			case metricReaders[id.Value]:
				add(n.Arguments[0], &u.Metrics)
			}
		case *ast.MemberNode:
			if inner, ok := n.Node.(*ast.MemberNode); ok && isProp(inner, "asset", "metrics") {
				add(n.Property, &u.Metrics)
			}
			// Reported properties change without a telemetry point.
			if isProp(n, "asset", "props") {
				u.Timer = true
			}
			if isProp(n, "asset", "status") || isProp(n, "site", "open_now") {
				u.Timer = true
			}
		case *ast.BinaryNode:
			// metric == "x" and metric in ["x", "y"] name the metrics that
			// value is read from.
			switch {
			case n.Operator == "==" && isIdent(n.Left, "metric"):
				namesMetric = true
				add(n.Right, &u.Metrics)
			case n.Operator == "==" && isIdent(n.Right, "metric"):
				namesMetric = true
				add(n.Left, &u.Metrics)
			case n.Operator == "in" && isIdent(n.Left, "metric"):
				namesMetric = true
				if names, ok := stringSet(n.Right); ok {
					u.Metrics = union(u.Metrics, names)
				} else {
					u.AnyMetric = true
				}
			}
		case *ast.IdentifierNode:
			readsValue = readsValue || n.Value == "value"
		}
		return false
	})
	// value without naming its metric reads whatever came.
	u.AnyMetric = u.AnyMetric || readsValue && !namesMetric
	return u
}

// stringSet reads a literal list of strings, before or after the optimiser
// (which turns `x in ["a", "b"]` into a constant set).
func stringSet(n ast.Node) ([]string, bool) {
	var out []string
	switch n := n.(type) {
	case *ast.ArrayNode:
		for _, e := range n.Nodes {
			s, ok := e.(*ast.StringNode)
			if !ok {
				return nil, false
			}
			out = append(out, s.Value)
		}
	case *ast.ConstantNode:
		switch v := n.Value.(type) {
		case map[string]struct{}:
			for k := range v {
				out = append(out, k)
			}
		case []any:
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, false
				}
				out = append(out, s)
			}
		default:
			return nil, false
		}
	default:
		return nil, false
	}
	return out, true
}
