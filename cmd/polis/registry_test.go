package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// importRows makes a provisioning CSV (registry.ImportHeader) with one row
// per SITE/ASSET, and a plaintext secret where given as SITE/ASSET=SECRET.
func importRows(t *testing.T, dir, name string, rows ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString(registry.ImportHeader + "\n")
	for _, r := range rows {
		user, secret, _ := strings.Cut(r, "=")
		site, asset, _ := strings.Cut(user, "/")
		rec := make([]string, len(strings.Split(registry.ImportHeader, ",")))
		rec[0], rec[2], rec[6], rec[18], rec[24] = site, site[3:9], "Piemonte", asset, secret
		b.WriteString(strings.Join(rec, ",") + "\n")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func readCreds(t *testing.T, path string) []registry.Credential {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	creds, err := registry.ReadCredentialsCSV(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return creds
}

// `polis registry import --credentials FILE` appends: a second import keeps
// the first one's lines byte for byte, and every secret logs in.
func TestRegistryImport_CredentialsAppend(t *testing.T) {
	dir := t.TempDir()
	reg, creds := filepath.Join(dir, "registry.json"), filepath.Join(dir, "creds.csv")
	imp := func(csv string, extra ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		err := run(context.Background(), append([]string{"registry", "import", "--registry", reg, "--csv", csv}, extra...), &out)
		return out.String(), err
	}

	out, err := imp(importRows(t, dir, "a.csv", "PO-001002-1/atm-1", "PO-001002-1/gw-1"), "--credentials", creds)
	if err != nil || !strings.Contains(out, "appended 2 device credentials to "+creds) {
		t.Fatalf("first import: %v\n%s", err, out)
	}
	first, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(creds); st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v; want 0600", st.Mode().Perm())
	}

	out, err = imp(importRows(t, dir, "b.csv", "PO-001003-1/atm-1", "PO-001003-1/env-1", "PO-001003-1/gw-1"), "--credentials", creds)
	if err != nil || !strings.Contains(out, "appended 3 device credentials") {
		t.Fatalf("second import: %v\n%s", err, out)
	}
	second, err := os.ReadFile(creds)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(second, first) || bytes.Count(second, []byte("site,asset,username,password")) != 1 {
		t.Fatalf("the second import rewrote the first one's lines:\nfirst:\n%s\nafter:\n%s", first, second)
	}
	got := readCreds(t, creds)
	r, err := registry.Load(reg)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 {
		t.Fatalf("credentials file holds %d devices; want 5", len(got))
	}
	for _, c := range got {
		if _, err := r.Authenticate(c.Username, []byte(c.Password)); err != nil {
			t.Fatalf("%s cannot log in with its saved secret: %v", c.Username, err)
		}
	}

	// New devices without --credentials: refused, nothing saved.
	_, err = imp(importRows(t, dir, "c.csv", "PO-001004-1/atm-1"))
	if err == nil || !strings.Contains(err.Error(), "give --credentials FILE") {
		t.Fatalf("unexpected error without --credentials: %v", err)
	}
	if r, _ := registry.Load(reg); r.Known("PO-001004-1", "atm-1") {
		t.Fatal("an import whose secrets had nowhere to go was saved")
	}

	// A weak plaintext secret is refused with its line; the strong one is
	// imported, and no credentials are written for given secrets.
	out, err = imp(importRows(t, dir, "d.csv", "PO-001005-1/atm-1=pw", "PO-001006-1/atm-1=Qh7-vR2m_K9pLwZ3"), "--credentials", creds)
	if err != nil || !strings.Contains(out, "refused line 2 PO-001005-1/atm-1: column secret: secret too short: 2 characters, want at least 16") ||
		!strings.Contains(out, "imported 1 sites") || strings.Contains(out, "appended") {
		t.Fatalf("weak secret: %v\n%s", err, out)
	}
	if after, _ := os.ReadFile(creds); !bytes.Equal(after, second) {
		t.Fatal("the credentials file changed although no secret was made")
	}
}

// `polis registry generate` draws secrets from crypto/rand; only
// --insecure-reproducible-secrets gives the same file twice.
func TestRegistryGenerate_Secrets(t *testing.T) {
	dir := t.TempDir()
	gen := func(name string, extra ...string) []byte {
		t.Helper()
		path := filepath.Join(dir, name)
		var out bytes.Buffer
		args := append([]string{"registry", "generate", "--sites", "3", "--coworking", "1", "--comuni", "", "--no-rollout",
			"--out", filepath.Join(dir, name+".json"), "--credentials", path}, extra...)
		if err := run(context.Background(), args, &out); err != nil {
			t.Fatalf("generate: %v\n%s", err, out.String())
		}
		if len(extra) > 0 && !strings.Contains(out.String(), "WARNING: --insecure-reproducible-secrets") {
			t.Fatalf("no warning for reproducible secrets:\n%s", out.String())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	a, b := readCredsBytes(t, gen("a.csv")), readCredsBytes(t, gen("b.csv"))
	fixed := readCredsBytes(t, gen("f1.csv", "--insecure-reproducible-secrets"))
	if len(a) != len(b) || len(a) != len(fixed) || len(a) == 0 {
		t.Fatalf("different fleets: %d, %d, %d devices", len(a), len(b), len(fixed))
	}
	for i := range a {
		if a[i].Username != b[i].Username || a[i].Password == b[i].Password ||
			a[i].Password == fixed[i].Password || b[i].Password == fixed[i].Password {
			t.Fatalf("device %s: secrets not fresh on every run", a[i].Username)
		}
	}
	if !bytes.Equal(gen("f2.csv", "--insecure-reproducible-secrets"), gen("f3.csv", "--insecure-reproducible-secrets")) {
		t.Fatal("--insecure-reproducible-secrets gave two different files")
	}
}

func readCredsBytes(t *testing.T, b []byte) []registry.Credential {
	t.Helper()
	creds, err := registry.ReadCredentialsCSV(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// `make run` (polis dev) generates the fleet once and keeps it, and refuses
// the mixes in which devices could not log in.
func TestDevFleet(t *testing.T) {
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	var g generateFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	g.bind(fs)
	if err := fs.Parse([]string{"--sites", "4", "--coworking", "1", "--comuni", "", "--facts", factsPath,
		"--out", filepath.Join(cfg.DataDir, "registry.json"), "--credentials", filepath.Join(cfg.DataDir, "credentials.csv")}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := devFleet(&out, &g, cfg, true); err != nil || !strings.Contains(out.String(), "generated the demo fleet") {
		t.Fatalf("first run: %v\n%s", err, out.String())
	}
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "rollout.ndjson")); err != nil {
		t.Fatalf("no rollout history beside the registry: %v\n%s", err, out.String())
	}
	regBytes, _ := os.ReadFile(g.out)
	credBytes, _ := os.ReadFile(g.creds)
	if st, err := os.Stat(g.creds); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, %v", err, st)
	}
	out.Reset()
	if err := devFleet(&out, &g, cfg, true); err != nil || out.Len() != 0 {
		t.Fatalf("second run: %v\n%s", err, out.String())
	}
	if r, _ := os.ReadFile(g.out); !bytes.Equal(r, regBytes) {
		t.Fatal("the second run rewrote the registry")
	}
	if c, _ := os.ReadFile(g.creds); !bytes.Equal(c, credBytes) {
		t.Fatal("the second run rewrote the credentials")
	}
	r, err := registry.Load(g.out)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range readCreds(t, g.creds) {
		if _, err := r.Authenticate(c.Username, []byte(c.Password)); err != nil {
			t.Fatalf("%s: %v", c.Username, err)
		}
	}

	// A fleet with the old derived secrets is kept, with a warning.
	_, fixed, err := registry.Generate(registry.GenerateOptions{Sites: 4, Coworking: 1, Seed: 1, ReproducibleSecrets: true})
	if err != nil {
		t.Fatal(err)
	}
	var fixedCSV bytes.Buffer
	if err := registry.WriteCredentialsCSV(&fixedCSV, fixed); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(g.creds, fixedCSV.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := devFleet(&out, &g, cfg, true); err != nil || !strings.Contains(out.String(), "WARNING: the device secrets in "+g.creds+" follow from seed 1") {
		t.Fatalf("fleet with derived secrets: %v\n%s", err, out.String())
	}

	out.Reset()
	if err := os.Remove(g.creds); err != nil {
		t.Fatal(err)
	}
	if err := devFleet(&out, &g, cfg, true); err == nil || !strings.Contains(err.Error(), "credentials.csv is missing") {
		t.Fatalf("registry without credentials: %v", err)
	}
	if err := devFleet(&out, &g, cfg, false); err != nil {
		t.Fatalf("registry without credentials, no simulator: %v", err)
	}

	if err := os.Remove(g.out); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(cfg.DataDir, "kafka", "polis.registry.v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := devFleet(&out, &g, cfg, true); err == nil || !strings.Contains(err.Error(), "registry topic") {
		t.Fatalf("new fleet next to an old Kafka log: %v", err)
	}
	if _, err := os.Stat(g.out); err == nil {
		t.Fatal("a fleet was generated next to an old Kafka log")
	}
}

// factsPath is the public facts table, from this package's directory.
var factsPath = filepath.Join("..", "..", "..", "shared", "data", "polis_fatti_pubblici.csv")

// `polis registry generate` writes the rollout history beside the
// registry, which then records every asset as planned: the same seed and
// --rollout-now give the same history; --no-rollout writes none.
func TestRegistryGenerate_Rollout(t *testing.T) {
	dir := t.TempDir()
	gen := func(name string, extra ...string) (string, error) {
		t.Helper()
		var out bytes.Buffer
		args := append([]string{"registry", "generate", "--sites", "12", "--coworking", "1", "--comuni", "", "--facts", factsPath,
			"--insecure-reproducible-secrets", "--rollout-now", "2026-12-08T10:00:00Z",
			"--out", filepath.Join(dir, name, "registry.json"), "--credentials", filepath.Join(dir, name, "credentials.csv")}, extra...)
		err := run(context.Background(), args, &out)
		return out.String(), err
	}
	out, err := gen("a")
	if err != nil || !strings.Contains(out, "rollout.ndjson: the rollout history") {
		t.Fatalf("generate: %v\n%s", err, out)
	}
	a, err := os.ReadFile(filepath.Join(dir, "a", "rollout.ndjson"))
	if err != nil {
		t.Fatal(err)
	}
	evs, _, err := lifecycle.DecodeImport(bytes.NewReader(a))
	if err != nil || len(evs) < 12*7*3 {
		t.Fatalf("history of %d events: %v", len(evs), err)
	}
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	for _, ev := range evs {
		if ev.At.After(now) || ev.From == "" {
			t.Fatalf("event %+v: after --rollout-now, or without from", ev)
		}
	}
	reg, err := registry.Load(filepath.Join(dir, "a", "registry.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range reg.Sites() {
		for _, as := range s.Assets {
			if as.Lifecycle != lifecycle.Planned || !as.InstalledAt.IsZero() {
				t.Fatalf("%s/%s is registered %s (installed %v); want planned, the history moves it", s.ID, as.ID, as.Lifecycle, as.InstalledAt)
			}
		}
	}
	if _, err := gen("b"); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "b", "rollout.ndjson")); !bytes.Equal(a, b) {
		t.Fatal("the same seed and --rollout-now gave two histories")
	}
	if _, err := gen("c", "--no-rollout"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "c", "rollout.ndjson")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("--no-rollout wrote a history: %v", err)
	}
	other := filepath.Join(dir, "elsewhere.ndjson")
	if _, err := gen("d", "--rollout", other); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(other); err != nil {
		t.Fatalf("--rollout: %v", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--rollout-now", "yesterday"}, "RFC 3339"},
		{[]string{"--facts", filepath.Join(dir, "none.csv")}, "--no-rollout"},
	} {
		if out, err := gen("e", tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("%v: got %v\n%s; want an error saying %q", tc.args, err, out, tc.want)
		}
		if _, err := os.Stat(filepath.Join(dir, "e", "registry.json")); err == nil {
			t.Fatalf("%v: a registry was written", tc.args)
		}
	}
}

// polis simulate reads where each asset stands from the registry, with
// the rollout history beside it folded over the registered states.
func TestSimulate_LifecycleFromRegistry(t *testing.T) {
	dir := t.TempDir()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"registry", "generate", "--sites", "12", "--coworking", "1", "--comuni", "", "--facts", factsPath,
		"--rollout-now", "2026-12-08T10:00:00Z", "--out", filepath.Join(dir, "registry.json"), "--credentials", filepath.Join(dir, "c.csv")}, &out); err != nil {
		t.Fatal(err)
	}
	evs, _, err := lifecycle.DecodeImport(mustOpen(t, filepath.Join(dir, "rollout.ndjson")))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]lifecycle.State{}
	for _, ev := range evs {
		want[ev.Site+"/"+ev.Asset] = ev.To
	}
	s := simulateFlags{registry: filepath.Join(dir, "registry.json")}
	var o loadtest.Options
	out.Reset()
	if err := s.lifecycleFrom(&o, &out, time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if o.Lifecycle == nil || o.Registry == nil || !strings.Contains(out.String(), "stay silent") {
		t.Fatalf("no lifecycle from the registry: %s", out.String())
	}
	reg, _ := registry.Load(s.registry)
	silent := 0
	for _, site := range reg.Sites() {
		for _, a := range site.Assets {
			st := cmp.Or(want[site.ID+"/"+a.ID], lifecycle.Planned)
			if got := o.Lifecycle(site.ID, a.ID); got != st {
				t.Fatalf("%s/%s: %s; the history ends in %s", site.ID, a.ID, got, st)
			}
			if st == lifecycle.Planned {
				silent++
			}
		}
	}
	if silent == 0 || !strings.Contains(out.String(), fmt.Sprintf("%d of", silent)) {
		t.Fatalf("%d planned devices; the simulator says %s", silent, out.String())
	}
	// Before any event of the history, everything is planned.
	var early loadtest.Options
	if err := s.lifecycleFrom(&early, io.Discard, time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if st := early.Lifecycle(evs[0].Site, evs[0].Asset); st != lifecycle.Planned {
		t.Fatalf("before the works %s/%s is %s", evs[0].Site, evs[0].Asset, st)
	}
	// No registry: every device publishes.
	none := simulateFlags{registry: filepath.Join(dir, "missing.json")}
	var all loadtest.Options
	if err := none.lifecycleFrom(&all, io.Discard, time.Now()); err != nil || all.Lifecycle != nil {
		t.Fatalf("without a registry: %v, lifecycle set %v", err, all.Lifecycle != nil)
	}
}

func mustOpen(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
