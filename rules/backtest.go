package rules

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Scanner replays stored telemetry in event-time order; storage.Scan over
// ClickHouse is the real one.
type Scanner func(ctx context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error)

// BacktestRequest runs rules over a time range of history.
type BacktestRequest struct {
	Rules    []*dsl.Rule
	From, To time.Time
	Sites    []string      // empty: every site
	Step     time.Duration // clock evaluations and ticks; default 1m
	// MaxPoints bounds the replay; the result says when it was cut.
	MaxPoints int
	// Progress, if set, is called now and then with the points read.
	Progress func(points int, at time.Time)
}

// BacktestAlert is one occurrence of an alert in the replay.
type BacktestAlert struct {
	Rule       string    `json:"rule"`
	Site       string    `json:"site"`
	Asset      string    `json:"asset"`
	Severity   string    `json:"severity"`
	State      string    `json:"state"` // firing or nodata: the state it opened in
	FiredAt    time.Time `json:"fired_at"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"` // zero: still open at the end of the range
	Summary    string    `json:"summary"`
}

// BacktestResult is what the replay found.
type BacktestResult struct {
	From        time.Time       `json:"from"`
	To          time.Time       `json:"to"`
	Points      int             `json:"points"`
	Evaluations uint64          `json:"evaluations"`
	Truncated   bool            `json:"truncated"` // MaxPoints reached: the range was not replayed to its end
	Alerts      []BacktestAlert `json:"alerts"`
	// PerRule counts occurrences by rule.
	PerRule map[string]int `json:"per_rule"`
	TookMS  int64          `json:"took_ms"`
}

// maxBacktestAlerts bounds the answer; per_rule still counts them all.
const maxBacktestAlerts = 10000

// Backtest replays history through a fresh evaluator and twin: it says when
// the rules would have fired, as if they had been running then. Alerts are
// neither stored nor sent.
func Backtest(ctx context.Context, reg *registry.Registry, scan Scanner, req BacktestRequest) (BacktestResult, error) {
	began := time.Now()
	switch {
	case len(req.Rules) == 0:
		return BacktestResult{}, errors.New("cannot backtest: no rules")
	case !req.From.Before(req.To):
		return BacktestResult{}, fmt.Errorf("cannot backtest: from (%s) must be before to (%s)", req.From.Format(time.RFC3339), req.To.Format(time.RFC3339))
	}
	if req.Step <= 0 {
		req.Step = time.Minute
	}
	if req.MaxPoints <= 0 {
		req.MaxPoints = storage.DefaultScanLimit
	}
	ev, err := NewEvaluator(reg, req.Rules, engine.Options{}, 0)
	if err != nil {
		return BacktestResult{}, err
	}
	// The twin of the sites in question, empty at From: rules reading the
	// twin see what the replay has applied so far.
	st := state.New(state.Options{})
	sites := map[string]bool{}
	for _, s := range req.Sites {
		sites[s] = true
	}
	for _, s := range reg.Sites() {
		if len(sites) == 0 || sites[s.ID] {
			for _, a := range s.Assets {
				st.AddAsset(s.ID, a.ID, a.Type)
			}
		}
	}
	q := storage.ScanQuery{From: req.From, To: req.To, Sites: req.Sites, Limit: req.MaxPoints + 1}
	q.AssetTypes, q.Metrics = scanFilter(req.Rules)

	res := BacktestResult{From: req.From, To: req.To, Alerts: []BacktestAlert{}, PerRule: map[string]int{}}
	open := map[string]int{} // fingerprint -> index in res.Alerts, or -1 past the cap
	collect := func(ns []engine.Notification) {
		for _, n := range ns {
			a := n.Alert
			switch n.Kind {
			case engine.KindFired, engine.KindNoData:
				if _, ok := open[a.Fingerprint]; ok {
					continue
				}
				res.PerRule[a.RuleID]++
				if len(res.Alerts) >= maxBacktestAlerts {
					open[a.Fingerprint] = -1
					continue
				}
				open[a.Fingerprint] = len(res.Alerts)
				res.Alerts = append(res.Alerts, BacktestAlert{Rule: a.RuleID, Site: a.Site, Asset: a.Asset, Severity: a.Severity,
					State: a.State.String(), FiredAt: n.At, Summary: a.Summary})
			case engine.KindResolved:
				if i, ok := open[a.Fingerprint]; ok {
					if i >= 0 {
						res.Alerts[i].ResolvedAt = n.At
					}
					delete(open, a.Fingerprint)
				}
			}
		}
	}
	next := req.From.Add(req.Step)
	tick := func(upTo time.Time) {
		for !next.After(upTo) && next.Before(req.To) {
			ns, _ := ev.Tick(next)
			collect(ns)
			next = next.Add(req.Step)
		}
	}
	rec := &record.Record{Kind: record.KindTelemetry, Points: make([]record.Point, 1)}
	n, err := scan(ctx, q, func(p storage.Point) error {
		if res.Points == req.MaxPoints {
			res.Truncated = true
			return errStop
		}
		res.Points++
		tick(p.TS)
		rec.Site, rec.Asset, rec.Received = p.Site, p.Asset, p.TS.UnixMilli()
		rec.Points[0] = record.Point{Metric: p.Metric, TS: p.TS.UnixMilli(), Value: p.Value}
		if !st.Apply(rec).Known {
			return nil
		}
		ns, _ := ev.Point(st, rec)
		collect(ns)
		if req.Progress != nil && res.Points%100000 == 0 {
			req.Progress(res.Points, p.TS)
		}
		return ctx.Err()
	})
	_ = n
	if err != nil && !errors.Is(err, errStop) {
		return res, fmt.Errorf("cannot backtest: %w", err)
	}
	tick(req.To)
	res.Evaluations = ev.Evaluations()
	sort.SliceStable(res.Alerts, func(i, j int) bool { return res.Alerts[i].FiredAt.Before(res.Alerts[j].FiredAt) })
	res.TookMS = time.Since(began).Milliseconds()
	return res, nil
}

