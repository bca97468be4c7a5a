// Package rules runs the alert rules on the twin: it dispatches each point
// the twin applies to the rules whose scope matches, evaluates them with the
// asset's and site's twins and recent history, keeps the alerts' lifecycle
// (rules/engine) and writes every alert change to polis.alerts.v1.
package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/bus"
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
	Dir      string // rules directory (*.yaml)
	Registry *registry.Registry
	Producer Producer
	Engine   engine.Options
	// RingSize is how many recent points per asset the history functions see.
	RingSize   int
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// Service evaluates rules on twin changes.
type Service struct {
	o      Options
	log    *slog.Logger
	eng    *engine.Engine
	rules  []*dsl.Rule
	byType map[string][]*dsl.Rule // asset type -> rules in scope ("" = any type)

	mu    sync.Mutex
	rings map[string]*dsl.Ring // site/asset -> recent points

	evals   prometheus.Counter
	changes *prometheus.CounterVec
}

// New loads and compiles the rules directory.
func New(o Options) (*Service, error) {
	if o.Registry == nil || o.Producer == nil {
		return nil, fmt.Errorf("cannot create rules service: Registry and Producer are required")
	}
	if o.RingSize <= 0 {
		o.RingSize = 256
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	files, err := dsl.LoadDir(o.Dir, dsl.Options{})
	if err != nil {
		return nil, fmt.Errorf("cannot load rules from %s: %w", o.Dir, err)
	}
	s := &Service{o: o, log: o.Logger.With("component", "rules"), eng: engine.New(o.Engine),
		byType: map[string][]*dsl.Rule{}, rings: map[string]*dsl.Ring{},
		evals: prometheus.NewCounter(prometheus.CounterOpts{Name: "polis_rules_evaluations_total",
			Help: "Points evaluated against the rules in their scope."}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polis_rules_alert_changes_total",
			Help: "Alert state changes, by kind and whether they were delivered to sinks."}, []string{"kind", "delivered"})}
	if o.Registerer != nil {
		o.Registerer.MustRegister(s.evals, s.changes)
	}
	var ers []engine.Rule
	for _, f := range files {
		for _, r := range f.Rules() {
			s.rules = append(s.rules, r)
			if len(r.Scope.AssetTypes) == 0 {
				s.byType[""] = append(s.byType[""], r)
			}
			for _, t := range r.Scope.AssetTypes {
				s.byType[t] = append(s.byType[t], r)
			}
			ers = append(ers, engineRule(r))
		}
	}
	if err := s.eng.SetRules(ers); err != nil {
		return nil, fmt.Errorf("cannot load rules: %w", err)
	}
	s.log.Info("rules loaded", "dir", o.Dir, "rules", len(s.rules))
	return s, nil
}

func engineRule(r *dsl.Rule) engine.Rule {
	er := engine.Rule{ID: r.ID, Severity: r.Severity, Labels: r.Labels, For: r.For, KeepFiringFor: r.KeepFiringFor,
		Cond: func(e engine.Eval) (bool, error) { return r.Cond.Eval(e.Payload.(*dsl.Env)) },
		Summary: func(e engine.Eval) string {
			s, err := r.Summary.Render(e.Payload.(*dsl.Env))
			if err != nil {
				return r.ID + ": " + err.Error()
			}
			return s
		}}
	if r.Clear != nil {
		er.Clear = func(e engine.Eval) (bool, error) { return r.Clear.Eval(e.Payload.(*dsl.Env)) }
	}
	return er
}

// Rules returns how many rules are loaded.
func (s *Service) Rules() int { return len(s.rules) }

// Alerts returns the current alerts.
func (s *Service) Alerts(f engine.Filter) []engine.Alert { return s.eng.Alerts(f) }

