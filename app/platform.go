// Package app assembles the components of `polis serve` in order and
// stops them in reverse. It is the only package that imports them all.
package app

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/api"
	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/ingest"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/rules/sink"
	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Config is everything `polis serve` needs.
type Config struct {
	DataDir string // var/: embedded Kafka log lives in DataDir/kafka

	MQTTAddr    string
	MQTTWSAddr  string
	MQTTTLSAddr string
	TLSCert     string
	TLSKey      string
	HTTPAddr    string
	// HTTPLimits are the HTTP API's limits (timeouts, body sizes, streams,
	// failed token checks, trusted proxies; README "API"); a zero field
	// takes its api.Default* value, a negative one turns it off.
	HTTPLimits api.Limits
	// HTTPAdvertise is where other instances and clients reach this
	// instance's API: host:port (the scheme follows HTTPTLSCert) or a URL
	// such as https://polis-1.example:8443. Redirects to a site's owner
	// name it. Empty: HTTPAddr as bound, which must then name a host (see
	// advertisedURL).
	HTTPAdvertise string
	// HTTPTLSCert and HTTPTLSKey (PEM files) serve the API over HTTPS.
	HTTPTLSCert string
	HTTPTLSKey  string

	KafkaBrokers []string // empty: start the embedded cluster
	// Kafka is how every Kafka client of every component connects to
	// KafkaBrokers (SASL/SCRAM, TLS); it needs KafkaBrokers.
	Kafka               kafka.ConnConfig
	KafkaAddr           string // embedded cluster's listen address
	KafkaPartitions     int
	KafkaRetention      time.Duration
	KafkaRetentionBytes int64
	ProducerLinger      time.Duration
	// KafkaSessionTimeout is the session timeout of every consumer group
	// member (storage writers, twin, lifecycle writer, alert sinks): how
	// long the others wait for a crashed or cut-off instance before they
	// take its partitions over. Zero: franz-go's default, 45 s.
	KafkaSessionTimeout time.Duration
	// KafkaFetchWait, if positive, lets every consumer's fetch wait this
	// long for a megabyte of records before answering (kafka.ClientOptions.
	// FetchWait): fewer fetch round trips at low rates, up to this much
	// more latency. Zero: answer as soon as any record is there.
	KafkaFetchWait time.Duration

	ClickHouseAddr string
	// ClickHouse is how the platform logs in to ClickHouse (user,
	// password, TLS); its Addr is ClickHouseAddr.
	ClickHouse storage.ConnOptions
	// ClickHouseCluster, if set, is the ClickHouse cluster (remote_servers)
	// the schema is on: the migrations apply the cluster DDL
	// (schema.ApplyCluster: replicated local tables under Distributed ones),
	// and a database that is not it is refused.
	ClickHouseCluster string
	Database          string
	Migrate           bool
	WriterMaxRows     int
	WriterMaxWait     time.Duration
	// WriterRollupEvery is how often the writer writes the rollup rows and
	// commits Kafka offsets (storage.WriterOptions.RollupEvery).
	WriterRollupEvery time.Duration

	RegistryPath string
	AccountsPath string
	TokensPath   string // API tokens (YAML); empty: every write is refused

	TwinSnapshotEvery time.Duration
	RulesDir          string // alert rules (*.yaml), watched; empty: no rules
	MilestonesPath    string // programme milestones (YAML); empty: no /api/v1/milestones
	// FactsPath is the public facts table (CSV: targets' sources, published
	// progress, funding) the portal shows beside the twin; empty: none.
	FactsPath string
	// PortalURL is the portal's public address (canonical links, the open
	// data catalogue and feed); empty: taken from each request.
	PortalURL string
	NoPortal  bool // true: no portal at / (the API's JSON 404 there)
	// PortalContact is the address the portal's feedback and accessibility
	// pages give; empty: portal.DefaultContact.
	PortalContact string
	// AlertOptions tune the alert lifecycle (flapping, reminders,
	// escalation, lateness); see rules/engine.Options.
	AlertOptions    engine.Options
	AlertWebhook    string // URL that gets every delivered alert change; empty: none
	AlertWebhookKey string // HMAC-SHA256 key signing the webhook body
	// AlertMQTT is the URL of an MQTT broker (tcp://host:port) that gets
	// every delivered alert change on AlertMQTTTopic/<site>/<asset>/<rule>;
	// empty: none. It may be this instance's own broker.
	AlertMQTT         string
	AlertMQTTUsername string
	AlertMQTTPassword string
	AlertMQTTTopic    string

	Logger *slog.Logger
}