var errStop = errors.New("stop")

// scanFilter narrows the scan to what the rules can read: their asset
// types and metrics, unless one of them reads any.
func scanFilter(rules []*dsl.Rule) (types, metrics []string) {
	anyType, anyMetric := false, false
	for _, r := range rules {
		if len(r.Scope.AssetTypes) == 0 {
			anyType = true
		}
		types = append(types, r.Scope.AssetTypes...)
		if r.Uses.AnyMetric || len(r.Uses.Metrics) == 0 || r.Uses.Timer || r.NoDataAfter > 0 {
			anyMetric = true // a clock rule must see every point to know when the asset spoke
		}
		metrics = append(metrics, r.Uses.Metrics...)
	}
	if anyType {
		types = nil
	}
	if anyMetric {
		metrics = nil
	}
	slices.Sort(types)
	slices.Sort(metrics)
	return slices.Compact(types), slices.Compact(metrics)
}

// BacktestSpec is a backtest as the API and the CLI ask for it: rules by
// id among those running, or a rule's YAML text not saved yet.
type BacktestSpec struct {
	RuleIDs  []string
	Source   []byte // one rule, as PUT /api/v1/rules/{id} takes it
	From, To time.Time
	Sites    []string
	Step     time.Duration
}

// ErrNoHistory is returned when the service has no ClickHouse to replay.
var ErrNoHistory = errors.New("backtests need the ClickHouse history, which this instance does not have")

// Backtest runs a BacktestSpec over the service's history. A Source that
// does not compile gives a dsl.ErrorList; an unknown id gives ErrNotFound.
func (s *Service) Backtest(ctx context.Context, spec BacktestSpec) (BacktestResult, error) {
	if s.o.Scanner == nil {
		return BacktestResult{}, ErrNoHistory
	}
	var rules []*dsl.Rule
	for _, id := range spec.RuleIDs {
		r, ok := s.ev.Rule(id)
		if !ok {
			return BacktestResult{}, fmt.Errorf("%w: %q", ErrNotFound, id)
		}
		rules = append(rules, r)
	}
	if len(spec.Source) > 0 {
		r, err := s.Check("", spec.Source)
		if err != nil {
			return BacktestResult{}, err
		}
		rules = append(rules, r)
	}
	return Backtest(ctx, s.o.Registry, s.o.Scanner, BacktestRequest{Rules: rules, From: spec.From, To: spec.To,
		Sites: spec.Sites, Step: spec.Step, MaxPoints: s.o.BacktestMaxPoints})
}
