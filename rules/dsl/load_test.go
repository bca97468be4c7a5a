package dsl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoad_Success(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no good files: %v", err)
	}
	for _, path := range files {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		f, err := Load(filepath.Base(path), src, Options{})
		if err != nil {
			t.Fatalf("%s: unexpected error:\n%v", path, err)
		}
		if len(f.Rules()) == 0 {
			t.Fatalf("%s: no rules", path)
		}
	}
}

func TestLoad_Fields(t *testing.T) {
	src, err := os.ReadFile("testdata/rules.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load("rules.yaml", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := f.Rules()[0]
	if r.ID != "atm_cash_low" || r.Group != "atm" || r.For != 5*time.Minute ||
		r.KeepFiringFor != 90*time.Minute || r.Severity != "warning" || r.Labels["team"] != "cash" ||
		r.Clear == nil || r.Pos.Line != 5 || r.Pos.Col != 9 {
		t.Fatalf("unexpected rule %+v", r)
	}
	s := r.Scope
	if len(s.AssetTypes) != 1 || s.AssetTypes[0] != "atm" || len(s.Regions) != 2 || s.SiteLabels["tier"] != "gold" {
		t.Fatalf("unexpected scope %+v", s)
	}
	site := &SiteEnv{Region: "Umbria", Labels: map[string]string{"tier": "gold"}}
	if !s.Match("atm", site) || s.Match("evc", site) {
		t.Fatal("scope match on type")
	}
	site.Labels["tier"] = "silver"
	if s.Match("atm", site) {
		t.Fatal("scope match on labels")
	}
	// A folded summary renders folded, as YAML would.
	got, err := f.Rules()[1].Summary.Render(&Env{Asset: AssetEnv{ID: "env-1"}})
	if want := "env-1 rose n/a C"; err != nil || got != want {
		t.Fatalf("summary %q, %v; want %q", got, err, want)
	}
}

func TestLoad_Failure(t *testing.T) {
	f := func(file, want string) {
		t.Helper()
		src, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		_, err = Load(file, src, Options{})
		if err == nil {
			t.Fatalf("%s: no error; want %q", file, want)
		}
		if !strings.Contains(err.Error(), want) {
			t.Fatalf("%s: unexpected error\n got: %v\nwant: %s", file, err, want)
		}
	}
	f("unknown_key.bad.yaml", `unknown_key.bad.yaml:7:9: rule "r": unknown key "sumary"`)
	f("bad_duration.bad.yaml", `bad_duration.bad.yaml:6:14: rule "r": bad duration "5 minutes"`)
	f("bad_severity.bad.yaml", `bad_severity.bad.yaml:6:19: rule "r": bad severity "urgent": want info, warning or critical`)
	f("syntax.bad.yaml", `syntax.bad.yaml:7:34: rule "r": expr: unexpected token EOF`)
	f("type.bad.yaml", `type.bad.yaml:5:26: rule "r": expr: invalid operation: > (mismatched types string and int)`)
	f("unknown_func.bad.yaml", `unknown_func.bad.yaml:5:16: rule "r": expr: unknown name avgg (did you mean avg?)`)
	f("arg_types.bad.yaml", `arg_types.bad.yaml:5:19: rule "r": expr: cannot use int as argument (type string) to call avg`)
	f("summary.bad.yaml", `summary.bad.yaml:7:32: rule "r": summary: type asset has no field idd (did you mean id?)`)
	f("summary_unclosed.bad.yaml", `summary_unclosed.bad.yaml:7:23: rule "r": summary: unclosed {{`)
	f("duplicate_id.bad.yaml", `duplicate_id.bad.yaml:9:13: rule "r": duplicate id "r", first defined at duplicate_id.bad.yaml:4:13`)
	f("unknown_metric.bad.yaml", `unknown_metric.bad.yaml:7:20: rule "atm_cash_low": expr: unknown metric "cassete1_pct" (did you mean "cassette1_pct"?)`)
	f("bad_window.bad.yaml", `bad_window.bad.yaml:5:29: rule "r": expr: avg: bad window "10 min"`)
	f("duplicate_key.bad.yaml", `duplicate_key.bad.yaml:6:9: rule "r": duplicate key "expr"`)
	f("top_rules.bad.yaml", `top_rules.bad.yaml:1:1: unknown key "rules" (want groups)`)
	f("not_bool.bad.yaml", `not_bool.bad.yaml:5:15: rule "r": expr: expected bool, but got float64`)
	f("scope_key.bad.yaml", `scope_key.bad.yaml:7:11: rule "r": unknown key "asset_type" in scope`)
	f("missing_expr.bad.yaml", `missing_expr.bad.yaml:4:9: rule "r": missing key "expr"`)
	f("clear.bad.yaml", `clear.bad.yaml:7:16: rule "r": clear: unknown name metrc (did you mean metric?)`)
	f("folded.bad.yaml", `folded.bad.yaml:9:22: rule "r": expr: type site has no field regoin (did you mean region?)`)
	f("summary_block.bad.yaml", `summary_block.bad.yaml:9:33: rule "r": summary: avg: bad window "1x"`)
	f("alias.bad.yaml", `alias.bad.yaml:`)
	f("yaml_syntax.bad.yaml", `yaml_syntax.bad.yaml:1:1: did not find expected node content`)
}

func TestLoadDir(t *testing.T) {
	dir := t.TempDir()
	rule := "groups:\n  - name: g\n    rules:\n      - id: r\n        expr: value > 1\n        severity: info\n"
	for _, n := range []string{"a.yaml", "b.yml"} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(rule), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err := LoadDir(dir, Options{})
	if err == nil || !strings.Contains(err.Error(), "b.yml:4:9: rule \"r\": duplicate id, first defined at "+filepath.Join(dir, "a.yaml")+":4:9") {
		t.Fatalf("unexpected error %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "b.yml")); err != nil {
		t.Fatal(err)
	}
	files, err := LoadDir(dir, Options{})
	if err != nil || len(files) != 1 {
		t.Fatalf("got %d files, %v", len(files), err)
	}
}

func TestPack(t *testing.T) {
	files, err := LoadDir("../pack", Options{})
	if err != nil {
		t.Fatalf("the default pack does not load:\n%v", err)
	}
	var ids []string
	for _, f := range files {
		for _, r := range f.Rules() {
			ids = append(ids, r.ID)
		}
	}
	for _, want := range []string{"atm_cash_low", "atm_out_of_service", "locker_full", "evc_fault",
		"evc_stuck_session", "pv_underperforming", "totem_offline", "coworking_co2_high",
		"coworking_temp_discomfort", "asset_silent"} {
		if !strings.Contains(" "+strings.Join(ids, " ")+" ", " "+want+" ") {
			t.Fatalf("pack lacks %s; has %v", want, ids)
		}
	}
}
