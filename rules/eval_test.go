package rules

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/dsl"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

func loadRules(t *testing.T, src string) []*dsl.Rule {
	t.Helper()
	f, err := dsl.Load("t.yaml", []byte("groups:\n  - name: g\n    rules:\n"+src), dsl.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f.Rules()
}

func TestIndex_Candidates(t *testing.T) {
	rules := loadRules(t, `
      - {id: cash, scope: {asset_types: [atm]}, expr: 'last("cassette1_pct") < 10', severity: info}
      - {id: avail, scope: {asset_types: [atm, totem]}, expr: 'last("available") == 0 || last("online") == 0', severity: info}
      - {id: any_value, scope: {asset_types: [atm]}, expr: 'value > 1e9', severity: info}
      - {id: status, scope: {asset_types: [totem]}, expr: 'asset.status == "offline"', severity: info}
      - {id: silent, expr: 'silent_for() > 60', severity: info}
      - {id: hot, expr: 'metric == "temp_c" && value > 30', severity: info}
      - {id: nodata, scope: {asset_types: [env]}, expr: 'last("co2_ppm") > 2000', no_data_after: 1h, severity: info}
`)
	x := newIndex(rules)
	for _, tc := range []struct {
		typ, metric string
		want        []string
	}{
		{"atm", "cassette1_pct", []string{"any_value", "cash", "silent"}},
		{"atm", "available", []string{"any_value", "avail", "silent"}},
		{"atm", "cash_eur", []string{"any_value", "silent"}},
		{"totem", "online", []string{"avail", "silent", "status"}},
		{"totem", "paper_pct", []string{"silent", "status"}},
		{"env", "temp_c", []string{"hot", "nodata", "silent"}},
		{"env", "humidity_pct", []string{"nodata", "silent"}},
		{"pv", "power_kw", []string{"silent"}},
	} {
		var got []string
		for _, r := range x.candidates(nil, tc.typ, tc.metric) {
			got = append(got, r.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s %s: candidates %v, want %v", tc.typ, tc.metric, got, tc.want)
		}
	}
	var clock []string
	for _, r := range append(x.timer["totem"], x.timer[""]...) {
		clock = append(clock, r.ID)
	}
	if !slices.Equal(clock, []string{"status", "silent"}) {
		t.Errorf("clock rules of a totem: %v", clock)
	}
}

// testFleet is two post offices in one province with a PV plant each and an
// env sensor, and one elsewhere.
func testFleet(t *testing.T) *registry.Registry {
	t.Helper()
	reg := registry.New()
	for _, s := range []*registry.Site{
		{ID: "PO-001001-1", Kind: registry.KindPostOffice, Province: "TO", Region: "Piemonte",
			Assets: []*registry.Asset{{ID: "pv-1", Type: "pv"}, {ID: "env-1", Type: "env"}}},
		{ID: "PO-001002-1", Kind: registry.KindPostOffice, Province: "TO", Region: "Piemonte",
			Assets: []*registry.Asset{{ID: "pv-1", Type: "pv"}}},
		{ID: "PO-002001-1", Kind: registry.KindPostOffice, Province: "VC", Region: "Piemonte",
			Assets: []*registry.Asset{{ID: "pv-1", Type: "pv"}}},
	} {
		if err := reg.Add(s); err != nil {
			t.Fatal(err)
		}
	}
	return reg
}

func twinOf(reg *registry.Registry) *state.Store {
	st := state.New(state.Options{})
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			st.AddAsset(s.ID, a.ID, a.Type)
		}
	}
	return st
}

func point(st *state.Store, ev *Evaluator, site, asset, metric string, v float64, at time.Time) []engine.Notification {
	r := &record.Record{Kind: record.KindTelemetry, Site: site, Asset: asset, Received: at.UnixMilli(),
		Points: []record.Point{{Metric: metric, TS: at.UnixMilli(), Value: v}}}
	st.Apply(r)
	ns, _ := ev.Point(st, r)
	return ns
}

func kinds(ns []engine.Notification) string {
	var s []string
	for _, n := range ns {
		s = append(s, string(n.Kind)+" "+n.Alert.RuleID+" "+n.Alert.Site+"/"+n.Alert.Asset)
	}
	return strings.Join(s, "; ")
}