// DefaultKafkaSessionTimeout is the consumer groups' session timeout: a
// dead instance's partitions move after about this long. franz-go's 45 s
// (Kafka's default since 3.0) left the fleet's sites without a twin, and
// their telemetry out of ClickHouse, for most of a minute; 10 s (Kafka's
// default before 3.0, above the brokers' 6 s minimum) still allows a
// member three missed heartbeats (every 3 s) before it is dropped.
const DefaultKafkaSessionTimeout = 10 * time.Second

// DefaultKafkaFetchWait: at the fleet's realistic rate, fetches that wait
// up to 200 ms for a megabyte took the platform from 0.52-0.55 to
// 0.43-0.45 cores and the Kafka process from 0.20 to 0.11 (full-fleet
// load test, docs/benchmarks.md), for ~100 ms more publish-to-queryable
// at the median; at high rates the megabyte comes first and nothing waits.
const DefaultKafkaFetchWait = 200 * time.Millisecond

// ingestTimeout bounds how long a device's publish waits for Kafka, in the
// broker (no PUBACK after it) and in the ingest producer (no delivery after
// it): one value, so that a publish the device was told failed is not
// stored behind its back.
const ingestTimeout = broker.DefaultIngestTimeout

// Defaults returns the configuration of docs/design.md's default addresses.
func Defaults() Config {
	return Config{
		DataDir:             "var",
		MQTTAddr:            broker.DefaultAddr,
		HTTPAddr:            api.DefaultAddr,
		HTTPLimits:          api.DefaultLimits(),
		KafkaAddr:           kafka.DefaultAddr,
		KafkaPartitions:     kafka.DefaultPartitions,
		KafkaRetention:      kafka.DefaultRetention,
		ProducerLinger:      0,
		KafkaSessionTimeout: DefaultKafkaSessionTimeout,
		KafkaFetchWait:      DefaultKafkaFetchWait,
		ClickHouseAddr:      storage.DefaultAddr,
		Database:            schema.DefaultDatabase,
		Migrate:             true,
		WriterMaxRows:       storage.DefaultMaxRows,
		WriterMaxWait:       storage.DefaultMaxWait,
		WriterRollupEvery:   storage.DefaultRollupEvery,
		RegistryPath:        registry.DefaultPath,

		TwinSnapshotEvery: twin.DefaultSnapshotEvery,
		AlertOptions: engine.Options{MaxLateness: 10 * time.Minute, MaxAge: 15 * time.Minute, FlapWindow: time.Hour, FlapThreshold: 6,
			ReminderEvery: 4 * time.Hour, EscalateAfter: time.Hour, InhibitGrace: 5 * time.Minute},
	}
}

// Platform is a running `polis serve`: its components run in a group
// (group.go) that starts them in order and stops them in reverse.
type Platform struct {
	cfg      Config
	log      *slog.Logger
	Registry *registry.Registry
	Broker   *broker.Broker
	HTTP     *api.Server
	Twin     *twin.Service
	Live     *twin.Live // the twin as the API sees it, with the lifecycle tracker
	Rules    *rules.Service
	Brokers  []string
	// Advertised is the URL this instance's API is reached at (redirects
	// to the site's owner name it; the twin's member id is it).
	Advertised string

	kafka    kafka.ClientOptions
	producer *kgo.Client
	// ingest is the producer of the devices' publishes alone (ingestOpts).
	ingest   *kgo.Client
	ch       driver.Conn
	services *services.Finder // the citizen-services finder (API and portal)
	metrics  prometheus.Registerer
	group    *group
}

