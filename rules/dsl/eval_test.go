package dsl

import (
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func mustCompile(t testing.TB, src string) *Program {
	t.Helper()
	p, pe := compile(src, true, where{Line: 1, Col: 1}, nil)
	if pe != nil {
		t.Fatalf("cannot compile %q: %d:%d: %s", src, pe.line, pe.col, pe.msg)
	}
	return p
}

// at is a time in Rome.
func at(y int, m time.Month, d, h, min int) time.Time {
	return time.Date(y, m, d, h, min, 0, 0, Rome)
}

func TestEval(t *testing.T) {
	now := at(2026, time.March, 10, 11, 0) // a Tuesday
	ring := NewRing(64)
	for i := range 10 {
		ts := now.Add(-time.Duration(9-i) * time.Minute)
		ring.Add("temp_c", ts, 20+float64(i))
		ring.Add("power_kw", ts, 5)
	}
	ring.Add("temp_c", now.Add(time.Minute), 99) // after now: ignored
	env := &Env{
		Metric: "temp_c", Value: 29, TS: now, History: ring,
		Asset: AssetEnv{ID: "env-1", Type: "env", Status: "online",
			Props:   map[string]any{"fw": "1.2"},
			Metrics: map[string]float64{"temp_c": 29, "cassette1_pct": 8}},
		Site: SiteEnv{ID: "CW-RM-1", Region: "Lazio", Kind: "coworking", OpenNow: true,
			ATMs: 2, ATMsUp: 1, ProvinceAvg: map[string]float64{"power_kw": 20}},
	}
	f := func(src string, want bool) {
		t.Helper()
		got, err := mustCompile(t, src).Eval(env)
		if err != nil {
			t.Fatalf("%s: unexpected error %v", src, err)
		}
		if got != want {
			t.Fatalf("%s: got %v; want %v", src, got, want)
		}
	}
	f(`metric == "temp_c" && value > 28`, true)
	f(`asset.type == "env" && asset.status == "online" && asset.props.fw == "1.2"`, true)
	f(`asset.metrics.cassette1_pct < 10`, true)
	f(`asset.metrics.cassette2_pct == 0`, true) // expr's zero value for a missing key
	f(`last("cassette2_pct") < 10 || last("cassette2_pct") >= 10`, false)
	f(`last("cassette1_pct") == 8`, true)
	f(`site.region == "Lazio" && site.kind == "coworking" && site.atms_up < site.atms`, true)
	f(`avg("temp_c", "10m") == 24.5`, true)
	f(`avg("temp_c", "2m30s") == 28`, true) // points at -2m, -1m, 0
	f(`min("temp_c", "10m") == 20 && max("temp_c", "10m") == 29`, true)
	f(`delta("temp_c", "10m") == 9`, true)
	f(`rate("temp_c", "10m") == 9 / 540.0`, true)
	f(`count_over("temp_c", "1h") == 10 && count_over("nothing", "1h") == 0`, true)
	f(`avg("nothing", "1h") > 0 || avg("nothing", "1h") <= 0`, false) // NaN: never true
	f(`silent_for() == 0`, true)
	f(`hour() == 11 && weekday() == 2 && !holiday() && open_now()`, true)
	f(`province_avg("power_kw") == 20 && avg("power_kw", "30m") < 0.3 * province_avg("power_kw")`, true)
	f(`province_avg("temp_c") > 0`, false)
	f(`ts.Year() == 2026`, true)
	f(`metric != ""`, true)

	// A copy must rebind its functions to itself, not read the original.
	cp := *env
	cp.TS = at(2026, time.March, 10, 15, 0)
	if ok, _ := mustCompile(t, `hour() == 15`).Eval(&cp); !ok {
		t.Fatal("copied Env reads the original's time")
	}
	// No history: NaN and +Inf, no error.
	env.History = nil
	f(`avg("temp_c", "10m") > 0`, false)
	f(`silent_for() > 1e9`, true)
}

func TestTemplate(t *testing.T) {
	tp, pe := compileTemplate(`ATM {{ asset.id }} cash {{ value }}% {{ avg("x", "1m") }} {{ site.open_now }}`, where{Line: 1, Col: 1}, nil)
	if pe != nil {
		t.Fatal(pe.msg)
	}
	got, err := tp.Render(&Env{Value: 12.5, Asset: AssetEnv{ID: "atm-1"}, Site: SiteEnv{OpenNow: true}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ATM atm-1 cash 12.5% n/a true"; got != want {
		t.Fatalf("got %q; want %q", got, want)
	}
}

func TestHoliday(t *testing.T) {
	f := func(d time.Time, want bool) {
		t.Helper()
		if got := Holiday(d); got != want {
			t.Fatalf("Holiday(%s) = %v; want %v", d.Format(time.DateOnly), got, want)
		}
	}
	for _, d := range []time.Time{
		at(2026, time.January, 1, 9, 0), at(2026, time.January, 6, 9, 0),
		at(2026, time.April, 5, 9, 0), at(2026, time.April, 6, 9, 0), // Easter, Easter Monday
		at(2026, time.April, 25, 9, 0), at(2026, time.May, 1, 9, 0), at(2026, time.June, 2, 9, 0),
		at(2026, time.August, 15, 9, 0), at(2026, time.October, 4, 9, 0), at(2026, time.November, 1, 9, 0),
		at(2026, time.December, 8, 9, 0), at(2026, time.December, 25, 9, 0), at(2026, time.December, 26, 9, 0),
		at(2025, time.April, 21, 9, 0), at(2027, time.March, 29, 9, 0), // Easter Mondays
		at(2026, time.April, 6, 0, 0), at(2026, time.April, 6, 23, 59), // the whole local day
	} {
		f(d, true)
	}
	for _, d := range []time.Time{
		at(2026, time.April, 7, 9, 0), at(2026, time.April, 3, 9, 0), at(2026, time.March, 10, 9, 0),
		at(2025, time.October, 4, 9, 0),                                      // before law 151/2025
		at(2026, time.April, 5, 23, 59).Add(time.Minute).Add(24 * time.Hour), // 7 April 00:00
	} {
		f(d, false)
	}
	// 5 April 2026 22:30 UTC is Easter Monday 00:30 in Rome (CEST).
	f(time.Date(2026, time.April, 5, 22, 30, 0, 0, time.UTC), true)
}

func TestHourWeekday_DST(t *testing.T) {
	f := func(ts time.Time, hour, weekday int) {
		t.Helper()
		env := &Env{TS: ts}
		env.bind()
		if h, w := env.Hour(), env.Weekday(); h != hour || w != weekday {
			t.Fatalf("%s: hour %d weekday %d; want %d %d", ts, h, w, hour, weekday)
		}
	}
	// Spring forward: 29 March 2026, 02:00 CET becomes 03:00 CEST (01:00 UTC).
	f(time.Date(2026, time.March, 29, 0, 59, 0, 0, time.UTC), 1, 7)
	f(time.Date(2026, time.March, 29, 1, 0, 0, 0, time.UTC), 3, 7)
	// Fall back: 25 October 2026, 03:00 CEST becomes 02:00 CET (01:00 UTC).
	f(time.Date(2026, time.October, 25, 0, 30, 0, 0, time.UTC), 2, 7)
	f(time.Date(2026, time.October, 25, 1, 30, 0, 0, time.UTC), 2, 7)
	// Sunday 23:30 UTC in summer is Monday in Rome.
	f(time.Date(2026, time.July, 5, 23, 30, 0, 0, time.UTC), 1, 1)
	f(time.Date(2026, time.July, 11, 12, 0, 0, 0, time.UTC), 14, 6)
}

func TestParseDuration(t *testing.T) {
	f := func(s string, want time.Duration, ok bool) {
		t.Helper()
		got, err := ParseDuration(s)
		if (err == nil) != ok || got != want && ok {
			t.Fatalf("ParseDuration(%q) = %v, %v; want %v, ok %v", s, got, err, want, ok)
		}
	}
	f("5m", 5*time.Minute, true)
	f("1h30m", 90*time.Minute, true)
	f("1d", 24*time.Hour, true)
	f("1w2d", 9*24*time.Hour, true)
	f("1d12h", 36*time.Hour, true)
	f("0s", 0, true)
	f("", 0, false)
	f("-5m", 0, false)
	f("5", 0, false)
	f("5 minutes", 0, false)
	f("1y", 0, false)
	f("520w", 520*7*24*time.Hour, true)
	f("15251w", 0, false) // would wrap negative
	f("106752d", 0, false)
	f("100000h", 0, false)
}

func TestRing(t *testing.T) {
	r := NewRing(4)
	t0 := at(2026, time.May, 4, 10, 0)
	if r.SilentFor(t0) < 1e18 {
		t.Fatal("an empty ring is not silent")
	}
	for i := range 6 { // the first two are overwritten
		r.Add("a", t0.Add(time.Duration(i)*time.Minute), float64(i))
	}
	if n := r.CountOver("a", time.Hour, t0.Add(time.Hour)); n != 4 {
		t.Fatalf("count %d; want 4 (bounded)", n)
	}
	if v, ok := r.Min("a", time.Hour, t0.Add(10*time.Minute)); !ok || v != 2 {
		t.Fatalf("min %v %v; want 2", v, ok)
	}
	// A late point lands anywhere in the ring and still counts.
	r.Add("a", t0.Add(90*time.Second), 100)
	if v, ok := r.Max("a", time.Hour, t0.Add(10*time.Minute)); !ok || v != 100 {
		t.Fatalf("max %v %v; want 100", v, ok)
	}
	if d := r.SilentFor(t0.Add(7 * time.Minute)); d != 2*time.Minute {
		t.Fatalf("silent for %v; want 2m", d)
	}
	if _, ok := r.Delta("a", time.Second, t0.Add(5*time.Minute)); ok {
		t.Fatal("delta of one point")
	}
	if v, ok := r.Avg("b", time.Hour, t0); ok || !math.IsNaN(v) {
		t.Fatalf("avg of nothing %v %v", v, ok)
	}
}

// TestPack_Eval runs two pack rules on a plausible twin, as the engine will.
func TestPack_Eval(t *testing.T) {
	src, err := os.ReadFile("../pack/polis.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := Load("polis.yaml", src, Options{})
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]*Rule{}
	for _, r := range f.Rules() {
		rules[r.ID] = r
	}
	now := at(2026, time.March, 10, 11, 0)
	env := &Env{Metric: "cassette2_pct", Value: 7, TS: now,
		Asset: AssetEnv{ID: "atm-1", Type: "atm", Status: "online",
			Metrics: map[string]float64{"cassette1_pct": 50, "cassette2_pct": 7, "cash_eur": 12000}},
		Site: SiteEnv{ID: "PO-058091-1", OpenNow: true}}
	r := rules["atm_cash_low"]
	if !r.Scope.Match(env.Asset.Type, &env.Site) {
		t.Fatal("atm_cash_low out of scope for an ATM")
	}
	if ok, err := r.Cond.Eval(env); err != nil || !ok {
		t.Fatalf("atm_cash_low: %v %v", ok, err)
	}
	if ok, _ := r.Clear.Eval(env); ok {
		t.Fatal("atm_cash_low clears at 7%")
	}
	s, err := r.Summary.Render(env)
	if err != nil || !strings.Contains(s, "ATM atm-1 at PO-058091-1") || !strings.Contains(s, "12000 EUR") {
		t.Fatalf("summary %q, %v", s, err)
	}
	ring := NewRing(16)
	ring.Add("power_kw", now.Add(-10*time.Minute), 2)
	ring.Add("power_kw", now, 3)
	env = &Env{Metric: "power_kw", Value: 3, TS: now, History: ring,
		Asset: AssetEnv{ID: "pv-1", Type: "pv"},
		Site:  SiteEnv{ID: "PO-058091-1", ProvinceAvg: map[string]float64{"power_kw": 40}}}
	if ok, err := rules["pv_underperforming"].Cond.Eval(env); err != nil || !ok {
		t.Fatalf("pv_underperforming: %v %v", ok, err)
	}
	if s, _ := rules["pv_underperforming"].Summary.Render(env); !strings.Contains(s, "makes 2.5 kW, the province's plants 40 kW") {
		t.Fatalf("summary %q", s)
	}
}

// TestEval_Concurrent shares compiled programs between goroutines, each
// with its own Env, as the engine's shards will.
func TestEval_Concurrent(t *testing.T) {
	p := mustCompile(t, `avg("temp_c", "10m") > 20 && hour() >= 0 && asset.id != ""`)
	done := make(chan error)
	for g := range 4 {
		go func() {
			ring := NewRing(8)
			env := &Env{TS: at(2026, time.May, 4, 10, g), Asset: AssetEnv{ID: "env-1"}, History: ring}
			var err error
			for i := range 200 {
				ring.Add("temp_c", env.TS, 21)
				env.TS = env.TS.Add(time.Duration(i) * time.Second)
				if ok, e := p.Eval(env); e != nil || !ok {
					err = fmt.Errorf("eval %d: %v %w", i, ok, e)
					break
				}
			}
			done <- err
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
