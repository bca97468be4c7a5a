package progress

import (
	"strconv"
	"strings"

	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/parser"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// Counting a measure over a site runs its where expression. The history
// replays every site through each day it changed on (about 120,000 site
// states for the whole programme). A count of assets that reads no other
// asset of the site ("asset-local": asset.type == "atm" &&
// asset.lifecycle in [...]) depends only on the fields of the asset and
// of the site it reads: the evaluator remembers it by them, and a change
// of one asset re-counts only that asset. Which fields an expression
// reads is found in its syntax tree; an expression the analysis does not
// fully understand is evaluated every time, never wrongly remembered.

// deps is what a where expression reads.
type deps struct {
	known      bool            // the analysis understood the expression
	site       map[string]bool // site.<field>
	asset      map[string]bool // asset.<field>
	siteAssets bool            // site.assets, assets_in or all_assets_in
	elems      map[string]bool // fields of the site's assets read through site.assets or the functions
	wholeElem  bool            // an element of site.assets used whole (or indexed in ways not followed)
}

var (
	siteFields  = []string{"id", "kind", "name", "region", "province", "comune", "inner_area", "population"}
	assetFields = []string{"id", "type", "lifecycle", "supplier"}
)

func analyze(where string) deps {
	d := deps{site: map[string]bool{}, asset: map[string]bool{}, elems: map[string]bool{}}
	tree, err := parser.Parse(where)
	if err != nil {
		return d
	}
	d.known = true
	v := &depVisitor{d: &d, bases: map[ast.Node]bool{}}
	ast.Walk(&tree.Node, v)
	// Identifiers site and asset used other than as s.field are used whole.
	for _, id := range v.idents {
		if v.bases[id] {
			continue
		}
		switch id.Value {
		case "site":
			d.site["*"] = true
			d.siteAssets, d.wholeElem = true, true
		case "asset":
			d.asset["*"] = true
		}
	}
	for f := range d.site {
		if f != "*" && !contains(siteFields, f) {
			d.known = false // a field this analysis does not know
		}
	}
	for f := range d.asset {
		if f != "*" && !contains(assetFields, f) {
			d.known = false
		}
	}
	for f := range d.elems {
		if !contains(assetFields, f) {
			d.wholeElem = true
		}
	}
	return d
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

type depVisitor struct {
	d      *deps
	bases  map[ast.Node]bool // identifiers and pointers used as the base of a field access
	idents []*ast.IdentifierNode
}

func (v *depVisitor) Visit(n *ast.Node) {
	switch x := (*n).(type) {
	case *ast.MemberNode:
		prop, isField := x.Property.(*ast.StringNode)
		switch base := x.Node.(type) {
		case *ast.IdentifierNode:
			v.bases[base] = true
			if !isField {
				if base.Value == "site" || base.Value == "asset" {
					v.d.known = false // site[expr]
				}
				return
			}
			switch base.Value {
			case "site":
				if prop.Value == "assets" {
					v.d.siteAssets = true
				} else {
					v.d.site[prop.Value] = true
				}
			case "asset":
				v.d.asset[prop.Value] = true
			}
		case *ast.PointerNode:
			v.bases[base] = true
			if isField && base.Name == "" {
				v.d.elems[prop.Value] = true
			} else {
				v.d.wholeElem = true
			}
		default:
			// site.assets[0].id and the like: any field of any element.
			v.d.wholeElem = true
		}
	case *ast.IdentifierNode:
		v.idents = append(v.idents, x)
	case *ast.PointerNode:
		if !v.bases[x] {
			v.d.wholeElem = true // # itself
		}
	case *ast.CallNode:
		if id, ok := x.Callee.(*ast.IdentifierNode); ok && (id.Value == "assets_in" || id.Value == "all_assets_in") {
			v.d.siteAssets = true
			v.d.elems["type"], v.d.elems["lifecycle"] = true, true
		}
	}
}

// cmeasure is a measure with what its expression reads.
type cmeasure struct {
	m          *milestone.Milestone
	deps       deps
	assetLocal bool // an asset count reading no other asset
}

func compileMeasure(m *milestone.Milestone) cmeasure {
	d := analyze(m.Where)
	return cmeasure{m: m, deps: d, assetLocal: d.known && m.Count == milestone.CountAssets && !d.siteAssets}
}

// evaluator counts measures over sites. It is not safe for concurrent
// use: the builder and each history fold have their own.
type evaluator struct {
	set   *measureSet
	memo  []map[string]int32 // per measure
	buf   []byte
	site  *registry.Site
	st    []lifecycle.State
	state func(site, asset string) (lifecycle.State, bool)
	one   registry.Site // a site of one asset, for asset-local measures
	oneA  [1]*registry.Asset
	ms1   [1]*milestone.Milestone
	sites [1]*registry.Site
}

func newEvaluator(set *measureSet) *evaluator {
	e := &evaluator{set: set, memo: make([]map[string]int32, len(set.list))}
	for i := range e.memo {
		e.memo[i] = map[string]int32{}
	}
	e.state = func(_, asset string) (lifecycle.State, bool) {
		for i, a := range e.site.Assets {
			if a.ID == asset {
				return e.st[i], true
			}
		}
		return "", false
	}
	return e
}

// run evaluates measure i over s as milestone.Compute does.
func (e *evaluator) run(i int, s *registry.Site) int32 {
	e.ms1[0] = e.set.list[i].ms
	e.sites[0] = s
	return int32(milestone.Compute(e.ms1[:], e.sites[:], e.state, timeZero)[0].Current)
}

// siteKey appends the site fields measure c reads.
func siteKey(b []byte, c *cmeasure, s *registry.Site) []byte {
	all := c.deps.site["*"]
	for _, f := range siteFields {
		if !all && !c.deps.site[f] {
			continue
		}
		b = append(b, f...)
		b = append(b, '=')
		switch f {
		case "id":
			b = append(b, s.ID...)
		case "kind":
			b = append(b, s.Kind...)
		case "name":
			b = append(b, s.Name...)
		case "region":
			b = append(b, s.Region...)
		case "province":
			b = append(b, s.Province...)
		case "comune":
			b = append(b, s.Comune...)
		case "inner_area":
			b = append(b, s.InnerArea...)
		case "population":
			b = strconv.AppendInt(b, int64(s.Population), 10)
		}
		b = append(b, 0)
	}
	return b
}

// assetKey appends the fields of asset a (in state st) that fields asks for.
func appendAsset(b []byte, fields map[string]bool, whole bool, a *registry.Asset, st lifecycle.State) []byte {
	for _, f := range assetFields {
		if !whole && !fields[f] {
			continue
		}
		switch f {
		case "id":
			b = append(b, a.ID...)
		case "type":
			b = append(b, a.Type...)
		case "lifecycle":
			b = append(b, stateCode(st))
		case "supplier":
			b = append(b, a.Supplier...)
		}
		b = append(b, 1)
	}
	return append(b, 0)
}

// siteWide counts every measure that is not asset-local over the site
// into total, with one milestone.Compute for all of them (its set-up, not
// the expressions, is most of its cost). They are not remembered: they
// read the states of all the site's assets, which rarely repeat from one
// day of a site's rollout to another (measured: a memo keyed by them
// missed nearly always and cost more than it saved).
func (e *evaluator) siteWide(total []int32) {
	if len(e.set.wideMs) == 0 {
		return
	}
	e.sites[0] = e.site
	for k, p := range milestone.Compute(e.set.wideMs, e.sites[:], e.state, timeZero) {
		total[e.set.wide[k]] = int32(p.Current)
	}
}

// assetLocal counts an asset-local measure over asset j of the site.
func (e *evaluator) assetLocal(i, j int) int32 {
	c := &e.set.list[i].c
	a := e.site.Assets[j]
	b := siteKey(e.buf[:0], c, e.site)
	b = appendAsset(b, c.deps.asset, c.deps.asset["*"], a, e.st[j])
	e.buf = b
	if v, ok := e.memo[i][string(b)]; ok {
		return v
	}
	e.one = *e.site
	e.oneA[0] = a
	e.one.Assets = e.oneA[:]
	v := e.run(i, &e.one)
	e.memo[i][string(b)] = v
	return v
}

// siteCount counts every measure over one site in its states, and keeps
// each asset's share of the asset-local ones so that update re-counts only
// what changed.
type siteCount struct {
	e       *evaluator
	total   []int32
	perAsst [][]int32 // [asset][measure], asset-local measures only
}

// begin counts every measure over s in states (which it keeps and reads
// again in update: the caller changes it in place).
func (e *evaluator) begin(s *registry.Site, states []lifecycle.State) *siteCount {
	e.site, e.st = s, states
	n := len(e.set.list)
	sc := &siteCount{e: e, total: make([]int32, n), perAsst: make([][]int32, len(s.Assets))}
	for j := range s.Assets {
		sc.perAsst[j] = make([]int32, n)
	}
	for _, i := range e.set.local {
		for j := range s.Assets {
			v := e.assetLocal(i, j)
			sc.perAsst[j][i] = v
			sc.total[i] += v
		}
	}
	e.siteWide(sc.total)
	return sc
}

// update re-counts after the assets listed changed state.
func (sc *siteCount) update(changed []int) {
	e := sc.e
	e.siteWide(sc.total)
	for _, i := range e.set.local {
		for _, j := range changed {
			v := e.assetLocal(i, j)
			sc.total[i] += v - sc.perAsst[j][i]
			sc.perAsst[j][i] = v
		}
	}
}

// eval counts every measure over s in states.
func (e *evaluator) eval(s *registry.Site, states []lifecycle.State) []int32 {
	return e.begin(s, states).total
}

// String says which fields a measure's memo is keyed by (tests, debugging).
func (d deps) String() string {
	var parts []string
	for _, f := range siteFields {
		if d.site[f] {
			parts = append(parts, "site."+f)
		}
	}
	for _, f := range assetFields {
		if d.asset[f] {
			parts = append(parts, "asset."+f)
		}
	}
	if d.siteAssets {
		parts = append(parts, "site.assets")
	}
	return strings.Join(parts, ",")
}
