package lifecycle

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

// ev is an imported event of asset a-1 of site S by actor "ops".
func ev(asset string, to State, at time.Time) Event {
	return Event{Site: "S", Asset: asset, To: to, At: at, Actor: "ops"}
}

func TestCheckBatch_Refusals(t *testing.T) {
	now := t0.Add(24 * time.Hour)
	newTracker := func() *Tracker {
		tr := NewTracker(Options{LogFirst: true})
		_ = tr.Add("S", "a-1", Planned)
		_ = tr.Add("S", "a-2", Operational)
		// a-3 moved at t0 (the log), so nothing may be dated before that.
		_ = tr.Add("S", "a-3", Planned)
		tr.Apply(Event{Site: "S", Asset: "a-3", From: Planned, To: Installed, At: t0, Actor: "x"})
		return tr
	}
	for _, tc := range []struct {
		name  string
		batch []Event
		index int
		is    error
		msg   string
	}{
		{"no site", []Event{{Asset: "a-1", To: Installed, At: t0, Actor: "ops"}}, 0, ErrBadEvent, "no site"},
		{"no actor", []Event{{Site: "S", Asset: "a-1", To: Installed, At: t0}}, 0, ErrBadEvent, "no actor"},
		{"bad state", []Event{ev("a-1", "built", t0)}, 0, ErrBadEvent, `"built"`},
		{"zero time", []Event{ev("a-1", Installed, time.Time{})}, 0, ErrBadEvent, "before 2000"},
		{"future", []Event{ev("a-1", Installed, t0), ev("a-1", Commissioned, now.Add(time.Second))}, 1, ErrInFuture, "after now"},
		{"unknown asset", []Event{ev("a-1", Installed, t0), ev("a-9", Installed, t0)}, 1, ErrUnknownAsset, "S/a-9"},
		{"not allowed from the tracker's state", []Event{ev("a-2", Installed, t0)}, 0, ErrNotAllowed, "operational → installed"},
		{"not allowed along the batch", []Event{ev("a-1", Installed, t0), ev("a-1", Operational, t0.Add(time.Hour))}, 1, ErrNotAllowed, "installed → operational"},
		{"same time in the batch", []Event{ev("a-1", Installed, t0), ev("a-1", Commissioned, t0)}, 1, ErrOutOfOrder, "is not after"},
		{"backwards in the batch", []Event{ev("a-1", Installed, t0), ev("a-1", Commissioned, t0.Add(-time.Hour))}, 1, ErrOutOfOrder, "is not after"},
		{"before the history", []Event{ev("a-3", Commissioned, t0.Add(-time.Minute))}, 0, ErrOutOfOrder, "latest recorded move"},
		{"wrong from", []Event{{Site: "S", Asset: "a-1", From: Installed, To: Commissioned, At: t0, Actor: "ops"}}, 0, ErrBadEvent, "would be planned"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker()
			before, _ := tr.Snapshot()
			write, skipped, err := tr.CheckBatch(tc.batch, now)
			var be *BatchError
			if !errors.As(err, &be) || be.Index != tc.index || !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (%T); want a BatchError at %d wrapping %v and saying %q", err, err, tc.index, tc.is, tc.msg)
			}
			if write != nil || skipped != 0 {
				t.Fatalf("a refused batch returned %d events to write, %d skipped", len(write), skipped)
			}
			if after, _ := tr.Snapshot(); string(after) != string(before) {
				t.Fatalf("CheckBatch changed the tracker")
			}
		})
	}
}

