package ruletest

import (
	"errors"
	"fmt"
	"github.com/polis-platform/polis/rules/internal/yamlpos"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/rules/dsl"
)

// parser walks the YAML nodes of one fixture, collecting errors with their
// positions rather than stopping at the first.
type parser struct {
	file string
	errs ErrorList
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errAt(n.Line, n.Column, fmt.Sprintf(format, args...))
}

func (p *parser) errAt(line, col int, msg string) {
	if len(p.errs) < maxErrors {
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Col: col, Msg: msg})
	}
}

var lineRe = regexp.MustCompile(`line (\d+): `)

// root parses src and returns its top node, or nil after an error.
func (p *parser) root(src []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 1
		if m := lineRe.FindStringSubmatch(err.Error()); m != nil {
			line, _ = strconv.Atoi(m[1])
		}
		p.errAt(line, 1, lineRe.ReplaceAllString(strings.TrimPrefix(err.Error(), "yaml: "), ""))
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		p.errAt(1, 1, "empty fixture: want rule_files, sites and tests")
		return nil
	}
	// Aliases are refused everywhere: decoding reported values would expand
	// them, which takes exponential time on a hostile file.
	ok := true
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		if n.Kind == yaml.AliasNode {
			p.errorf(n, "aliases (*name) are not supported in fixtures")
			ok = false
			return
		}
		for _, c := range n.Content {
			walk(c)
		}
	}
	walk(doc.Content[0])
	if !ok {
		return nil
	}
	return doc.Content[0]
}

// mapping calls f for each key of a mapping node. It refuses keys not in
// keys and duplicate keys, and reports the missing required ones.
func (p *parser) mapping(n *yaml.Node, what string, keys, required []string, f func(key string, k, v *yaml.Node)) bool {
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s: want a mapping, got %s", what, kind(n))
		return false
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: want a key, got %s", what, kind(k))
			continue
		}
		switch {
		case seen[k.Value]:
			p.errorf(k, "duplicate key %q in %s", k.Value, what)
			continue
		case !slices.Contains(keys, k.Value):
			p.errorf(k, "unknown key %q in %s (want %s)%s", k.Value, what, strings.Join(keys, ", "), didYouMean(k.Value, keys))
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
	for _, r := range required {
		if !seen[r] {
			p.errorf(n, "%s: missing key %q", what, r)
		}
	}
	return true
}

// seq calls f for each item of a list; null is an empty list.
func (p *parser) seq(n *yaml.Node, what string, f func(*yaml.Node)) {
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s: want a list, got %s", what, kind(n))
		return
	}
	for _, c := range n.Content {
		f(c)
	}
}

// kind describes a node the way the other rule file formats do.
func kind(n *yaml.Node) string { return yamlpos.Kind(n) }

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: want a string, got %s", what, kind(n))
		return "", false
	}
	return n.Value, true
}

// duration reads a Go or Prometheus duration (90s, 15m, 1h30m, 1d).
func (p *parser) duration(n *yaml.Node, what string) (time.Duration, bool) {
	s, ok := p.str(n, what)
	if !ok {
		return 0, false
	}
	d, err := parseDuration(s)
	if err != nil {
		p.errorf(n, "%s: bad duration %q: %v", what, s, err)
		return 0, false
	}
	return d, true
}

// maxSpan bounds every duration of a fixture: a test longer than a year is
// a typo, and the bound keeps offset arithmetic far from overflow.
const maxSpan = 366 * 24 * time.Hour

var errSpan = errors.New("want at most 366d")

// parseDuration is dsl.ParseDuration, which wraps around past 15250w
// instead of failing, bounded by maxSpan.
func parseDuration(s string) (time.Duration, error) {
	d, err := dsl.ParseDuration(s)
	if err == nil && (d < 0 || d > maxSpan) {
		return 0, errSpan
	}
	return d, err
}

// number reads a finite float.
func (p *parser) number(n *yaml.Node, what string) (float64, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		p.errorf(n, "%s: want a number, got %s", what, kind(n))
		return 0, false
	}
	v, err := strconv.ParseFloat(n.Value, 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		p.errorf(n, "%s: want a finite number, got %q", what, n.Value)
		return 0, false
	}
	return v, true
}
