package milestone

import (
	"errors"
	"fmt"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/internal/yamlpos"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/parser"
	"github.com/expr-lang/expr/vm"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// AssetEnv is one asset as a where expression sees it.
type AssetEnv struct {
	ID        string `expr:"id"`
	Type      string `expr:"type"`
	Lifecycle string `expr:"lifecycle"` // live state, see Compute
	Supplier  string `expr:"supplier"`
}

// SiteEnv is one site as a where expression sees it.
type SiteEnv struct {
	ID         string     `expr:"id"`
	Kind       string     `expr:"kind"` // post_office or coworking
	Name       string     `expr:"name"`
	Region     string     `expr:"region"`
	Province   string     `expr:"province"`
	Comune     string     `expr:"comune"`     // ISTAT code
	InnerArea  string     `expr:"inner_area"` // SNAI class A..F, "" when unknown
	Population int        `expr:"population"`
	Assets     []AssetEnv `expr:"assets"`
}

// sitesEnv is the environment of count: sites. It has no asset, so that
// asset.type in a site milestone is refused at load instead of reading "".
type sitesEnv struct {
	Site        *SiteEnv                                     `expr:"site"`
	AssetsIn    func(assetType string, states ...string) int `expr:"assets_in"`
	AllAssetsIn func(states ...string) bool                  `expr:"all_assets_in"`
}

// assetsEnv is the environment of count: assets.
type assetsEnv struct {
	Asset       *AssetEnv                                    `expr:"asset"`
	Site        *SiteEnv                                     `expr:"site"`
	AssetsIn    func(assetType string, states ...string) int `expr:"assets_in"`
	AllAssetsIn func(states ...string) bool                  `expr:"all_assets_in"`
}

// AssetTypes are the asset types a where expression may name in a string
// literal (asset.type == "atm", assets_in("pv", ...)); anything else is
// refused as a likely typo, which would otherwise count nothing.
var AssetTypes = []string{
	registry.TypeATM, registry.TypeTotem, registry.TypeLocker, registry.TypeShowcase,
	registry.TypeEVC, registry.TypePV, registry.TypeEnv, registry.TypeMeter,
	registry.TypeOutdoor, registry.TypeDesk, registry.TypeRoom, registry.GatewayType,
}

var siteKinds = []string{string(registry.KindPostOffice), string(registry.KindCoworking)}

type where = yamlpos.Where

// posError is a position-only error from the compiler, completed by the loader.
type posError struct {
	line, col int
	msg       string
}

// Options are built once: Load compiles every where with one of them.
var (
	sitesOptions  = []expr.Option{expr.Env(sitesEnv{}), expr.AsBool(), expr.DisableBuiltin("now")}
	assetsOptions = []expr.Option{expr.Env(assetsEnv{}), expr.AsBool(), expr.DisableBuiltin("now")}
)

// compile type-checks src against the environment of count and lints its
// literals. now() is disabled: progress must not depend on the wall clock.
func compile(src string, count Kind, w where) (prog *vm.Program, pe *posError) {
	defer func() {
		// expr is third-party code fed with author input; a panic in it
		// must become an error, not take the portal down.
		if r := recover(); r != nil {
			prog, pe = nil, &posError{line: w.Line, col: w.Col, msg: fmt.Sprintf("cannot compile expression: %v", r)}
		}
	}()
	opts := assetsOptions
	if count == CountSites {
		opts = sitesOptions
	}
	p, err := expr.Compile(src, opts...)
	if err != nil {
		var fe *file.Error
		if !errors.As(err, &fe) {
			return nil, &posError{line: w.Line, col: w.Col, msg: explain(err.Error(), count)}
		}
		line, col := w.At(fe.Line, fe.Column)
		return nil, &posError{line: line, col: col, msg: explain(fe.Message, count)}
	}
	// Lint the tree as written: the optimizer turns x in ["a", "b"] into a
	// constant set, which hides the literals.
	tree, err := parser.Parse(src)
	if err != nil {
		return nil, &posError{line: w.Line, col: w.Col, msg: err.Error()}
	}
	if pe := lint(tree.Node, src, w); pe != nil {
		return nil, pe
	}
	return p, nil
}

var topNames = []string{"asset", "site", "assets_in", "all_assets_in"}

var memberNames = []string{"id", "type", "lifecycle", "supplier", "kind", "name", "region",
	"province", "comune", "inner_area", "population", "assets"}

var msgReplacer = strings.NewReplacer(
	"*milestone.AssetEnv", "asset", "*milestone.SiteEnv", "site",
	"milestone.AssetEnv", "asset", "milestone.SiteEnv", "site",
	"milestone.sitesEnv", "the environment", "milestone.assetsEnv", "the environment")

// explain makes expr's messages read in the file's terms and adds a
// did-you-mean to unknown names.
func explain(msg string, count Kind) string {
	msg = strings.TrimSpace(msgReplacer.Replace(msg))
	if r := []rune(msg); len(r) > 200 {
		msg = string(r[:200]) + "..."
	}
	if name, ok := strings.CutPrefix(msg, "unknown name "); ok {
		name = strings.TrimSpace(name)
		if name == "asset" && count == CountSites {
			return "asset is not available with count: sites (use assets_in(...), all_assets_in(...) or site.assets, or count: assets)"
		}
		if s := suggest(name, topNames); s != "" {
			return msg + " (did you mean " + s + "?)"
		}
	}
	if i := strings.Index(msg, " has no field "); i >= 0 {
		if s := suggest(strings.TrimSpace(msg[i+len(" has no field "):]), memberNames); s != "" {
			return msg + " (did you mean " + s + "?)"
		}
	}
	return msg
}

// lint checks what the type checker cannot: string literals compared with
// a lifecycle, an asset type or a site kind name one that exists, and the
// site functions get at least one state.
func lint(root ast.Node, src string, w where) *posError {
	var first *posError
	fail := func(n ast.Node, format string, args ...any) {
		if first != nil {
			return
		}
		l, c := yamlpos.OffsetLineCol(src, n.Location().From)
		line, col := w.At(l, c)
		first = &posError{line: line, col: col, msg: fmt.Sprintf(format, args...)}
	}
	check := func(n ast.Node, what string, names []string) {
		s, ok := n.(*ast.StringNode)
		if !ok || slices.Contains(names, s.Value) {
			return
		}
		msg := fmt.Sprintf("unknown %s %q", what, s.Value)
		if sug := suggest(s.Value, names); sug != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sug)
		} else {
			msg += " (want one of " + strings.Join(names, ", ") + ")"
		}
		fail(n, "%s", msg)
	}
	states := make([]string, len(lifecycle.States))
	for i, s := range lifecycle.States {
		states[i] = string(s)
	}
	// field tells which list a member such as asset.lifecycle or .type is
	// checked against.
	field := func(n ast.Node) (string, []string) {
		m, ok := n.(*ast.MemberNode)
		if !ok {
			return "", nil
		}
		p, ok := m.Property.(*ast.StringNode)
		if !ok {
			return "", nil
		}
		switch p.Value {
		case "lifecycle":
			return "lifecycle state", states
		case "type":
			return "asset type", AssetTypes
		case "kind":
			return "site kind", siteKinds
		}
		return "", nil
	}
	ast.Find(root, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallNode:
			id, ok := n.Callee.(*ast.IdentifierNode)
			if !ok {
				break
			}
			switch id.Value {
			case "assets_in":
				if len(n.Arguments) < 2 {
					fail(n, "assets_in wants an asset type and at least one lifecycle state, e.g. assets_in(\"atm\", \"operational\")")
					break
				}
				check(n.Arguments[0], "asset type", AssetTypes)
				for _, a := range n.Arguments[1:] {
					check(a, "lifecycle state", states)
				}
			case "all_assets_in":
				if len(n.Arguments) < 1 {
					fail(n, "all_assets_in wants at least one lifecycle state, e.g. all_assets_in(\"operational\", \"faulty\")")
					break
				}
				for _, a := range n.Arguments {
					check(a, "lifecycle state", states)
				}
			}
		case *ast.BinaryNode:
			switch n.Operator {
			case "==", "!=":
				if what, names := field(n.Left); names != nil {
					check(n.Right, what, names)
				} else if what, names := field(n.Right); names != nil {
					check(n.Left, what, names)
				}
			case "in", "not in":
				if what, names := field(n.Left); names != nil {
					if arr, ok := n.Right.(*ast.ArrayNode); ok {
						for _, e := range arr.Nodes {
							check(e, what, names)
						}
					}
				}
			}
		}
		return false
	})
	return first
}

// suggest is the did-you-mean of rule files.
func suggest(s string, names []string) string { return dsl.Suggest(s, names) }
