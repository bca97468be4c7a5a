// Package rules runs the alert rules on the twin: it dispatches each point
// the twin applies to the rules whose scope and metrics match, evaluates
// them with the asset's and site's twins and recent history, keeps the
// alerts' lifecycle (rules/engine) and writes every alert change to
// polis.alerts.v1. Rules come from a watched directory and from the API,
// whose versions live on polis.rules.v1.
package rules

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Producer is the part of *kgo.Client the service uses.
type Producer interface {
	Produce(ctx context.Context, r *kgo.Record, promise func(*kgo.Record, error))
}

// Options configure a Service.
type Options struct {
	Dir      string // rules directory (*.yaml); empty: API rules only
	Registry *registry.Registry
	Producer Producer
	// Brokers are followed for the API's rules (polis.rules.v1); empty:
	// the rules are the directory's and the API cannot change them.
	Brokers []string
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

	evals   prometheus.CounterFunc
	changes *prometheus.CounterVec
	reloads *prometheus.CounterVec
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
			Help: "Reloads of the rules directory, by result (ok, error: the previous rules stay)."}, []string{"result"})}
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
		o.Registerer.MustRegister(s.evals, s.changes, s.reloads)
	}
	s.log.Info("rules loaded", "dir", o.Dir, "rules", len(files))
	return s, nil
}

// Evaluator is the service's evaluator.
func (s *Service) Evaluator() *Evaluator { return s.ev }

// Run follows the API's rules and watches the directory until ctx ends.
// ready is closed once the API's rules present at start are loaded.
func (s *Service) Run(ctx context.Context, ready chan<- struct{}) error {
	errc := make(chan error, 2)
	n := 0
	if s.o.Watch && s.o.Dir != "" {
		n++
		go func() { errc <- s.watch(ctx) }()
	}
	if len(s.o.Brokers) > 0 {
		n++
		go func() { errc <- s.follow(ctx, ready) }()
	} else {
		close(ready)
	}
	var first error
	for range n {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// apply recomputes the rule list after a change of files or API rules.
func (s *Service) apply() error {
	return s.ev.SetRules(s.set.merged())
}

// Applied is the twin's hook: it runs the rules a telemetry record can
// change, and the clock rules of an asset whose connection status or
// reported properties changed.
// It is called with the twin's partition lock held, so it only evaluates
// and hands alerts on.
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
	ns, err := s.ev.Tick(now)
	if err != nil {
		s.log.Debug("clock evaluation", "err", err)
	}
	s.emit(ns)
}

// emit writes every alert change to polis.alerts.v1, keyed by site; the
// topic is the alert history (sinks and storage read it).
func (s *Service) emit(ns []engine.Notification) {
	for _, n := range ns {
		s.changes.WithLabelValues(string(n.Kind), fmt.Sprint(n.Deliver)).Inc()
		b, err := record.MarshalAlert(AlertChange(n))
		if err != nil {
			s.log.Warn("cannot encode alert notification", "err", err)
			continue
		}
		if n.Deliver {
			s.log.Info("alert", "kind", n.Kind, "rule", n.Alert.RuleID, "site", n.Alert.Site, "asset", n.Alert.Asset, "summary", n.Alert.Summary)
		}
		s.o.Producer.Produce(context.Background(), &kgo.Record{Topic: kafka.TopicAlerts, Key: []byte(n.Alert.Site), Value: b},
			func(_ *kgo.Record, err error) {
				if err != nil {
					s.log.Warn("cannot produce alert", "err", err)
				}
			})
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
	n, err := s.ev.eng.Ack(fp, user, comment, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Assign gives an alert an assignee.
func (s *Service) Assign(fp, user string, at time.Time) (engine.Notification, error) {
	n, err := s.ev.eng.Assign(fp, user, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Silence adds or replaces a silence.
func (s *Service) Silence(si engine.Silence) error { return s.ev.eng.Silence(si) }

// Unsilence removes a silence.
func (s *Service) Unsilence(id string) error { return s.ev.eng.Unsilence(id) }

// Silences lists the silences.
func (s *Service) Silences() []engine.Silence { return s.ev.eng.Silences() }
