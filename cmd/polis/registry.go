package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

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
