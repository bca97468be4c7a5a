package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

// Every command must define its flags without collisions and answer -h.
func TestCommands_Help(t *testing.T) {
	for _, c := range commands {
		args := []string{c.name, "-h"}
		if c.name == "registry" {
			args = []string{c.name, "generate", "-h"}
		}
		if c.name == "kafka" {
			args = []string{c.name, "init", "-h"}
		}
		if c.name == "rules" {
			continue // no flags: checked in TestRulesCheck
		}
		var out bytes.Buffer
		err := run(context.Background(), args, &out)
		if !errors.Is(err, flag.ErrHelp) {
			t.Errorf("polis %s: got %v; want flag.ErrHelp", strings.Join(args, " "), err)
		}
	}
}

// The ISTAT importer on the real list of comuni (read from ../shared/data),
// then the export in the same layout.
func TestRegistryImport_ISTAT(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/registry.json"
	var out bytes.Buffer
	err := run(context.Background(), []string{"registry", "import", "--registry", path,
		"--istat", "../../../shared/data/comuni_mappa_ai_2020.csv", "--centroids", "../../../shared/data/comuni_centroidi_openpolis_2023.csv"}, &out)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "imported 7162 sites") || !strings.Contains(out.String(), "7 rows refused") {
		t.Fatalf("unexpected report:\n%.400s", out.String())
	}
	out.Reset()
	if err := run(context.Background(), []string{"registry", "export", "--registry", path, "--istat"}, &out); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "\n"); n != 7163 {
		t.Fatalf("export has %d lines; want 7163 (header + 7162)", n)
	}
}

func TestRun_UnknownCommand(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"nope"}, &out); err == nil || !strings.Contains(err.Error(), "unknown command") {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestParse_EnvFillsUnsetFlags(t *testing.T) {
	t.Setenv("POLIS_KAFKA_BROKERS", "k1:9092,k2:9092")
	t.Setenv("POLIS_HTTP_ADDR", "127.0.0.1:9999")
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	brokers := fs.String("kafka-brokers", "", "")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "")
	if err := parse(fs, []string{"--http-addr", "127.0.0.1:7000"}); err != nil {
		t.Fatal(err)
	}
	if *brokers != "k1:9092,k2:9092" || *httpAddr != "127.0.0.1:7000" {
		t.Fatalf("unexpected values; brokers %q (from env), http %q (flag wins)", *brokers, *httpAddr)
	}
	if got := splitList(*brokers); len(got) != 2 || got[1] != "k2:9092" {
		t.Fatalf("unexpected split %v", got)
	}
}

func TestRegistryHash_RefusesShortSecrets(t *testing.T) {
	var out bytes.Buffer
	if err := registryHash(strings.NewReader("short\n"), &out); err == nil {
		t.Fatal("short secret accepted")
	}
	if err := registryHash(strings.NewReader("a long enough secret\n"), &out); err != nil || !strings.HasPrefix(out.String(), "$2") {
		t.Fatalf("unexpected hash %q, err %v", out.String(), err)
	}
}

func TestRulesCheck(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"rules", "check", "../../rules/pack/polis.yaml"}, &out); err != nil {
		t.Fatalf("the default pack: %v\n%s", err, out.String())
	}
	bad := t.TempDir() + "/bad.yaml"
	if err := os.WriteFile(bad, []byte("groups:\n  - name: g\n    rules:\n      - id: x\n        expr: value >\n        severity: warning\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err := run(context.Background(), []string{"rules", "check", bad}, &out)
	if err == nil || !strings.Contains(out.String(), "bad.yaml:5:") {
		t.Fatalf("a bad rule must be refused with its position; got %v\n%s", err, out.String())
	}
}

func TestRulesTest(t *testing.T) {
	var out bytes.Buffer
	if err := run(context.Background(), []string{"rules", "test", "../../rules/ruletest/testdata/pack.yaml"}, &out); err != nil ||
		!strings.Contains(out.String(), "PASS ") || !strings.Contains(out.String(), ", 0 failed") {
		t.Fatalf("the pack's tests: %v\n%s", err, out.String())
	}
	out.Reset()
	err := run(context.Background(), []string{"rules", "test", "../../rules/ruletest/testdata/fail.yaml"}, &out)
	if err == nil || !strings.Contains(out.String(), "FAIL ") {
		t.Fatalf("a failing fixture must fail; got %v\n%s", err, out.String())
	}
	if err := run(context.Background(), []string{"rules", "backtest", "-rules", "nowhere"}, &out); err == nil || !strings.Contains(err.Error(), "nowhere") {
		t.Fatalf("backtest without rules: %v", err)
	}
}
