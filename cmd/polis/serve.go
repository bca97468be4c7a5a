package main

import (
	"context"
	"flag"
	"fmt"
	"github.com/polis-platform/polis/portal"
	"io"
	"os"
	"strings"
	"time"

	"github.com/polis-platform/polis/api"
	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/rules/sink"
	"github.com/polis-platform/polis/storage"
)

// serveFlags binds the flags of `polis serve` (also used by `polis dev`).
func serveFlags(fs *flag.FlagSet, c *app.Config, brokers *string, logLevel *string) {
	fs.StringVar(&c.DataDir, "data-dir", c.DataDir, "directory for local state (the embedded Kafka log goes to DATA-DIR/kafka)")
	fs.StringVar(&c.MQTTAddr, "mqtt-addr", c.MQTTAddr, "MQTT TCP listen address")
	fs.StringVar(&c.MQTTWSAddr, "mqtt-ws-addr", c.MQTTWSAddr, "MQTT over WebSocket listen address (empty: off)")
	fs.StringVar(&c.MQTTTLSAddr, "mqtt-tls-addr", c.MQTTTLSAddr, "MQTT over TLS listen address (empty: off; needs --tls-cert and --tls-key)")
	fs.StringVar(&c.TLSCert, "tls-cert", c.TLSCert, "PEM certificate for the MQTT TLS listener")
	fs.StringVar(&c.TLSKey, "tls-key", c.TLSKey, "PEM key for the MQTT TLS listener")
	fs.StringVar(&c.HTTPAddr, "http-addr", c.HTTPAddr, "HTTP API listen address")
	httpLimitFlags(fs, &c.HTTPLimits)
	fs.StringVar(&c.HTTPAdvertise, "http-advertise", c.HTTPAdvertise, "address other instances and clients reach this instance's API at, host:port or a URL (https://polis-1.example:8443): redirects to a site's owner name it; required when --http-addr listens on every interface (0.0.0.0, [::])")
	fs.StringVar(&c.HTTPTLSCert, "http-tls-cert", c.HTTPTLSCert, "PEM certificate: serve the HTTP API over HTTPS (with --http-tls-key)")
	fs.StringVar(&c.HTTPTLSKey, "http-tls-key", c.HTTPTLSKey, "PEM key of --http-tls-cert")
	fs.StringVar(brokers, "kafka-brokers", "", "comma-separated Kafka or Redpanda seed brokers (empty: run the embedded single-machine cluster)")
	kafkaConnFlags(fs, &c.Kafka)
	fs.StringVar(&c.KafkaAddr, "kafka-addr", c.KafkaAddr, "listen address of the embedded Kafka cluster")
	fs.IntVar(&c.KafkaPartitions, "kafka-partitions", c.KafkaPartitions, "partitions per topic of the embedded cluster")
	fs.DurationVar(&c.KafkaRetention, "kafka-retention", c.KafkaRetention, "how long the embedded cluster keeps the stream topics' records (their retention.ms; compacted and kept-forever topics are never trimmed)")
	fs.Int64Var(&c.KafkaRetentionBytes, "kafka-retention-bytes", c.KafkaRetentionBytes, "bytes kept per partition of a stream topic by the embedded cluster (retention.bytes; 0: unbounded)")
	fs.DurationVar(&c.ProducerLinger, "kafka-linger", c.ProducerLinger, "how long the producer waits to fill a batch")
	fs.DurationVar(&c.KafkaFetchWait, "kafka-fetch-wait", c.KafkaFetchWait, "let every consumer's fetch wait up to this long for a megabyte of records (fewer fetches at low rates, up to this much more latency to ClickHouse and the twin; 0: answer at the first record)")
	fs.DurationVar(&c.KafkaSessionTimeout, "kafka-session-timeout", c.KafkaSessionTimeout, "how long a consumer group member (storage writer, twin, lifecycle writer, alert sinks) may go without a heartbeat before the other instances take its partitions over; heartbeats every third of it, at most 3s (0: franz-go's default, 45s)")
	clickhouseFlags(fs, &c.ClickHouseAddr, &c.ClickHouse, &c.ClickHouseCluster, &c.Database)
	fs.BoolVar(&c.Migrate, "migrate", c.Migrate, "apply schema migrations at start")
	fs.IntVar(&c.WriterMaxRows, "writer-max-rows", c.WriterMaxRows, "rows per ClickHouse insert batch, at most")
	fs.DurationVar(&c.WriterMaxWait, "writer-max-wait", c.WriterMaxWait, "longest a row waits before its batch is inserted")
	fs.DurationVar(&c.WriterRollupEvery, "writer-rollup-every", c.WriterRollupEvery, "how often the rollup rows are written and Kafka offsets committed (raw rows do not wait for it)")
	fs.StringVar(&c.RegistryPath, "registry", c.RegistryPath, "registry file of sites, assets and hashed device secrets")
	fs.StringVar(&c.AccountsPath, "accounts", c.AccountsPath, "YAML file of MQTT service accounts (empty: none)")
	fs.StringVar(&c.TokensPath, "tokens", c.TokensPath, "YAML file of API tokens with roles (empty: the API is read-only)")
	fs.StringVar(&c.RulesDir, "rules", c.RulesDir, "directory of alert rule files (*.yaml), reloaded when a file changes; empty: no rules")
	fs.StringVar(&c.MilestonesPath, "milestones", c.MilestonesPath, "programme milestones file (YAML) served at /api/v1/milestones; empty: not served")
	fs.StringVar(&c.FactsPath, "facts", c.FactsPath, "public facts table (CSV: the targets' sources, published progress, funding) the portal shows beside the twin; empty: none")
	fs.StringVar(&c.PortalURL, "portal-url", c.PortalURL, "public address of the portal (https://host), for canonical links, the open-data catalogue and the feed; empty: each request's host")
	fs.BoolVar(&c.NoPortal, "no-portal", c.NoPortal, "serve no public portal at / (the API alone)")
	fs.StringVar(&c.PortalContact, "portal-contact", c.PortalContact, "e-mail address the portal's feedback and accessibility pages give (default "+portal.DefaultContact+", a placeholder)")
	fs.StringVar(&c.AlertWebhook, "alert-webhook", c.AlertWebhook, "URL that receives every delivered alert change as JSON (empty: none)")
	fs.StringVar(&c.AlertMQTT, "alert-mqtt", c.AlertMQTT, "MQTT broker URL (tcp://host:port) that gets every delivered alert change (empty: none)")
	fs.StringVar(&c.AlertMQTTUsername, "alert-mqtt-username", c.AlertMQTTUsername, "username of the alert MQTT sink")
	fs.StringVar(&c.AlertMQTTPassword, "alert-mqtt-password", c.AlertMQTTPassword, "password of the alert MQTT sink (prefer POLIS_ALERT_MQTT_PASSWORD to the command line)")
	fs.StringVar(&c.AlertMQTTTopic, "alert-mqtt-topic", c.AlertMQTTTopic, "topic prefix of the alert MQTT sink (default "+sink.DefaultTopicPrefix+"): PREFIX/<site>/<asset>/<rule>")
	fs.StringVar(&c.AlertWebhookKey, "alert-webhook-key", c.AlertWebhookKey, "HMAC-SHA256 key; the body's signature is sent in X-Polis-Signature (prefer POLIS_ALERT_WEBHOOK_KEY to the command line)")
	fs.DurationVar(&c.AlertOptions.FlapWindow, "alert-flap-window", c.AlertOptions.FlapWindow, "window in which an alert's state changes are counted for flapping (0: no damping)")
	fs.IntVar(&c.AlertOptions.FlapThreshold, "alert-flap-threshold", c.AlertOptions.FlapThreshold, "state changes within the flap window that mark an alert flapping")
	fs.DurationVar(&c.AlertOptions.ReminderEvery, "alert-reminder", c.AlertOptions.ReminderEvery, "resend an unacknowledged open alert this often (0: never)")
	fs.DurationVar(&c.AlertOptions.EscalateAfter, "alert-escalate", c.AlertOptions.EscalateAfter, "raise an unacknowledged alert's escalation level each time this passes (0: never)")
	fs.DurationVar(&c.AlertOptions.MaxLateness, "alert-max-lateness", c.AlertOptions.MaxLateness, "a point older than its asset's newest by more than this is not evaluated")
	fs.DurationVar(&c.AlertOptions.MaxAge, "alert-max-age", c.AlertOptions.MaxAge, "a point older than the engine's clock by more than this is not evaluated (replays after a restart fire nothing stale; 0: no limit)")
	fs.DurationVar(&c.AlertOptions.InhibitGrace, "alert-inhibit-grace", c.AlertOptions.InhibitGrace, "a site's alerts stay held this long after its site-down alert resolves")
	fs.DurationVar(&c.TwinSnapshotEvery, "twin-snapshot-every", c.TwinSnapshotEvery, "how often the twin snapshots its partitions to ClickHouse")
	fs.StringVar(logLevel, "log-level", "info", "log level: debug, info, warn, error")
}

