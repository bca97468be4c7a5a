// Package platform assembles the components of `polis serve` in order and
// stops them in reverse. It is the only package that imports them all.
package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
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
	"github.com/polis-platform/polis/ingest/topic"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/rules/sink"
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

	KafkaBrokers        []string // empty: start the embedded cluster
	KafkaAddr           string   // embedded cluster's listen address
	KafkaPartitions     int
	KafkaRetention      time.Duration
	KafkaRetentionBytes int64
	ProducerLinger      time.Duration

	ClickHouseAddr string
	Database       string
	Migrate        bool
	WriterMaxRows  int
	WriterMaxWait  time.Duration

	RegistryPath string
	AccountsPath string
	TokensPath   string // API tokens (YAML); empty: every write is refused

	TwinSnapshotEvery time.Duration
	RulesDir          string // alert rules (*.yaml), watched; empty: no rules
	MilestonesPath    string // programme milestones (YAML); empty: no /api/v1/milestones
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

// Defaults returns the configuration of DESIGN.md's default addresses.
func Defaults() Config {
	return Config{
		DataDir:         "var",
		MQTTAddr:        "127.0.0.1:1883",
		HTTPAddr:        "127.0.0.1:8080",
		KafkaAddr:       "127.0.0.1:9092",
		KafkaPartitions: 8,
		KafkaRetention:  24 * time.Hour,
		ProducerLinger:  0,
		ClickHouseAddr:  "127.0.0.1:9000",
		Database:        "polis",
		Migrate:         true,
		WriterMaxRows:   100000,
		WriterMaxWait:   500 * time.Millisecond,
		RegistryPath:    "var/registry.json",

		TwinSnapshotEvery: 30 * time.Second,
		AlertOptions: engine.Options{MaxLateness: 10 * time.Minute, MaxAge: 15 * time.Minute, FlapWindow: time.Hour, FlapThreshold: 6,
			ReminderEvery: 4 * time.Hour, EscalateAfter: time.Hour, InhibitGrace: 5 * time.Minute},
	}
}

// Platform is a running `polis serve`.
type Platform struct {
	cfg      Config
	log      *slog.Logger
	Registry *registry.Registry
	cluster  *kafka.Embedded
	producer *kgo.Client
	ch       driver.Conn
	writer   *storage.Writer
	Broker   *broker.Broker
	HTTP     *api.Server
	Brokers  []string

	writerCancel context.CancelFunc
	writerDone   chan error
	Twin         *twin.Service
	Rules        *rules.Service
	metrics      prometheus.Registerer
	twinCancel   context.CancelFunc
	twinDone     chan error
	lifeDone     chan struct{}
	regCancel    context.CancelFunc
	regDone      chan struct{}
	desCancel    context.CancelFunc
	desDone      chan struct{}
	sinkCancel   context.CancelFunc
	sinkDone     chan struct{}
	rulesCancel  context.CancelFunc
	rulesDone    chan struct{}
	closeOnce    sync.Once
}

