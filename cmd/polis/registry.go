package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// defaultDataDir is where the public data of ../shared/data sits relative
// to a checkout; the project does not copy it.
const defaultDataDir = "../shared/data"

func runRegistry(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return errors.New("usage: polis registry generate|import|export|hash [flags]")
	}
	switch args[0] {
	case "generate":
		return registryGenerate(args[1:], stdout)
	case "import":
		return registryImport(args[1:], stdout)
	case "export":
		return registryExport(args[1:], stdout)
	case "hash":
		return registryHash(os.Stdin, stdout)
	}
	return fmt.Errorf("unknown registry command %q: want generate, import, export or hash", args[0])
}

// registryImport adds sites to a registry file from our CSV layout or from
// ISTAT's list of comuni, printing the refused rows.
func registryImport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("registry import", flag.ContinueOnError)
	path := fs.String("registry", registry.DefaultPath, "registry file to update (created if missing)")
	csvPath := fs.String("csv", "", "sites and assets in the layout of 'polis registry export' (registry.ImportHeader)")
	istat := fs.String("istat", "", "ISTAT list of comuni (Mappa Aree Interne 2020 layout): adds a post office PO-<code>-1 per comune")
	centroids := fs.String("centroids", filepath.Join(defaultDataDir, "comuni_centroidi_openpolis_2023.csv"), "comune centroids (with --istat)")
	maxPop := fs.Int("max-population", registry.SmallComuneLimit, "with --istat: only comuni with fewer inhabitants")
	strict := fs.Bool("strict", false, "import nothing if any row is refused")
	creds := fs.String("credentials", "", "with --csv: append the secrets made for devices that came without one to this credentials file "+
		"(created with mode 0600 if missing; existing lines are never rewritten)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if (*csvPath == "") == (*istat == "") {
		return errors.New("give exactly one of --csv and --istat")
	}
	reg, err := registry.Load(*path)
	if errors.Is(err, os.ErrNotExist) {
		reg, err = registry.New(), nil
	}
	if err != nil {
		return err
	}
	var rep *registry.ImportReport
	if *istat != "" {
		rep, err = registry.ImportComuniFiles(reg, *istat, *centroids, registry.ComuniOptions{MaxPopulation: *maxPop})
	} else {
		f, ferr := os.Open(*csvPath)
		if ferr != nil {
			return fmt.Errorf("cannot read %s: %w", *csvPath, ferr)
		}
		rep, err = registry.ImportCSV(reg, f, registry.ImportOptions{Strict: *strict})
		f.Close()
	}
	if rep != nil {
		fmt.Fprintf(stdout, "imported %d sites, %d assets; %d rows refused, %d warnings, %d filtered out\n",
			rep.Sites, rep.Assets, len(rep.Refused), len(rep.Warnings), rep.Filtered)
		for _, r := range rep.Refused {
			fmt.Fprintf(stdout, "  refused line %d %s: %s\n", r.Line, r.ID, r.Reason)
		}
		for _, r := range rep.Warnings {
			fmt.Fprintf(stdout, "  warning line %d %s: %s\n", r.Line, r.ID, r.Reason)
		}
	}
	if err != nil {
		return err
	}
	if len(rep.Credentials) > 0 {
		if *creds == "" {
			return fmt.Errorf("%d devices got new secrets: give --credentials FILE to keep them (nothing was saved)", len(rep.Credentials))
		}
		// Appended before the registry is saved: a secret must not reach
		// the registry unless its plaintext is kept somewhere.
		if err := registry.AppendCredentialsFile(*creds, rep.Credentials); err != nil {
			return fmt.Errorf("%w (nothing was saved)", err)
		}
		fmt.Fprintf(stdout, "appended %d device credentials to %s\n", len(rep.Credentials), *creds)
	}
	return reg.Save(*path)
}

// registryExport writes a registry file as CSV, in our layout or ISTAT's.
func registryExport(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("registry export", flag.ContinueOnError)
	path := fs.String("registry", registry.DefaultPath, "registry file")
	istat := fs.Bool("istat", false, "write the post offices' comuni in the ISTAT layout instead")
	if err := parse(fs, args); err != nil {
		return err
	}
	reg, err := registry.Load(*path)
	if err != nil {
		return err
	}
	if *istat {
		return registry.ExportComuniCSV(stdout, reg)
	}
	return registry.ExportCSV(stdout, reg)
}