// Applied is the twin's hook: it runs the rules in scope for every point of
// a telemetry record the twin accepted as the newest. It is called with the
// twin's partition lock held, so it only evaluates and hands alerts on.
func (s *Service) Applied(st *state.Store, r *record.Record, c state.Change) {
	if r.Kind != record.KindTelemetry || !c.Known || len(r.Points) == 0 {
		return
	}
	a, ok := s.o.Registry.Asset(r.Site, r.Asset)
	site, ok2 := s.o.Registry.Site(r.Site)
	if !ok || !ok2 {
		return
	}
	ring := s.ring(r.Site + "/" + r.Asset)
	for _, p := range r.Points {
		ring.Add(p.Metric, time.UnixMilli(p.TS), p.Value)
	}
	candidates := append(append([]*dsl.Rule(nil), s.byType[""]...), s.byType[a.Type]...)
	if len(candidates) == 0 {
		return
	}
	now := time.UnixMilli(r.Points[0].TS)
	av, _ := st.Asset(r.Site, r.Asset, now)
	sv, _ := st.Site(r.Site, now)
	env := &dsl.Env{Asset: assetEnv(a, av), Site: siteEnv(site, sv, now), History: ring}
	for _, p := range r.Points {
		env.Metric, env.Value, env.TS = p.Metric, p.Value, time.UnixMilli(p.TS)
		var ids []string
		for _, rule := range candidates {
			if rule.Scope.Match(a.Type, &env.Site) {
				ids = append(ids, rule.ID)
			}
		}
		if len(ids) == 0 {
			continue
		}
		s.evals.Inc()
		ns, err := s.eng.Observe(engine.Eval{Site: r.Site, Asset: r.Asset, AssetType: a.Type, Metric: p.Metric,
			Value: p.Value, TS: env.TS, Payload: env}, ids...)
		if err != nil {
			s.log.Debug("rule evaluation", "site", r.Site, "asset", r.Asset, "err", err)
		}
		s.emit(ns)
	}
}

// Tick advances time-driven alert changes (for elapsing, NoData, reminders).
func (s *Service) Tick(now time.Time) { s.emit(s.eng.Tick(now)) }

func (s *Service) ring(key string) *dsl.Ring {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.rings[key]
	if !ok {
		r = dsl.NewRing(s.o.RingSize)
		s.rings[key] = r
	}
	return r
}

// emit writes every alert change to polis.alerts.v1, keyed by site; the
// topic is the alert history (sinks and storage read it).
func (s *Service) emit(ns []engine.Notification) {
	for _, n := range ns {
		s.changes.WithLabelValues(string(n.Kind), fmt.Sprint(n.Deliver)).Inc()
		b, err := record.MarshalAlert(alertChange(n))
		if err != nil {
			s.log.Warn("cannot encode alert notification", "err", err)
			continue
		}
		if n.Deliver {
			s.log.Info("alert", "kind", n.Kind, "rule", n.Alert.RuleID, "site", n.Alert.Site, "asset", n.Alert.Asset, "summary", n.Alert.Summary)
		}
		s.o.Producer.Produce(context.Background(), &kgo.Record{Topic: bus.TopicAlerts, Key: []byte(n.Alert.Site), Value: b},
			func(_ *kgo.Record, err error) {
				if err != nil {
					s.log.Warn("cannot produce alert", "err", err)
				}
			})
	}
}

func assetEnv(a *registry.Asset, v state.AssetView) dsl.AssetEnv {
	e := dsl.AssetEnv{ID: a.ID, Type: a.Type, Status: v.Status.String(), Metrics: map[string]float64{}, Props: map[string]any{}}
	for name, m := range v.Metrics {
		e.Metrics[name] = m.Value
	}
	for name, p := range v.Reported {
		var x any
		if json.Unmarshal(p.Value, &x) == nil {
			e.Props[name] = x
		}
	}
	return e
}

func siteEnv(s *registry.Site, v state.SiteView, now time.Time) dsl.SiteEnv {
	e := dsl.SiteEnv{ID: s.ID, Region: s.Region, Province: s.Province, Kind: string(s.Kind)}
	if s.OpeningHours != nil {
		e.OpenNow = s.OpeningHours.OpenAt(now)
	}
	fillAggregates(&e, v)
	return e
}

func ms(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// alertChange is the wire form of a notification on polis.alerts.v1.
func alertChange(n engine.Notification) *record.AlertChange {
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

// Get returns one alert.
func (s *Service) Get(fp string) (engine.Alert, bool) { return s.eng.Get(fp) }

// Ack acknowledges an alert.
func (s *Service) Ack(fp, user, comment string, at time.Time) (engine.Notification, error) {
	n, err := s.eng.Ack(fp, user, comment, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Assign gives an alert an assignee.
func (s *Service) Assign(fp, user string, at time.Time) (engine.Notification, error) {
	n, err := s.eng.Assign(fp, user, at)
	if err == nil {
		s.emit([]engine.Notification{n})
	}
	return n, err
}

// Silence adds or replaces a silence.
func (s *Service) Silence(si engine.Silence) error { return s.eng.Silence(si) }

// Unsilence removes a silence.
func (s *Service) Unsilence(id string) error { return s.eng.Unsilence(id) }

// Silences lists the silences.
func (s *Service) Silences() []engine.Silence { return s.eng.Silences() }
