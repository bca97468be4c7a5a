// Package rules runs the alert rules on the twin: it dispatches each point
// the twin applies to the rules whose scope and metrics match, evaluates
// them with the asset's and site's twins and recent history, keeps the
// alerts' lifecycle (rules/engine) and writes every alert change to
// polis.alerts.v1, through an outbox that retries and never blocks the
// twin (outbox.go). The alerts' state and the silences are kept on
// compacted topics and restored when a partition is gained
// (alertstate.go). Rules come from a watched directory and from the API,
// whose versions live on polis.rules.v1.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Producer is the part of *kgo.Client the service uses. It must partition
// with kafka.SitePartitioner, as every producer of the platform does: an
// alert's state goes to its site's partition of polis.alertstate.v1.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Options configure a Service.
type Options struct {
	Dir      string // rules directory (*.yaml); empty: API rules only
	Registry *registry.Registry
	Producer Producer
	// Brokers are followed for the API's rules (polis.rules.v1) and the
	// silences (polis.silences.v1), and hold the alerts' state
	// (polis.alertstate.v1); empty: the rules are the directory's, the API
	// cannot change them, and alerts and silences live in memory only.
	Brokers []string
	// Kafka is how its clients connect (SASL, TLS); zero: plaintext.
	Kafka kafka.ClientOptions
	// DrainTimeout bounds how long Run, once stopped, goes on writing
	// queued alert changes (default 20s: the platform gives a component 30).
	DrainTimeout time.Duration
	// HandoverTimeout bounds how long Released waits for the alert changes
	// of released partitions to be written (default 10s).
	HandoverTimeout time.Duration
	// Watch reloads the directory when a file in it changes.
	Watch  bool
	Engine engine.Options
	DSL    dsl.Options
	// Scanner reads history for backtests; nil: backtests are refused.
	Scanner Scanner
	// BacktestMaxPoints bounds one backtest (default storage.DefaultScanLimit).
	BacktestMaxPoints int
	// RingSize is how many recent points per asset the history functions see.
	RingSize   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service evaluates rules on twin changes and keeps the rules themselves.
type Service struct {
	o   Options
	log *slog.Logger
	ev  *Evaluator
	set *ruleSet

	evals    prometheus.CounterFunc
	changes  *prometheus.CounterVec
	reloads  *prometheus.CounterVec
	queued   prometheus.GaugeFunc
	failures prometheus.Counter

	out *outbox
	// relMu keeps the clock and the API (read) apart from sites entering
	// and leaving (write), so that no change of a released site is queued
	// after Released flushed. Applied needs none: the twin calls it and the
	// hooks under its own lock.
	relMu sync.RWMutex

	ready     chan struct{}
	readyOnce sync.Once
	toReady   atomic.Int32 // replays still to finish before Ready
}

// New loads and compiles the rules directory.
func New(o Options) (*Service, error) {
	if o.Registry == nil || o.Producer == nil {
		return nil, errors.New("cannot create rules service: Registry and Producer are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{o: o, log: o.Logger.With("component", "rules"),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polis_rules_alert_changes_total",
			Help: "Alert state changes, by kind and whether they were delivered to sinks."}, []string{"kind", "delivered"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polis_rules_reloads_total",
			Help: "Reloads of the rules directory, by result (ok, error: the previous rules stay)."}, []string{"result"}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "polis_rules_alert_produce_failures_total",
			Help: "Alert records (changes, states, silences) Kafka refused; each is retried until written."})}
	if s.o.DrainTimeout <= 0 {
		s.o.DrainTimeout = 20 * time.Second
	}
	if s.o.HandoverTimeout <= 0 {
		s.o.HandoverTimeout = 10 * time.Second
	}
	s.out = newOutbox(o.Producer, s.log)
	s.out.onFail = s.failures.Inc
	s.queued = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polis_rules_alert_outbox_records",
		Help: "Alert records (changes, states, silences) waiting to be written to Kafka."},
		func() float64 { return float64(s.out.Len()) })
	s.ready = make(chan struct{})
	s.set = newRuleSet(o.Dir, o.DSL)
	files, err := s.set.loadFiles()
	if err != nil {
		return nil, fmt.Errorf("cannot load rules from %s: %w", o.Dir, err)
	}
	if s.ev, err = NewEvaluator(o.Registry, files, o.Engine, o.RingSize); err != nil {
		return nil, err
	}
	s.evals = prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "polis_rules_evaluations_total",
		Help: "Rule evaluations: each point or clock tick times the rules it reached."},
		func() float64 { return float64(s.ev.Evaluations()) })
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.evals, s.changes, s.reloads, s.queued, s.failures)
	}
	s.log.Info("rules loaded", "dir", o.Dir, "rules", len(files))
	return s, nil
}

// Evaluator is the service's evaluator.
func (s *Service) Evaluator() *Evaluator { return s.ev }

// Run writes alert changes to Kafka, follows the API's rules and the
// silences, and watches the directory until ctx ends; then it goes on
// writing what is queued for at most DrainTimeout (the platform stops the
// producer after the rules). Ready is closed once the API's rules and the
// silences present at start are loaded.
func (s *Service) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		s.out.run(ctx, s.o.DrainTimeout)
	}()
	defer func() { cancel(); <-drained }()
	errc := make(chan error, 3)
	n := 0
	if s.o.Watch && s.o.Dir != "" {
		n++
		go func() { errc <- s.watch(ctx) }()
	}
	if s.persists() {
		s.toReady.Store(2)
		n += 2
		go func() { errc <- s.follow(ctx) }()
		go func() { errc <- s.followSilences(ctx) }()
	} else {
		s.readyOnce.Do(func() { close(s.ready) })
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel() // one failed: stop the others
		}
	}
	if n == 0 {
		<-ctx.Done() // nothing to follow or watch: run until stopped
	}
	return first
}