type generateFlags struct {
	sites, coworking int
	seed             uint64
	out, creds       string
	comuni           string
	reproducible     bool
	// The rollout history written beside the registry (rolloutPath).
	rollout    string
	noRollout  bool
	rolloutNow string
	facts      string
}

// rolloutFile is the rollout history's name beside the registry.
const rolloutFile = "rollout.ndjson"

// defaultFacts is the public facts table in a checkout.
var defaultFacts = filepath.Join(defaultDataDir, "polis_fatti_pubblici.csv")

// rolloutPath is where the rollout history goes: --rollout, else
// rollout.ndjson beside the registry; "" with --no-rollout.
func (g *generateFlags) rolloutPath() string {
	switch {
	case g.noRollout:
		return ""
	case g.rollout != "":
		return g.rollout
	}
	return filepath.Join(filepath.Dir(g.out), rolloutFile)
}

// insecureReproducibleSecretsFlag derives every device secret from the seed
// and a key in the source (registry.GenerateOptions.ReproducibleSecrets).
const insecureReproducibleSecretsFlag = "insecure-reproducible-secrets"

func (g *generateFlags) bind(fs *flag.FlagSet) {
	fs.IntVar(&g.sites, "sites", 4800, "post offices")
	fs.IntVar(&g.coworking, "coworking", 250, "coworking spaces")
	fs.Uint64Var(&g.seed, "seed", 1, "seed of the fleet's layout: the same seed gives the same sites and assets (secrets are random)")
	fs.StringVar(&g.out, "out", registry.DefaultPath, "registry file to write")
	fs.StringVar(&g.creds, "credentials", registry.DefaultCredentialsPath, "device credentials file to write (site,asset,username,password)")
	fs.StringVar(&g.comuni, "comuni", filepath.Join(defaultDataDir, "comuni_mappa_ai_2020.csv"),
		"ISTAT list of comuni (Mappa Aree Interne 2020 layout) to place offices in real comuni; empty: synthetic ids")
	fs.StringVar(&g.rollout, "rollout", "", "file to write the fleet's rollout history to, as lifecycle events in NDJSON "+
		"(default: "+rolloutFile+" beside --out); the registry then records every asset as planned, and polis dev imports the history")
	fs.BoolVar(&g.noRollout, "no-rollout", false, "write no rollout history: the assets keep the lifecycle states the generator spreads, undated")
	fs.StringVar(&g.rolloutNow, "rollout-now", "", "end of the rollout history, RFC 3339 (default: now)")
	g.facts = defaultFacts
	if fs.Lookup("facts") == nil { // polis dev: serve's --facts is the same table
		fs.StringVar(&g.facts, "facts", defaultFacts,
			"the public facts table whose published progress shapes the rollout (when the default is not there: no rollout history)")
	}
	fs.BoolVar(&g.reproducible, insecureReproducibleSecretsFlag, false,
		"TESTS ONLY: derive every device secret from --seed and a key in the source instead of crypto/rand, "+
			"so that anyone with the source knows every password")
}

func registryGenerate(args []string, stdout io.Writer) error {
	var g generateFlags
	fs := flag.NewFlagSet("registry generate", flag.ContinueOnError)
	g.bind(fs)
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := g.generate(stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "wrote %s (%d sites) and %s (%d device credentials)\n", g.out, g.sites+g.coworking, g.creds, n)
	return nil
}

// rolloutFacts reads the published progress figures of the facts table
// with the milestones' reader.
func rolloutFacts(path string) ([]registry.RolloutFact, error) {
	facts, err := milestone.LoadFactsFile(path)
	if err != nil {
		return nil, err
	}
	var out []registry.RolloutFact
	for _, f := range facts {
		if f.Type == milestone.FactProgress && f.HasValue {
			out = append(out, registry.RolloutFact{ID: f.ID, Date: f.Date, Value: f.Value, Unit: f.Unit, Metric: f.Metric})
		}
	}
	return out, nil
}

