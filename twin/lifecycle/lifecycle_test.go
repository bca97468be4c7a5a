package lifecycle

import (
	"errors"
	"maps"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// allowedByIssue is the transition table written out from the issue, apart
// from apiMoves, so that a change to one shows up against the other.
var allowedByIssue = map[[2]State]bool{
	{Planned, Installed}:           true,
	{Planned, Decommissioned}:      true,
	{Installed, Commissioned}:      true,
	{Installed, Decommissioned}:    true,
	{Commissioned, Operational}:    true,
	{Commissioned, Faulty}:         true,
	{Commissioned, Decommissioned}: true,
	{Operational, Faulty}:          true,
	{Operational, Decommissioned}:  true,
	{Faulty, Operational}:          true,
	{Faulty, Decommissioned}:       true,
}

func TestTransition_Table(t *testing.T) {
	for _, from := range States {
		for _, to := range States {
			want := allowedByIssue[[2]State{from, to}]
			if got := Allowed(from, to); got != want {
				t.Errorf("Allowed(%s, %s) = %v; want %v", from, to, got, want)
			}
			tr := NewTracker(Options{})
			if err := tr.Add("PO-001001-1", "atm-1", from); err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			e, err := tr.Transition("PO-001001-1", "atm-1", to, "alice", "", t0)
			if want {
				if err != nil {
					t.Errorf("%s → %s: unexpected error: %v", from, to, err)
					continue
				}
				wantE := Event{Site: "PO-001001-1", Asset: "atm-1", From: from, To: to, At: t0, Actor: "alice", Cause: CauseAPI}
				if e != wantE {
					t.Errorf("%s → %s: unexpected event; got %+v; want %+v", from, to, e, wantE)
				}
				if s, _ := tr.State("PO-001001-1", "atm-1"); s != to {
					t.Errorf("%s → %s: state is %s", from, to, s)
				}
				continue
			}
			var te *TransitionError
			if !errors.Is(err, ErrNotAllowed) || !errors.As(err, &te) {
				t.Errorf("%s → %s: got %v; want a TransitionError", from, to, err)
				continue
			}
			msg := err.Error()
			if !strings.Contains(msg, string(from)+" → "+string(to)) || !reflect.DeepEqual(te.Allowed, Next(from)) {
				t.Errorf("%s → %s: error %q does not name the move and the allowed states", from, to, msg)
			}
			if s, _ := tr.State("PO-001001-1", "atm-1"); s != from {
				t.Errorf("%s → %s refused but state changed to %s", from, to, s)
			}
		}
	}
}

func TestTransition_Failure(t *testing.T) {
	tr := NewTracker(Options{})
	if err := tr.Add("S", "a-1", Decommissioned); err != nil {
		t.Fatal(err)
	}
	f := func(site, asset string, to State, actor, want string) {
		t.Helper()
		_, err := tr.Transition(site, asset, to, actor, "", t0)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unexpected error; got %v; want it to contain %q", err, want)
		}
	}
	f("S", "a-1", Operational, "bob", "decommissioned is terminal")
	f("S", "a-2", Operational, "bob", "unknown asset")
	f("S", "a-1", Operational, "", "no actor")
	f("S", "a-1", "broken", "bob", "not allowed")
	if err := tr.Add("S", "a-1", Planned); err == nil {
		t.Errorf("adding an asset twice: want an error")
	}
	if err := tr.Add("S", "a-3", "nope"); err == nil {
		t.Errorf("adding an invalid state: want an error")
	}
	if _, err := ParseState("operativo"); err == nil {
		t.Errorf("ParseState of an unknown state: want an error")
	}
	if s, err := ParseState("faulty"); err != nil || s != Faulty {
		t.Errorf("ParseState(faulty) = %v, %v", s, err)
	}
}

// obs is one observation of TestEvidence_Success and the events it makes.
type obs struct {
	at     time.Duration
	kind   string // "t" telemetry, "on", "off", "tick", "fault"
	events []string
}

