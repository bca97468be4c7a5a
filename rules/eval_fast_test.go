package rules

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
)

// pointReference is Point as it was before dispatch plans and thresholds:
// the candidates of the index, matched against the scope one by one, and
// the engine looking each rule up by id. The differential test holds
// Point to it.
func (e *Evaluator) pointReference(tw Twin, r *record.Record) ([]engine.Notification, error) {
	if r.Kind != record.KindTelemetry || len(r.Points) == 0 {
		return nil, nil
	}
	t := e.track(r.Site, r.Asset)
	if t == nil {
		return nil, nil
	}
	x := e.idx.Load()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.twin = tw
	for _, p := range r.Points {
		ts := time.UnixMilli(p.TS)
		t.ring.Add(p.Metric, ts, p.Value)
		if x.province[p.Metric] {
			e.prov.add(provKey{t.site.Province, t.a.Type, p.Metric}, t.a.ID+"@"+t.site.ID, p.Value, ts)
		}
	}
	var (
		out   []engine.Notification
		errs  []error
		env   *dsl.Env
		scope = dsl.SiteEnv{ID: t.site.ID, Region: t.site.Region, Province: t.site.Province, Kind: string(t.site.Kind), Labels: t.site.Labels}
	)
	for _, p := range r.Points {
		var ids []string
		var rules []*dsl.Rule
		for _, rule := range x.candidates(nil, t.a.Type, p.Metric) {
			if rule.Scope.Match(t.a.Type, &scope) {
				ids, rules = append(ids, rule.ID), append(rules, rule)
			}
		}
		if len(ids) == 0 {
			continue
		}
		ts := time.UnixMilli(p.TS)
		if env == nil {
			env = e.env(t, tw, ts, rules)
		} else if len(x.province) > 0 {
			e.fillProvince(env, t, ts, rules)
		}
		env.Metric, env.Value, env.TS = p.Metric, p.Value, ts
		ns, err := e.eng.Observe(engine.Eval{Site: r.Site, Asset: r.Asset, AssetType: t.a.Type, Metric: p.Metric,
			Value: p.Value, TS: ts, Payload: env}, ids...)
		if err != nil {
			errs = append(errs, err)
		}
		out = append(out, ns...)
	}
	return out, joinErrs(errs)
}

