package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/api"
	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/rules/sink"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
)

// Check loads and validates every file and setting of cfg as Start would,
// without listening or connecting, and writes to w what Start would run.
// Every problem found is reported, not only the first.
func Check(cfg Config, w io.Writer) error {
	var errs []error
	bad := func(err error) { errs = append(errs, err) }
	for _, a := range []struct{ flag, addr string }{
		{"mqtt-addr", cfg.MQTTAddr}, {"mqtt-ws-addr", cfg.MQTTWSAddr}, {"mqtt-tls-addr", cfg.MQTTTLSAddr},
		{"http-addr", cfg.HTTPAddr}, {"clickhouse", cfg.ClickHouseAddr},
	} {
		if a.addr == "" && a.flag != "mqtt-addr" && a.flag != "http-addr" && a.flag != "clickhouse" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.addr); err != nil {
			bad(fmt.Errorf("--%s %q: %w", a.flag, a.addr, err))
		}
	}
	if len(cfg.KafkaBrokers) == 0 {
		if _, _, err := net.SplitHostPort(cfg.KafkaAddr); err != nil {
			bad(fmt.Errorf("--kafka-addr %q: %w", cfg.KafkaAddr, err))
		}
		if cfg.KafkaPartitions < 1 {
			bad(fmt.Errorf("--kafka-partitions %d: must be at least 1", cfg.KafkaPartitions))
		}
		if cfg.Kafka.Enabled() {
			bad(errKafkaConnEmbedded)
		}
	}
	kconn, err := cfg.Kafka.Load() // reads the CA and client certificate
	if err != nil {
		bad(err)
	}
	if cfg.KafkaFetchWait < 0 || cfg.KafkaFetchWait > 30*time.Second {
		bad(fmt.Errorf("--kafka-fetch-wait %s: want 0 to 30s", cfg.KafkaFetchWait))
	}
	if cfg.KafkaSessionTimeout < 0 {
		bad(fmt.Errorf("--kafka-session-timeout %s: must not be negative (0: franz-go's default, 45s)", cfg.KafkaSessionTimeout))
	}
	if cfg.ClickHouseCluster != "" {
		if _, err := schema.ClusterStatements(cfg.ClickHouseCluster, cfg.Database, schema.Options{}); err != nil {
			bad(fmt.Errorf("--clickhouse-cluster: %w", err))
		}
	}
	chConn := cfg.ClickHouse
	chConn.Addr = cfg.ClickHouseAddr
	if _, err := chConn.Options(); err != nil { // reads the CA
		bad(err)
	}
	if cfg.HTTPTLSCert != "" || cfg.HTTPTLSKey != "" {
		if _, err := tls.LoadX509KeyPair(cfg.HTTPTLSCert, cfg.HTTPTLSKey); err != nil {
			bad(fmt.Errorf("--http-tls-cert/--http-tls-key: %w", err))
		}
	}
	advertised := ""
	if _, _, err := net.SplitHostPort(cfg.HTTPAddr); err == nil {
		if advertised, err = advertisedURL(cfg, cfg.HTTPAddr); err != nil {
			bad(err)
		}
	}
	if err := schema.ValidDatabase(cfg.Database); err != nil {
		bad(fmt.Errorf("--database: %w", err))
	}
	if cfg.WriterMaxRows < 1 || cfg.WriterMaxWait <= 0 {
		bad(fmt.Errorf("--writer-max-rows %d and --writer-max-wait %s must be positive", cfg.WriterMaxRows, cfg.WriterMaxWait))
	}
	reg, err := registry.Load(cfg.RegistryPath)
	if err != nil {
		bad(fmt.Errorf("--registry: %w", err))
	}
	var accounts []broker.Account
	if cfg.AccountsPath != "" {
		if accounts, err = broker.LoadAccounts(cfg.AccountsPath); err != nil {
			bad(fmt.Errorf("--accounts: %w", err))
		}
	}
	var tokens []api.Token
	if cfg.TokensPath != "" {
		if tokens, err = api.LoadTokens(cfg.TokensPath); err != nil {
			bad(fmt.Errorf("--tokens: %w", err))
		}
	}
	if cfg.MQTTTLSAddr != "" {
		if _, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey); err != nil {
			bad(fmt.Errorf("--tls-cert/--tls-key: %w", err))
		}
	}
	nrules := 0
	if cfg.RulesDir != "" && reg != nil {
		svc, err := rules.New(rules.Options{Dir: cfg.RulesDir, Registry: reg, Producer: noProducer{}, Engine: cfg.AlertOptions})
		if err != nil {
			bad(fmt.Errorf("--rules: %w", err))
		} else {
			nrules = len(svc.Evaluator().Rules())
		}
	}
	nms := 0
	if cfg.MilestonesPath != "" {
		ms, err := milestone.LoadFile(cfg.MilestonesPath)
		if err != nil {
			bad(fmt.Errorf("--milestones: %w", err))
		}
		nms = len(ms)
	}
	if cfg.AlertWebhook != "" && !strings.HasPrefix(cfg.AlertWebhook, "http://") && !strings.HasPrefix(cfg.AlertWebhook, "https://") {
		bad(fmt.Errorf("--alert-webhook %q: not an http(s) URL", cfg.AlertWebhook))
	}
	if cfg.AlertMQTT != "" && !strings.Contains(cfg.AlertMQTT, "://") {
		bad(fmt.Errorf("--alert-mqtt %q: not a URL such as tcp://host:1883", cfg.AlertMQTT))
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}

	ns, na := reg.Len()
	f := func(format string, a ...any) { fmt.Fprintf(w, format+"\n", a...) }
	f("configuration valid; polis serve would start, in this order:")
	if len(cfg.KafkaBrokers) == 0 {
		f("  embedded kafka         %s, %d partitions, data in %s/kafka", cfg.KafkaAddr, cfg.KafkaPartitions, cfg.DataDir)
	} else {
		f("  kafka                  %s, %s", strings.Join(cfg.KafkaBrokers, ","), kconn)
	}
	f("  clickhouse             %s, database %s, migrate %t%s", chConn, cfg.Database, cfg.Migrate, optional(", cluster ", cfg.ClickHouseCluster))
	f("  storage writer         batches of up to %d rows, %s; rollups every %s", cfg.WriterMaxRows, cfg.WriterMaxWait, cfg.WriterRollupEvery)
	f("  kafka producer         linger %s; consumer groups' session timeout %s; fetches wait up to %s for 1 MiB", cfg.ProducerLinger, sessionTimeout(cfg.KafkaSessionTimeout), cfg.KafkaFetchWait)
	f("  lifecycle follower     polis.lifecycle.v1, folded into the lifecycle tracker")
	f("  lifecycle writer       polis.lifecycle.v1 into ClickHouse's lifecycle_events")
	if cfg.RulesDir != "" {
		f("  rules                  %d rules from %s (watched) and the API", nrules, cfg.RulesDir)
	}
	f("  twin                   %d sites, %d assets from %s; snapshots every %s", ns, na, cfg.RegistryPath, cfg.TwinSnapshotEvery)
	f("  lifecycle evidence")
	f("  registry follower")
	f("  ingest producer        records fail after %s undelivered, the broker's ingest timeout", ingestTimeout)
	f("  mqtt broker            %s%s%s, %d service accounts", cfg.MQTTAddr, optional(" ws ", cfg.MQTTWSAddr), optional(" tls ", cfg.MQTTTLSAddr), len(accounts))
	f("  desired-state follower")
	if cfg.AlertWebhook != "" {
		f("  alert webhook          %s", sink.RedactURL(cfg.AlertWebhook))
	}
	if cfg.AlertMQTT != "" {
		f("  alert mqtt             %s", sink.RedactURL(cfg.AlertMQTT))
	}
	scheme := "http"
	if cfg.HTTPTLSCert != "" {
		scheme = "https"
	}
	adv := ""
	if advertised != scheme+"://"+cfg.HTTPAddr {
		adv = ", advertised as " + advertised
	}
	f("  http api               %s://%s%s, %d tokens%s", scheme, cfg.HTTPAddr, adv, len(tokens), optional(", milestones ", fmt.Sprint(nmsOrEmpty(nms))))
	hl := cfg.HTTPLimits
	f("  http limits            read %v (headers %v), write %v, idle %v, bulk %v; bodies %d B, imports %d B; streams %d (%d per client); %d failed tokens/min per client; %d trusted proxies",
		hl.ReadTimeout, hl.ReadHeaderTimeout, hl.WriteTimeout, hl.IdleTimeout, hl.BulkTimeout, hl.MaxBodyBytes, hl.MaxImportBytes,
		hl.MaxStreams, hl.MaxStreamsPerClient, hl.AuthFailuresPerMinute, len(hl.TrustedProxies))
	return nil
}

func optional(label, v string) string {
	if v == "" {
		return ""
	}
	return label + v
}

func nmsOrEmpty(n int) string {
	if n == 0 {
		return ""
	}
	return fmt.Sprint(n)
}

// noProducer lets Check compile the rules without Kafka.
type noProducer struct{}

func (noProducer) Produce(context.Context, *kgo.Record, func(*kgo.Record, error)) {}

// sessionTimeout says what a KafkaSessionTimeout means.
func sessionTimeout(d time.Duration) string {
	if d == 0 {
		return "45s (franz-go's default)"
	}
	return d.String()
}
