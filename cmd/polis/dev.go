package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/internal/chserver"
	"github.com/polis-platform/polis/loadtest"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// runDev is what `make run` runs: everything on one machine, on the default
// addresses, with the state under var/.
func runDev(ctx context.Context, args []string, stdout io.Writer) (err error) {
	cfg := app.Defaults()
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	var brokers, level string
	serveFlags(fs, &cfg, &brokers, &level)
	var g generateFlags
	g.bind(fs)
	var sim simulateFlags
	sim.bind(fs, false)
	chHTTP := fs.Int("clickhouse-http-port", chserver.DefaultHTTPPort, "HTTP port of the ClickHouse started under DATA-DIR/clickhouse")
	noSim := fs.Bool("no-simulator", false, "do not run the simulated fleet")
	if err := parse(fs, args); err != nil {
		return err
	}
	log, err := newLogger(os.Stderr, level)
	if err != nil {
		return err
	}
	cfg.Logger, cfg.KafkaBrokers = log, splitList(brokers)
	if cfg.RulesDir == "" {
		cfg.RulesDir = "rules/pack" // the default rule pack
	}
	if cfg.MilestonesPath == "" {
		cfg.MilestonesPath = "rules/milestones/polis.yaml"
	}
	// One facts table shapes the demo's rollout and is shown by the portal.
	if cfg.FactsPath != "" {
		g.facts = cfg.FactsPath
	} else if _, err := os.Stat(g.facts); err == nil {
		cfg.FactsPath = g.facts
	}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("cannot create %s: %w", cfg.DataDir, err)
	}

	// ClickHouse: reuse one answering on the address (a previous run), else start ours.
	var ch *chserver.Server
	analystLine := "(the read-only polis_analyst user exists only in a ClickHouse polis dev starts)"
	if clickhouseAnswers(ctx, cfg.ClickHouseAddr) {
		fmt.Fprintf(stdout, "a ClickHouse already answers on %s: using it (data is wherever that server keeps it, not %s)\n",
			cfg.ClickHouseAddr, filepath.Join(cfg.DataDir, "clickhouse"))
	} else {
		_, port, err := net.SplitHostPort(cfg.ClickHouseAddr)
		if err != nil {
			return fmt.Errorf("cannot parse --clickhouse %q: %w", cfg.ClickHouseAddr, err)
		}
		var tcp int
		fmt.Sscan(port, &tcp)
		// The read-only analyst: hash in users.xml, plaintext once in
		// DATA-DIR/analyst-password (mode 0600).
		apath := filepath.Join(cfg.DataDir, "analyst-password")
		_, asum, err := chserver.AnalystPassword(apath)
		if err != nil {
			return err
		}
		analystLine = fmt.Sprintf(`clickhouse-client --port %d --user %s --password "$(cat %s)" --database %s`,
			tcp, chserver.AnalystUser, apath, cfg.Database)
		fmt.Fprintf(stdout, "starting ClickHouse (data in %s)...\n", filepath.Join(cfg.DataDir, "clickhouse"))
		ch, err = chserver.Start(ctx, chserver.Options{Dir: filepath.Join(cfg.DataDir, "clickhouse"), TCPPort: tcp, HTTPPort: *chHTTP, Logger: log,
			Analyst: &chserver.Analyst{PasswordSHA256: asum, Database: cfg.Database}})
		if err != nil {
			return err
		}
		defer func() {
			if err := ch.Stop(); err != nil {
				log.Warn("cannot stop ClickHouse", "err", err)
			}
		}()
	}

	if g.out == registry.DefaultPath {
		g.out = filepath.Join(cfg.DataDir, "registry.json")
		g.creds = filepath.Join(cfg.DataDir, "credentials.csv")
	}
	cfg.RegistryPath = g.out
	if err := devFleet(stdout, &g, cfg, !*noSim); err != nil {
		return err
	}

	token, err := demoToken(&cfg)
	if err != nil {
		return err
	}
	alertPass, err := demoAlertAccount(&cfg)
	if err != nil {
		return err
	}
	p, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	// A failed component stops the simulator too, and dev exits with its
	// error rather than simulating against half a platform.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		select {
		case <-p.Failed():
			stop()
		case <-ctx.Done():
		}
	}()
	defer func() {
		stop()
		if werr := p.Wait(ctx, 60*time.Second); werr != nil && err == nil {
			err = werr
		}
	}()
	// The demo's history, through the lifecycle log like an operator's
	// import, before the simulator: on every start, since what the log
	// already holds is skipped.
	importRollout(ctx, stdout, p.Live, g.rolloutPath(), log)
	chHTTPAddr := fmt.Sprintf("127.0.0.1:%d", *chHTTP)
	if ch != nil {
		chHTTPAddr = ch.HTTPAddr()
	}
	printBanner(stdout, p, cfg, chHTTPAddr, g.creds, token, alertPass)
	fmt.Fprintf(stdout, "Analysts (read-only, limits in docs/schema.md):\n  %s\n\n", analystLine)

	if *noSim {
		<-ctx.Done()
		return nil
	}
	sim.creds = g.creds
	sim.broker = "tcp://" + p.Broker.Addr()
	o, err := sim.options(stdout)
	if err != nil {
		return err
	}
	o.Logger = log
	// The simulator follows the tracker: only assets on site publish.
	o.Registry = p.Registry
	o.Lifecycle = func(site, asset string) lifecycle.State {
		st, _ := p.Live.Lifecycle(site, asset)
		return st
	}
	st, err := loadtest.Run(ctx, o)
	fmt.Fprintf(stdout, "simulator stopped: %d messages, %d points, %d errors\n", st.Sent, st.Points, st.Errors)
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	<-ctx.Done()
	return nil
}