// diffFleet has two regions, site labels, and a type ("locker") that no
// generated rule names.
func diffFleet(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New()
	types := []string{"atm", "totem", "env", "pv", "locker"}
	for i := range 6 {
		s := &registry.Site{ID: fmt.Sprintf("PO-00%d001-1", i), Kind: registry.KindPostOffice,
			Province: []string{"TO", "VC", "RM"}[i%3], Region: []string{"Piemonte", "Lazio"}[i%2]}
		if i%3 == 0 {
			s.Labels = map[string]string{"tier": "pilot"}
		}
		for j, typ := range types {
			if (i+j)%4 != 3 {
				s.Assets = append(s.Assets, &registry.Asset{ID: fmt.Sprintf("%s-%d", typ, j), Type: typ})
			}
		}
		if err := reg.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

var diffMetrics = []string{"temp_c", "power_kw", "cash_eur", "paper_pct", "co2_ppm"}

// diffRules writes n random rules: mostly thresholds of every operand,
// operator and side, some general expressions, every kind of scope, with
// for, clear, keep_firing_for and no_data_after now and then.
func diffRules(rng *rand.Rand, n int) string {
	pick := func(list ...string) string { return list[rng.IntN(len(list))] }
	num := func() string {
		if rng.IntN(2) == 0 {
			return fmt.Sprint(rng.IntN(120) - 10)
		}
		return fmt.Sprintf("%.1f", rng.Float64()*120-10)
	}
	var sb strings.Builder
	sb.WriteString("groups:\n  - name: diff\n    rules:\n")
	for i := range n {
		m := pick(diffMetrics...)
		var expr string
		switch rng.IntN(8) {
		case 0, 1, 2, 3, 4:
			operand := pick("value", fmt.Sprintf("last(%q)", m), "asset.metrics."+m)
			op := pick("<", "<=", ">", ">=", "==", "!=")
			if rng.IntN(4) == 0 {
				expr = num() + " " + op + " " + operand
			} else {
				expr = operand + " " + op + " " + num()
			}
		case 5:
			expr = fmt.Sprintf("metric == %q && value > %s", m, num())
		case 6:
			expr = fmt.Sprintf("avg(%q, \"5m\") > %s", m, num())
		default:
			expr = fmt.Sprintf("value > %s && site.region == %q", num(), pick("Lazio", "Piemonte"))
		}
		fmt.Fprintf(&sb, "      - id: r%d\n        expr: '%s'\n        severity: info\n", i, expr)
		switch rng.IntN(7) {
		case 0, 1:
			fmt.Fprintf(&sb, "        scope: {asset_types: [%s]}\n", pick("atm", "totem", "env", "pv"))
		case 2:
			fmt.Fprintf(&sb, "        scope: {asset_types: [atm, env]}\n")
		case 3:
			fmt.Fprintf(&sb, "        scope: {regions: [%s]}\n", pick("Lazio", "Piemonte"))
		case 4:
			fmt.Fprintf(&sb, "        scope: {asset_types: [%s], site_labels: {tier: pilot}}\n", pick("atm", "env"))
		case 5:
			fmt.Fprintf(&sb, "        scope: {sites: [PO-001001-1, PO-004001-1]}\n")
		}
		if rng.IntN(4) == 0 {
			fmt.Fprintf(&sb, "        for: %dm\n", 1+rng.IntN(3))
		}
		if rng.IntN(5) == 0 {
			fmt.Fprintf(&sb, "        clear: 'value < %s'\n", num())
		}
		if rng.IntN(6) == 0 {
			sb.WriteString("        keep_firing_for: 2m\n")
		}
		if rng.IntN(10) == 0 {
			sb.WriteString("        no_data_after: 10m\n")
		}
	}
	return sb.String()
}

// TestPoint_SameAsReference runs random records through two evaluators,
// one on the fast path (dispatch plans, engine handles, thresholds) and
// one on the reference path (pointReference over VM-only rules), and
// wants the same notifications and errors at every step, ticks and rule
// reloads included.
func TestPoint_SameAsReference(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, 7))
			src := diffRules(rng, 80)
			fast, err := dsl.Load("diff.yaml", []byte(src), dsl.Options{})
			if err != nil {
				t.Fatal(err)
			}
			slow, err := dsl.Load("diff.yaml", []byte(src), dsl.Options{VMOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			reg := diffFleet(t)
			o := engine.Options{MaxLateness: time.Minute, FlapWindow: 10 * time.Minute, FlapThreshold: 4}
			evFast, err := NewEvaluator(reg, fast.Rules(), o, 0)
			if err != nil {
				t.Fatal(err)
			}
			evRef, err := NewEvaluator(reg, slow.Rules(), o, 0)
			if err != nil {
				t.Fatal(err)
			}
			stFast, stRef := twinOf(reg), twinOf(reg)
			var assets [][2]string
			for _, s := range reg.Sites() {
				for _, a := range s.Assets {
					assets = append(assets, [2]string{s.ID, a.ID})
				}
			}
			now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
			compare := func(step string, got, want []engine.Notification, gotErr, wantErr error) {
				t.Helper()
				got, want = comparable(got), comparable(want)
				if strings.HasPrefix(step, "tick") { // a tick walks maps: its order is not defined
					sortNotifications(got)
					sortNotifications(want)
				}
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) {
					t.Fatalf("%s: error %v; reference %v", step, gotErr, wantErr)
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("%s: notifications\n%s\nreference\n%s", step, kinds(got), kinds(want))
				}
			}
			fired, evaluated := 0, 0
			for i := range 4000 {
				now = now.Add(time.Duration(rng.IntN(20)) * time.Second)
				a := assets[rng.IntN(len(assets))]
				mk := func() *record.Record {
					r := &record.Record{Kind: record.KindTelemetry, Site: a[0], Asset: a[1], Received: now.UnixMilli()}
					for range 1 + rng.IntN(3) {
						ts := now
						if rng.IntN(20) == 0 {
							ts = now.Add(-2 * time.Minute) // late
						}
						r.Points = append(r.Points, record.Point{Metric: diffMetrics[rng.IntN(len(diffMetrics))],
							TS: ts.UnixMilli(), Value: float64(rng.IntN(1200)-100) / 10})
					}
					return r
				}
				r := mk()
				r2 := *r
				r2.Points = append([]record.Point(nil), r.Points...)
				stFast.Apply(r)
				stRef.Apply(&r2)
				got, gotErr := evFast.Point(stFast, r)
				want, wantErr := evRef.pointReference(stRef, &r2)
				compare(fmt.Sprintf("record %d", i), got, want, gotErr, wantErr)
				for _, n := range got {
					if n.Kind == engine.KindFired {
						fired++
					}
				}
				evaluated++
				switch rng.IntN(200) {
				case 0:
					now = now.Add(15 * time.Minute) // long enough for NoData
					got, gotErr := evFast.Tick(now)
					want, wantErr := evRef.Tick(now)
					compare(fmt.Sprintf("tick after record %d", i), got, want, gotErr, wantErr)
				case 1: // reload with a rule less: handles are rebuilt, the rest keep state
					k := rng.IntN(len(fast.Rules()))
					if err := evFast.SetRules(without(fast.Rules(), k)); err != nil {
						t.Fatal(err)
					}
					if err := evRef.SetRules(without(slow.Rules(), k)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if fired < 50 {
				t.Fatalf("only %d alerts fired over %d records: the test does not exercise the alerts", fired, evaluated)
			}
		})
	}
}

// comparable copies ns without the engine-local revisions of their
// states (a tick walks maps, so revisions differ between two engines).
func comparable(ns []engine.Notification) []engine.Notification {
	out := make([]engine.Notification, len(ns))
	for i, n := range ns {
		if n.State != nil {
			sv := *n.State
			sv.Rev = 0
			n.State = &sv
		}
		out[i] = n
	}
	return out
}

func sortNotifications(ns []engine.Notification) {
	slices.SortStableFunc(ns, func(a, b engine.Notification) int {
		return cmp.Or(strings.Compare(a.Alert.Fingerprint, b.Alert.Fingerprint), strings.Compare(string(a.Kind), string(b.Kind)))
	})
}

func without(rules []*dsl.Rule, k int) []*dsl.Rule {
	return append(append([]*dsl.Rule(nil), rules[:k]...), rules[k+1:]...)
}

// TestPlan_SameCandidates: for every (type, metric), known or not, the
// plan lists the rules candidates() does, in its order, with the engine's
// handles for them.
func TestPlan_SameCandidates(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	f, err := dsl.Load("diff.yaml", []byte(diffRules(rng, 60)), dsl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := NewEvaluator(diffFleet(t), f.Rules(), engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := ev.idx.Load()
	if x.set != ev.eng.RuleSet() {
		t.Fatal("plans do not hold the engine's current rules")
	}
	for _, typ := range []string{"atm", "totem", "env", "pv", "locker", "unknown"} {
		for _, m := range append(diffMetrics, "", "unknown_metric") {
			want := x.candidates(nil, typ, m)
			p := x.plan(typ, m)
			if !reflect.DeepEqual(p.rules, want) && !(len(want) == 0 && len(p.rules) == 0) {
				t.Fatalf("%s %s: plan %v; candidates %v", typ, m, ids(p.rules), ids(want))
			}
			for i, r := range p.rules {
				if h, _ := x.set.Rule(r.ID); p.eng[i] != h || h == nil {
					t.Fatalf("%s %s: rule %s has a stale engine handle", typ, m, r.ID)
				}
				s := &r.Scope
				if p.bySite[i] != (len(s.Regions)+len(s.Sites)+len(s.SiteLabels) > 0) {
					t.Fatalf("%s %s: rule %s site condition flag wrong", typ, m, r.ID)
				}
			}
		}
	}
}

func ids(rules []*dsl.Rule) []string {
	var s []string
	for _, r := range rules {
		s = append(s, r.ID)
	}
	return s
}

// A record evaluated while its index holds handles of rules the engine
// no longer has (a SetRules between the index and the engine) is
// evaluated with the engine's rules by id, as Observe does.
func TestPoint_StaleHandles(t *testing.T) {
	reg := testFleet(t)
	old := loadRules(t, `
      - {id: hot, scope: {asset_types: [env]}, expr: 'value > 30', severity: info}
      - {id: gone, scope: {asset_types: [env]}, expr: 'value > 10', severity: info}
`)
	ev, err := NewEvaluator(reg, old, engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	x := ev.idx.Load()
	// The engine moves on; the evaluator's index does not (yet).
	if err := ev.eng.SetRules([]engine.Rule{engineRule(loadRules(t, `
      - {id: hot, scope: {asset_types: [env]}, expr: 'value > 50', severity: info}
`)[0])}); err != nil {
		t.Fatal(err)
	}
	if ev.idx.Load() != x {
		t.Fatal("index changed")
	}
	st := twinOf(reg)
	now := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	r := &record.Record{Kind: record.KindTelemetry, Site: "PO-001001-1", Asset: "env-1", Received: now.UnixMilli(),
		Points: []record.Point{{Metric: "temp_c", TS: now.UnixMilli(), Value: 40}}}
	st.Apply(r)
	ns, err := ev.Point(st, r)
	if err == nil || !strings.Contains(err.Error(), `unknown rule "gone"`) {
		t.Fatalf("error %v; want unknown rule gone", err)
	}
	if len(ns) != 0 {
		t.Fatalf("40 fired %s under the engine's value > 50", kinds(ns))
	}
}