// Start brings the platform up: Kafka, ClickHouse (and its schema), the
// storage writer, ingest, the MQTT broker and the HTTP API.
func Start(ctx context.Context, cfg Config) (p *Platform, err error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	began := time.Now()
	p = &Platform{cfg: cfg, log: cfg.Logger}
	started := p // the error returns below clear p
	defer func() {
		if err != nil {
			_ = started.Shutdown(context.Background())
		}
	}()
	reg := prometheus.NewRegistry()
	p.metrics = reg
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	if p.Registry, err = registry.Load(cfg.RegistryPath); err != nil {
		return nil, fmt.Errorf("%w (make one with 'polis registry generate')", err)
	}
	ns, na := p.Registry.Len()
	p.log.Info("registry loaded", "path", cfg.RegistryPath, "sites", ns, "assets", na)

	p.Brokers = cfg.KafkaBrokers
	if len(p.Brokers) == 0 {
		p.cluster, err = kafka.StartEmbedded(kafka.EmbeddedOptions{
			Addr: cfg.KafkaAddr, DataDir: filepath.Join(cfg.DataDir, "kafka"), Partitions: int32(cfg.KafkaPartitions),
			Retention: cfg.KafkaRetention, RetentionBytes: cfg.KafkaRetentionBytes, Logger: cfg.Logger,
		})
		if err != nil {
			return nil, err
		}
		p.Brokers = p.cluster.Addrs()
		p.log.Info("embedded Kafka started", "addr", p.Brokers, "data", filepath.Join(cfg.DataDir, "kafka"))
	}
	p.producer, err = kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.ProducerLinger(cfg.ProducerLinger),
		kgo.RecordPartitioner(kafka.SitePartitioner()), kgo.ProducerBatchMaxBytes(4<<20),
		kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return nil, fmt.Errorf("cannot create Kafka producer: %w", err)
	}

	p.ch, err = clickhouse.Open(&clickhouse.Options{Addr: []string{cfg.ClickHouseAddr}, Protocol: clickhouse.Native,
		DialTimeout: 5 * time.Second, MaxOpenConns: 8})
	if err != nil {
		return nil, fmt.Errorf("cannot open ClickHouse %s: %w", cfg.ClickHouseAddr, err)
	}
	if err := p.ch.Ping(ctx); err != nil {
		return nil, fmt.Errorf("cannot reach ClickHouse at %s (is it running? 'make run' starts one): %w", cfg.ClickHouseAddr, err)
	}
	version, err := serverVersion(ctx, p.ch)
	if err != nil {
		return nil, err
	}
	flavor, err := schema.FlavorFor(version)
	if err != nil {
		return nil, err
	}
	if cfg.Migrate {
		applied, err := schema.Apply(ctx, p.ch, cfg.Database)
		if err != nil {
			return nil, err
		}
		p.log.Info("schema up to date", "clickhouse", version, "database", cfg.Database, "applied", applied)
	}

	p.writer, err = storage.NewWriter(storage.WriterOptions{Brokers: p.Brokers, Conn: p.ch, Database: cfg.Database,
		Flavor: flavor, MaxRows: cfg.WriterMaxRows, MaxWait: cfg.WriterMaxWait, Logger: cfg.Logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.Background())
	p.writerCancel, p.writerDone = cancel, make(chan error, 1)
	go func() { p.writerDone <- p.writer.Run(wctx) }()

	// The API listens before the twin joins its group: the twin's member id
	// is the API address, so other instances can redirect to it.
	p.HTTP, err = api.New(api.Options{Addr: cfg.HTTPAddr, Gatherer: reg, Logger: cfg.Logger, Checks: map[string]api.Check{
		"clickhouse": func(ctx context.Context) error { return p.ch.Ping(ctx) },
		"kafka":      func(ctx context.Context) error { return p.producer.Ping(ctx) },
	}})
	if err != nil {
		return nil, err
	}
	lv, err := p.startTwin(ctx, cfg, flavor)
	if err != nil {
		return nil, err
	}
	if err := p.followRegistry(ctx, lv); err != nil {
		return nil, err
	}

	pipe, err := ingest.New(ingest.Options{Producer: p.producer, Directory: p.Registry, Logger: cfg.Logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	var accounts []broker.Account
	if cfg.AccountsPath != "" {
		if accounts, err = broker.LoadAccounts(cfg.AccountsPath); err != nil {
			return nil, err
		}
	}
	var tlsCfg *tls.Config
	if cfg.MQTTTLSAddr != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return nil, fmt.Errorf("cannot load MQTT TLS certificate: %w", err)
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
		Accounts: accounts, Ingest: pipe, Logger: cfg.Logger, Registerer: reg})
	if err != nil {
		return nil, err
	}
	if err := p.Broker.Serve(); err != nil {
		return nil, err
	}

	if err := p.followDesired(ctx); err != nil {
		return nil, err
	}
	var tokens []api.Token
	if cfg.TokensPath != "" {
		if tokens, err = api.LoadTokens(cfg.TokensPath); err != nil {
			return nil, err
		}
	}
	topts := api.TwinOptions{Fleet: fleet{p.Registry}, Live: lv,
		History: history{conn: p.ch, db: cfg.Database, flavor: flavor}, Tokens: tokens, Logger: cfg.Logger,
		Registrar: &registrar{live: lv, prod: p.producer, path: cfg.RegistryPath}}
	if p.Rules != nil {
		topts.Alerts, topts.Rules = p.Rules, p.Rules
	}
	if cfg.MilestonesPath != "" {
		ms, err := milestone.LoadFile(cfg.MilestonesPath)
		if err != nil {
			return nil, fmt.Errorf("cannot load milestones: %w", err)
		}
		topts.Milestones = &milestones{ms: ms, reg: p.Registry, life: lv.tracker}
	}
	if err := p.HTTP.MountTwin(topts); err != nil {
		return nil, err
	}
	// Sinks: each its own consumer group, started after the broker serves
	// (the MQTT sink may publish to it).
	var sinks []interface{ Run(context.Context) error }
	if cfg.AlertWebhook != "" {
		wh, err := sink.NewWebhook(sink.WebhookOptions{Name: "webhook", URL: cfg.AlertWebhook, Secret: []byte(cfg.AlertWebhookKey),
			Brokers: p.Brokers, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, wh)
	}
	if cfg.AlertMQTT != "" {
		ms, err := sink.NewMQTT(sink.MQTTOptions{Name: "mqtt", URL: cfg.AlertMQTT, Username: cfg.AlertMQTTUsername,
			Password: cfg.AlertMQTTPassword, TopicPrefix: cfg.AlertMQTTTopic, Brokers: p.Brokers, Logger: cfg.Logger})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, ms)
	}
	if len(sinks) > 0 {
		sctx, cancel := context.WithCancel(context.Background())
		p.sinkCancel, p.sinkDone = cancel, make(chan struct{})
		var wg sync.WaitGroup
		for _, s := range sinks {
			wg.Go(func() {
				if err := s.Run(sctx); err != nil {
					p.log.Error("alert sink stopped", "err", err)
				}
			})
		}
		go func() { wg.Wait(); close(p.sinkDone) }()
	}
	p.HTTP.Serve()
	p.log.Info("polis serving", "mqtt", p.Broker.Addr(), "http", p.HTTP.Addr(), "kafka", p.Brokers,
		"clickhouse", cfg.ClickHouseAddr, "started_in", time.Since(began).Round(time.Millisecond))
	return p, nil
}