// devFleet generates the demo fleet once: its secrets are random, so the
// registry and the credentials file are kept from run to run and made
// afresh only together. It refuses the mixes that would leave devices
// unable to log in: a registry without its credentials file (when the
// simulator needs them), or a new fleet next to the embedded Kafka log of
// an old one, whose registry topic the platform would follow instead.
func devFleet(stdout io.Writer, g *generateFlags, cfg app.Config, needCreds bool) error {
	fresh := "rm -rf " + cfg.DataDir + " to start afresh"
	if _, err := os.Stat(g.out); err == nil {
		f, err := os.Open(g.creds)
		if errors.Is(err, os.ErrNotExist) && needCreds {
			return fmt.Errorf("%s is missing: the device secrets of %s are random and kept nowhere else, so the simulator cannot log in; %s (or run with --no-simulator)",
				g.creds, g.out, fresh)
		}
		if err == nil {
			// A fleet from before secrets were random has passwords
			// anyone with the source can compute: say so.
			creds, rerr := registry.ReadCredentialsCSV(f)
			f.Close()
			if rerr == nil && len(creds) > 0 && !g.reproducible && creds[0].Password == registry.ReproducibleSecret(g.seed, creds[0].Username) {
				fmt.Fprintf(stdout, "WARNING: the device secrets in %s follow from seed %d and the source code (a fleet made before secrets were random); %s to get random ones\n",
					g.creds, g.seed, fresh)
			}
		}
		if path := g.rolloutPath(); path != "" {
			if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(stdout, "%s has no rollout history beside it (a fleet made before them): the demo runs without one; %s for a fleet with a history\n",
					g.out, fresh)
			}
		}
		return nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cannot read %s: %w", g.out, err)
	}
	if len(cfg.KafkaBrokers) == 0 {
		kdir := filepath.Join(cfg.DataDir, "kafka")
		if ents, err := os.ReadDir(kdir); err == nil && len(ents) > 0 {
			return fmt.Errorf("%s is missing but %s holds the log of an earlier fleet, whose registry topic the platform would follow: a new fleet's random secrets would not log in; %s",
				g.out, kdir, fresh)
		}
	}
	if _, err := os.Stat(g.comuni); err != nil && g.comuni != "" {
		fmt.Fprintf(stdout, "%s not found: the demo fleet gets synthetic comune codes\n", g.comuni)
		g.comuni = ""
	}

	n, err := g.generate(stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "generated the demo fleet: %d post offices, %d coworking spaces, %d devices (random secrets in %s, mode 0600)\n",
		g.sites, g.coworking, n, g.creds)
	return nil
}

// rolloutActor is who the demo's rollout history is recorded as imported by.
const rolloutActor = "polis-dev"

