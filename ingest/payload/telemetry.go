package payload

import (
	"strconv"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

// DecodeTelemetry decodes a telemetry payload: either the Polis JSON format
// {"ts": <RFC 3339 | epoch ms>, "m": {"<metric>": <number>, ...}} or a SenML
// (RFC 8428) JSON array, told apart by the first non-space byte. It appends
// the normalised points to dst and returns it; on error dst is returned
// unchanged in length (its spare capacity may have been written).
//
// In the JSON format a missing or null "ts" is now; numbers below 1e11 are
// epoch seconds, larger ones epoch milliseconds. Metric values are finite
// numbers or booleans (1/0). Unknown top-level keys and repeated metrics are
// refused, so that a typo is never silently dropped.
func DecodeTelemetry(dst []record.Point, b []byte, now time.Time, lim Limits) ([]record.Point, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return dst, fail(CodeEmpty, "empty telemetry payload")
	}
	p := points{w: newWindow(now, lim), dst: dst, start: len(dst)}
	var err *Error
	switch b[0] {
	case '{':
		err = decodeJSONTelemetry(&p, b)
	case '[':
		err = decodeSenML(&p, b)
	default:
		err = fail(CodeBadJSON, `telemetry must be a JSON object {"ts":...,"m":{"temp_c":21.5}} or a SenML array [{"n":...,"v":...}]`)
	}
	if err != nil {
		return dst[:p.start], err
	}
	return p.dst, nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// decodeJSONTelemetry reads {"ts":...,"m":{...}}; b starts with '{'.
func decodeJSONTelemetry(p *points, b []byte) *Error {
	s := scanner{b: b}
	return syntaxFirst(b, s.telemetry(p))
}

func (s *scanner) telemetry(p *points) *Error {
	s.i++ // '{'
	ts, haveTS, haveM := p.w.now, false, false
	if !s.eat('}') {
		for {
			k, err := s.key()
			if err != nil {
				return err
			}
			switch string(k) {
			case "ts":
				if haveTS {
					return fail(CodeBadJSON, `"ts" appears twice`)
				}
				haveTS = true
				if ts, err = s.timestamp(&p.w, "ts"); err != nil {
					return err
				}
			case "m":
				if haveM {
					return fail(CodeBadJSON, `"m" appears twice`)
				}
				haveM = true
				if err := s.metrics(p); err != nil {
					return err
				}
			default:
				return fail(CodeBadJSON, "unknown key "+strconv.Quote(clip(string(k)))+`; telemetry has only "ts" and "m"`)
			}
			more, err := s.more('}')
			if err != nil {
				return err
			}
			if !more {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return err
	}
	if p.n() == 0 {
		return fail(CodeNoMetrics, `no metrics: "m" is missing or empty; send {"m":{"temp_c":21.5}}`)
	}
	p.setTS(ts)
	return nil
}

// timestamp reads an RFC 3339 string, epoch seconds or milliseconds, or null
// (meaning now).
func (s *scanner) timestamp(w *window, what string) (int64, *Error) {
	switch c := s.peek(); {
	case c == '"':
		v, err := s.str()
		if err != nil {
			return 0, err
		}
		return w.rfc3339(string(v), what)
	case c == '-' || isDigit(c):
		v, ok, err := s.float()
		if err != nil {
			return 0, err
		}
		if !ok {
			return 0, fail(CodeBadTimestamp, what+" is out of range")
		}
		return w.epochNumber(v, what)
	case c == 'n' && s.literal("null"):
		return w.now, nil
	}
	return 0, fail(CodeBadTimestamp, what+" must be an RFC 3339 string or epoch milliseconds")
}

// metrics reads the "m" object (or null).
func (s *scanner) metrics(p *points) *Error {
	switch s.peek() {
	case '{':
		s.i++
	case 'n':
		if s.literal("null") {
			return nil
		}
		fallthrough
	default:
		return fail(CodeBadJSON, `"m" must be an object of metric names to numbers, e.g. {"temp_c":21.5}`)
	}
	if s.eat('}') {
		return nil
	}
	for {
		k, err := s.key()
		if err != nil {
			return err
		}
		name, c, err := jsonMetric(k)
		if err != nil {
			return err
		}
		var v float64
		switch c := s.peek(); {
		case c == '-' || isDigit(c):
			f, ok, err := s.float()
			if err != nil {
				return err
			}
			if !ok {
				return fail(CodeNonFinite, "metric "+strconv.Quote(string(k))+": value is out of float64 range")
			}
			v = f
		default:
			b, ok := s.boolean()
			if !ok {
				return fail(CodeNonNumeric, "metric "+strconv.Quote(string(k))+": value must be a number (or true/false)")
			}
			v = boolValue(b)
		}
		if p.duplicate(name) {
			return fail(CodeBadMetric, "metric "+strconv.Quote(string(k))+" appears twice (as "+name+"); send one value per metric")
		}
		if err := p.add(name, 0, v, c); err != nil {
			err.Msg = "metric " + strconv.Quote(string(k)) + ": " + err.Msg
			return err
		}
		more, err := s.more('}')
		if err != nil || !more {
			return err
		}
	}
}
