package ingest_test

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/polis-platform/polis/ingest/payload"
)

// readmeReasons returns the codes README.md lists after "Reason codes:" in
// its section "Payloads and dead letters", in order.
func readmeReasons(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	const section = "\n## Payloads and dead letters\n"
	i := strings.Index(s, section)
	if i < 0 {
		t.Fatalf("README.md has no section %q", strings.TrimSpace(section))
	}
	s = s[i+len(section):]
	if j := strings.Index(s, "\n## "); j >= 0 {
		s = s[:j]
	}
	i = strings.Index(s, "Reason codes:")
	if i < 0 {
		t.Fatal(`README.md's section "Payloads and dead letters" has no "Reason codes:" list`)
	}
	s = s[i:]
	if j := strings.Index(s, "\n\n"); j >= 0 {
		s = s[:j] // the list's paragraph
	}
	var out []string
	for _, m := range regexp.MustCompile("`([a-z_]+)`").FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	if len(out) == 0 {
		t.Fatal("README.md lists no reason codes")
	}
	return out
}

// README.md lists every dead-letter reason of the catalogue, and no other.
func TestReasonCodes_MatchREADME(t *testing.T) {
	listed := readmeReasons(t)
	var codes []string
	for _, r := range payload.Catalogue() {
		codes = append(codes, string(r.Code))
	}
	for _, c := range codes {
		if !slices.Contains(listed, c) {
			t.Errorf("reason %q of the catalogue (ingest/payload/errors.go) is not in README.md's list", c)
		}
	}
	seen := map[string]bool{}
	for _, c := range listed {
		if seen[c] {
			t.Errorf("README.md lists reason %q twice", c)
		}
		seen[c] = true
		if !slices.Contains(codes, c) {
			t.Errorf("README.md lists reason %q, which is not in the catalogue (ingest/payload/errors.go)", c)
		}
	}
}