// planRollout dates the fleet's rollout (registry.PlanRollout) and records
// every asset as planned, the state the history starts from.
func (g *generateFlags) planRollout(reg *registry.Registry) ([]lifecycle.Event, time.Time, error) {
	now := time.Now().UTC().Truncate(time.Second)
	if g.rolloutNow != "" {
		t, err := time.Parse(time.RFC3339, g.rolloutNow)
		if err != nil {
			return nil, now, fmt.Errorf("--rollout-now %q: want an RFC 3339 time such as 2026-12-01T00:00:00Z", g.rolloutNow)
		}
		now = t.UTC()
	}
	facts, err := rolloutFacts(g.facts)
	if err != nil {
		return nil, now, fmt.Errorf("%w (pass --no-rollout to write no rollout history)", err)
	}
	reg.SetAllPlanned()
	evs, err := registry.PlanRollout(reg, registry.RolloutOptions{Now: now, Seed: g.seed, Facts: facts})
	return evs, now, err
}

// writeRollout writes the history atomically, readable by all (it holds
// no secret).
func writeRollout(path string, evs []lifecycle.Event) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", filepath.Dir(path), err)
	}
	var b bytes.Buffer
	if err := lifecycle.WriteImport(&b, evs); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("cannot write the rollout history: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write the rollout history: %w", err)
	}
	return nil
}

// generate writes the credentials file, then the registry: a registry is
// never left without the plaintext of its random secrets.
func (g *generateFlags) generate(stdout io.Writer) (int, error) {
	opts := registry.GenerateOptions{Sites: g.sites, Coworking: g.coworking, Seed: g.seed, ReproducibleSecrets: g.reproducible}
	if g.reproducible {
		fmt.Fprintf(stdout, "WARNING: --%s: every device secret follows from seed %d and the source code; this fleet is for tests only\n",
			insecureReproducibleSecretsFlag, g.seed)
	}
	if g.comuni != "" {
		comuni, err := registry.LoadComuni(g.comuni)
		if err != nil {
			return 0, fmt.Errorf("%w (pass --comuni '' for synthetic ids)", err)
		}
		centroids := filepath.Join(filepath.Dir(g.comuni), "comuni_centroidi_openpolis_2023.csv")
		if ll, err := registry.LoadCentroids(centroids); err == nil {
			registry.JoinCentroids(comuni, ll)
		}
		opts.Comuni = comuni
	}
	reg, creds, err := registry.Generate(opts)
	if err != nil {
		return 0, err
	}
	var history []lifecycle.Event
	var now time.Time
	if _, err := os.Stat(g.facts); err != nil && g.facts == defaultFacts && g.rolloutPath() != "" {
		fmt.Fprintf(stdout, "%s not found: no rollout history (give --facts, or --no-rollout to say so)\n", g.facts)
		g.noRollout = true
	}
	if g.rolloutPath() != "" {
		if history, now, err = g.planRollout(reg); err != nil {
			return 0, err
		}
	}
	if err := os.MkdirAll(filepath.Dir(g.creds), 0o755); err != nil {
		return 0, fmt.Errorf("cannot create %s: %w", filepath.Dir(g.creds), err)
	}
	f, err := os.OpenFile(g.creds, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("cannot write credentials: %w", err)
	}
	if err := registry.WriteCredentialsCSV(f, creds); err != nil {
		f.Close()
		return 0, err
	}
	if err := f.Close(); err != nil {
		return 0, fmt.Errorf("cannot write credentials: %w", err)
	}
	// The registry last: its presence says the fleet is complete.
	if path := g.rolloutPath(); path != "" {
		if err := writeRollout(path, history); err != nil {
			return 0, err
		}
		from := now
		if len(history) > 0 {
			from = history[0].At
		}
		fmt.Fprintf(stdout, "wrote %s: the rollout history, %d lifecycle events from %s to %s (the registry records every asset as planned)\n",
			path, len(history), from.Format(time.DateOnly), now.Format(time.RFC3339))
	}
	if err := reg.Save(g.out); err != nil {
		return 0, err
	}
	return len(creds), nil
}

// registryHash reads a secret from stdin and prints its hash for a service
// account's secret_hash.
func registryHash(in io.Reader, stdout io.Writer) error {
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("cannot read secret from stdin: %w", err)
	}
	secret := strings.TrimRight(line, "\r\n")
	if len(secret) < 12 {
		return errors.New("secret too short: use at least 12 characters")
	}
	// Service-account secrets may be chosen by people: bcrypt, not the fast
	// hash used for random device secrets.
	h, err := bcrypt.GenerateFromPassword([]byte(secret), bcrypt.DefaultCost)
	if err != nil {
		return fmt.Errorf("cannot hash secret: %w", err)
	}
	fmt.Fprintln(stdout, string(h))
	return nil
}