// Start brings the platform up, each component once the one before it is
// ready: Kafka (embedded or not), ClickHouse and its schema, the storage
// writer, the producer, the rules, the twin and its lifecycle evidence, the
// registry follower, the MQTT broker, the desired-state follower, the alert
// sinks and the HTTP API. Wait or Shutdown stop them in reverse order.
func Start(ctx context.Context, cfg Config) (*Platform, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &Platform{cfg: cfg, log: cfg.Logger, group: newGroup(cfg.Logger)}
	if err := p.start(ctx); err != nil {
		_ = p.group.stop(context.Background())
		if p.HTTP != nil {
			_ = p.HTTP.Close() // bound but never served
		}
		return nil, err
	}
	return p, nil
}

func (p *Platform) start(ctx context.Context) (err error) {
	cfg := p.cfg
	began := time.Now()
	reg := prometheus.NewRegistry()
	p.metrics = reg
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if p.Registry, err = registry.Load(cfg.RegistryPath); err != nil {
		return fmt.Errorf("%w (make one with 'polis registry generate')", err)
	}
	ns, na := p.Registry.Len()
	p.log.Info("registry loaded", "path", cfg.RegistryPath, "sites", ns, "assets", na)

	// Settings that cannot work are refused before anything starts.
	if _, err := advertisedURL(cfg, cfg.HTTPAddr); err != nil {
		return err
	}
	p.Brokers = cfg.KafkaBrokers
	if cfg.Kafka.Enabled() && len(p.Brokers) == 0 {
		return errKafkaConnEmbedded
	}
	if p.kafka, err = kafkaClientOptions(cfg); err != nil {
		return err
	}
	if len(p.Brokers) == 0 {
		embedded, err := kafka.StartEmbedded(kafka.EmbeddedOptions{
			Addr: cfg.KafkaAddr, DataDir: filepath.Join(cfg.DataDir, "kafka"), Partitions: int32(cfg.KafkaPartitions),
			Retention: cfg.KafkaRetention, RetentionBytes: cfg.KafkaRetentionBytes, Logger: cfg.Logger,
		})
		if err != nil {
			return err
		}
		if err := p.group.start(ctx, "embedded kafka", closer(func() error { embedded.Close(); return nil })); err != nil {
			return err
		}
		p.Brokers = embedded.Addrs()
		p.log.Info("embedded Kafka started", "addr", p.Brokers, "data", filepath.Join(cfg.DataDir, "kafka"))
	} else {
		p.log.Info("connecting to Kafka", "brokers", p.Brokers, "conn", p.kafka)
		// An empty cluster gets every topic with its policy; an existing
		// one is checked.
		if _, err := kafka.Ensure(ctx, p.Brokers, kafka.EnsureOptions{Topics: kafka.TopicOptions{Retention: cfg.KafkaRetention,
			RetentionBytes: cfg.KafkaRetentionBytes}, Partitions: int32(cfg.KafkaPartitions), Replication: -1,
			Conn: p.kafka, Logger: cfg.Logger}); err != nil {
			return fmt.Errorf("%w (Kafka connection: %s)", err, p.kafka)
		}
	}

	flavor, err := p.startClickHouse(ctx)
	if err != nil {
		return err
	}
	writer, err := storage.NewWriter(storage.WriterOptions{Brokers: p.Brokers, Kafka: p.kafka, Conn: p.ch, Database: cfg.Database,
		Flavor: flavor, MaxRows: cfg.WriterMaxRows, MaxWait: cfg.WriterMaxWait, RollupEvery: cfg.WriterRollupEvery, Logger: cfg.Logger, Registerer: reg})
	if err != nil {
		return err
	}
	// The writer starts before the producer so that it stops after it: at
	// shutdown the producer flushes what was accepted, then the writer
	// stores it.
	if err := p.group.start(ctx, "storage writer", funcComponent(func(ctx context.Context) error {
		return writer.RunDraining(ctx, 30*time.Second)
	})); err != nil {
		return err
	}
	p.producer, err = p.kafka.NewClient(p.Brokers, cfg.Logger, producerOpts(cfg)...)
	if err != nil {
		return fmt.Errorf("cannot create Kafka producer: %w", err)
	}
	if err := p.group.start(ctx, "kafka producer", flushing(p.producer)); err != nil {
		return err
	}

	// The API listens (but does not serve) before the twin joins its
	// group: the twin's member id is the API address, so other instances
	// can redirect to it.
	var ln net.Listener
	if cfg.HTTPTLSCert != "" || cfg.HTTPTLSKey != "" {
		cert, err := tls.LoadX509KeyPair(cfg.HTTPTLSCert, cfg.HTTPTLSKey)
		if err != nil {
			return fmt.Errorf("cannot load the HTTPS certificate: %w", err)
		}
		raw, err := net.Listen("tcp", cfg.HTTPAddr)
		if err != nil {
			return fmt.Errorf("cannot listen for HTTPS on %s: %w", cfg.HTTPAddr, err)
		}
		ln = tls.NewListener(raw, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	}
	p.HTTP, err = api.New(api.Options{Addr: cfg.HTTPAddr, Listener: ln, Limits: cfg.HTTPLimits, Gatherer: reg, Logger: cfg.Logger, Checks: map[string]api.Check{
		"clickhouse": func(ctx context.Context) error { return p.ch.Ping(ctx) },
		"kafka":      func(ctx context.Context) error { return p.producer.Ping(ctx) },
	}})
	if err != nil {
		return err
	}
	if p.Advertised, err = advertisedURL(cfg, p.HTTP.Addr()); err != nil {
		return err // checked above: cannot happen
	}
	lv, err := p.startTwin(ctx, flavor)
	if err != nil {
		return err
	}

	// The registry topic is replayed before devices may connect, and
	// followed after, so that imports on other instances arrive here too.
	regf := twin.NewRegistryFollower(p.Brokers, cfg.Logger, func(s *registry.Site) {
		if err := p.Registry.Add(s); err != nil {
			p.log.Warn("registry topic: site refused", "site", s.ID, "err", err)
			return
		}
		if err := lv.SiteAdded(s); err != nil {
			p.log.Warn("registry topic: site not tracked", "site", s.ID, "err", err)
		}
	}, p.kafka.Opts()...)
	if err := p.group.start(ctx, regf.Name(), regf); err != nil {
		return err
	}
	if regf.Replayed() == 0 {
		// The first instance on an empty topic seeds it with its file.
		sites := p.Registry.Sites()
		p.log.Info("registry topic empty: seeding it from the registry file", "sites", len(sites))
		if err := twin.PublishSites(ctx, p.producer, sites); err != nil {
			return err
		}
	} else {
		p.log.Info("registry replayed from Kafka", "records", regf.Replayed())
	}

	if err := p.startBroker(ctx); err != nil {
		return err
	}
	desf := twin.NewDesiredFollower(p.Brokers, cfg.Logger, p.Broker, p.kafka.Opts()...)
	if err := p.group.start(ctx, desf.Name(), desf); err != nil {
		return err
	}
	if err := p.mountAPI(lv, flavor); err != nil {
		return err
	}
	if err := p.startPortal(ctx, lv, flavor); err != nil {
		return err
	}
	// Sinks start after the broker serves: the MQTT sink may publish to it.
	if err := p.startSinks(ctx); err != nil {
		return err
	}
	if err := p.group.start(ctx, "http api", p.HTTP); err != nil {
		return err
	}
	p.log.Info("polis serving", "mqtt", p.Broker.Addr(), "http", p.HTTP.Addr(), "advertised", p.Advertised, "kafka", p.Brokers,
		"clickhouse", cfg.ClickHouseAddr, "started_in", time.Since(began).Round(time.Millisecond))
	return nil
}

// kafkaClientOptions is how every Kafka client of the platform connects,
// with the consumer groups' session timeout.
func kafkaClientOptions(cfg Config) (kafka.ClientOptions, error) {
	o, err := cfg.Kafka.Load()
	if err != nil {
		return o, err
	}
	o.SessionTimeout = cfg.KafkaSessionTimeout
	o.FetchWait = cfg.KafkaFetchWait
	return o, nil
}

// producerOpts are the options of the platform's producer (the twin, the
// rules, the registry): its records have no deadline, franz-go retries them
// until Kafka takes them.
func producerOpts(cfg Config) []kgo.Opt {
	return []kgo.Opt{kgo.ProducerLinger(cfg.ProducerLinger), kgo.RecordPartitioner(kafka.SitePartitioner()),
		kgo.ProducerBatchMaxBytes(4 << 20), kgo.MaxBufferedRecords(1 << 20)}
}

// ingestOpts are the options of the producer of the devices' publishes: the
// platform's, but a record not delivered within the broker's ingest timeout
// fails, even if it was sent already (AllowIdempotentProduceCancellation),
// so it does not reach Kafka after the device was refused its PUBACK, when
// a cut-off network comes back. A request Kafka did write but whose answer
// was lost is still stored: the device resends it and the point is stored
// twice, which at-least-once delivery allows. The linger is not added to
// the timeout: a batch expires with its first record, so a record may fail
// up to a linger early, never late.
func ingestOpts(cfg Config, timeout time.Duration) []kgo.Opt {
	return append(producerOpts(cfg), kgo.RecordDeliveryTimeout(timeout), kgo.AllowIdempotentProduceCancellation())
}

// flushing stops a producer: what was produced is flushed (for 30 s at
// most), then it is closed.
func flushing(cl *kgo.Client) component {
	return closer(func() error {
		fctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := cl.Flush(fctx)
		cl.Close()
		if err != nil {
			return fmt.Errorf("cannot flush Kafka producer: %w", err)
		}
		return nil
	})
}

// startClickHouse connects, applies the schema and returns the flavor of
// DDL the server takes.
func (p *Platform) startClickHouse(ctx context.Context) (schema.Flavor, error) {
	cfg := p.cfg
	var err error
	co := cfg.ClickHouse
	co.Addr = cfg.ClickHouseAddr
	p.ch, err = storage.Open(co, func(o *clickhouse.Options) { o.DialTimeout, o.MaxOpenConns = 5*time.Second, 8 })
	if err != nil {
		return 0, err
	}
	if err := p.group.start(ctx, "clickhouse connection", closer(p.ch.Close)); err != nil {
		return 0, err
	}
	if err := p.ch.Ping(ctx); err != nil {
		return 0, fmt.Errorf("cannot reach ClickHouse at %s (is it running? 'make run' starts one): %w", cfg.ClickHouseAddr, err)
	}
	version, err := serverVersion(ctx, p.ch)
	if err != nil {
		return 0, err
	}
	flavor, err := schema.FlavorFor(version)
	if err != nil {
		return 0, err
	}
	switch {
	case cfg.Migrate && cfg.ClickHouseCluster != "":
		applied, err := schema.ApplyCluster(ctx, p.ch, cfg.ClickHouseCluster, cfg.Database, schema.Options{})
		if err != nil {
			return 0, err
		}
		p.log.Info("schema up to date", "clickhouse", version, "cluster", cfg.ClickHouseCluster, "database", cfg.Database, "applied", applied)
	case cfg.Migrate:
		applied, err := schema.Apply(ctx, p.ch, cfg.Database)
		if err != nil {
			return 0, err
		}
		p.log.Info("schema up to date", "clickhouse", version, "database", cfg.Database, "applied", applied)
	case cfg.ClickHouseCluster != "":
		// Migrated by someone else: still refuse a database that is not
		// on the cluster.
		if err := schema.CheckCluster(ctx, p.ch, cfg.Database); err != nil {
			return 0, err
		}
	}
	return flavor, nil
}

// startTwin starts the lifecycle log's follower (the tracker is its fold,
// replayed before anything reads it) and its ClickHouse writer, the rules
// (whose API rules are loaded before the twin evaluates a point), the twin
// consumer and its lifecycle evidence.
func (p *Platform) startTwin(ctx context.Context, flavor schema.Flavor) (*twin.Live, error) {
	cfg := p.cfg
	parts, err := topicPartitions(ctx, p.Brokers, p.kafka, cfg.Logger)
	if err != nil {
		return nil, err
	}
	tracker, err := twin.NewTracker(p.Registry)
	if err != nil {
		return nil, err
	}
	lv := twin.NewLive(twin.LiveOptions{Registry: p.Registry, Partitions: parts, Producer: p.producer, Tracker: tracker,
		Self: p.Advertised, Logger: cfg.Logger})
	p.Live = lv
	lcf := lv.LifecycleFollower(p.Brokers, cfg.Logger, p.kafka.Opts()...)
	if err := p.group.start(ctx, lcf.Name(), lcf); err != nil {
		return nil, err
	}
	if lcf.Replayed() == 0 {
		// An empty log: carry over the states ClickHouse kept before the
		// lifecycle had a log (nothing on a new installation).
		latest, err := storage.LatestLifecycle(ctx, p.ch, cfg.Database, flavor)
		if err != nil {
			return nil, err
		}
		n, err := lv.MigrateLifecycle(ctx, latest, time.Now())
		if err != nil {
			return nil, err
		}
		if n > 0 {
			p.log.Info("lifecycle log seeded from ClickHouse", "assets", n)
		}
	}
	lw, err := storage.NewLifecycleWriter(storage.LifecycleWriterOptions{Brokers: p.Brokers, Kafka: p.kafka, Conn: p.ch, Database: cfg.Database,
		Flavor: flavor, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	if err := p.group.start(ctx, "lifecycle writer", lw); err != nil {
		return nil, err
	}
	var (
		onApply    func(*state.Store, *record.Record, state.Change)
		onAssigned func(context.Context, map[int32]*state.Store) error
		onReleased func(context.Context, map[int32]*state.Store)
	)
	if cfg.RulesDir != "" {
		if p.Rules, err = rules.New(rules.Options{Dir: cfg.RulesDir, Registry: p.Registry, Producer: p.producer, Logger: cfg.Logger, Registerer: p.metrics,
			Brokers: p.Brokers, Kafka: p.kafka, Watch: true, Engine: cfg.AlertOptions, Scanner: scanner(p.ch, cfg.Database, flavor)}); err != nil {
			return nil, err
		}
		// The rules evaluate what the twin applies, restore the alerts of
		// the partitions it gains and drop the sites of those it loses.
		onApply, onAssigned, onReleased = p.Rules.Applied, p.Rules.Gained, p.Rules.Released
		// The engine's clock starts now: the Kafka tail the twin replays at
		// start is older than MaxAge and fires nothing stale.
		p.Rules.Tick(time.Now())
		// Started after the producer, so stopped before it: at shutdown the
		// rules write their queued alert changes while the producer is open,
		// then the producer flushes them. The API, the twin and the clock,
		// started after, stop before the rules: nothing is queued once they
		// drain.
		if err := p.group.start(ctx, "rules", p.Rules); err != nil {
			return nil, err
		}
		if err := p.group.start(ctx, "rules clock", funcComponent(func(ctx context.Context) error {
			return p.Rules.RunClock(ctx, 10*time.Second)
		})); err != nil {
			return nil, err
		}
	}
	p.Twin, err = twin.New(twin.Options{Brokers: p.Brokers, Kafka: p.kafka, Conn: p.ch, Database: cfg.Database, SnapshotEvery: cfg.TwinSnapshotEvery,
		InstanceID: p.Advertised, Logger: cfg.Logger, OnApply: onApply, OnAssigned: onAssigned, OnReleased: onReleased,
		NewPartition: lv.NewPartition})
	if err != nil {
		return nil, err
	}
	lv.Attach(p.Twin)
	if err := p.group.start(ctx, "twin", p.Twin); err != nil {
		return nil, err
	}
	runner := lv.LifecycleRunner(func(err error) { p.log.Warn("lifecycle", "err", err) })
	if err := p.group.start(ctx, "lifecycle evidence", runner); err != nil {
		return nil, err
	}
	return lv, nil
}

// startBroker starts the MQTT broker, which hands accepted publishes to
// ingest.
func (p *Platform) startBroker(ctx context.Context) error {
	cfg := p.cfg
	var err error
	if p.ingest, err = p.kafka.NewClient(p.Brokers, cfg.Logger, ingestOpts(cfg, ingestTimeout)...); err != nil {
		return fmt.Errorf("cannot create the ingest producer: %w", err)
	}
	// Started before the broker, so stopped after it: the broker's
	// publishes in flight end, then the producer flushes them.
	if err := p.group.start(ctx, "ingest producer", flushing(p.ingest)); err != nil {
		return err
	}
	pipe, err := ingest.New(ingest.Options{Producer: p.ingest, Directory: p.Registry, Logger: cfg.Logger, Registerer: p.metrics})
	if err != nil {
		return err
	}
	var accounts []broker.Account
	if cfg.AccountsPath != "" {
		if accounts, err = broker.LoadAccounts(cfg.AccountsPath); err != nil {
			return err
		}
	}
	var tlsCfg *tls.Config
	if cfg.MQTTTLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("cannot load MQTT TLS certificate: %w", err)
		}
		tlsCfg = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	p.Broker, err = broker.New(broker.Options{Addr: cfg.MQTTAddr, WSAddr: cfg.MQTTWSAddr, TLSAddr: cfg.MQTTTLSAddr, TLS: tlsCfg,
		Devices: func(u string, s []byte) (string, bool) {
			a, err := p.Registry.Authenticate(u, s)
			if err != nil {
				return "", false
			}
			return a.Type, true
		},
		Accounts: accounts, Ingest: pipe, IngestTimeout: ingestTimeout, Logger: cfg.Logger, Registerer: p.metrics})
	if err != nil {
		return err
	}
	return p.group.start(ctx, "mqtt broker", p.Broker)
}

// mountAPI mounts the v1 API on the HTTP server (which serves last).
func (p *Platform) mountAPI(lv *twin.Live, flavor schema.Flavor) error {
	cfg := p.cfg
	var tokens []api.Token
	if cfg.TokensPath != "" {
		var err error
		if tokens, err = api.LoadTokens(cfg.TokensPath); err != nil {
			return err
		}
	}
	topts := api.V1Options{Fleet: fleet{p.Registry}, Live: live{Live: lv, reg: p.Registry},
		History: history{conn: p.ch, db: cfg.Database, flavor: flavor}, Tokens: tokens, Logger: cfg.Logger,
		Registrar: twin.NewImporter(lv, p.producer, cfg.RegistryPath)}
	topts.SQL = storage.NewSQLExecutor(p.ch) // POST /api/v1/sql: read-only, limited (README "SQL")
	// The citizen-services finder: the shipped catalogue over the registry and the live twin.
	finder, err := services.NewFinder(services.FinderOptions{Fleet: p.Registry, Twin: lv, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	topts.Services, p.services = finder, finder
	if p.Rules != nil {
		topts.Alerts, topts.Rules = p.Rules, p.Rules
	}
	if cfg.MilestonesPath != "" {
		ms, err := milestone.LoadFile(cfg.MilestonesPath)
		if err != nil {
			return fmt.Errorf("cannot load milestones: %w", err)
		}
		topts.Milestones = milestone.NewBoard(ms, p.Registry, lv.Tracker().State)
	}
	return p.HTTP.MountV1(topts)
}

// startSinks starts the alert sinks, each its own consumer group.
func (p *Platform) startSinks(ctx context.Context) error {
	cfg := p.cfg
	if cfg.AlertWebhook != "" {
		wh, err := sink.NewWebhook(sink.WebhookOptions{Name: "webhook", URL: cfg.AlertWebhook, Secret: []byte(cfg.AlertWebhookKey),
			Brokers: p.Brokers, Kafka: p.kafka, Logger: cfg.Logger, Registerer: p.metrics})
		if err != nil {
			return err
		}
		if err := p.group.start(ctx, "alert webhook", wh); err != nil {
			return err
		}
	}
	if cfg.AlertMQTT != "" {
		ms, err := sink.NewMQTT(sink.MQTTOptions{Name: "mqtt", URL: cfg.AlertMQTT, Username: cfg.AlertMQTTUsername,
			Password: cfg.AlertMQTTPassword, TopicPrefix: cfg.AlertMQTTTopic, Brokers: p.Brokers, Kafka: p.kafka, Logger: cfg.Logger,
			Registerer: p.metrics})
		if err != nil {
			return err
		}
		if err := p.group.start(ctx, "alert mqtt", ms); err != nil {
			return err
		}
	}
	return nil
}

// topicPartitions reads how many partitions the twin's topics have.
func topicPartitions(ctx context.Context, brokers []string, conn kafka.ClientOptions, log *slog.Logger) (int, error) {
	cl, err := conn.NewClient(brokers, log)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	ts, err := kadm.NewClient(cl).ListTopics(ctx, kafka.TopicTelemetry)
	if err != nil {
		return 0, fmt.Errorf("cannot read topic %s: %w", kafka.TopicTelemetry, err)
	}
	t, ok := ts[kafka.TopicTelemetry]
	if !ok || t.Err != nil || len(t.Partitions) == 0 {
		return 0, fmt.Errorf("topic %s is missing: create it (see deploy/README.md)", kafka.TopicTelemetry)
	}
	return len(t.Partitions), nil
}

func serverVersion(ctx context.Context, ch driver.Conn) (string, error) {
	var v string
	if err := ch.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("cannot read ClickHouse version: %w", err)
	}
	return v, nil
}

// Failed is closed when a component has failed (Err says which and why);
// the platform then stops.
func (p *Platform) Failed() <-chan struct{} { return p.group.Failed() }

// Wait runs the platform until ctx ends (a signal: it returns nil) or a
// component fails (it returns that failure), then stops every component in
// reverse order of start, giving them stopTimeout.
func (p *Platform) Wait(ctx context.Context, stopTimeout time.Duration) error {
	select {
	case <-ctx.Done():
		p.log.Info("stopping")
	case <-p.group.Failed():
	}
	sctx, cancel := context.WithTimeout(context.Background(), stopTimeout)
	defer cancel()
	err := p.Shutdown(sctx)
	if ferr := p.group.Err(); ferr != nil {
		return ferr
	}
	return err
}

// Shutdown stops accepting, flushes what was accepted to Kafka and
// ClickHouse, and stops every component in reverse order of start.
func (p *Platform) Shutdown(ctx context.Context) error {
	began := time.Now()
	err := p.group.stop(ctx)
	p.log.Info("polis stopped", "took", time.Since(began).Round(time.Millisecond))
	return err
}
