package milestone

import (
	"errors"
	"os"
	"testing"
	"time"
)

// FuzzLoad checks that no input panics, that every error is positioned
// inside the file it names, and that what loads also computes.
func FuzzLoad(f *testing.F) {
	pack, err := os.ReadFile(packPath)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, computePack, string(pack), "", "milestones: []", "milestones:\n  - &a {id: x}\n  - *a\n",
		"milestones:\n  - id: a\n    where: |\n      asset.type ==\n"} {
		f.Add([]byte(s))
	}
	sites, state := fleet()
	f.Fuzz(func(t *testing.T, src []byte) {
		ms, err := Load("f.yaml", src)
		if err == nil {
			for _, m := range ms {
				if m.prog == nil || m.Target <= 0 || m.ID == "" {
					t.Fatalf("milestone %q loaded incomplete", m.ID)
				}
			}
			// Whatever loads must compute without panicking.
			Compute(ms, sites, state, time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC))
			return
		}
		var el ErrorList
		if !errors.As(err, &el) || len(el) == 0 || len(el) > maxErrors+1 {
			t.Fatalf("error is not a bounded ErrorList: %v", err)
		}
		for _, e := range el {
			if e.Pos.File != "f.yaml" || e.Pos.Line < 1 || e.Pos.Col < 1 {
				t.Fatalf("unpositioned error %v", e)
			}
		}
	})
}