// importTimeout bounds the import of the rollout history.
const importTimeout = 5 * time.Minute

// lifecycleImporter is what importRollout needs of the twin.
type lifecycleImporter interface {
	ImportLifecycle(ctx context.Context, events []lifecycle.Event) (applied, skipped int, err error)
}

// importRollout imports the rollout history at path (if there is one)
// through the lifecycle log, as POST /api/v1/lifecycle/import does. The
// demo runs on without it if it cannot: what was written stays, and the
// next start writes the rest.
func importRollout(ctx context.Context, stdout io.Writer, lv lifecycleImporter, path string, log *slog.Logger) {
	if path == "" {
		return
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		fmt.Fprintf(stdout, "WARNING: cannot read the rollout history: %v\n", err)
		return
	}
	evs, _, err := lifecycle.DecodeImport(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stdout, "WARNING: cannot read the rollout history %s: %v\n", path, err)
		return
	}
	for i := range evs {
		evs[i].Actor = rolloutActor
	}
	ictx, cancel := context.WithTimeout(ctx, importTimeout)
	defer cancel()
	start := time.Now()
	applied, skipped, err := lv.ImportLifecycle(ictx, evs)
	var be *lifecycle.BatchError
	switch {
	case errors.As(err, &be):
		fmt.Fprintf(stdout, "WARNING: the rollout history %s does not apply to this fleet (%v); nothing of it was imported. "+
			"A registry from before rollout histories records its assets in other states: rm -rf the data directory for a fleet with a history\n", path, err)
	case err != nil:
		fmt.Fprintf(stdout, "WARNING: the rollout history was imported in part (%d events written): %v; the next start writes the rest\n", applied, err)
	case applied > 0:
		fmt.Fprintf(stdout, "imported the rollout history %s: %d lifecycle events, dated from %s, in %s\n",
			path, applied, evs[0].At.Format(time.DateOnly), time.Since(start).Round(time.Millisecond))
	default:
		log.Info("the rollout history is in the lifecycle log already", "path", path, "events", skipped)
	}
}

func clickhouseAnswers(ctx context.Context, addr string) bool {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: time.Second})
	if err != nil {
		return false
	}
	defer conn.Close()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return conn.Ping(pctx) == nil
}

