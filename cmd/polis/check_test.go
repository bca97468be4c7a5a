package main

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// `polis serve -check` validates every file and flag and exits without
// listening: a good configuration prints the plan, a bad one every fault.
func TestServeCheck(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.json")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"registry", "generate", "--out", reg, "--sites", "3", "--coworking", "1", "--comuni", "",
		"--credentials", filepath.Join(dir, "creds.csv")}, &out); err != nil {
		t.Fatalf("generate: %v\n%s", err, out.String())
	}
	// A port nothing else uses, to see that -check does not bind it.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()

	out.Reset()
	args := []string{"serve", "-check", "--registry", reg, "--http-addr", addr, "--rules", "../../rules/pack",
		"--milestones", "../../rules/milestones/polis.yaml"}
	done := make(chan error, 1)
	go func() { done <- run(context.Background(), args, &out) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve -check on a good configuration: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("serve -check did not exit")
	}
	for _, want := range []string{"configuration valid", "storage writer", "rules                  11 rules", "http api               http://" + addr} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("plan lacks %q:\n%s", want, out.String())
		}
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("serve -check left %s listening", addr)
	}

	broken := filepath.Join(dir, "rules")
	if err := os.Mkdir(broken, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(broken, "bad.yaml"), []byte("groups:\n  - name: g\n    rules:\n      - id: r\n        expr: last(\"tmp_c\") >\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	err = run(context.Background(), []string{"serve", "-check", "--registry", filepath.Join(dir, "missing.json"), "--rules", broken,
		"--http-addr", "nope", "--tokens", filepath.Join(dir, "no-tokens.yaml")}, &out)
	if err == nil {
		t.Fatalf("serve -check accepted a broken configuration:\n%s", out.String())
	}
	for _, want := range []string{"--registry", "--http-addr", "--tokens"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not name %s: %v", want, err)
		}
	}
}
