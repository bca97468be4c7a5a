// Package yamlpos walks YAML node trees for the file formats of rules/
// (rule files, milestone files) so that every error carries the line and
// column of its node, and maps positions inside embedded expressions back
// to the file.
package yamlpos

import (
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// Walker reads nodes and reports problems through Report.
type Walker struct {
	Report func(line, col int, msg string)
	// Kind names the files in messages, e.g. "rule files".
	Kind string
}

// Errorf reports a problem at n.
func (w *Walker) Errorf(n *yaml.Node, format string, args ...any) {
	w.Report(n.Line, n.Column, fmt.Sprintf(format, args...))
}

// Resolve refuses aliases: expanding them while walking could take
// exponential time on a hostile file, and these files do not need them.
func (w *Walker) Resolve(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.AliasNode {
		w.Errorf(n, "aliases (*name) are not supported in %s", w.Kind)
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Line: n.Line, Column: n.Column}
	}
	return n
}

// Mapping calls f for each key of a mapping node, refusing duplicate keys
// and reporting missing required ones at the mapping.
func (w *Walker) Mapping(n *yaml.Node, f func(key string, k, v *yaml.Node), required ...string) {
	n = w.Resolve(n)
	if n.Kind != yaml.MappingNode {
		w.Errorf(n, "want a mapping, got %s", Kind(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := w.Resolve(n.Content[i]), w.Resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode {
			w.Errorf(k, "want a key, got %s", Kind(k))
			continue
		}
		if seen[k.Value] {
			w.Errorf(k, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		f(k.Value, k, v)
	}
	for _, r := range required {
		if !seen[r] {
			w.Errorf(n, "missing key %q", r)
		}
	}
}

// Seq calls f for each item of a sequence node.
func (w *Walker) Seq(n *yaml.Node, f func(*yaml.Node)) {
	if n.Kind != yaml.SequenceNode {
		w.Errorf(n, "want a list, got %s", Kind(n))
		return
	}
	for _, c := range n.Content {
		f(w.Resolve(c))
	}
}

// Str reads a string scalar.
func (w *Walker) Str(n *yaml.Node) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		w.Errorf(n, "want a string, got %s", Kind(n))
		return "", false
	}
	return n.Value, true
}

// Kind describes a node for a message: "a mapping", "a list", "nothing",
// or the scalar quoted (cut at 40 characters).
func Kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		v := n.Value
		if r := []rune(v); len(r) > 40 {
			v = string(r[:40]) + "..."
		}
		return fmt.Sprintf("%q", v)
	}
	return "an alias"
}

// Where is where an expression starts in the file.
type Where struct {
	Line, Col int // of the expression's first character, 1-based
	// Block scalars: expression line n is file line Line+n-1 at column
	// Col; otherwise only the first line is offset by Col.
	Block bool
}

// At maps an expression position (line 1-based, column 0-based, as expr
// reports them) to the file's line and column.
func (w Where) At(exprLine, exprCol int) (int, int) {
	if w.Block || exprLine > 1 {
		c := exprCol + 1
		if w.Block {
			c = w.Col + exprCol
		}
		return w.Line + exprLine - 1, c
	}
	return w.Line, w.Col + exprCol
}

// Text returns the expression text of a scalar and where it starts. A
// block scalar is rebuilt from the source lines, dedented, so that an
// expression line is a file line (folding would lose that).
func Text(lines []string, n *yaml.Node, value string) (string, Where) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		indent := -1
		var out []string
		for i := n.Line; i < len(lines); i++ { // n.Line is the indicator's line
			line := strings.TrimRight(lines[i], "\r")
			if strings.TrimSpace(line) == "" {
				out = append(out, "")
				continue
			}
			ind := len(line) - len(strings.TrimLeft(line, " "))
			if indent < 0 {
				indent = ind
			}
			if ind < indent {
				break
			}
			out = append(out, line[indent:])
		}
		for len(out) > 0 && out[len(out)-1] == "" {
			out = out[:len(out)-1]
		}
		if indent < 0 || len(out) == 0 {
			return value, Where{Line: n.Line, Col: n.Column}
		}
		return strings.Join(out, "\n"), Where{Line: n.Line + 1, Col: indent + 1, Block: true}
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		return value, Where{Line: n.Line, Col: n.Column + 1}
	}
	return value, Where{Line: n.Line, Col: n.Column}
}

// OffsetLineCol turns a rune offset into expr's line (1-based) and column
// (0-based), as expr's file.Error.Bind does.
func OffsetLineCol(src string, from int) (line, col int) {
	line = 1
	i := 0
	for _, r := range src {
		if i == from {
			break
		}
		if r == '\n' {
			line, col = line+1, 0
		} else {
			col++
		}
		i++
	}
	return line, col
}