// A batch is checked as if applied in turn; what the log already holds is
// skipped, so applying the same batch again, or a longer one after part of
// it was written, writes each event once.
func TestCheckBatch_Idempotent(t *testing.T) {
	now := t0.Add(30 * 24 * time.Hour)
	tr := NewTracker(Options{LogFirst: true})
	for _, a := range []string{"a-1", "a-2"} {
		_ = tr.Add("S", a, Planned)
	}
	day := func(d int) time.Time { return t0.Add(time.Duration(d) * 24 * time.Hour) }
	batch := []Event{
		ev("a-1", Installed, day(1)), ev("a-2", Installed, day(2)),
		ev("a-1", Commissioned, day(5)), ev("a-1", Operational, day(6)),
		ev("a-2", Commissioned, day(7)), ev("a-1", Faulty, day(20)),
	}
	batch[5].Cause = "supplier report"
	fold := func(evs []Event) {
		for _, e := range evs {
			if !tr.Apply(e) {
				t.Fatalf("event %+v did not start from the asset's state", e)
			}
		}
	}
	// A first run wrote the first three events only (a failure part way).
	write, skipped, err := tr.CheckBatch(batch[:3], now)
	if err != nil || skipped != 0 || len(write) != 3 {
		t.Fatalf("first run: %d to write, %d skipped, %v", len(write), skipped, err)
	}
	if write[0].From != Planned || write[2].From != Installed || write[2].Cause != CauseImport {
		t.Fatalf("From or Cause not filled in: %+v", write)
	}
	fold(write)
	write, skipped, err = tr.CheckBatch(batch, now)
	if err != nil || skipped != 3 || len(write) != 3 {
		t.Fatalf("second run: %d to write, %d skipped, %v", len(write), skipped, err)
	}
	if write[2].Cause != "supplier report" || write[2].From != Operational {
		t.Fatalf("unexpected event %+v", write[2])
	}
	fold(write)
	if write, skipped, err = tr.CheckBatch(batch, now); err != nil || skipped != len(batch) || len(write) != 0 {
		t.Fatalf("third run: %d to write, %d skipped, %v", len(write), skipped, err)
	}
	if got := tr.Counts(); !reflect.DeepEqual(got, map[State]int{Faulty: 1, Commissioned: 1}) {
		t.Fatalf("unexpected counts %v", got)
	}
	// The history is what was folded, in order, and it survives a snapshot.
	want := []Event{
		{Site: "S", Asset: "a-1", From: Planned, To: Installed, At: day(1)},
		{Site: "S", Asset: "a-1", From: Installed, To: Commissioned, At: day(5)},
		{Site: "S", Asset: "a-1", From: Commissioned, To: Operational, At: day(6)},
		{Site: "S", Asset: "a-1", From: Operational, To: Faulty, At: day(20)},
	}
	if got := tr.History("S", "a-1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected history\n got %+v\nwant %+v", got, want)
	}
	b, err := tr.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	r := NewTracker(Options{LogFirst: true})
	if err := r.Restore(b); err != nil {
		t.Fatal(err)
	}
	if got := r.History("S", "a-1"); !reflect.DeepEqual(got, want) {
		t.Fatalf("history lost in the snapshot: %+v", got)
	}
	if _, skipped, err := r.CheckBatch(batch, now); err != nil || skipped != len(batch) {
		t.Fatalf("restored tracker: %d skipped, %v", skipped, err)
	}
	// An event dated within the asset's history that the history does not
	// hold is refused, even after skipped ones: it would rewrite the past.
	_ = tr.Add("S", "a-3", Planned)
	if _, _, err := tr.CheckBatch([]Event{ev("a-3", Installed, day(21)), ev("a-1", Installed, day(1)), ev("a-1", Commissioned, day(4))}, now); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("an event before the asset's history: got %v", err)
	}
}

// Evidence folded after an import counts as history too: the import is
// skipped, and a later event must come after the evidence.
func TestCheckBatch_AfterEvidence(t *testing.T) {
	tr := NewTracker(Options{LogFirst: true, AcceptancePeriod: time.Hour})
	_ = tr.Add("S", "a-1", Planned)
	imp := []Event{ev("a-1", Installed, t0)}
	write, _, err := tr.CheckBatch(imp, t0.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	tr.Apply(write[0])
	tr.ObserveTelemetry("S", "a-1", t0.Add(time.Minute))
	evs := tr.Tick(t0.Add(2 * time.Hour))
	if len(evs) != 1 || evs[0].To != Commissioned {
		t.Fatalf("no acceptance by evidence: %v", evs)
	}
	tr.Apply(evs[0])
	now := t0.Add(3 * time.Hour)
	if _, skipped, err := tr.CheckBatch(imp, now); err != nil || skipped != 1 {
		t.Fatalf("re-import after evidence: %d skipped, %v", skipped, err)
	}
	late := append(imp, ev("a-1", Operational, evs[0].At.Add(-time.Second)))
	if _, _, err := tr.CheckBatch(late, now); !errors.Is(err, ErrOutOfOrder) {
		t.Fatalf("an event before the evidence: got %v", err)
	}
	ok := append(imp, ev("a-1", Operational, evs[0].At.Add(time.Second)))
	if write, skipped, err := tr.CheckBatch(ok, now); err != nil || skipped != 1 || len(write) != 1 || write[0].From != Commissioned {
		t.Fatalf("an event after the evidence: %+v, %d skipped, %v", write, skipped, err)
	}
}

func TestRestore_BadHistory(t *testing.T) {
	tr := NewTracker(Options{})
	err := tr.Restore([]byte(`{"version":1,"assets":[{"site":"S","asset":"a-1","state":"planned","history":[{"from":"x","to":"planned","at":"2026-01-01T00:00:00Z"}]}]}`))
	if err == nil || !strings.Contains(err.Error(), "history step 0") {
		t.Fatalf("got %v; want a history error", err)
	}
}