// followRegistry replays the registry topic into the registry (and the
// twin and tracker) before devices may connect, then keeps following it so
// that imports on other instances arrive here too. The first instance on an
// empty topic seeds it with the registry file.
func (p *Platform) followRegistry(ctx context.Context, lv *live) error {
	caught := make(chan int, 1)
	fctx, cancel := context.WithCancel(context.Background())
	p.regCancel, p.regDone = cancel, make(chan struct{})
	go func() {
		defer close(p.regDone)
		err := twin.FollowRegistry(fctx, p.Brokers, func(s *registry.Site) {
			if err := p.Registry.Add(s); err != nil {
				p.log.Warn("registry topic: site refused", "site", s.ID, "err", err)
				return
			}
			if err := lv.siteAdded(s); err != nil {
				p.log.Warn("registry topic: site not tracked", "site", s.ID, "err", err)
			}
		}, func(n int) { caught <- n })
		if err != nil {
			p.log.Error("registry follower stopped", "err", err)
		}
	}()
	select {
	case n := <-caught:
		if n == 0 {
			sites := p.Registry.Sites()
			p.log.Info("registry topic empty: seeding it from the registry file", "sites", len(sites))
			return twin.PublishSites(ctx, p.producer, sites)
		}
		p.log.Info("registry replayed from Kafka", "records", n)
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("cannot replay %s within 2 minutes", kafka.TopicRegistry)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// followDesired publishes every desired state of the compacted topic
// retained on this instance's broker, replaying it before returning.
func (p *Platform) followDesired(ctx context.Context) error {
	caught := make(chan int, 1)
	fctx, cancel := context.WithCancel(context.Background())
	p.desCancel, p.desDone = cancel, make(chan struct{})
	go func() {
		defer close(p.desDone)
		err := twin.Follow(fctx, p.Brokers, kafka.TopicDesired, func(r *kgo.Record) {
			site, asset, ok := strings.Cut(string(r.Key), "/")
			if !ok {
				return
			}
			if err := p.Broker.Publish(topic.Build(site, asset, topic.Desired), r.Value, true, 1); err != nil {
				p.log.Warn("cannot publish desired state", "site", site, "asset", asset, "err", err)
			}
		}, func(n int) { caught <- n })
		if err != nil {
			p.log.Error("desired-state follower stopped", "err", err)
		}
	}()
	select {
	case <-caught:
		return nil
	case <-time.After(2 * time.Minute):
		return fmt.Errorf("cannot replay %s within 2 minutes", kafka.TopicDesired)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startTwin starts the twin consumer and the lifecycle tracker fed by it.
func (p *Platform) startTwin(ctx context.Context, cfg Config, flavor schema.Flavor) (*live, error) {
	parts, err := topicPartitions(ctx, p.Brokers)
	if err != nil {
		return nil, err
	}
	lv := &live{reg: p.Registry, parts: parts, prod: p.producer, part: kafka.SitePartitioner().ForTopic(kafka.TopicTelemetry),
		self: "http://" + p.HTTP.Addr(), events: &eventSink{conn: p.ch, db: cfg.Database, flavor: flavor}}
	if lv.tracker, err = newTracker(ctx, p.Registry, p.ch, cfg.Database, flavor); err != nil {
		return nil, err
	}
	var onApply func(*state.Store, *record.Record, state.Change)
	if cfg.RulesDir != "" {
		if p.Rules, err = rules.New(rules.Options{Dir: cfg.RulesDir, Registry: p.Registry, Producer: p.producer, Logger: cfg.Logger, Registerer: p.metrics,
			Brokers: p.Brokers, Watch: true, Engine: cfg.AlertOptions, Scanner: scanner(p.ch, cfg.Database, flavor)}); err != nil {
			return nil, err
		}
		onApply = p.Rules.Applied
		// The engine's clock starts now: the Kafka tail the twin replays at
		// start is older than MaxAge and fires nothing stale.
		p.Rules.Tick(time.Now())
		// The API's rules are loaded before the twin evaluates a point.
		ready := make(chan struct{})
		rctx, cancel := context.WithCancel(context.Background())
		p.rulesCancel, p.rulesDone = cancel, make(chan struct{})
		go func() {
			defer close(p.rulesDone)
			if err := p.Rules.Run(rctx, ready); err != nil {
				p.log.Error("rules service stopped", "err", err)
			}
		}()
		select {
		case <-ready:
		case <-time.After(2 * time.Minute):
			return nil, fmt.Errorf("cannot replay %s within 2 minutes", kafka.TopicRules)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	p.Twin, err = twin.New(twin.Options{Brokers: p.Brokers, Conn: p.ch, Database: cfg.Database, SnapshotEvery: cfg.TwinSnapshotEvery,
		InstanceID: lv.self, Logger: cfg.Logger, OnApply: onApply,
		NewPartition: func(part int32) *state.Store {
			st := state.New(state.Options{})
			for _, s := range p.Registry.Sites() {
				if lv.partitionOf(s.ID) == part {
					for _, a := range s.Assets {
						st.AddAsset(s.ID, a.ID, a.Type)
					}
				}
			}
			return st
		}})
	if err != nil {
		return nil, err
	}
	lv.svc = p.Twin
	tctx, cancel := context.WithCancel(context.Background())
	p.twinCancel, p.twinDone, p.lifeDone = cancel, make(chan error, 1), make(chan struct{})
	go func() { p.twinDone <- p.Twin.Run(tctx) }()
	go func() {
		defer close(p.lifeDone)
		if p.Rules != nil {
			go func() {
				t := time.NewTicker(10 * time.Second)
				defer t.Stop()
				for {
					select {
					case <-tctx.Done():
						return
					case now := <-t.C:
						p.Rules.Tick(now)
					}
				}
			}()
		}
		runLifecycle(tctx, p.Twin, lv.tracker, lv.events, func(err error) { p.log.Warn("lifecycle", "err", err) })
	}()
	return lv, nil
}

// waitDrained waits until the storage group has committed every record of
// the topics it consumes.
func (p *Platform) waitDrained(ctx context.Context) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...))
	if err != nil {
		return fmt.Errorf("cannot connect to Kafka: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		lags, err := adm.Lag(ctx, kafka.GroupStorage)
		if err == nil {
			err = lags.Error()
		}
		if err == nil {
			var total int64
			lags.Each(func(l kadm.DescribedGroupLag) {
				for t, ps := range l.Lag {
					if t != kafka.TopicTelemetry && t != kafka.TopicEvents && t != kafka.TopicDeadLetter && t != kafka.TopicAlerts {
						continue
					}
					for _, pl := range ps {
						total += pl.Lag
					}
				}
			})
			if total == 0 {
				return nil
			}
			err = fmt.Errorf("%d records not yet stored", total)
		}
		select {
		case <-ctx.Done():
			if err != nil {
				return err
			}
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func serverVersion(ctx context.Context, ch driver.Conn) (string, error) {
	var v string
	if err := ch.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("cannot read ClickHouse version: %w", err)
	}
	return v, nil
}

// Shutdown stops accepting, flushes what was accepted to Kafka and
// ClickHouse, and stops every component in reverse order of start.
func (p *Platform) Shutdown(ctx context.Context) error {
	var errs []error
	p.closeOnce.Do(func() {
		began := time.Now()
		if p.HTTP != nil {
			errs = append(errs, p.HTTP.Shutdown(ctx))
		}
		if p.desCancel != nil {
			p.desCancel()
			<-p.desDone
		}
		if p.Broker != nil {
			errs = append(errs, p.Broker.Close())
		}
		if p.producer != nil {
			if err := p.producer.Flush(ctx); err != nil {
				errs = append(errs, fmt.Errorf("cannot flush Kafka producer: %w", err))
			}
			p.producer.Close()
		}
		if p.writerCancel != nil {
			// Let the writer catch up with everything accepted before
			// stopping it; what it cannot reach in time stays in Kafka for
			// the next start.
			p.writer.Drain()
			if err := p.waitDrained(ctx); err != nil {
				p.log.Warn("storage writer did not catch up before shutdown; the rest is inserted at next start", "err", err)
			}
			p.writerCancel()
			select {
			case err := <-p.writerDone:
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, err)
				}
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("cannot stop storage writer: %w", ctx.Err()))
			}
		}
		if p.twinCancel != nil {
			p.twinCancel() // snapshots what it owns and leaves the group
			select {
			case err := <-p.twinDone:
				if err != nil {
					errs = append(errs, err)
				}
			case <-ctx.Done():
				errs = append(errs, fmt.Errorf("cannot stop the twin: %w", ctx.Err()))
			}
			<-p.lifeDone
		}
		if p.rulesCancel != nil {
			p.rulesCancel()
			<-p.rulesDone
		}
		if p.regCancel != nil {
			p.regCancel()
			<-p.regDone
		}
		if p.sinkCancel != nil {
			p.sinkCancel()
			<-p.sinkDone
		}
		if p.ch != nil {
			errs = append(errs, p.ch.Close())
		}
		if p.cluster != nil {
			p.cluster.Close()
		}
		p.log.Info("polis stopped", "took", time.Since(began).Round(time.Millisecond))
	})
	return errors.Join(errs...)
}
