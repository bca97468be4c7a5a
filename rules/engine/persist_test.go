package engine_test

import (
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

// saved keeps the newest state of every alert from the notifications, as
// the rules service writes them to its compacted topic.
type saved map[string]engine.Saved

func (s saved) add(t *testing.T, ns []engine.Notification) {
	t.Helper()
	last := map[string]int{}
	for i, n := range ns {
		last[n.Alert.Fingerprint] = i
	}
	for i, n := range ns {
		if (n.State != nil) != (last[n.Alert.Fingerprint] == i) {
			t.Fatalf("notification %d (%s %s): State set %v; want it on the alert's last notification only", i, n.Kind, n.Alert.Fingerprint, n.State != nil)
		}
		if n.State != nil {
			if old, ok := s[n.Alert.Fingerprint]; ok && old.Rev >= n.State.Rev {
				t.Fatalf("state of %s: rev %d after %d", n.Alert.Fingerprint, n.State.Rev, old.Rev)
			}
			s[n.Alert.Fingerprint] = *n.State
		}
	}
}

func (s saved) list() []engine.Saved {
	var out []engine.Saved
	for _, sv := range s {
		out = append(out, sv)
	}
	return out
}

// An alert restored into another engine (a restart, another instance)
// keeps its state: still firing, same occurrence, acknowledgement and
// assignee, no second "fired" while its condition holds; it resolves and
// opens a next occurrence as if it had never moved.
func TestRestore_KeepsOpenAlert(t *testing.T) {
	rules := []engine.Rule{{ID: "hot", Cond: gt(30), For: time.Minute}, {ID: "down", Cond: gt(0), SiteDown: true}}
	opts := engine.Options{ReminderEvery: time.Hour, EscalateAfter: 2 * time.Hour}
	a := engine.New(opts)
	if err := a.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	st := saved{}
	obs := func(e *engine.Engine, v float64, at time.Duration) []engine.Notification {
		t.Helper()
		ns, err := e.Observe(engine.Eval{Site: "S", Asset: "env-1", Value: v, TS: day.Add(at)}, "hot")
		if err != nil {
			t.Fatal(err)
		}
		st.add(t, ns)
		return ns
	}
	obs(a, 31, 0)
	ns := obs(a, 32, 2*time.Minute)
	if len(ns) != 1 || ns[0].Kind != engine.KindFired || !ns[0].Deliver {
		t.Fatalf("fired: %+v", ns)
	}
	fp := ns[0].Alert.Fingerprint
	n, err := a.Ack(fp, "ops", "on it", day.Add(3*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	st.add(t, []engine.Notification{n})
	if n, err = a.Assign(fp, "maria", day.Add(4*time.Minute)); err != nil {
		t.Fatal(err)
	}
	st.add(t, []engine.Notification{n})

	b := engine.New(opts)
	if err := b.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	restored, skipped := b.Restore(append(st.list(), engine.Saved{Alert: engine.Alert{Fingerprint: "gone", RuleID: "removed", Site: "S", Asset: "x"}}))
	if restored != 1 || len(skipped) != 1 || skipped[0] != "gone" {
		t.Fatalf("restored %d, skipped %v", restored, skipped)
	}
	got, ok := b.Get(fp)
	if !ok || got.State != engine.StateFiring || got.Occurrence != 1 || got.Ack == nil || got.Ack.By != "ops" ||
		got.Assignee != "maria" || !got.FiredAt.Equal(day.Add(time.Minute)) || got.Labels["rule"] != "hot" {
		t.Fatalf("restored alert: %+v", got)
	}
	// Still true: nothing to say; a replayed older point changes nothing.
	if ns := obs(b, 33, 5*time.Minute); len(ns) != 0 {
		t.Fatalf("a still-true condition after restore: %+v", ns)
	}
	if ns, err := b.Observe(engine.Eval{Site: "S", Asset: "env-1", Value: 10, TS: day.Add(time.Minute)}, "hot"); len(ns) != 0 || err == nil {
		t.Fatalf("a replayed older point: %+v %v", ns, err)
	}
	// Acknowledged: no reminder, no escalation.
	if ns := b.Tick(day.Add(3 * time.Hour)); len(ns) != 0 {
		t.Fatalf("Tick of an acknowledged restored alert: %+v", ns)
	}
	ns = obs(b, 20, 3*time.Hour+time.Minute)
	if len(ns) != 1 || ns[0].Kind != engine.KindResolved || !ns[0].Deliver || ns[0].Alert.Occurrence != 1 {
		t.Fatalf("resolution after restore: %+v", ns)
	}
	obs(b, 31, 3*time.Hour+2*time.Minute)
	ns = obs(b, 31, 3*time.Hour+4*time.Minute)
	if len(ns) != 1 || ns[0].Kind != engine.KindFired || ns[0].Alert.Occurrence != 2 || ns[0].Alert.Ack != nil || ns[0].Alert.Assignee != "maria" {
		t.Fatalf("next occurrence: %+v", ns)
	}
}

// A restored, unacknowledged alert goes on with its reminders from its
// last delivery, not from the restore.
func TestRestore_Reminders(t *testing.T) {
	rules := []engine.Rule{{ID: "hot", Cond: gt(30)}}
	a := engine.New(engine.Options{ReminderEvery: time.Hour})
	if err := a.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	ns, err := a.Observe(engine.Eval{Site: "S", Asset: "a", Value: 31, TS: day}, "hot")
	if err != nil || len(ns) != 1 || ns[0].State == nil || !ns[0].State.Notified || !ns[0].State.LastNotify.Equal(day) {
		t.Fatalf("fired: %+v %v", ns, err)
	}
	b := engine.New(engine.Options{ReminderEvery: time.Hour})
	if err := b.SetRules(rules); err != nil {
		t.Fatal(err)
	}
	b.Restore([]engine.Saved{*ns[0].State})
	if ns := b.Tick(day.Add(59 * time.Minute)); len(ns) != 0 {
		t.Fatalf("before the reminder is due: %+v", ns)
	}
	if ns := b.Tick(day.Add(61 * time.Minute)); len(ns) != 1 || ns[0].Kind != engine.KindReminder {
		t.Fatalf("reminder: %+v", ns)
	}
}

// Dropped sites leave no trace: no NoData on the clock for an asset the
// engine no longer owns, no alert to list; the other sites go on.
func TestDropSites(t *testing.T) {
	e := engine.New(engine.Options{})
	if err := e.SetRules([]engine.Rule{{ID: "silent", Cond: gt(30), NoDataAfter: time.Minute}}); err != nil {
		t.Fatal(err)
	}
	for _, site := range []string{"S1", "S2"} {
		if _, err := e.Observe(engine.Eval{Site: site, Asset: "a", Value: 31, TS: day}, "silent"); err != nil {
			t.Fatal(err)
		}
	}
	if n := e.DropSites([]string{"S1"}); n != 1 {
		t.Fatalf("dropped %d alerts; want 1", n)
	}
	ns := e.Tick(day.Add(time.Hour))
	if len(ns) != 1 || ns[0].Alert.Site != "S2" || ns[0].Kind != engine.KindNoData {
		t.Fatalf("Tick after dropping S1: %+v", ns)
	}
	if got := e.Alerts(engine.Filter{Site: "S1"}); len(got) != 0 {
		t.Fatalf("alerts of a dropped site: %+v", got)
	}
	if f := e.TakeForgotten(); len(f) != 0 {
		t.Fatalf("dropping is not forgetting: %+v", f)
	}
}

// Alerts forgotten after their retention, or with their rule, are
// reported once, so their saved state can be deleted.
func TestTakeForgotten(t *testing.T) {
	e := engine.New(engine.Options{Retention: time.Hour})
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30)}, {ID: "old", Cond: gt(30)}}); err != nil {
		t.Fatal(err)
	}
	var last uint64
	for _, ns := range [][]engine.Notification{
		must(e.Observe(engine.Eval{Site: "S", Asset: "a", Value: 31, TS: day}, "hot", "old")),
		must(e.Observe(engine.Eval{Site: "S", Asset: "a", Value: 20, TS: day.Add(time.Minute)}, "hot")),
	} {
		for _, n := range ns {
			if n.State != nil {
				last = max(last, n.State.Rev)
			}
		}
	}
	if err := e.SetRules([]engine.Rule{{ID: "hot", Cond: gt(30)}}); err != nil {
		t.Fatal(err)
	}
	f := e.TakeForgotten()
	if len(f) != 1 || f[0].Fingerprint != engine.Fingerprint("old", "S", "a") || f[0].Site != "S" || f[0].Rev <= last {
		t.Fatalf("forgotten with its rule: %+v (last rev %d)", f, last)
	}
	if ns := e.Tick(day.Add(time.Minute)); len(ns) != 1 || ns[0].State != nil {
		t.Fatalf("the resolution of a forgotten alert has no state to save: %+v", ns)
	}
	e.Tick(day.Add(2 * time.Hour))
	if f := e.TakeForgotten(); len(f) != 1 || f[0].Fingerprint != engine.Fingerprint("hot", "S", "a") {
		t.Fatalf("forgotten after retention: %+v", f)
	}
	if f := e.TakeForgotten(); len(f) != 0 {
		t.Fatalf("reported twice: %+v", f)
	}
}

func must(ns []engine.Notification, err error) []engine.Notification {
	if err != nil {
		panic(err)
	}
	return ns
}
