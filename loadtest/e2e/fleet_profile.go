package e2e

import (
	"cmp"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/google/pprof/profile"
)

// Share is one part of a CPU profile: the fraction of samples it owns.
type Share struct {
	Part     string
	Fraction float64
}

// profileShares says where a platform's CPU goes, by the code that owns
// each sample: walking each stack from its leaf, the first frame outside
// Go's standard library names the owner (mochi-mqtt, franz-go, a Polis
// package ...), so a write syscall is charged to whoever wrote; stacks all
// inside the standard library are the Go runtime's (garbage collection,
// scheduler) or the standard library's.
func profileShares(path string) ([]Share, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read profile: %w", err)
	}
	defer f.Close()
	p, err := profile.Parse(f)
	if err != nil {
		return nil, fmt.Errorf("cannot parse profile %s: %w", path, err)
	}
	vi := len(p.SampleType) - 1 // cpu nanoseconds
	by := map[string]int64{}
	var total int64
	for _, s := range p.Sample {
		v := s.Value[vi]
		total += v
		by[ownerOf(s)] += v
	}
	if total == 0 {
		return nil, nil
	}
	out := make([]Share, 0, len(by))
	for k, v := range by {
		out = append(out, Share{Part: k, Fraction: float64(v) / float64(total)})
	}
	slices.SortFunc(out, func(a, b Share) int {
		return cmp.Or(cmp.Compare(b.Fraction, a.Fraction), strings.Compare(a.Part, b.Part))
	})
	return out, nil
}

func ownerOf(s *profile.Sample) string {
	gc := false
	for _, loc := range s.Location {
		// Inlined frames come first within a location: leaf to root.
		for _, ln := range loc.Line {
			if ln.Function == nil {
				continue
			}
			name := ln.Function.Name
			if strings.HasPrefix(name, "runtime.gcBgMarkWorker") || strings.HasPrefix(name, "runtime.gcAssist") ||
				strings.HasPrefix(name, "runtime.bgsweep") || strings.HasPrefix(name, "runtime.bgscavenge") {
				gc = true
			}
			if o, ok := owner(name); ok {
				return o
			}
		}
	}
	if gc {
		return "Go runtime: garbage collection"
	}
	return "Go runtime and standard library (scheduler, timers, syscalls without an owner)"
}

// owner maps a function name to its module or Polis package; ok is false
// for the standard library.
func owner(fn string) (string, bool) {
	// Compiler-made equality and hash functions of a type belong to the
	// type's package.
	for _, p := range []string{"type:.hash.", "type:.eq."} {
		fn = strings.TrimPrefix(fn, p)
	}
	// A standard-library path has no dot before its first slash.
	first, _, slash := strings.Cut(fn, "/")
	if !slash || !strings.Contains(first, ".") {
		return "", false
	}
	const polis = "github.com/polis-platform/polis/"
	if rest, ok := strings.CutPrefix(fn, polis); ok {
		// polis/ingest/payload.(*scanner).peek → polis/ingest/payload
		pkg, _, _ := strings.Cut(rest, ".") // its directories have no dots
		return "polis/" + pkg, true
	}
	for _, m := range []struct{ prefix, name string }{
		{"github.com/mochi-mqtt/", "mochi-mqtt (MQTT broker)"},
		{"github.com/twmb/franz-go/", "franz-go (Kafka client)"},
		{"github.com/ClickHouse/", "clickhouse-go"},
		{"github.com/prometheus/", "Prometheus client"},
		{"github.com/segmentio/encoding/", "segmentio/encoding (JSON)"},
		{"github.com/expr-lang/", "expr (rules)"},
	} {
		if strings.HasPrefix(fn, m.prefix) {
			return m.name, true
		}
	}
	// Another module: its path up to the version-less third element.
	parts := strings.SplitN(fn, "/", 4)
	if len(parts) >= 3 {
		return strings.Join(parts[:3], "/"), true
	}
	return first, true
}
