package record

import (
	"errors"
	"fmt"

	json "github.com/segmentio/encoding/json"
)

// AlertChange is the value of a record on polis.alerts.v1: one change of an
// alert, written by the rules service, stored as the alert history and read
// by sinks. Times are Unix milliseconds; zero means unset.
type AlertChange struct {
	V           int               `json:"v"`
	Kind        string            `json:"kind"` // fired, resolved, pending, nodata, acked, reminder, escalated, ...
	At          int64             `json:"at"`
	Deliver     bool              `json:"deliver"` // sinks send it (not held by a silence, inhibition or flap damping)
	Level       int               `json:"level,omitempty"`
	Fingerprint string            `json:"fingerprint"`
	RuleID      string            `json:"rule_id"`
	Site        string            `json:"site"`
	Asset       string            `json:"asset"`
	State       string            `json:"state"`
	Severity    string            `json:"severity"`
	Summary     string            `json:"summary"`
	Labels      map[string]string `json:"labels,omitempty"`
	Value       float64           `json:"value"`
	ActiveAt    int64             `json:"active_at,omitempty"`
	FiredAt     int64             `json:"fired_at,omitempty"`
	ResolvedAt  int64             `json:"resolved_at,omitempty"`
	AckedBy     string            `json:"acked_by,omitempty"`
	Assignee    string            `json:"assignee,omitempty"`
	Occurrence  int               `json:"occurrence"`
}

// MarshalAlert encodes an alert change.
func MarshalAlert(a *AlertChange) ([]byte, error) {
	a.V = Version
	return json.Marshal(a)
}

// UnmarshalAlert decodes an alert change.
func UnmarshalAlert(b []byte, a *AlertChange) error {
	*a = AlertChange{}
	if err := json.Unmarshal(b, a); err != nil {
		return fmt.Errorf("cannot decode alert change: %w", err)
	}
	if a.V != Version {
		return fmt.Errorf("alert change version %d: %w", a.V, ErrVersion)
	}
	if a.Fingerprint == "" || a.Kind == "" {
		return errors.New("cannot decode alert change: fingerprint or kind missing")
	}
	return nil
}