// clickhouseFlags binds how to reach ClickHouse and the database (`polis
// serve`, `polis dev` and `polis migrate`).
func clickhouseFlags(fs *flag.FlagSet, addr *string, co *storage.ConnOptions, cluster, db *string) {
	fs.StringVar(addr, "clickhouse", *addr, "ClickHouse native protocol address (the secure native port, 9440, with --clickhouse-tls)")
	fs.StringVar(&co.User, "clickhouse-username", co.User, "ClickHouse user (empty: default)")
	fs.StringVar(&co.Password, "clickhouse-password", co.Password, "password of --clickhouse-username (prefer POLIS_CLICKHOUSE_PASSWORD to the command line)")
	fs.BoolVar(&co.TLS, "clickhouse-tls", co.TLS, "connect to ClickHouse over TLS")
	fs.StringVar(&co.TLSCAFile, "clickhouse-tls-ca", co.TLSCAFile, "PEM CA bundle ClickHouse's certificate is checked against (empty: the system's; implies --clickhouse-tls)")
	fs.StringVar(&co.TLSServerName, "clickhouse-tls-server-name", co.TLSServerName, "name ClickHouse's certificate is checked against (empty: the host of --clickhouse; implies --clickhouse-tls)")
	fs.StringVar(cluster, "clickhouse-cluster", *cluster, "ClickHouse cluster (remote_servers) the schema is on: the migrations make each table replicated on every node (TABLE_local ON CLUSTER) under a Distributed TABLE sharded by site (deploy/README.md); empty: one server")
	fs.StringVar(db, "database", *db, "ClickHouse database")
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func runServe(ctx context.Context, args []string, stdout io.Writer) error {
	cfg := app.Defaults()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	var brokers, level string
	serveFlags(fs, &cfg, &brokers, &level)
	check := fs.Bool("check", false, "load and validate every file and flag, print what would run, and exit without listening")
	debugAddr := fs.String("debug-addr", "", "serve Go's profiler (/debug/pprof/) on this address, e.g. 127.0.0.1:6060 (empty: off; anyone who reaches it reads the process's internals)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *check {
		cfg.KafkaBrokers = splitList(brokers)
		return app.Check(cfg, stdout)
	}
	log, err := newLogger(os.Stderr, level)
	if err != nil {
		return err
	}
	_, stopDebug, err := startDebug(*debugAddr, log)
	if err != nil {
		return err
	}
	defer stopDebug()
	cfg.Logger, cfg.KafkaBrokers = log, splitList(brokers)
	p, err := app.Start(ctx, cfg)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "polis serving: MQTT %s, HTTP %s (metrics /metrics, readiness /readyz), Kafka %s\n",
		p.Broker.Addr(), p.Advertised, strings.Join(p.Brokers, ","))
	// Until a signal (nil) or the first component to fail (its error, so
	// the process exits non-zero rather than serving without it).
	return p.Wait(ctx, 60*time.Second)
}

