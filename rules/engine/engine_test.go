package engine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

func gt(th float64) func(engine.Eval) (bool, error) {
	return func(e engine.Eval) (bool, error) { return e.Value > th, nil }
}

func lt(th float64) func(engine.Eval) (bool, error) {
	return func(e engine.Eval) (bool, error) { return e.Value < th, nil }
}

// Two points for the same rule and asset at once must give one alert and
// one "fired", whatever the interleaving.
func TestObserve_ConcurrentNoDuplicates(t *testing.T) {
	e := engine.New(engine.Options{})
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30)}, {ID: "warm", Cond: gt(20), For: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	const workers, assets = 32, 8
	var (
		mu    sync.Mutex
		fired = map[string]int{}
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := range 50 {
				a := fmt.Sprintf("env-%d", (w+i)%assets)
				ts := day.Add(time.Duration(i%3) * time.Minute)
				ns, err := e.Observe(engine.Eval{Site: "PO-1", Asset: a, Metric: "temp_c", Value: 31, TS: ts}, "hot", "warm")
				if err != nil && !errors.Is(err, engine.ErrLate) {
					t.Error(err)
				}
				mu.Lock()
				for _, n := range ns {
					if n.Kind == engine.KindFired && n.Deliver {
						fired[n.Alert.RuleID+"/"+n.Alert.Asset]++
					}
				}
				mu.Unlock()
			}
		}()
	}
	// Tick, Ack, Alerts and silences at the same time, for the race detector.
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-start
		for i := range 50 {
			ns := e.Tick(day.Add(time.Duration(i) * time.Second))
			mu.Lock()
			for _, n := range ns {
				if n.Kind == engine.KindFired && n.Deliver {
					fired[n.Alert.RuleID+"/"+n.Alert.Asset]++
				}
			}
			mu.Unlock()
			for _, a := range e.Alerts(engine.Filter{States: []engine.State{engine.StateFiring}}) {
				_, _ = e.Ack(a.Fingerprint, "u", "", day)
			}
			_ = e.Silence(engine.Silence{ID: "s", Matchers: []engine.Matcher{{Label: "site", Value: "PO-2"}}, Start: day, End: day.Add(time.Hour)})
		}
	}()
	close(start)
	wg.Wait()
	<-done
	// Points may arrive newest first, so "warm" may still be pending.
	for _, n := range e.Tick(day.Add(10 * time.Minute)) {
		if n.Kind == engine.KindFired && n.Deliver {
			fired[n.Alert.RuleID+"/"+n.Alert.Asset]++
		}
	}
	for a := range assets {
		for _, r := range []string{"hot", "warm"} {
			k := fmt.Sprintf("%s/env-%d", r, a)
			if fired[k] != 1 {
				t.Fatalf("unexpected fired count for %s; got %d; want 1", k, fired[k])
			}
		}
	}
	if got := len(e.Alerts(engine.Filter{RuleID: "hot"})); got != assets {
		t.Fatalf("unexpected alert count; got %d; want %d", got, assets)
	}
}

// Property: per fingerprint, delivered notifications open (fired, nodata)
// and close (resolved) in turn; reminders and escalations only while open.
func TestNotifications_Alternate(t *testing.T) {
	seeds := uint64(40)
	if !testing.Short() && os.Getenv("POLIS_PROPERTY_SEEDS") != "" {
		n, _ := strconv.Atoi(os.Getenv("POLIS_PROPERTY_SEEDS"))
		seeds = uint64(n)
	}
	for seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { checkAlternation(t, seed) })
	}
}