func TestEvidence_Success(t *testing.T) {
	h := time.Hour
	cases := []struct {
		name  string
		start State
		obs   []obs
		final State
	}{
		{"telemetry then 72h online", Installed, []obs{
			{0, "t", nil},
			{71 * h, "tick", nil},
			{72 * h, "tick", []string{"installed→commissioned@72h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"late tick dates the event when acceptance completed", Installed, []obs{
			{0, "t", nil},
			{100 * h, "tick", []string{"installed→commissioned@72h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"never reports stays installed", Installed, []obs{
			{0, "on", nil},
			{500 * h, "tick", nil},
		}, Installed},
		{"online before telemetry does not count", Installed, []obs{
			{0, "on", nil},
			{10 * h, "t", nil},
			{72 * h, "tick", nil},
			{82 * h, "tick", []string{"installed→commissioned@82h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"gap within grace counts", Installed, []obs{
			{0, "t", nil},
			{10 * h, "off", nil},
			{10*h + 30*time.Minute, "on", nil},
			{72 * h, "tick", []string{"installed→commissioned@72h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"gap over grace restarts the period", Installed, []obs{
			{0, "t", nil},
			{10 * h, "off", nil},
			{12 * h, "on", nil},
			{72 * h, "tick", nil},
			{83 * h, "tick", nil},
			{84 * h, "tick", []string{"installed→commissioned@84h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"offline when the period ends waits for the asset", Installed, []obs{
			{0, "t", nil},
			{71*h + 30*time.Minute, "off", nil},
			{72 * h, "tick", nil},
			{72*h + 20*time.Minute, "on", []string{"installed→commissioned@72h20m0s " + CauseAcceptance}},
		}, Commissioned},
		{"offline past grace at the end restarts", Installed, []obs{
			{0, "t", nil},
			{71 * h, "off", nil},
			{73 * h, "tick", nil},
			{74 * h, "t", nil},
			{145 * h, "tick", nil},
			{146 * h, "tick", []string{"installed→commissioned@146h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"planned asset that reports is installed, then accepted", Planned, []obs{
			{0, "t", []string{"planned→installed@0s " + CauseFirstTelemetry}},
			{72 * h, "t", []string{"installed→commissioned@72h0m0s " + CauseAcceptance}},
		}, Commissioned},
		{"fault evidence", Operational, []obs{
			{5 * h, "fault", []string{"operational→faulty@5h0m0s " + CauseFault}},
			{6 * h, "fault", nil},
		}, Faulty},
		{"fault while installed is not a lifecycle fault", Installed, []obs{
			{5 * h, "fault", nil},
		}, Installed},
		{"decommissioned ignores evidence", Decommissioned, []obs{
			{0, "t", nil},
			{100 * h, "tick", nil},
			{101 * h, "fault", nil},
		}, Decommissioned},
	}
	for _, c := range cases {
		for _, logFirst := range []bool{false, true} {
			name := c.name
			if logFirst {
				name += " (log first)"
			}
			t.Run(name, func(t *testing.T) { evidenceCase(t, logFirst, c.start, c.obs, c.final) })
		}
	}
}

// evidenceCase runs one case of TestEvidence_Success. Under LogFirst every
// proposed event is folded back at once, as the log does.
func evidenceCase(t *testing.T, logFirst bool, start State, obs []obs, final State) {
	tr := NewTracker(Options{LogFirst: logFirst})
	if err := tr.Add("S", "a-1", start); err != nil {
		t.Fatal(err)
	}
	for _, o := range obs {
		at := t0.Add(o.at)
		var evs []Event
		switch o.kind {
		case "t":
			evs = tr.ObserveTelemetry("S", "a-1", at)
		case "on", "off":
			evs = tr.ObserveStatus("S", "a-1", o.kind == "on", at)
		case "tick":
			evs = tr.Tick(at)
		case "fault":
			evs = tr.ObserveFault("S", "a-1", at)
		}
		var got []string
		for _, e := range evs {
			if e.Actor != ActorSystem {
				t.Errorf("evidence event with actor %q", e.Actor)
			}
			got = append(got, string(e.From)+"→"+string(e.To)+"@"+e.At.Sub(t0).String()+" "+e.Cause)
		}
		if !reflect.DeepEqual(got, o.events) {
			t.Fatalf("at %v (%s): unexpected events; got %q; want %q", o.at, o.kind, got, o.events)
		}
		if !logFirst {
			continue
		}
		for _, e := range evs {
			if s, _ := tr.State("S", "a-1"); s != e.From {
				t.Fatalf("a proposal moved the asset to %s before it was applied", s)
			}
			if !tr.Apply(e) {
				t.Fatalf("proposal %+v does not apply", e)
			}
		}
	}
	if s, _ := tr.State("S", "a-1"); s != final {
		t.Errorf("unexpected final state; got %s; want %s", s, final)
	}
}

func TestEvidence_Options(t *testing.T) {
	tr := NewTracker(Options{AcceptancePeriod: 2 * time.Hour, Grace: -1})
	if got := tr.Options(); got.AcceptancePeriod != 2*time.Hour || got.Grace != 0 {
		t.Fatalf("unexpected options %+v", got)
	}
	_ = tr.Add("S", "a-1", Installed)
	tr.ObserveTelemetry("S", "a-1", t0)
	tr.ObserveStatus("S", "a-1", false, t0.Add(time.Hour))
	tr.ObserveStatus("S", "a-1", true, t0.Add(time.Hour+time.Second))
	if evs := tr.Tick(t0.Add(2 * time.Hour)); len(evs) != 0 {
		t.Fatalf("with no grace any gap restarts; got %v", evs)
	}
	if evs := tr.Tick(t0.Add(3*time.Hour + time.Second)); len(evs) != 1 {
		t.Fatalf("unexpected events %v", evs)
	}
	if d := NewTracker(Options{}).Options(); d.AcceptancePeriod != DefaultAcceptancePeriod || d.Grace != DefaultGrace {
		t.Fatalf("unexpected defaults %+v", d)
	}
}

func TestManualAcceptanceStopsEvidence(t *testing.T) {
	tr := NewTracker(Options{})
	_ = tr.Add("S", "a-1", Installed)
	tr.ObserveTelemetry("S", "a-1", t0)
	if _, err := tr.Transition("S", "a-1", Commissioned, "carla", "acceptance report 12", t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if evs := tr.Tick(t0.Add(100 * time.Hour)); len(evs) != 0 {
		t.Fatalf("acceptance fired after a manual commissioning: %v", evs)
	}
}

func TestEventColumns(t *testing.T) {
	e := Event{Site: "S", Asset: "a-1", From: Planned, To: Installed, At: t0, Actor: "x", Cause: CauseAPI}
	if got := e.Columns(); len(got) != len(EventColumns) || got[2] != "planned" || got[4] != t0 {
		t.Fatalf("unexpected columns %v for %v", got, EventColumns)
	}
}

// recount counts states from the assets, the slow way.
func recount(tr *Tracker) (all map[State]int, bySite map[string]map[State]int) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	all, bySite = map[State]int{}, map[string]map[State]int{}
	for k, a := range tr.assets {
		all[a.State]++
		if bySite[k.site] == nil {
			bySite[k.site] = map[State]int{}
		}
		bySite[k.site][a.State]++
	}
	return all, bySite
}

// step applies one random operation chosen by op and checks the invariants
// every event must keep.
func step(t testing.TB, tr *Tracker, op, site, asset int, at time.Time, to State) {
	t.Helper()
	s, a := []string{"S1", "S2", "S3"}[site%3], []string{"a-1", "a-2", "a-3", "a-4"}[asset%4]
	before, known := tr.State(s, a)
	var evs []Event
	switch op % 7 {
	case 0:
		if err := tr.Add(s, a, to); err == nil && known {
			t.Fatalf("Add of a known asset succeeded")
		}
	case 1:
		e, err := tr.Transition(s, a, to, "op", "", at)
		if err == nil {
			evs = []Event{e}
		} else if known && Allowed(before, to) {
			t.Fatalf("allowed move %s → %s refused: %v", before, to, err)
		}
	case 2:
		evs = tr.ObserveTelemetry(s, a, at)
	case 3, 4:
		evs = tr.ObserveStatus(s, a, op%7 == 3, at)
	case 5:
		evs = tr.Tick(at)
	case 6:
		evs = tr.ObserveFault(s, a, at)
	}
	for _, e := range evs {
		if !Allowed(e.From, e.To) {
			t.Fatalf("event %+v is outside the transition table", e)
		}
		if e.From == Decommissioned {
			t.Fatalf("event %+v leaves the terminal state", e)
		}
		if e.At.After(at) {
			t.Fatalf("event %+v dated after the observation at %v", e, at)
		}
	}
	all, bySite := recount(tr)
	if got := tr.Counts(); !maps.Equal(got, all) {
		t.Fatalf("counts drifted; got %v; recount %v", got, all)
	}
	for _, site := range []string{"S1", "S2", "S3"} {
		want := bySite[site]
		if want == nil {
			want = map[State]int{}
		}
		if got := tr.SiteCounts(site); !maps.Equal(got, want) {
			t.Fatalf("site %s counts drifted; got %v; recount %v", site, got, want)
		}
	}
}

// TestCounts_Property runs long random sequences and checks after every
// operation that the incremental counts equal a recount.
func TestCounts_Property(t *testing.T) {
	for seed := uint64(0); seed < 20; seed++ {
		rng := rand.New(rand.NewPCG(seed, 7))
		tr := NewTracker(Options{AcceptancePeriod: 3 * time.Hour, Grace: 30 * time.Minute})
		at := t0
		for i := 0; i < 2000; i++ {
			at = at.Add(time.Duration(rng.IntN(90)) * time.Minute)
			step(t, tr, rng.IntN(7), rng.IntN(3), rng.IntN(4), at, States[rng.IntN(len(States))])
			if i%500 == 499 {
				b, err := tr.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				r := NewTracker(tr.Options())
				if err := r.Restore(b); err != nil {
					t.Fatal(err)
				}
				if !maps.Equal(r.Counts(), tr.Counts()) {
					t.Fatalf("restored counts differ")
				}
				tr = r
			}
		}
	}
}

func TestSnapshot_RoundTrip(t *testing.T) {
	tr := NewTracker(Options{})
	_ = tr.Add("S", "a-1", Installed)
	_ = tr.Add("S", "a-2", Operational)
	_ = tr.Add("T", "a-1", Planned)
	tr.ObserveTelemetry("S", "a-1", t0)
	b, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := NewTracker(Options{})
	if err := r.Restore(b); err != nil {
		t.Fatal(err)
	}
	b2, _ := r.Snapshot()
	if string(b) != string(b2) {
		t.Fatalf("snapshot changed across restore:\n%s\n%s", b, b2)
	}
	// The restored tracker carries on with the acceptance period.
	if evs := r.Tick(t0.Add(72 * time.Hour)); len(evs) != 1 || evs[0].To != Commissioned {
		t.Fatalf("unexpected events after restore %v", evs)
	}
}

func TestRestore_Failure(t *testing.T) {
	f := func(in, want string) {
		t.Helper()
		tr := NewTracker(Options{})
		_ = tr.Add("keep", "a-1", Operational)
		err := tr.Restore([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("unexpected error; got %v; want it to contain %q", err, want)
		}
		if tr.Counts()[Operational] != 1 {
			t.Errorf("failed restore changed the tracker")
		}
	}
	f(`{`, "cannot restore")
	f(`{"version":2}`, "version 2")
	f(`{"version":1,"assets":[{"site":"S","asset":"a-1","state":"bogus"}]}`, "invalid state")
	f(`{"version":1,"assets":[{"site":"","asset":"a-1","state":"planned"}]}`, "empty id")
	f(`{"version":1,"assets":[{"site":"S","asset":"a-1","state":"planned"},{"site":"S","asset":"a-1","state":"planned"}]}`, "listed twice")
	f(`{"version":1,"assets":[{"site":"S","asset":"a-1","state":"operational","accept_start":"2026-01-01T00:00:00Z"}]}`, "acceptance running")
}

// FuzzTracker drives the tracker with arbitrary operation sequences; step
// checks the invariants (table, terminal state, counts) after each one.
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 2, 0, 0, 1, 5, 255, 3})
	f.Add([]byte{1, 1, 1, 3, 1, 5, 2, 1, 1, 2, 5, 40, 5, 200})
	f.Fuzz(func(t *testing.T, ops []byte) {
		tr := NewTracker(Options{AcceptancePeriod: 4 * time.Hour, Grace: 20 * time.Minute})
		for _, s := range States {
			_ = tr.Add("S1", "a-"+string(s), s)
		}
		at := t0
		for i := 0; i+2 < len(ops); i += 3 {
			at = at.Add(time.Duration(ops[i+2]) * 5 * time.Minute)
			step(t, tr, int(ops[i]), int(ops[i+1]), int(ops[i]>>3), at, States[int(ops[i+1]>>2)%len(States)])
		}
	})
}

// Under LogFirst nothing moves until the log is folded: a call is only
// checked, evidence proposes once until its proposal is folded or
// withdrawn, and Apply converges whatever state a tracker started from.
func TestLogFirst_OnlyApplyMoves(t *testing.T) {
	tr := NewTracker(Options{LogFirst: true})
	_ = tr.Add("S", "a-1", Operational)
	_ = tr.Add("S", "a-2", Planned)

	ev, err := tr.Propose("S", "a-1", Faulty, "carla", "", t0)
	if err != nil || ev.From != Operational || ev.To != Faulty || ev.Cause != CauseAPI {
		t.Fatalf("Propose = %+v, %v", ev, err)
	}
	if s, _ := tr.State("S", "a-1"); s != Operational {
		t.Fatalf("Propose moved the asset to %s", s)
	}
	var te *TransitionError
	if _, err := tr.Propose("S", "a-1", Installed, "carla", "", t0); !errors.As(err, &te) {
		t.Fatalf("Propose operational → installed: %v; want a TransitionError", err)
	}
	if _, err := tr.Propose("S", "nope", Faulty, "carla", "", t0); !errors.Is(err, ErrUnknownAsset) {
		t.Fatalf("Propose of an unknown asset: %v", err)
	}

	// Evidence proposes once while its proposal waits.
	if evs := tr.ObserveTelemetry("S", "a-2", t0); len(evs) != 1 || evs[0].To != Installed {
		t.Fatalf("first telemetry proposes %v", evs)
	}
	if evs := tr.ObserveTelemetry("S", "a-2", t0.Add(time.Minute)); len(evs) != 0 {
		t.Fatalf("a pending proposal was proposed again: %v", evs)
	}
	tr.Withdraw("S", "a-2")
	evs := tr.ObserveTelemetry("S", "a-2", t0.Add(2*time.Minute))
	if len(evs) != 1 {
		t.Fatalf("after Withdraw, telemetry proposes %v", evs)
	}
	if !tr.Apply(evs[0]) {
		t.Fatal("the proposal does not apply")
	}
	// The acceptance period started with the telemetry that installed it.
	done := t0.Add(2*time.Minute + DefaultAcceptancePeriod)
	if got := tr.Tick(done.Add(-time.Second)); len(got) != 0 {
		t.Fatalf("acceptance proposes early: %v", got)
	}
	if got := tr.Tick(done); len(got) != 1 || got[0].To != Commissioned || !got[0].At.Equal(done) {
		t.Fatalf("acceptance proposes %v", got)
	}

	// The fold converges: a tracker that started elsewhere ends where the
	// log says, and reports the mismatch; an unknown asset is added.
	other := NewTracker(Options{LogFirst: true})
	_ = other.Add("S", "a-1", Commissioned)
	if other.Apply(ev) {
		t.Fatal("Apply reported a match from another state")
	}
	if s, _ := other.State("S", "a-1"); s != Faulty {
		t.Fatalf("after Apply: %s; want faulty", s)
	}
	other.Apply(Event{Site: "T", Asset: "b-1", From: Planned, To: Installed, At: t0, Actor: ActorSystem, Cause: CauseFirstTelemetry})
	if s, ok := other.State("T", "b-1"); !ok || s != Installed {
		t.Fatalf("an unknown asset after Apply: %s %v", s, ok)
	}
	if other.Apply(Event{Site: "T", Asset: "b-1", From: Installed, To: "broken"}) {
		t.Fatal("an invalid state applied")
	}
	checkCounts(t, other)

	// ForgetEvidence keeps the state and drops the running acceptance.
	tr.ForgetEvidence("S", "a-2")
	if got := tr.Tick(t0.Add(1000 * time.Hour)); len(got) != 0 {
		t.Fatalf("forgotten evidence still proposes %v", got)
	}
	if s, _ := tr.State("S", "a-2"); s != Installed {
		t.Fatalf("ForgetEvidence changed the state to %s", s)
	}
}

func checkCounts(t *testing.T, tr *Tracker) {
	t.Helper()
	all, _ := recount(tr)
	if got := tr.Counts(); !maps.Equal(got, all) {
		t.Fatalf("counts drifted; got %v; recount %v", got, all)
	}
}

// A leader that writes proposals to a log and trackers that only fold that
// log end in the same states and counts, whatever the leader's evidence and
// calls were, including proposals given up (a failed write).
func TestLogFirst_FollowersAgree(t *testing.T) {
	for seed := uint64(0); seed < 10; seed++ {
		rng := rand.New(rand.NewPCG(seed, 11))
		opts := Options{AcceptancePeriod: 3 * time.Hour, Grace: 30 * time.Minute, LogFirst: true}
		leader, follower := NewTracker(opts), NewTracker(opts)
		sites, assets := []string{"S1", "S2", "S3"}, []string{"a-1", "a-2", "a-3", "a-4"}
		for _, s := range sites {
			for _, a := range assets {
				st := States[rng.IntN(len(States))]
				_ = leader.Add(s, a, st)
				_ = follower.Add(s, a, st)
			}
		}
		var log []Event
		at := t0
		for i := 0; i < 2000; i++ {
			at = at.Add(time.Duration(rng.IntN(90)) * time.Minute)
			s, a := sites[rng.IntN(len(sites))], assets[rng.IntN(len(assets))]
			var evs []Event
			switch rng.IntN(6) {
			case 0:
				if e, err := leader.Propose(s, a, States[rng.IntN(len(States))], "op", "", at); err == nil {
					evs = []Event{e}
				}
			case 1:
				evs = leader.ObserveTelemetry(s, a, at)
			case 2, 3:
				evs = leader.ObserveStatus(s, a, rng.IntN(2) == 0, at)
			case 4:
				evs = leader.Tick(at)
			case 5:
				evs = leader.ObserveFault(s, a, at)
			}
			for _, e := range evs {
				if rng.IntN(10) == 0 {
					leader.Withdraw(e.Site, e.Asset) // the write failed
					continue
				}
				if !Allowed(e.From, e.To) && e.Actor != ActorSystem {
					t.Fatalf("proposal %+v is outside the transition table", e)
				}
				if !leader.Apply(e) {
					t.Fatalf("the leader's own proposal %+v does not match its state", e)
				}
				log = append(log, e)
			}
		}
		for _, e := range log {
			follower.Apply(e)
		}
		checkCounts(t, leader)
		checkCounts(t, follower)
		if !maps.Equal(leader.Counts(), follower.Counts()) {
			t.Fatalf("seed %d: leader %v, follower %v", seed, leader.Counts(), follower.Counts())
		}
		for _, s := range sites {
			for _, a := range assets {
				l, _ := leader.State(s, a)
				f, _ := follower.State(s, a)
				if l != f {
					t.Fatalf("seed %d: %s/%s is %s on the leader, %s on the follower", seed, s, a, l, f)
				}
			}
		}
	}
}
