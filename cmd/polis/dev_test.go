package main

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// `make run` imports the fleet's rollout history through the lifecycle
// log on every start: the first start writes it, the next ones skip what
// is there; a history that does not fit the registry is reported, and the
// demo runs on.
func TestDevImportsRollout(t *testing.T) {
	if testing.Short() {
		t.Skip("starts ClickHouse")
	}
	cfg := app.Defaults()
	cfg.DataDir = t.TempDir()
	var g generateFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	g.bind(fs)
	if err := fs.Parse([]string{"--sites", "10", "--coworking", "1", "--comuni", "", "--facts", factsPath,
		"--out", filepath.Join(cfg.DataDir, "registry.json"), "--credentials", filepath.Join(cfg.DataDir, "credentials.csv")}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := devFleet(&out, &g, cfg, true); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	addr := chtest.Shared(t)
	cfg.RegistryPath, cfg.ClickHouseAddr, cfg.Database = g.out, addr, chtest.Database(t, addr)
	cfg.MQTTAddr, cfg.HTTPAddr, cfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.Logger = slog.New(slog.DiscardHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p, err := app.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()
	evs, _, err := lifecycle.DecodeImport(mustOpen(t, g.rolloutPath()))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	importRollout(ctx, &out, p.Live, g.rolloutPath(), cfg.Logger)
	if !strings.Contains(out.String(), "imported the rollout history") {
		t.Fatalf("first start: %s", out.String())
	}
	final := map[string]lifecycle.State{}
	for _, ev := range evs {
		final[ev.Site+"/"+ev.Asset] = ev.To
	}
	for k, want := range final {
		site, asset, _ := strings.Cut(k, "/")
		if st, _ := p.Live.Lifecycle(site, asset); st != want {
			t.Fatalf("%s is %s after the import; the history ends in %s", k, st, want)
		}
		if h := p.Live.Tracker().History(site, asset); len(h) == 0 {
			t.Fatalf("%s has no history in the tracker", k)
		}
	}
	out.Reset()
	importRollout(ctx, &out, p.Live, g.rolloutPath(), cfg.Logger)
	if out.Len() != 0 {
		t.Fatalf("second start printed %q; want nothing (all skipped)", out.String())
	}
	// A history that moves an asset the registry does not record as
	// planned: refused whole, with a warning.
	other := filepath.Join(cfg.DataDir, "other.ndjson")
	var site, asset string
	for _, s := range p.Registry.Sites() {
		for _, a := range s.Assets {
			if st, _ := p.Live.Lifecycle(s.ID, a.ID); st == lifecycle.Operational && site == "" {
				site, asset = s.ID, a.ID
			}
		}
	}
	if err := writeRollout(other, []lifecycle.Event{{Site: site, Asset: asset, To: lifecycle.Installed, At: time.Now().Add(-time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	out.Reset()
	importRollout(ctx, &out, p.Live, other, cfg.Logger)
	if !strings.Contains(out.String(), "does not apply to this fleet") || !strings.Contains(out.String(), "operational → installed") {
		t.Fatalf("mismatched history: %q", out.String())
	}
	// No history beside the registry: nothing to do, nothing said.
	out.Reset()
	importRollout(ctx, &out, p.Live, filepath.Join(cfg.DataDir, "none.ndjson"), cfg.Logger)
	if out.Len() != 0 {
		t.Fatalf("no history: %q", out.String())
	}
}