func checkAlternation(t *testing.T, seed uint64) {
	rnd := rand.New(rand.NewPCG(seed, 1))
	e := engine.New(engine.Options{
		FlapWindow: 20 * time.Minute, FlapThreshold: 1 + rnd.IntN(5),
		ReminderEvery: 7 * time.Minute, EscalateAfter: 13 * time.Minute,
		MaxLateness: 2 * time.Minute, MaxAge: 30 * time.Minute,
		InhibitGrace: time.Duration(rnd.IntN(3)) * time.Minute,
	})
	rules := []engine.Rule{
		{ID: "hot", Cond: gt(50), Clear: lt(40), For: time.Duration(rnd.IntN(3)) * time.Minute, KeepFiringFor: time.Duration(rnd.IntN(3)) * time.Minute},
		{ID: "cold", Cond: lt(10), NoDataAfter: 6 * time.Minute},
		{ID: "gw", Cond: lt(5), SiteDown: true, NoDataAfter: 8 * time.Minute},
	}
	if err := e.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	type track struct {
		open bool
		last engine.Kind
	}
	tracks := map[string]*track{}
	counts := map[string]int{}
	check := func(ns []engine.Notification) {
		t.Helper()
		for _, n := range ns {
			counts[fmt.Sprint(n.Kind, "/", n.Deliver)]++
			if n.Alert.Fingerprint != engine.Fingerprint(n.Alert.RuleID, n.Alert.Site, n.Alert.Asset) {
				t.Fatalf("bad fingerprint in %+v", n)
			}
			if !n.Deliver {
				continue
			}
			tr := tracks[n.Alert.Fingerprint]
			if tr == nil {
				tr = &track{}
				tracks[n.Alert.Fingerprint] = tr
			}
			if n.Kind != engine.KindResolved && n.Kind != engine.KindAcked && n.Kind != engine.KindAssigned &&
				(n.Alert.Silenced || n.Alert.InhibitedBy != "") {
				t.Fatalf("%s delivered for %s at %s while held: %+v", n.Kind, n.Alert.Fingerprint, n.At, n.Alert)
			}
			switch n.Kind {
			case engine.KindFired, engine.KindNoData:
				if tr.open && tr.last == n.Kind {
					t.Fatalf("%s delivered twice for %s at %s", n.Kind, n.Alert.Fingerprint, n.At)
				}
				tr.open, tr.last = true, n.Kind
			case engine.KindResolved:
				if !tr.open {
					t.Fatalf("resolved delivered for %s at %s with nothing open", n.Alert.Fingerprint, n.At)
				}
				tr.open, tr.last = false, n.Kind
			case engine.KindReminder, engine.KindEscalated, engine.KindAcked, engine.KindAssigned:
				if !tr.open {
					t.Fatalf("%s delivered for %s at %s with nothing open", n.Kind, n.Alert.Fingerprint, n.At)
				}
			default:
				t.Fatalf("unexpected delivered kind %s", n.Kind)
			}
		}
	}
	now := day
	sites := []string{"PO-1", "PO-2"}
	for i := 0; i < 600; i++ {
		now = now.Add(time.Duration(rnd.IntN(90)) * time.Second)
		site := sites[rnd.IntN(len(sites))]
		switch p := rnd.IntN(100); {
		case p < 60:
			ts := now
			if rnd.IntN(10) == 0 {
				ts = ts.Add(-time.Duration(rnd.IntN(40)) * time.Minute)
			}
			asset := fmt.Sprintf("env-%d", rnd.IntN(3))
			ns, err := e.Observe(engine.Eval{Site: site, Asset: asset, Metric: "temp_c", Value: float64(rnd.IntN(70)), TS: ts}, "hot", "cold")
			if err != nil && !errors.Is(err, engine.ErrLate) {
				t.Fatal(err)
			}
			check(ns)
		case p < 70:
			ns, _ := e.Observe(engine.Eval{Site: site, Asset: "gw-1", Metric: "gw_up", Value: float64(rnd.IntN(8)), TS: now}, "gw")
			check(ns)
		case p < 90:
			check(e.Tick(now))
		case p < 94:
			as := e.Alerts(engine.Filter{States: []engine.State{engine.StateFiring, engine.StateNoData}})
			if len(as) > 0 {
				n, err := e.Ack(as[rnd.IntN(len(as))].Fingerprint, "u", "c", now)
				if err != nil {
					t.Fatal(err)
				}
				check([]engine.Notification{n})
			}
			if as := e.Alerts(engine.Filter{}); len(as) > 0 {
				n, err := e.Assign(as[rnd.IntN(len(as))].Fingerprint, "v", now)
				if err != nil {
					t.Fatal(err)
				}
				check([]engine.Notification{n})
			}
		case p < 97:
			err := e.Silence(engine.Silence{ID: fmt.Sprint("s", rnd.IntN(3)), Start: now, End: now.Add(time.Duration(1+rnd.IntN(30)) * time.Minute),
				Matchers: []engine.Matcher{{Label: "site", Value: site}}})
			if err != nil {
				t.Fatal(err)
			}
		default:
			_ = e.Unsilence(fmt.Sprint("s", rnd.IntN(3)))
		}
	}
	t.Logf("notifications (kind/delivered): %v", counts)
	seen := map[string]bool{}
	for _, a := range e.Alerts(engine.Filter{}) {
		if seen[a.Fingerprint] {
			t.Fatalf("duplicate alert %s", a.Fingerprint)
		}
		seen[a.Fingerprint] = true
	}
}

