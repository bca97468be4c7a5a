package portal

import (
	"bytes"
	"strings"

	"golang.org/x/net/html"
)

// doc is a parsed page with what the tests look at.
type doc struct {
	root *html.Node
}

func parseDoc(b []byte) (*doc, error) {
	n, err := html.Parse(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return &doc{root: n}, nil
}

func attr(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func hasClass(n *html.Node, class string) bool {
	c, _ := attr(n, "class")
	for _, f := range strings.Fields(c) {
		if f == class {
			return true
		}
	}
	return false
}

// all returns the elements for which keep is true, in document order.
func (d *doc) all(keep func(*html.Node) bool) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && keep(n) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(d.root)
	return out
}

func (d *doc) tag(name string) []*html.Node {
	return d.all(func(n *html.Node) bool { return n.Data == name })
}

// text is the text content of n, spaces collapsed.
func text(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return strings.Join(strings.Fields(b.String()), " ")
}

// ids is every id of the page.
func (d *doc) ids() map[string]bool {
	m := map[string]bool{}
	for _, n := range d.all(func(n *html.Node) bool { _, ok := attr(n, "id"); return ok }) {
		id, _ := attr(n, "id")
		m[id] = true
	}
	return m
}

// links are the targets of <a href>.
func (d *doc) links() []string {
	var out []string
	for _, n := range d.tag("a") {
		if h, ok := attr(n, "href"); ok {
			out = append(out, h)
		}
	}
	return out
}

// resources are the addresses the browser loads by itself: src, <link
// href>, <use href>, <form action>, <image href>.
func (d *doc) resources() []string {
	var out []string
	for _, n := range d.all(func(*html.Node) bool { return true }) {
		if v, ok := attr(n, "src"); ok {
			out = append(out, v)
		}
		if v, ok := attr(n, "srcset"); ok {
			out = append(out, v)
		}
		switch n.Data {
		case "link", "use", "image":
			if v, ok := attr(n, "href"); ok {
				out = append(out, v)
			}
			if v, ok := attr(n, "xlink:href"); ok {
				out = append(out, v)
			}
		case "form":
			if v, ok := attr(n, "action"); ok {
				out = append(out, v)
			}
		}
	}
	return out
}

// ancestor is the nearest ancestor of n for which keep is true, or nil.
func ancestor(n *html.Node, keep func(*html.Node) bool) *html.Node {
	for p := n.Parent; p != nil; p = p.Parent {
		if p.Type == html.ElementNode && keep(p) {
			return p
		}
	}
	return nil
}

// contains reports whether a descendant of n satisfies keep.
func contains(n *html.Node, keep func(*html.Node) bool) bool {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if c.Type == html.ElementNode && keep(c) || contains(c, keep) {
			return true
		}
	}
	return false
}
