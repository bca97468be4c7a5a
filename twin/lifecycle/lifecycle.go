// Package lifecycle tracks where each asset of the fleet stands between
// being planned by the programme and being switched off for good:
//
//	planned → installed → commissioned → operational ⇄ faulty
//	                any state → decommissioned (terminal)
//
// States move by explicit operator calls (Transition) and by evidence from
// the field (ObserveTelemetry, ObserveStatus, ObserveFault, Tick). Every
// move is an Event naming who or what caused it. With Options.LogFirst the
// tracker is the fold of a log of events: calls (Propose) and evidence
// return the events to write, and only Apply, fed from the log, moves. The milestone portal
// counts these states, so counts are kept incrementally and checked against
// a recount in the tests.
//
// The package is pure: no I/O, no clock. Time is always a parameter.
package lifecycle

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// State is the lifecycle state of one asset.
type State string

const (
	Planned        State = "planned"        // in the programme's plan, not on site yet
	Installed      State = "installed"      // physically on site
	Commissioned   State = "commissioned"   // accepted: reported and stayed online for the acceptance period, or accepted by hand
	Operational    State = "operational"    // in service for the public
	Faulty         State = "faulty"         // out of service because of a fault
	Decommissioned State = "decommissioned" // removed; terminal
)

// States lists every state in lifecycle order.
var States = []State{Planned, Installed, Commissioned, Operational, Faulty, Decommissioned}

// Valid reports whether s is one of States.
func (s State) Valid() bool { return slices.Contains(States, s) }

// ParseState returns the State named s.
func ParseState(s string) (State, error) {
	st := State(s)
	if !st.Valid() {
		return "", fmt.Errorf("cannot parse lifecycle state %q: want one of %s", s, joinStates(States))
	}
	return st, nil
}

// Causes recorded in Event.Cause. API calls may pass their own cause; these
// are the ones the tracker writes itself.
const (
	CauseAPI            = "api"
	CauseFirstTelemetry = "evidence:first_telemetry"            // a planned asset reported, so it is on site
	CauseAcceptance     = "evidence:first_telemetry+acceptance" // reported, then online for AcceptancePeriod
	CauseFault          = "evidence:fault"                      // the device reported a fault
	// CauseMigrated marks the events that carry a state stored in
	// ClickHouse before the lifecycle had a log of its own: they are
	// written once, to an empty log, and are not stored again.
	CauseMigrated = "migrated:clickhouse"
)

// ActorSystem is the Actor of moves made on evidence.
const ActorSystem = "system"

// apiMoves is the transition table for operator calls. Anything not listed
// is refused. There is no way back to planned or installed: an asset that
// was installed stays counted as installed for the programme, and a wrong
// move is corrected by decommissioning and re-registering, which leaves a
// trace, rather than by rewriting history.
var apiMoves = map[State][]State{
	Planned:        {Installed, Decommissioned},
	Installed:      {Commissioned, Decommissioned}, // installed → commissioned is manual acceptance
	Commissioned:   {Operational, Faulty, Decommissioned},
	Operational:    {Faulty, Decommissioned},
	Faulty:         {Operational, Decommissioned}, // repaired
	Decommissioned: nil,
}

// Next returns the states an operator call may move from to, in lifecycle order.
func Next(from State) []State { return slices.Clone(apiMoves[from]) }

// Allowed reports whether an operator call may move an asset from → to.
func Allowed(from, to State) bool { return slices.Contains(apiMoves[from], to) }

// ErrNotAllowed is wrapped by every refused transition.
var ErrNotAllowed = errors.New("transition not allowed")

// ErrUnknownAsset is returned for an asset the tracker does not hold.
var ErrUnknownAsset = errors.New("unknown asset")

// TransitionError says which move was refused and what was possible instead.
type TransitionError struct {
	Site, Asset string
	From, To    State
	Allowed     []State
}

func (e *TransitionError) Error() string {
	next := "none, " + string(e.From) + " is terminal"
	if len(e.Allowed) > 0 {
		next = joinStates(e.Allowed)
	}
	return fmt.Sprintf("asset %s/%s: %s → %s is not allowed; allowed from %s: %s",
		e.Site, e.Asset, e.From, e.To, e.From, next)
}

func (e *TransitionError) Unwrap() error { return ErrNotAllowed }

func joinStates(ss []State) string {
	parts := make([]string, len(ss))
	for i, s := range ss {
		parts[i] = string(s)
	}
	return strings.Join(parts, ", ")
}

// Event is one state change, and as JSON the value of a polis.lifecycle.v1
// record. ClickHouse's lifecycle_events stores them; Columns gives the
// values in EventColumns order for a column-named INSERT.
type Event struct {
	Site  string    `json:"site"`
	Asset string    `json:"asset"`
	From  State     `json:"from"`
	To    State     `json:"to"`
	At    time.Time `json:"at"`
	Actor string    `json:"actor"` // a user, or ActorSystem for evidence
	Cause string    `json:"cause"` // CauseAPI, CauseAcceptance, ...
}

// EventColumns names the columns of Event.Columns, for
// "INSERT INTO polis.lifecycle_events (site, asset, ...)".
var EventColumns = []string{"site", "asset", "from_state", "to_state", "at", "actor", "cause"}

// Columns returns the event's values in EventColumns order.
func (e Event) Columns() []any {
	return []any{e.Site, e.Asset, string(e.From), string(e.To), e.At, e.Actor, e.Cause}
}
