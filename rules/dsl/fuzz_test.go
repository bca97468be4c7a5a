package dsl

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad checks that no input panics and that every error is positioned
// inside the file it names.
func FuzzLoad(f *testing.F) {
	paths, _ := filepath.Glob("testdata/*.yaml")
	paths = append(paths, "../pack/polis.yaml")
	for _, p := range paths {
		src, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Load("f.yaml", src, Options{})
		if err == nil {
			for _, r := range file.Rules() {
				if r.Cond == nil || r.Summary == nil {
					t.Fatalf("rule %q loaded without condition or summary", r.ID)
				}
			}
			return
		}
		var el ErrorList
		if !errors.As(err, &el) || len(el) == 0 {
			t.Fatalf("error is not an ErrorList: %v", err)
		}
		for _, e := range el {
			if e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("unpositioned error %v", e)
			}
		}
	})
}