// caughtUp counts a replay done; the last one makes the service ready.
func (s *Service) caughtUp() {
	if s.toReady.Add(-1) <= 0 {
		s.readyOnce.Do(func() { close(s.ready) })
	}
}

// Ready is closed once the API's rules and the silences present at start
// are loaded.
func (s *Service) Ready() <-chan struct{} { return s.ready }

// RunClock ticks the rules every interval until ctx ends: clock rules
// (silence, connection status, opening hours) are evaluated by it.
func (s *Service) RunClock(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			s.Tick(now)
		}
	}
}

// apply recomputes the rule list after a change of files or API rules.
func (s *Service) apply() error {
	return s.ev.SetRules(s.set.merged())
}

// Applied is the twin's hook: it runs the rules a telemetry record can
// change, and the clock rules of an asset whose connection status or
// reported properties changed.
// It is called with the twin's partition lock held, so it only evaluates
// and queues the alert changes (never waiting on Kafka).
func (s *Service) Applied(st *state.Store, r *record.Record, c state.Change) {
	if !c.Known {
		return
	}
	ns, err := s.ev.Applied(st, r, c)
	if err != nil && !errors.Is(err, engine.ErrLate) {
		s.log.Debug("rule evaluation", "site", r.Site, "asset", r.Asset, "err", err)
	}
	s.emit(ns)
}

// Tick runs the clock rules and advances time-driven alert changes (for
// elapsing, NoData, reminders, escalation).
func (s *Service) Tick(now time.Time) {
	s.relMu.RLock()
	defer s.relMu.RUnlock()
	var expired []string
	for _, si := range s.ev.eng.Silences() {
		if !now.Before(si.End) {
			expired = append(expired, si.ID)
		}
	}
	ns, err := s.ev.Tick(now)
	if err != nil {
		s.log.Debug("clock evaluation", "err", err)
	}
	s.emit(ns)
	if s.persists() {
		for _, f := range s.ev.eng.TakeForgotten() {
			s.out.state(stateKey(f.Site, f.Fingerprint), f.Rev, nil)
		}
		for _, id := range expired {
			s.out.silence(id, nil)
		}
	} else {
		s.ev.eng.TakeForgotten()
	}
}

// emit queues every alert change for polis.alerts.v1, keyed by site (the
// topic is the alert history: sinks and storage read it), and the alerts'
// new state for polis.alertstate.v1.
func (s *Service) emit(ns []engine.Notification) {
	for _, n := range ns {
		s.changes.WithLabelValues(string(n.Kind), fmt.Sprint(n.Deliver)).Inc()
		if n.Deliver {
			s.log.Info("alert", "kind", n.Kind, "rule", n.Alert.RuleID, "site", n.Alert.Site, "asset", n.Alert.Asset, "summary", n.Alert.Summary)
		}
		st := n.State
		n.State = nil
		s.out.change(n)
		if st != nil && s.persists() {
			s.out.state(stateKey(st.Site, st.Fingerprint), st.Rev, st)
		}
	}
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// AlertChange is the wire form of a notification on polis.alerts.v1.
func AlertChange(n engine.Notification) *record.AlertChange {
	a := n.Alert
	c := &record.AlertChange{Kind: string(n.Kind), At: ms(n.At), Deliver: n.Deliver, Level: n.Level,
		Fingerprint: a.Fingerprint, RuleID: a.RuleID, Site: a.Site, Asset: a.Asset, State: a.State.String(),
		Severity: a.Severity, Summary: a.Summary, Labels: a.Labels, Value: a.Value,
		ActiveAt: ms(a.ActiveAt), FiredAt: ms(a.FiredAt), ResolvedAt: ms(a.ResolvedAt), Assignee: a.Assignee, Occurrence: a.Occurrence}
	if a.Ack != nil {
		c.AckedBy = a.Ack.By
	}
	return c
}

// The alert store of the API: reads go to the engine; acknowledgements and
// assignments are alert changes too, so they are written to the topic.

// Alerts returns the current alerts.
func (s *Service) Alerts(f engine.Filter) []engine.Alert { return s.ev.eng.Alerts(f) }

// Get returns one alert.
func (s *Service) Get(fp string) (engine.Alert, bool) { return s.ev.eng.Get(fp) }

// Ack acknowledges an alert.
func (s *Service) Ack(fp, user, comment string, at time.Time) (engine.Notification, error) {
	s.relMu.RLock()
	defer s.relMu.RUnlock()
	n, err := s.ev.eng.Ack(fp, user, comment, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Assign gives an alert an assignee.
func (s *Service) Assign(fp, user string, at time.Time) (engine.Notification, error) {
	s.relMu.RLock()
	defer s.relMu.RUnlock()
	n, err := s.ev.eng.Assign(fp, user, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Silence adds or replaces a silence, here at once and, through
// polis.silences.v1, on every instance.
func (s *Service) Silence(si engine.Silence) error {
	if err := s.ev.eng.Silence(si); err != nil {
		return err
	}
	if s.persists() {
		b, err := encodeSilence(si)
		if err != nil {
			return fmt.Errorf("cannot encode silence %q: %w", si.ID, err)
		}
		s.out.silence(si.ID, b)
	}
	return nil
}

// Unsilence removes a silence, here and on every instance.
func (s *Service) Unsilence(id string) error {
	if err := s.ev.eng.Unsilence(id); err != nil {
		return err
	}
	if s.persists() {
		s.out.silence(id, nil)
	}
	return nil
}

// Silences lists the silences.
func (s *Service) Silences() []engine.Silence { return s.ev.eng.Silences() }
