package engine_test

import (
	"fmt"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// ObserveRules must do what Observe does: two engines get the same random
// points, one by rule ids, the other by handles with a reused Scratch,
// through rule reloads after which the handles are stale for a while (and
// must then be looked up by id, a removed rule giving Observe's error).
func TestObserveRules_SameAsObserve(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var rules []engine.Rule
	for i := range 12 {
		r := engine.Rule{ID: fmt.Sprint("r", i), Severity: "info", Cond: gt(float64(rng.IntN(100)))}
		switch i % 4 {
		case 1:
			r.For = time.Minute
		case 2:
			r.Clear = lt(float64(rng.IntN(50)))
		case 3:
			r.NoDataAfter = 10 * time.Minute
		}
		rules = append(rules, r)
	}
	byID, byHandle := engine.New(engine.Options{}), engine.New(engine.Options{})
	load := func(rs []engine.Rule) {
		for _, e := range []*engine.Engine{byID, byHandle} {
			if err := e.SetRules(rs); err != nil {
				t.Fatal(err)
			}
		}
	}
	load(rules)
	set := byHandle.RuleSet()
	var sc engine.Scratch
	now := day
	fired := 0
	for i := range 3000 {
		now = now.Add(time.Duration(rng.IntN(30)) * time.Second)
		ev := engine.Eval{Site: fmt.Sprint("PO-", rng.IntN(3)), Asset: fmt.Sprint("env-", rng.IntN(3)),
			Metric: "temp_c", Value: float64(rng.IntN(120)), TS: now}
		var ids []string
		var handles []*engine.Rule
		for _, r := range rules {
			if rng.IntN(3) > 0 {
				ids = append(ids, r.ID)
				h, ok := set.Rule(r.ID)
				if !ok {
					h = &engine.Rule{ID: r.ID} // a handle of a set that no longer has it
				}
				handles = append(handles, h)
			}
		}
		want, wantErr := byID.Observe(ev, ids...)
		got, gotErr := byHandle.ObserveRules(ev, set, handles, &sc)
		if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || !reflect.DeepEqual(got, want) {
			t.Fatalf("point %d: ObserveRules gave %v, %v; Observe %v, %v", i, got, gotErr, want, wantErr)
		}
		for _, n := range got {
			if n.Kind == engine.KindFired {
				fired++
			}
		}
		switch rng.IntN(300) {
		case 0: // reload without one rule; the handles stay stale until case 1
			k := rng.IntN(len(rules))
			load(append(append([]engine.Rule(nil), rules[:k]...), rules[k+1:]...))
		case 1:
			set = byHandle.RuleSet()
		}
	}
	if fired < 20 {
		t.Fatalf("only %d alerts fired: the test does not exercise the alerts", fired)
	}
}
