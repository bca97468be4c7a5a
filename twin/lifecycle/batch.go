package lifecycle

import (
	"errors"
	"fmt"
	"time"
)

// CauseImport is the cause recorded for an imported event that gives none.
const CauseImport = "import"

// Why CheckBatch refuses an event (each wrapped in a *BatchError).
var (
	ErrBadEvent    = errors.New("incomplete event")
	ErrInFuture    = errors.New("dated in the future")
	ErrOutOfOrder  = errors.New("not after the asset's previous event")
	ErrUnknownSite = errors.New("unknown site")
	// ErrElsewhere is for a writer that may not write the event here: the
	// asset's site is served by another instance.
	ErrElsewhere = errors.New("the site is served by another instance")
)

// earliest is the oldest time a batch may carry: older is a typo (a zero
// time, a year without its century), not history.
var earliest = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// BatchError is the first event of a batch that cannot be applied: its
// index in the batch and why (Err wraps ErrBadEvent, ErrInFuture,
// ErrOutOfOrder, ErrUnknownSite, ErrUnknownAsset or a *TransitionError).
type BatchError struct {
	Index int
	Event Event
	Err   error
}

func (e *BatchError) Error() string {
	return fmt.Sprintf("event %d (%s/%s → %s at %s): %v", e.Index, e.Event.Site, e.Event.Asset, e.Event.To,
		e.Event.At.UTC().Format(time.RFC3339), e.Err)
}

func (e *BatchError) Unwrap() error { return e.Err }

// CheckBatch checks a batch of events against the tracker, as if each were
// applied in turn, and returns those to write with From filled in (and
// Cause, if empty, CauseImport), in batch order. It writes nothing.
//
// An event is refused, with a *BatchError naming the first such event, if
// it has no site, asset or actor, is dated before 2000 or after now, names
// an asset the tracker does not hold, is not after the asset's previous
// event (in the batch, or in the tracker's history), gives a From other
// than the state the asset would be in, or is a move Allowed refuses.
//
// An event the tracker has already folded (same asset, same To and the same
// instant, and the same From if given) is skipped and counted in skipped,
// so that a batch applied twice, or again after a failure part way, writes
// each event once. Skipped events must come before the asset's new ones.
func (t *Tracker) CheckBatch(events []Event, now time.Time) (write []Event, skipped int, err error) {
	type cursor struct {
		state    State
		hist     []histStep
		histLast time.Time // the latest move in the history
		last     time.Time // the asset's previous event in the batch
		seen     bool      // the batch had an event of the asset before
		fresh    bool      // a new event of the asset was accepted: no more skips
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := map[key]*cursor{}
	for i, ev := range events {
		fail := func(err error) ([]Event, int, error) {
			return nil, 0, &BatchError{Index: i, Event: ev, Err: err}
		}
		switch {
		case ev.Site == "" || ev.Asset == "":
			return fail(fmt.Errorf("%w: no site or asset", ErrBadEvent))
		case ev.Actor == "":
			return fail(fmt.Errorf("%w: no actor", ErrBadEvent))
		case !ev.To.Valid():
			return fail(fmt.Errorf("%w: to %q is not a lifecycle state", ErrBadEvent, ev.To))
		case ev.From != "" && !ev.From.Valid():
			return fail(fmt.Errorf("%w: from %q is not a lifecycle state", ErrBadEvent, ev.From))
		case ev.At.Before(earliest):
			return fail(fmt.Errorf("%w: dated before %s", ErrBadEvent, earliest.Format(time.DateOnly)))
		case ev.At.After(now):
			return fail(fmt.Errorf("%w: %s is after now (%s)", ErrInFuture, ev.At.UTC().Format(time.RFC3339), now.UTC().Format(time.RFC3339)))
		}
		k := key{ev.Site, ev.Asset}
		c := cur[k]
		if c == nil {
			a, ok := t.assets[k]
			if !ok {
				return fail(fmt.Errorf("%s/%s: %w", ev.Site, ev.Asset, ErrUnknownAsset))
			}
			c = &cursor{state: a.State, hist: a.hist}
			if n := len(a.hist); n > 0 {
				c.histLast = a.hist[n-1].time()
			}
			cur[k] = c
		}
		if c.seen && !ev.At.After(c.last) {
			return fail(fmt.Errorf("%w: %s is not after %s", ErrOutOfOrder, ev.At.UTC().Format(time.RFC3339), c.last.UTC().Format(time.RFC3339)))
		}
		if !c.fresh && made(c.hist, ev) {
			skipped++
			c.last, c.seen = ev.At, true
			continue
		}
		if !c.histLast.IsZero() && !ev.At.After(c.histLast) {
			return fail(fmt.Errorf("%w: %s is not after its latest recorded move, at %s", ErrOutOfOrder,
				ev.At.UTC().Format(time.RFC3339), c.histLast.UTC().Format(time.RFC3339)))
		}
		if ev.From != "" && ev.From != c.state {
			return fail(fmt.Errorf("%w: from %s, but the asset would be %s", ErrBadEvent, ev.From, c.state))
		}
		if !Allowed(c.state, ev.To) {
			return fail(fmt.Errorf("cannot move asset: %w",
				&TransitionError{Site: ev.Site, Asset: ev.Asset, From: c.state, To: ev.To, Allowed: Next(c.state)}))
		}
		ev.From = c.state
		if ev.Cause == "" {
			ev.Cause = CauseImport
		}
		write = append(write, ev)
		c.state, c.last, c.fresh, c.seen = ev.To, ev.At, true, true
	}
	return write, skipped, nil
}

// made reports whether hist holds ev: the same move at the same instant.
func made(hist []histStep, ev Event) bool {
	to, sec, nsec := stateIndex(ev.To), ev.At.Unix(), int32(ev.At.Nanosecond())
	for _, s := range hist {
		if s.to == to && s.sec == sec && s.nsec == nsec && (ev.From == "" || States[s.from] == ev.From) {
			return true
		}
	}
	return false
}

// History returns the moves the tracker has made or folded for an asset,
// oldest first, as events without actor or cause (the log has those).
func (t *Tracker) History(site, asset string) []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	a, ok := t.assets[key{site, asset}]
	if !ok {
		return nil
	}
	out := make([]Event, len(a.hist))
	for i, s := range a.hist {
		out[i] = Event{Site: site, Asset: asset, From: States[s.from], To: States[s.to], At: s.time()}
	}
	return out
}
