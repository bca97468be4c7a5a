package svg

import (
	"encoding/xml"
	"errors"
	"html/template"
	"io"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// node is an element of a rendered drawing, parsed back for assertions.
type node struct {
	Name     string
	Attr     map[string]string
	Children []*node
	Text     string  // character data directly inside, concatenated
	content  []*node // children and text (Name "#text") in document order
}

// parseSVG decodes out as strict XML and returns its root element. It
// fails when out is not exactly one well-formed element.
func parseSVG(out template.HTML) (*node, error) {
	dec := xml.NewDecoder(strings.NewReader(string(out)))
	dec.Strict = true
	var root *node
	var stack []*node
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			n := &node{Name: tok.Name.Local, Attr: map[string]string{}}
			for _, a := range tok.Attr {
				n.Attr[a.Name.Local] = a.Value
			}
			if len(stack) > 0 {
				p := stack[len(stack)-1]
				p.Children = append(p.Children, n)
				p.content = append(p.content, n)
			} else if root != nil {
				return nil, errors.New("more than one root element")
			} else {
				root = n
			}
			stack = append(stack, n)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if strings.TrimSpace(string(tok)) != "" {
					return nil, errors.New("text outside the root element")
				}
				continue
			}
			p := stack[len(stack)-1]
			p.Text += string(tok)
			p.content = append(p.content, &node{Name: "#text", Text: string(tok)})
		case xml.ProcInst, xml.Directive:
			return nil, errors.New("unexpected processing instruction or directive")
		}
	}
	if root == nil {
		return nil, errors.New("no element")
	}
	return root, nil
}

func mustParse(t testing.TB, out template.HTML) *node {
	t.Helper()
	root, err := parseSVG(out)
	if err != nil {
		t.Fatalf("output is not well-formed XML: %v\n%s", err, out)
	}
	return root
}

// all returns the elements under n (n included) for which keep is true,
// in document order.
func (n *node) all(keep func(*node) bool) []*node {
	var out []*node
	var walk func(*node)
	walk = func(x *node) {
		if keep(x) {
			out = append(out, x)
		}
		for _, c := range x.Children {
			walk(c)
		}
	}
	walk(n)
	return out
}

// byClass returns the elements whose class attribute lists class.
func (n *node) byClass(class string) []*node {
	return n.all(func(x *node) bool {
		for _, c := range strings.Fields(x.Attr["class"]) {
			if c == class {
				return true
			}
		}
		return false
	})
}

// byName returns the elements of that name.
func (n *node) byName(name string) []*node {
	return n.all(func(x *node) bool { return x.Name == name })
}

// allText is the text of n and its descendants in document order.
func (n *node) allText() string {
	var b strings.Builder
	var walk func(*node)
	walk = func(x *node) {
		for _, c := range x.content {
			if c.Name == "#text" {
				b.WriteString(c.Text)
			} else {
				walk(c)
			}
		}
	}
	walk(n)
	return b.String()
}

// f parses a numeric attribute.
func (n *node) f(t testing.TB, attr string) float64 {
	t.Helper()
	v, err := strconv.ParseFloat(n.Attr[attr], 64)
	if err != nil {
		t.Fatalf("<%s %s=%q>: %v", n.Name, attr, n.Attr[attr], err)
	}
	return v
}

// numericAttrs are the attributes that must hold finite numbers.
var numericAttrs = []string{"x", "y", "x1", "y1", "x2", "y2", "cx", "cy", "r", "width", "height", "font-size", "stroke-width", "rx"}

// checkDrawing verifies what every drawing promises: one <svg> root with
// role="img", focusable="false", width="100%", a viewBox, aria-labelledby
// naming its own non-empty <title> and <desc>, unique ids, finite numbers
// in every coordinate, and no element a browser would run.
func checkDrawing(t testing.TB, root *node) {
	t.Helper()
	if root.Name != "svg" {
		t.Fatalf("root element is <%s>, want <svg>", root.Name)
	}
	for attr, want := range map[string]string{"role": "img", "focusable": "false", "width": "100%", "xmlns": "http://www.w3.org/2000/svg"} {
		if root.Attr[attr] != want {
			t.Errorf("<svg %s=%q>, want %q", attr, root.Attr[attr], want)
		}
	}
	vb := strings.Fields(root.Attr["viewBox"])
	if len(vb) != 4 || vb[0] != "0" || vb[1] != "0" {
		t.Errorf("viewBox = %q", root.Attr["viewBox"])
	}
	ids := map[string]*node{}
	for _, n := range root.all(func(x *node) bool { return x.Attr["id"] != "" }) {
		if ids[n.Attr["id"]] != nil {
			t.Errorf("id %q used twice", n.Attr["id"])
		}
		ids[n.Attr["id"]] = n
	}
	refs := strings.Fields(root.Attr["aria-labelledby"])
	if len(refs) != 2 {
		t.Fatalf("aria-labelledby = %q, want the ids of the title and the desc", root.Attr["aria-labelledby"])
	}
	for i, want := range []string{"title", "desc"} {
		n := ids[refs[i]]
		if n == nil || n.Name != want {
			t.Fatalf("aria-labelledby names %q, which is not a <%s>", refs[i], want)
		}
		if strings.TrimSpace(n.Text) == "" {
			t.Errorf("<%s> is empty", want)
		}
		if root.Children[i] != n {
			t.Errorf("<%s> is not child %d of <svg>", want, i)
		}
	}
	for _, n := range root.all(func(*node) bool { return true }) {
		switch n.Name {
		case "script", "foreignObject", "iframe", "image", "use", "style":
			t.Errorf("unexpected element <%s>", n.Name)
		}
		for a := range n.Attr {
			if strings.HasPrefix(strings.ToLower(a), "on") {
				t.Errorf("event handler attribute %s on <%s>", a, n.Name)
			}
		}
		for _, a := range numericAttrs {
			s, ok := n.Attr[a]
			if !ok || n.Name == "svg" { // the root's width is "100%"
				continue
			}
			if v, err := strconv.ParseFloat(s, 64); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				t.Errorf("<%s %s=%q> is not a finite number", n.Name, a, s)
			}
		}
		if p, ok := n.Attr["points"]; ok {
			for _, xy := range strings.Fields(p) {
				x, y, ok := strings.Cut(xy, ",")
				fx, err1 := strconv.ParseFloat(x, 64)
				fy, err2 := strconv.ParseFloat(y, 64)
				if !ok || err1 != nil || err2 != nil || !finite(fx) || !finite(fy) {
					t.Errorf("bad point %q in <%s>", xy, n.Name)
				}
			}
		}
		if n.Name == "a" {
			u, err := url.Parse(strings.TrimSpace(n.Attr["href"]))
			if err != nil || !slices.Contains([]string{"", "http", "https", "mailto"}, strings.ToLower(u.Scheme)) {
				t.Errorf("<a href=%q> is not a safe link", n.Attr["href"])
			}
			if n.Attr["aria-label"] == "" {
				t.Errorf("<a href=%q> has no aria-label", n.Attr["href"])
			}
		}
	}
}
