package record

import (
	"errors"
	"fmt"

	json "github.com/segmentio/encoding/json"
)

// DeadLetter is the value of a record on the dead-letter topic: an MQTT
// publish that ingest refused, with why, so nothing is dropped silently.
// Payload is the raw publish body (base64 in JSON).
type DeadLetter struct {
	Received int64  `json:"received"` // Unix milliseconds, arrival at the broker
	Topic    string `json:"topic"`    // MQTT topic
	Reason   string `json:"reason"`   // machine code from the catalogue of ingest/payload (payload.Code)
	Message  string `json:"message"`  // human text
	Site     string `json:"site"`
	Asset    string `json:"asset"`
	Payload  []byte `json:"payload"`
}

// MarshalDeadLetter encodes d for Kafka.
func MarshalDeadLetter(d *DeadLetter) ([]byte, error) {
	return json.Marshal(d)
}

// UnmarshalDeadLetter decodes a dead-letter record value.
func UnmarshalDeadLetter(b []byte, d *DeadLetter) error {
	*d = DeadLetter{}
	if err := json.Unmarshal(b, d); err != nil {
		return fmt.Errorf("cannot decode dead letter: %w", err)
	}
	if d.Reason == "" {
		return errors.New("cannot decode dead letter: reason missing")
	}
	return nil
}
