// Package record is the wire format of the records ingest writes to Kafka and
// every consumer (storage, twin, rules) reads back. It is versioned JSON so
// that any Kafka tool can read the topics without this code.
package record

import (
	"encoding/json"

	"errors"
	"fmt"
	segjson "github.com/segmentio/encoding/json"
)

// Version is written in every record; consumers refuse versions they do not know.
const Version = 1

// Kind says which MQTT topic a record came from.
type Kind string

const (
	KindTelemetry Kind = "telemetry"
	KindEvent     Kind = "event"
	KindReported  Kind = "reported"
	KindStatus    Kind = "status"
)

// Point is one numeric sample.
type Point struct {
	Metric string  `json:"m"`
	TS     int64   `json:"t"` // Unix milliseconds, source time
	Value  float64 `json:"v"`
	Late   bool    `json:"late,omitempty"`
}

// Record is what ingest produces for one accepted MQTT publish.
type Record struct {
	V        int     `json:"v"`
	Kind     Kind    `json:"kind"`
	Site     string  `json:"site"`
	Asset    string  `json:"asset"`
	Received int64   `json:"recv"` // Unix milliseconds, arrival at the broker
	Points   []Point `json:"points,omitempty"`
	// Event, reported state and status carry their (validated) JSON body.
	Event  string          `json:"event,omitempty"` // event type for KindEvent
	TS     int64           `json:"ts,omitempty"`    // source time for non-telemetry kinds
	Body   json.RawMessage `json:"body,omitempty"`
	Status string          `json:"status,omitempty"` // online/offline for KindStatus
}

// Marshal encodes r for Kafka.
func Marshal(r *Record) ([]byte, error) {
	r.V = Version
	return segjson.Marshal(r)
}

// ErrVersion marks a record written by an unknown (newer) producer.
var ErrVersion = errors.New("unknown record version")

// Unmarshal decodes a Kafka record value.
func Unmarshal(b []byte, r *Record) error {
	*r = Record{}
	if err := segjson.Unmarshal(b, r); err != nil {
		return fmt.Errorf("cannot decode record: %w", err)
	}
	if r.V != Version {
		return fmt.Errorf("record version %d: %w", r.V, ErrVersion)
	}
	if r.Site == "" || r.Asset == "" {
		return errors.New("cannot decode record: site or asset missing")
	}
	return nil
}
