package yamlpos

import (
	"fmt"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// Text and Where.At put a position inside an expression back on the file,
// for every scalar style.
func TestTextAndAt(t *testing.T) {
	src := "a: x > 1\nb: 'y > 2'\nc: |\n    z > 3\n      && w\n"
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(src, "\n")
	root := doc.Content[0]
	for _, tc := range []struct {
		key               string
		text              string
		exprLine, exprCol int // where in the expression (col 0-based)
		fileLine, fileCol int
	}{
		{"a", "x > 1", 1, 4, 1, 8},
		{"b", "y > 2", 1, 4, 2, 9},
		{"c", "z > 3\n  && w", 2, 5, 5, 10},
	} {
		var v *yaml.Node
		for i := 0; i < len(root.Content); i += 2 {
			if root.Content[i].Value == tc.key {
				v = root.Content[i+1]
			}
		}
		text, w := Text(lines, v, v.Value)
		if text != tc.text {
			t.Errorf("%s: text %q, want %q", tc.key, text, tc.text)
		}
		if l, c := w.At(tc.exprLine, tc.exprCol); l != tc.fileLine || c != tc.fileCol {
			t.Errorf("%s: At(%d, %d) = %d:%d, want %d:%d", tc.key, tc.exprLine, tc.exprCol, l, c, tc.fileLine, tc.fileCol)
		}
	}
}

func TestWalker(t *testing.T) {
	src := "k: 1\nk: 2\nl: [1, 2]\nm: *x\n"
	var doc yaml.Node
	_ = yaml.Unmarshal([]byte("x: &x 1\n"+src), &doc)
	var got []string
	w := &Walker{Kind: "test files", Report: func(line, col int, msg string) {
		got = append(got, fmt.Sprintf("%d:%d:%s", line, col, msg))
	}}
	w.Mapping(doc.Content[0], func(key string, k, v *yaml.Node) {
		if key == "l" {
			w.Str(v)
		}
	}, "x", "missing")
	want := []string{
		`3:1:duplicate key "k"`,
		`4:4:want a string, got a list`,
		`5:4:aliases (*name) are not supported in test files`,
		`1:1:missing key "missing"`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("reports:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
