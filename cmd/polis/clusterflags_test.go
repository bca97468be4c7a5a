package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/polis-platform/polis/internal/chserver/chtest"
)

// --clickhouse-cluster and --kafka-session-timeout, as flags and as POLIS_*
// variables, reach the configuration `polis serve -check` prints, and a
// cluster name the DDL cannot take is refused there.
func TestServeCheck_ClusterAndSessionTimeout(t *testing.T) {
	dir := t.TempDir()
	reg := filepath.Join(dir, "registry.json")
	var out bytes.Buffer
	if err := run(context.Background(), []string{"registry", "generate", "--out", reg, "--sites", "2", "--coworking", "1", "--comuni", "",
		"--credentials", filepath.Join(dir, "creds.csv")}, &out); err != nil {
		t.Fatalf("generate: %v\n%s", err, out.String())
	}
	for _, tc := range []struct {
		name      string
		env, args []string
		want      []string
	}{
		{"defaults", nil, nil, []string{"migrate true\n", "session timeout 10s", "records fail after 10s undelivered"}},
		{"flags", nil, []string{"--clickhouse-cluster", "polis", "--kafka-session-timeout", "7s"},
			[]string{"migrate true, cluster polis\n", "session timeout 7s"}},
		{"variables", []string{"POLIS_CLICKHOUSE_CLUSTER", "analytics", "POLIS_KAFKA_SESSION_TIMEOUT", "0s"}, nil,
			[]string{"migrate true, cluster analytics\n", "session timeout 45s (franz-go's default)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for i := 0; i < len(tc.env); i += 2 {
				t.Setenv(tc.env[i], tc.env[i+1])
			}
			out.Reset()
			if err := run(context.Background(), append([]string{"serve", "-check", "--registry", reg}, tc.args...), &out); err != nil {
				t.Fatalf("serve -check: %v\n%s", err, out.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("plan lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
	for _, tc := range []struct{ args []string }{
		{[]string{"--clickhouse-cluster", "a-b"}},
		{[]string{"--kafka-session-timeout", "-1s"}},
	} {
		out.Reset()
		err := run(context.Background(), append([]string{"serve", "-check", "--registry", reg}, tc.args...), &out)
		if err == nil || !strings.Contains(err.Error(), tc.args[0]) {
			t.Errorf("serve -check %v: %v; want an error naming %s\n%s", tc.args, err, tc.args[0], out.String())
		}
	}
}

// polis migrate takes serve's ClickHouse flags: --clickhouse-cluster applies
// the cluster DDL (which Debian's 18.16 refuses: the cluster schema is the
// Modern one), and --clickhouse-username logs in as that user.
func TestMigrate_ClusterAndCredentials(t *testing.T) {
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	ctx := context.Background()
	var out bytes.Buffer
	err := run(ctx, []string{"migrate", "--clickhouse", addr, "--database", db, "--clickhouse-cluster", "polis"}, &out)
	if err == nil || !strings.Contains(err.Error(), "cannot apply the cluster schema") {
		t.Fatalf("migrate --clickhouse-cluster on 18.16: %v\n%s", err, out.String())
	}
	t.Setenv("POLIS_CLICKHOUSE_USERNAME", "nobody")
	err = run(ctx, []string{"migrate", "--clickhouse", addr, "--database", db}, &out)
	if err == nil || !strings.Contains(err.Error(), "nobody") {
		t.Fatalf("migrate as an unknown user: %v\n%s", err, out.String())
	}
	t.Setenv("POLIS_CLICKHOUSE_USERNAME", "")
	out.Reset()
	if err := run(ctx, []string{"migrate", "--clickhouse", addr, "--database", db}, &out); err != nil || !strings.Contains(out.String(), "applied migrations") {
		t.Fatalf("migrate: %v\n%s", err, out.String())
	}
}
