package loadtest

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
	"time"
)

// appendTelemetry appends the docs/design.md telemetry payload
// {"ts":<epoch ms>,"m":{"<metric>":<number>,...}} to b. Hand-written because
// it runs for every message; non-finite values are left out (JSON has none).
func appendTelemetry(b []byte, ts time.Time, ms []Metric) []byte {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, ts.UnixMilli(), 10)
	b = append(b, `,"m":{`...)
	first := true
	for _, m := range ms {
		if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = strconv.AppendQuote(b, m.Name)
		b = append(b, ':')
		b = strconv.AppendFloat(b, m.Value, 'f', -1, 64)
	}
	return append(b, "}}"...)
}

// appendEvent appends {"ts":<epoch ms>,"type":"<type>",<fields>} to b, fields
// in key order. Events are rare, so encoding/json is fine here.
func appendEvent(b []byte, e Event) ([]byte, error) {
	b = append(b, `{"ts":`...)
	b = strconv.AppendInt(b, e.TS.UnixMilli(), 10)
	b = append(b, `,"type":`...)
	b = strconv.AppendQuote(b, e.Type)
	keys := make([]string, 0, len(e.Fields))
	for k := range e.Fields {
		if k != "ts" && k != "type" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		v, err := json.Marshal(e.Fields[k])
		if err != nil {
			return b, err
		}
		b = append(b, ',')
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		b = append(b, v...)
	}
	return append(b, '}'), nil
}
