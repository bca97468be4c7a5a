package testutil

import (
	"testing"
)

type recordTB struct {
	testing.TB
	skipped, failed bool
}

func (r *recordTB) Helper()                  {}
func (r *recordTB) Skipf(string, ...any)     { r.skipped = true }
func (r *recordTB) Fatalf(string, ...any)    { r.failed = true }
func (r *recordTB) Setenv(key, value string) {}

func TestNeed(t *testing.T) {
	for _, c := range []struct {
		name            string
		ok              bool
		env             string
		skipped, failed bool
	}{
		{"present", true, "1", false, false},
		{"missing, skip", false, "", true, false},
		{"missing, required", false, "1", false, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(RequireEnv, c.env)
			r := &recordTB{TB: t}
			Need(r, c.ok, "chromium is missing")
			if r.skipped != c.skipped || r.failed != c.failed {
				t.Fatalf("skipped %v failed %v, want %v %v", r.skipped, r.failed, c.skipped, c.failed)
			}
		})
	}
}
