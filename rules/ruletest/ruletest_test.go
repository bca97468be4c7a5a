package ruletest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the output")

// TestPack runs the tests of the default rule pack: they must all pass.
func TestPack(t *testing.T) {
	var out bytes.Buffer
	res, err := RunFile("testdata/pack.yaml", &out)
	if err != nil {
		t.Fatal(err)
	}
	if res.Failed > 0 || res.Tests == 0 {
		t.Fatalf("%d of %d tests failed:\n%s", res.Failed, res.Tests, out.String())
	}
	if got := strings.Count(out.String(), "PASS "); got != res.Tests {
		t.Errorf("%d PASS lines for %d tests:\n%s", got, res.Tests, out.String())
	}
}

// TestFail checks the report of wrong expectations against a golden file.
func TestFail(t *testing.T) {
	var out bytes.Buffer
	res, err := Run([]string{"testdata/fail.yaml"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Tests: 2, Failed: 1}) {
		t.Errorf("result = %+v, want 2 tests, 1 failed", res)
	}
	golden := "testdata/fail.golden"
	if *update {
		if err := os.WriteFile(golden, out.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if out.String() != string(want) {
		t.Errorf("output differs from %s (go test -update rewrites it):\n--- got\n%s--- want\n%s", golden, out.String(), want)
	}
}

// TestRunErrors: an unusable fixture is an error, and the other files
// still run.
func TestRunErrors(t *testing.T) {
	var out bytes.Buffer
	res, err := Run([]string{"testdata/missing.yaml", "testdata/fail.yaml"}, &out)
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("err = %v, want the missing file named", err)
	}
	if res.Tests != 2 {
		t.Errorf("tests = %d, want the 2 of fail.yaml run anyway", res.Tests)
	}
}

const rulesYAML = `groups:
  - name: g
    rules:
      - id: cash_low
        expr: last("cassette1_pct") < 10
        severity: warning
`

// fixtureHead is valid up to the tests; cases append to it (line 8 on).
const fixtureHead = `rule_files: [rules.yaml]
sites:
  - id: PO-001272-1
    assets: [atm-1, totem-1]
tests:
  - name: t
    start: 2026-03-02T09:00:00+01:00
`

func TestFixtureErrors(t *testing.T) {
	for _, c := range []struct {
		name, src, want string
	}{
		{"yaml syntax", "rule_files: [a\n", "fixture.yaml:1:1: did not find expected"},
		{"empty", "", "fixture.yaml:1:1: empty fixture"},
		{"unknown root key", "rule_files: [rules.yaml]\nsites: []\ntests: []\ntset: []\n",
			`fixture.yaml:4:1: unknown key "tset" in fixture (want rule_files, interval, sites, tests) (did you mean "tests"?)`},
		{"missing key", "rule_files: [rules.yaml]\nsites: []\n", `fixture.yaml:1:1: fixture: missing key "tests"`},
		{"alias", "rule_files: &r [rules.yaml]\nsites: *r\ntests: []\n", "fixture.yaml:2:8: aliases"},
		{"unknown site key", "rule_files: [rules.yaml]\nsites:\n  - id: PO-001272-1\n    asets: [atm-1]\ntests: []\n",
			`fixture.yaml:4:5: unknown key "asets" in site`},
		{"bad site id", "rule_files: [rules.yaml]\nsites:\n  - {id: PO-1, assets: []}\ntests: []\n", `fixture.yaml:3:10: bad site id "PO-1"`},
		{"bad opening hours", "rule_files: [rules.yaml]\nsites:\n  - {id: PO-001272-1, assets: [], opening_hours: Mon-Fry 08:00-12:00}\ntests: []\n",
			`fixture.yaml:3:54: opening_hours: unknown day "Fry"`},
		{"bad interval", "rule_files: [rules.yaml]\ninterval: 5 minutes\nsites: []\ntests: []\n", `fixture.yaml:2:11: interval: bad duration "5 minutes"`},
		{"bad start", fixtureHead[:len(fixtureHead)-len("    start: 2026-03-02T09:00:00+01:00\n")] + "    start: 2026-03-02 09:00\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:7:12: start: bad time "2026-03-02 09:00"`},
		{"unknown input key", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/atm-1, metrics: {cassette1_pct: 8}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:44: unknown key "metrics" in input (want at, asset, m, status, reported)`},
		{"bad offset", fixtureHead + "    input:\n      - {at: 5, asset: PO-001272-1/atm-1, m: {cassette1_pct: 8}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:14: at "5": bad duration`},
		{"bad series", fixtureHead + "    input:\n      - {at: 5m..1m, asset: PO-001272-1/atm-1, m: {cassette1_pct: 8}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:14: at "5m..1m": the series ends before it starts`},
		{"bad expect at", fixtureHead + "    expect: [{at: soon, alerts: []}]\n", `fixture.yaml:8:19: at: bad duration "soon"`},
		{"unknown asset", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/atm-9, m: {cassette1_pct: 8}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:25: unknown asset "PO-001272-1/atm-9": site PO-001272-1 has atm-1, totem-1 (did you mean "atm-1"?)`},
		{"unknown site", fixtureHead + "    expect: [{at: 1m, alerts: [{rule: cash_low, asset: PO-001272-2/atm-1}]}]\n",
			`fixture.yaml:8:56: unknown asset "PO-001272-2/atm-1": no site PO-001272-2 in sites (did you mean "PO-001272-1"?)`},
		{"asset without site", fixtureHead + "    expect: [{at: 1m, alerts: [{rule: cash_low, asset: atm-1}]}]\n",
			`fixture.yaml:8:56: asset "atm-1": want SITE/ASSET`},
		{"unsorted input", fixtureHead + "    input:\n      - {at: 5m, asset: PO-001272-1/atm-1, m: {cassette1_pct: 8}}\n      - {at: 2m, asset: PO-001272-1/atm-1, m: {cassette1_pct: 9}}\n    expect: [{at: 10m, alerts: []}]\n",
			"fixture.yaml:10:9: input at 2m is before the entry of line 9 (at 5m): list inputs in time order"},
		{"unsorted expect", fixtureHead + "    expect:\n      - {at: 5m, alerts: []}\n      - {at: 5m, alerts: []}\n",
			"fixture.yaml:10:9: expect at 5m is not after the previous one (at 5m)"},
		{"two kinds", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/totem-1, status: offline, m: {online: 0}}\n    expect: [{at: 1m, alerts: []}]\n",
			"fixture.yaml:9:9: input: want exactly one of m (telemetry), status or reported, got 2"},
		{"unknown metric", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/atm-1, m: {casette1_pct: 8}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:48: unknown metric "casette1_pct": not a fleet metric (did you mean "cassette1_pct"?)`},
		{"bad value", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/atm-1, m: {cassette1_pct: low}}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:63: metric cassette1_pct: want a finite number, got "low"`},
		{"bad status", fixtureHead + "    input:\n      - {at: 0m, asset: PO-001272-1/totem-1, status: down}\n    expect: [{at: 1m, alerts: []}]\n",
			`fixture.yaml:9:54: bad status "down": want online or offline`},
		{"bad state", fixtureHead + "    expect: [{at: 1m, alerts: [{rule: cash_low, asset: PO-001272-1/atm-1, state: fired}]}]\n",
			`fixture.yaml:8:82: bad state "fired": want pending, firing, nodata, resolved`},
		{"unknown alert key", fixtureHead + "    expect: [{at: 1m, alerts: [{rule: cash_low, asset: PO-001272-1/atm-1, severity: warning}]}]\n",
			`fixture.yaml:8:75: unknown key "severity" in alert (want rule, asset, state, summary, held_by, labels)`},
		{"duplicate alert", fixtureHead + "    expect:\n      - at: 1m\n        alerts:\n          - {rule: cash_low, asset: PO-001272-1/atm-1}\n          - {rule: cash_low, asset: PO-001272-1/atm-1, state: pending}\n",
			"fixture.yaml:12:13: alert cash_low PO-001272-1/atm-1 already expected at line 11"},
		{"no expect", fixtureHead + "    expect: []\n", `fixture.yaml:6:5: test "t": expect nothing`},
		{"too many ticks", "interval: 1ms\n" + fixtureHead + "    expect: [{at: 1w, alerts: []}]\n", "fixture.yaml:7:5: test \"t\": 604800000 clock ticks"},
		{"unknown rule", fixtureHead + "    expect: [{at: 1m, alerts: [{rule: cash_lo, asset: PO-001272-1/atm-1}]}]\n",
			`fixture.yaml:8:39: unknown rule "cash_lo": not in rule_files (did you mean "cash_low"?)`},
		{"no rule file", "rule_files: [nope/*.yaml]\nsites: []\ntests: []\n", `fixture.yaml:1:14: rule_files: "nope/*.yaml" matches no file`},
		{"rule file error", "rule_files: [bad.yaml]\nsites: []\ntests: []\n", `bad.yaml:6:19: rule "oops": bad severity "fatal"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			write := func(name, src string) {
				if err := os.WriteFile(filepath.Join(dir, name), []byte(src), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			write("rules.yaml", rulesYAML)
			write("bad.yaml", strings.ReplaceAll(strings.ReplaceAll(rulesYAML, "warning", "fatal"), "cash_low", "oops"))
			write("fixture.yaml", c.src)
			var out bytes.Buffer
			_, err := RunFile(filepath.Join(dir, "fixture.yaml"), &out)
			if err == nil {
				t.Fatalf("no error, want %q; output:\n%s", c.want, out.String())
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, c.want)
			}
		})
	}
}

// FuzzFixture: whatever the bytes, parsing returns a fixture or an error,
// never panics.
func FuzzFixture(f *testing.F) {
	for _, name := range []string{"testdata/pack.yaml", "testdata/fail.yaml"} {
		src, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(src)
	}
	f.Add([]byte(fixtureHead + "    input:\n      - {at: 0m..10m/1m, asset: PO-001272-1/atm-1, reported: {a: [1, {b: c}]}}\n    expect: [{at: 1m, alerts: []}]\n"))
	f.Add([]byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, src []byte) {
		fx, err := parse("fuzz.yaml", src)
		if (fx == nil) == (err == nil) {
			t.Fatalf("parse returned fixture %v and error %v", fx != nil, err)
		}
	})
}

// TestDocExample keeps the example of the package documentation true.
func TestDocExample(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	in := false
	for _, l := range strings.Split(string(src), "\n") {
		in = in || strings.HasPrefix(l, "//\trule_files:")
		if in && !strings.HasPrefix(l, "//\t") {
			break
		}
		if in {
			lines = append(lines, strings.TrimPrefix(l, "//\t"))
		}
	}
	pack, err := filepath.Abs("../pack/polis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	fixture := strings.Replace(strings.Join(lines, "\n"), "../../pack/polis.yaml", pack, 1)
	path := filepath.Join(t.TempDir(), "example.yaml")
	if err := os.WriteFile(path, []byte(fixture), 0o644); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	res, err := RunFile(path, &out)
	if err != nil || res.Tests != 1 || res.Failed != 0 {
		t.Fatalf("result %+v, error %v:\n%s\nfixture:\n%s", res, err, out.String(), fixture)
	}
}