// httpLimitFlags binds the HTTP API's limits (api.Limits; README "API").
// A negative duration or count turns its limit off.
func httpLimitFlags(fs *flag.FlagSet, l *api.Limits) {
	fs.DurationVar(&l.ReadHeaderTimeout, "http-read-header-timeout", l.ReadHeaderTimeout, "longest a client may take to send a request's headers (negative: no limit)")
	fs.DurationVar(&l.ReadTimeout, "http-read-timeout", l.ReadTimeout, "longest a client may take to send a whole request, body included, before a 408 (negative: no limit)")
	fs.DurationVar(&l.WriteTimeout, "http-write-timeout", l.WriteTimeout, "longest an answer may take, from the end of the request's headers; not the event stream (negative: no limit)")
	fs.DurationVar(&l.IdleTimeout, "http-idle-timeout", l.IdleTimeout, "longest a kept-alive connection waits for its next request (negative: no limit)")
	fs.DurationVar(&l.BulkTimeout, "http-bulk-timeout", l.BulkTimeout, "read and write timeout of the registry import and export and of rule backtests, once the token is checked (negative: no limit)")
	fs.DurationVar(&l.StreamWriteTimeout, "http-stream-write-timeout", l.StreamWriteTimeout, "an event-stream client that takes no write within this is disconnected (negative: never)")
	fs.Int64Var(&l.MaxBodyBytes, "http-max-body", l.MaxBodyBytes, "bytes of a JSON or YAML request body, at most, before a 413 (negative: no limit)")
	fs.Int64Var(&l.MaxImportBytes, "http-max-import", l.MaxImportBytes, "bytes of a registry import's CSV, at most, before a 413 (negative: no limit)")
	fs.IntVar(&l.MaxStreams, "http-max-streams", l.MaxStreams, "event streams open at once on this instance, at most, before a 429 (negative: no limit)")
	fs.IntVar(&l.MaxStreamsPerClient, "http-max-streams-per-client", l.MaxStreamsPerClient, "event streams open at once from one client address, at most, before a 429 (negative: no limit)")
	fs.IntVar(&l.StreamBuffer, "http-stream-buffer", l.StreamBuffer, "updates an event-stream client may lag behind before it loses some")
	fs.IntVar(&l.AuthFailuresPerMinute, "http-auth-failures", l.AuthFailuresPerMinute, "requests with a token that is not valid per client address and minute; beyond, 429 before any hash is checked (negative: no limit)")
	fs.Func("http-trusted-proxies", "comma-separated CIDRs or addresses of the reverse proxies whose X-Forwarded-For names the client (empty: the header is ignored)", func(v string) error {
		ps, err := api.ParseTrustedProxies(v)
		if err != nil {
			return err
		}
		l.TrustedProxies = ps
		return nil
	})
}