// demoToken makes (once) an operator API token for the demo: its hash goes
// to DATA-DIR/tokens.yaml, the plaintext to DATA-DIR/api-token (mode 0600).
func demoToken(cfg *app.Config) (string, error) {
	if cfg.TokensPath != "" {
		return "", nil
	}
	cfg.TokensPath = filepath.Join(cfg.DataDir, "tokens.yaml")
	plain := filepath.Join(cfg.DataDir, "api-token")
	if b, err := os.ReadFile(plain); err == nil {
		if _, err := os.Stat(cfg.TokensPath); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	tok := credential.New() + credential.New()
	yaml := fmt.Sprintf("# Demo API token made by polis dev; the plaintext is in %s.\ntokens:\n  - name: demo-operator\n    role: operator\n    hash: %q\n",
		plain, credential.Hash(tok))
	if err := os.WriteFile(cfg.TokensPath, []byte(yaml), 0o600); err != nil {
		return "", fmt.Errorf("cannot write %s: %w", cfg.TokensPath, err)
	}
	if err := os.WriteFile(plain, []byte(tok+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("cannot write %s: %w", plain, err)
	}
	return tok, nil
}

// demoAlertAccount makes (once) the MQTT service account the demo's alert
// sink publishes with and operators subscribe with: its hash goes to
// DATA-DIR/accounts.yaml, the password to DATA-DIR/mqtt-alerts-password.
func demoAlertAccount(cfg *app.Config) (string, error) {
	if cfg.AccountsPath != "" || cfg.AlertMQTT != "" {
		return "", nil
	}
	cfg.AccountsPath = filepath.Join(cfg.DataDir, "accounts.yaml")
	plain := filepath.Join(cfg.DataDir, "mqtt-alerts-password")
	pass := ""
	if b, err := os.ReadFile(plain); err == nil {
		if _, err := os.Stat(cfg.AccountsPath); err == nil {
			pass = strings.TrimSpace(string(b))
		}
	}
	if pass == "" {
		pass = credential.New()
		yaml := fmt.Sprintf("# Made by polis dev; the password is in %s.\naccounts:\n  - username: alerts\n    secret_hash: %q\n    publish: [\"polis/alerts/v1/#\"]\n    subscribe: [\"polis/alerts/v1/#\"]\n",
			plain, credential.Hash(pass))
		if err := os.WriteFile(cfg.AccountsPath, []byte(yaml), 0o600); err != nil {
			return "", fmt.Errorf("cannot write %s: %w", cfg.AccountsPath, err)
		}
		if err := os.WriteFile(plain, []byte(pass+"\n"), 0o600); err != nil {
			return "", fmt.Errorf("cannot write %s: %w", plain, err)
		}
	}
	cfg.AlertMQTT, cfg.AlertMQTTUsername, cfg.AlertMQTTPassword = "tcp://"+cfg.MQTTAddr, "alerts", pass
	return pass, nil
}

func printBanner(w io.Writer, p *app.Platform, cfg app.Config, chHTTP, credsPath, token, alertPass string) {
	user, pass := "SITE/ASSET", "SECRET"
	if f, err := os.Open(credsPath); err == nil {
		if creds, err := registry.ReadCredentialsCSV(f); err == nil && len(creds) > 0 {
			user, pass = creds[0].Username, creds[0].Password
		}
		f.Close()
	}
	site, asset, _ := strings.Cut(user, "/")
	host, port, _ := net.SplitHostPort(p.Broker.Addr())
	fmt.Fprintf(w, `
Polis is running.
  Public portal    http://%s/    (open data: /dati/, feed: /feed.atom)
  MQTT broker      %s            (devices log in as SITE/ASSET; credentials in %s)
  HTTP API         http://%s     (/healthz /readyz /metrics)
  Kafka            %s
  ClickHouse       native %s, HTTP http://%s, database %s

Publish as a device:
  mosquitto_pub -h %s -p %s -u '%s' -P '%s' -q 1 \
    -t 'polis/v1/%s/%s/telemetry' -m '{"m":{"temp_c":21.5}}'
Query what arrived:
  clickhouse-client --port %s -q "SELECT site, asset, metric, ts, value FROM %s.telemetry ORDER BY received DESC LIMIT 10"
  curl -s 'http://%s/?query=SELECT+count()+FROM+%s.telemetry'
The digital twin (OpenAPI at http://%s/api/v1/openapi.json):
  curl -s 'http://%s/api/v1/sites/%s'
  curl -sN 'http://%s/api/v1/stream?site=%s'
  curl -s -X PATCH -H 'Authorization: Bearer %s' -H 'If-Match: "0"' \
    -d '{"screen_on": false}' 'http://%s/api/v1/sites/%s/assets/%s/desired'
Alerts, rules (%s, reloaded on save) and the programme's milestones:
  curl -s 'http://%s/api/v1/alerts?state=firing'
  curl -s 'http://%s/api/v1/rules'
  curl -s 'http://%s/api/v1/milestones'
Citizen services, from the live twin:
  curl -s 'http://%s/api/v1/services/cash_withdrawal/offices?near=41.9,12.5&radius_km=50'
  curl -s 'http://%s/api/v1/offices/%s/services'
  mosquitto_sub -h %s -p %s -u alerts -P '%s' -t 'polis/alerts/v1/#' -v

Ctrl-C stops everything; state stays in %s.
`, p.HTTP.Addr(), p.Broker.Addr(), credsPath, p.HTTP.Addr(), strings.Join(p.Brokers, ","), cfg.ClickHouseAddr, chHTTP, cfg.Database,
		host, port, user, pass, site, asset, portOf(cfg.ClickHouseAddr), cfg.Database, chHTTP, cfg.Database,
		p.HTTP.Addr(), p.HTTP.Addr(), site, p.HTTP.Addr(), site, token, p.HTTP.Addr(), site, asset,
		cfg.RulesDir, p.HTTP.Addr(), p.HTTP.Addr(), p.HTTP.Addr(), p.HTTP.Addr(), p.HTTP.Addr(), site, host, port, alertPass, cfg.DataDir)
}

func portOf(addr string) string {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return p
}