func TestSetRules_KeepsState(t *testing.T) {
	e := engine.New(engine.Options{})
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30)}, {ID: "old", Cond: gt(0)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Observe(engine.Eval{Site: "S", Asset: "a", Value: 31, TS: day}, "hot", "old"); err != nil {
		t.Fatal(err)
	}
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30), Severity: "critical"}}); err != nil {
		t.Fatal(err)
	}
	as := e.Alerts(engine.Filter{})
	if len(as) != 1 || as[0].RuleID != "hot" || as[0].State != engine.StateFiring || as[0].Labels["severity"] != "critical" {
		t.Fatalf("unexpected alerts after SetRules: %+v", as)
	}
	// The removed rule's open alert is resolved, delivered at the next Tick
	// (its history must not keep it open), once.
	ns := e.Tick(day.Add(time.Minute))
	if len(ns) != 1 || ns[0].Kind != engine.KindResolved || ns[0].Alert.RuleID != "old" || !ns[0].Deliver || !ns[0].At.Equal(day) {
		t.Fatalf("Tick after removing a rule: %+v", ns)
	}
	if ns := e.Tick(day.Add(2 * time.Minute)); len(ns) != 0 {
		t.Fatalf("second Tick: %+v", ns)
	}
}

func TestErrors(t *testing.T) {
	e := engine.New(engine.Options{})
	f := func(err error, want error) {
		t.Helper()
		if err == nil || want != nil && !errors.Is(err, want) {
			t.Fatalf("unexpected error; got %v; want %v", err, want)
		}
	}
	f(e.SetRules([]engine.Rule{{ID: ""}}), nil)
	f(e.SetRules([]engine.Rule{{ID: "x"}}), nil)
	f(e.SetRules([]engine.Rule{{ID: "x", Cond: gt(1)}, {ID: "x", Cond: gt(1)}}), nil)
	_, err := e.Ack("nope", "u", "", day)
	f(err, engine.ErrNotFound)
	_, err = e.Assign("nope", "u", day)
	f(err, engine.ErrNotFound)
	f(e.Unsilence("nope"), engine.ErrNotFound)
	f(e.Silence(engine.Silence{ID: "s"}), nil)
	f(e.Silence(engine.Silence{ID: "s", Matchers: []engine.Matcher{{Label: "a", Value: "("}}, Start: day, End: day}), nil)
	f(e.Silence(engine.Silence{ID: "s", Matchers: []engine.Matcher{{Label: "a", Value: "(", Regex: true}}, Start: day, End: day.Add(time.Hour)}), nil)
	_, err = e.Observe(engine.Eval{TS: day}, "unknown")
	f(err, nil)

	boom := errors.New("boom")
	if err := e.SetRules([]engine.Rule{{ID: "bad", Cond: func(engine.Eval) (bool, error) { return false, boom }}, {ID: "hot", Cond: gt(1)}}); err != nil {
		t.Fatal(err)
	}
	ns, err := e.Observe(engine.Eval{Site: "S", Asset: "a", Value: 2, TS: day}, "bad", "hot")
	f(err, boom)
	if len(ns) != 1 || ns[0].Kind != engine.KindFired {
		t.Fatalf("a failing rule must not stop the others; got %+v", ns)
	}
	_, err = e.Ack(ns[0].Alert.Fingerprint, "u", "", day)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Observe(engine.Eval{Site: "S", Asset: "a", Value: 0, TS: day.Add(time.Minute)}, "hot"); err != nil {
		t.Fatal(err)
	}
	_, err = e.Ack(ns[0].Alert.Fingerprint, "u", "", day)
	f(err, engine.ErrNotOpen)
}

func TestTick_Retention(t *testing.T) {
	e := engine.New(engine.Options{Retention: time.Hour})
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30), For: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	obs := func(asset string, v float64, at time.Duration) {
		t.Helper()
		if _, err := e.Observe(engine.Eval{Site: "S", Asset: asset, Value: v, TS: day.Add(at)}, "hot"); err != nil {
			t.Fatal(err)
		}
	}
	obs("a", 31, 0) // fires, then resolves
	e.Tick(day.Add(time.Minute))
	obs("a", 20, 2*time.Minute)
	obs("b", 31, 0) // pending, cancelled
	obs("b", 20, time.Minute)
	for m := 3; m < 80; m++ {
		obs("a", 20, time.Duration(m)*time.Minute) // evaluations go on
		e.Tick(day.Add(time.Duration(m) * time.Minute))
	}
	if got := e.Alerts(engine.Filter{}); len(got) != 0 {
		t.Fatalf("unexpected alerts after retention: %+v", got)
	}
}