// province_avg is the mean of the other plants of the province, fresh
// within the hour; the plant itself and other provinces do not count.
func TestEvaluator_ProvinceAvg(t *testing.T) {
	reg := testFleet(t)
	ev, err := NewEvaluator(reg, loadRules(t, `
      - id: pv_low
        scope: {asset_types: [pv]}
        expr: 'last("power_kw") < 0.5 * province_avg("power_kw")'
        severity: info
        summary: '{{ province_avg("power_kw") }}'
`), engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := twinOf(reg)
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	if ns := point(st, ev, "PO-002001-1", "pv-1", "power_kw", 100, t0); len(ns) != 0 { // another province
		t.Fatalf("VC plant: %s", kinds(ns))
	}
	if ns := point(st, ev, "PO-001001-1", "pv-1", "power_kw", 1, t0); len(ns) != 0 { // no peer yet: NaN, quiet
		t.Fatalf("first TO plant: %s", kinds(ns))
	}
	if ns := point(st, ev, "PO-001002-1", "pv-1", "power_kw", 10, t0.Add(time.Minute)); len(ns) != 0 {
		t.Fatalf("second TO plant: %s", kinds(ns))
	}
	ns := point(st, ev, "PO-001001-1", "pv-1", "power_kw", 2, t0.Add(2*time.Minute))
	if kinds(ns) != "fired pv_low PO-001001-1/pv-1" || ns[0].Alert.Summary != "10" {
		t.Fatalf("low plant against its peer: %s %+v", kinds(ns), ns)
	}
	// Two hours on, the peer's value is stale: no peers, the rule reads NaN.
	ns = point(st, ev, "PO-001001-1", "pv-1", "power_kw", 2, t0.Add(2*time.Hour))
	if kinds(ns) != "resolved pv_low PO-001001-1/pv-1" {
		t.Fatalf("stale peer: %s", kinds(ns))
	}
}

// A silent asset is found by the clock, and a point brings it back.
func TestEvaluator_ClockFindsSilence(t *testing.T) {
	reg := testFleet(t)
	ev, err := NewEvaluator(reg, loadRules(t, `
      - {id: silent, expr: 'silent_for() > 60', clear: 'silent_for() < 5', severity: warning}
      - {id: hot, scope: {asset_types: [env]}, expr: 'last("temp_c") > 30', severity: info}
`), engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := twinOf(reg)
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	point(st, ev, "PO-001001-1", "env-1", "temp_c", 20, t0)
	if ns, _ := ev.Tick(t0.Add(59 * time.Minute)); len(ns) != 0 {
		t.Fatalf("59 minutes: %s", kinds(ns))
	}
	ns, _ := ev.Tick(t0.Add(61 * time.Minute))
	if kinds(ns) != "fired silent PO-001001-1/env-1" {
		t.Fatalf("61 minutes: %s", kinds(ns))
	}
	if ns, _ := ev.Tick(t0.Add(70 * time.Minute)); len(ns) != 0 {
		t.Fatalf("still silent: %s", kinds(ns))
	}
	ns = point(st, ev, "PO-001001-1", "env-1", "temp_c", 20, t0.Add(75*time.Minute))
	if kinds(ns) != "resolved silent PO-001001-1/env-1" {
		t.Fatalf("back: %s", kinds(ns))
	}
	// Rules replaced: the clock rule's alerts go, the other keeps running.
	if err := ev.SetRules(ev.Rules()[1:]); err != nil {
		t.Fatal(err)
	}
	if ns, _ := ev.Tick(t0.Add(5 * time.Hour)); len(ns) != 0 {
		t.Fatalf("after removing the clock rule: %s", kinds(ns))
	}
	if ns := point(st, ev, "PO-001001-1", "env-1", "temp_c", 35, t0.Add(5*time.Hour)); kinds(ns) != "fired hot PO-001001-1/env-1" {
		t.Fatalf("hot: %s", kinds(ns))
	}
}

// A device that connects before its first point is not "silent for ever":
// silent_for() is NaN until it reports, so the rule stays quiet.
func TestEvaluator_StatusBeforeFirstPoint(t *testing.T) {
	reg := testFleet(t)
	reg.Sites()[0].Labels = map[string]string{"tier": "pilot"}
	ev, err := NewEvaluator(reg, loadRules(t, `
      - {id: silent, expr: 'silent_for() > 60', severity: warning}
      - {id: pilot_offline, scope: {site_labels: {tier: pilot}}, expr: 'asset.status == "offline"', severity: info}
`), engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := twinOf(reg)
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	for _, s := range reg.Sites() {
		r := &record.Record{Kind: record.KindStatus, Site: s.ID, Asset: "pv-1", Status: "offline", TS: t0.UnixMilli(), Received: t0.UnixMilli()}
		st.Apply(r)
		ns, err := ev.Status(st, s.ID, "pv-1", t0)
		if err != nil {
			t.Fatal(err)
		}
		want := ""
		if s.Labels["tier"] == "pilot" {
			want = "fired pilot_offline " + s.ID + "/pv-1"
		}
		if kinds(ns) != want {
			t.Fatalf("%s went offline: %q, want %q", s.ID, kinds(ns), want)
		}
	}
	if ns, _ := ev.Tick(t0.Add(3 * time.Hour)); len(ns) != 0 {
		t.Fatalf("clock: %s", kinds(ns))
	}
}

// A rule on reported properties runs when they change, without a point.
func TestEvaluator_ReportedProperties(t *testing.T) {
	reg := testFleet(t)
	ev, err := NewEvaluator(reg, loadRules(t, `
      - {id: old_firmware, scope: {asset_types: [env]}, expr: 'asset.props.firmware == "1.0"', severity: info}
`), engine.Options{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	st := twinOf(reg)
	t0 := time.Date(2026, 6, 1, 10, 0, 0, 0, time.UTC)
	report := func(body string, at time.Time) []engine.Notification {
		r := &record.Record{Kind: record.KindReported, Site: "PO-001001-1", Asset: "env-1", Body: []byte(body), TS: at.UnixMilli(), Received: at.UnixMilli()}
		ns, err := ev.Applied(st, r, st.Apply(r))
		if err != nil {
			t.Fatal(err)
		}
		return ns
	}
	if ns := report(`{"firmware": "1.0"}`, t0); kinds(ns) != "fired old_firmware PO-001001-1/env-1" {
		t.Fatalf("old firmware reported: %q", kinds(ns))
	}
	if ns := report(`{"firmware": "1.2"}`, t0.Add(time.Minute)); kinds(ns) != "resolved old_firmware PO-001001-1/env-1" {
		t.Fatalf("new firmware reported: %q", kinds(ns))
	}
}
