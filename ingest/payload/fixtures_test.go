package payload

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite testdata/good/*.want from the decoder output")

// Fixtures are testdata/good/<kind>-<what>.<ext>, with the expected output in
// <file>.want, and testdata/bad/<kind>-<code>-<what>.<ext>. kind is telemetry
// (the JSON format), senml, event, reported or status.

// fixtureNow is the arrival time per fixture; the RFC 8428 examples are from 2010.
var fixtureNow = map[string]time.Time{
	"senml-rfc8428-base-values.json": time.UnixMilli(1276020076001 + 1000).UTC(),
}

func nowFor(name string) time.Time {
	if t, ok := fixtureNow[name]; ok {
		return t
	}
	return testNow
}

type fixture struct {
	name, kind string
	code       Code // bad fixtures only
	data       []byte
}

func readFixtures(tb testing.TB, dir string) []fixture {
	tb.Helper()
	paths, err := filepath.Glob(filepath.Join("testdata", dir, "*"))
	if err != nil {
		tb.Fatal(err)
	}
	var fs []fixture
	for _, p := range paths {
		name := filepath.Base(p)
		if strings.HasSuffix(name, ".want") {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		parts := strings.SplitN(strings.TrimSuffix(name, filepath.Ext(name)), "-", 3)
		f := fixture{name: name, kind: parts[0], data: data}
		if !slices.Contains([]string{"telemetry", "senml", "event", "reported", "status"}, f.kind) {
			tb.Fatalf("fixture %s: unknown kind %q", p, f.kind)
		}
		if dir == "bad" {
			if len(parts) < 2 || !slices.Contains(Codes(), Code(parts[1])) {
				tb.Fatalf("fixture %s: name must be <kind>-<code>-<what> with a known code", p)
			}
			f.code = Code(parts[1])
		}
		fs = append(fs, f)
	}
	if len(fs) == 0 {
		tb.Fatalf("no fixtures in testdata/%s", dir)
	}
	return fs
}

// decodeFixture runs the decoder for the fixture's kind and renders the
// result as the text kept in .want files.
func decodeFixture(f fixture) (string, error) {
	now := nowFor(f.name)
	var out strings.Builder
	switch f.kind {
	case "telemetry", "senml":
		ps, err := DecodeTelemetry(nil, f.data, now, Limits{})
		if err != nil {
			return "", err
		}
		for _, p := range ps {
			fmt.Fprintf(&out, "%s %s %s", p.Metric, fmtMS(p.TS), strconv.FormatFloat(p.Value, 'g', -1, 64))
			if p.Late {
				out.WriteString(" late")
			}
			out.WriteByte('\n')
		}
	case "event":
		typ, ts, body, err := DecodeEvent(f.data, now, Limits{})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "type %s\nts %s\nbody %s\n", typ, fmtMS(ts), body)
	case "reported":
		ts, props, err := DecodeReported(f.data, now, Limits{})
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "ts %s\nprops %s\n", fmtMS(ts), props)
	case "status":
		s, err := DecodeStatus(f.data)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&out, "status %s\n", s)
	}
	return out.String(), nil
}

func TestFixtures_Good(t *testing.T) {
	for _, f := range readFixtures(t, "good") {
		t.Run(f.name, func(t *testing.T) {
			got, err := decodeFixture(f)
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if f.kind == "senml" || f.kind == "telemetry" {
				// The kind in the name must match what the decoder sees.
				if isSenML := strings.TrimSpace(string(f.data))[0] == '['; isSenML != (f.kind == "senml") {
					t.Fatalf("fixture kind %s does not match its content", f.kind)
				}
			}
			wantPath := filepath.Join("testdata", "good", f.name+".want")
			if *update {
				if err := os.WriteFile(wantPath, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantPath)
			if err != nil {
				t.Fatalf("cannot read expected output (run go test -run TestFixtures -update): %v", err)
			}
			if got != string(want) {
				t.Fatalf("unexpected output;\ngot:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestFixtures_Bad(t *testing.T) {
	for _, f := range readFixtures(t, "bad") {
		t.Run(f.name, func(t *testing.T) {
			_, err := decodeFixture(f)
			requireCode(t, err, f.code)
		})
	}
}

// fuzzSeeds returns the fixtures of the given kinds, good and bad.
func fuzzSeeds(tb testing.TB, kinds ...string) [][]byte {
	var seeds [][]byte
	for _, dir := range []string{"good", "bad"} {
		for _, f := range readFixtures(tb, dir) {
			if slices.Contains(kinds, f.kind) {
				seeds = append(seeds, f.data)
			}
		}
	}
	return seeds
}
