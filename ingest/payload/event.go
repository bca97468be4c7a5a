package payload

import (
	"bytes"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// DecodeEvent decodes an event: a JSON object {"ts": <RFC 3339 | epoch ms>,
// "type": "<snake_case>", ...any other fields}. It returns the type, the
// source time in Unix milliseconds (now when ts is missing or null) and the
// whole object re-encoded compactly, ts and type included, as the device sent
// them. body never aliases b. Repeated top-level keys are refused: consumers
// would each pick a different one.
func DecodeEvent(b []byte, now time.Time, lim Limits) (typ string, ts int64, body json.RawMessage, err error) {
	body, e := compactObject(b, "event", CodeBadEvent)
	if e != nil {
		return "", 0, nil, e
	}
	w := newWindow(now, lim)
	ts = w.now
	var haveType bool
	e = members(body, func(s *scanner, k []byte, _ int) *Error {
		switch string(k) {
		case "type":
			haveType = true
			if s.peek() != '"' {
				return fail(CodeBadEvent, `"type" must be a string such as "door_open"`)
			}
			v, err := s.str()
			if err != nil {
				return err
			}
			if !validName(v) {
				return fail(CodeBadEvent, "event type "+strconv.Quote(clip(string(v)))+" must match ^[a-z][a-z0-9_]{0,63}$ (snake_case ASCII, e.g. session_start)")
			}
			typ = string(v)
		case "ts":
			var err *Error
			if ts, err = s.timestamp(&w, "ts"); err != nil {
				return err
			}
		default:
			return s.skip(1)
		}
		return nil
	})
	if e != nil {
		return "", 0, nil, e
	}
	if !haveType {
		return "", 0, nil, fail(CodeBadEvent, `the event has no "type"; send {"type":"door_open",...}`)
	}
	return typ, ts, body, nil
}

// DecodeReported decodes a state/reported payload: a JSON object of
// properties with an optional "ts" (RFC 3339 or epoch ms; now when missing)
// that is taken out as the source time. props is the rest, compact; it may be
// {} and never aliases b.
func DecodeReported(b []byte, now time.Time, lim Limits) (ts int64, props json.RawMessage, err error) {
	props, e := compactObject(b, "state/reported", CodeBadJSON)
	if e != nil {
		return 0, nil, e
	}
	w := newWindow(now, lim)
	ts = w.now
	from, to := -1, -1 // the "ts" member in props
	e = members(props, func(s *scanner, k []byte, start int) *Error {
		if string(k) != "ts" {
			return s.skip(1)
		}
		var err *Error
		ts, err = s.timestamp(&w, "ts")
		from, to = start, s.i
		return err
	})
	if e != nil {
		return 0, nil, e
	}
	if from >= 0 {
		// props is compact, so members are separated by exactly one ','.
		switch {
		case props[to] == ',':
			to++
		case props[from-1] == ',':
			from--
		}
		props = append(props[:from], props[to:]...)
	}
	return ts, props, nil
}

// compactObject checks that b is one JSON object in valid UTF-8 and returns
// it compacted in new memory. notObject is the code for valid JSON that is
// not an object.
func compactObject(b []byte, what string, notObject Code) ([]byte, *Error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return nil, fail(CodeEmpty, "empty "+what+" payload")
	}
	var buf bytes.Buffer
	buf.Grow(len(b))
	if err := json.Compact(&buf, b); err != nil {
		return nil, fail(CodeBadJSON, "invalid JSON: "+err.Error())
	}
	if b[0] != '{' {
		return nil, fail(notObject, "the "+what+" payload must be a JSON object")
	}
	// Bodies are stored and served as text; refuse bytes no reader can show.
	if !utf8.Valid(b) {
		return nil, fail(CodeBadJSON, "the "+what+" payload is not valid UTF-8")
	}
	return buf.Bytes(), nil
}

// members calls f for each top-level member of the valid, compact object b,
// with the scanner positioned at the value, which f must consume; start is
// the offset of the member's key. Repeated keys are refused.
func members(b []byte, f func(s *scanner, key []byte, start int) *Error) *Error {
	s := scanner{b: b, i: 1}
	if s.eat('}') {
		return nil
	}
	var keys keySet
	for {
		start := s.i
		k, err := s.key()
		if err != nil {
			return err
		}
		if keys.add(k) {
			return fail(CodeBadJSON, "key "+strconv.Quote(clip(string(k)))+" appears twice; send each key once")
		}
		if err := f(&s, k, start); err != nil {
			return err
		}
		more, err := s.more('}')
		if err != nil || !more {
			return err
		}
	}
}

// keySet finds repeated keys, with a map only for large objects.
type keySet struct {
	few  [][]byte
	many map[string]struct{}
}

func (ks *keySet) add(k []byte) (dup bool) {
	const linear = 16
	if ks.many == nil {
		for _, x := range ks.few {
			if bytes.Equal(x, k) {
				return true
			}
		}
		if len(ks.few) < linear {
			ks.few = append(ks.few, k)
			return false
		}
		ks.many = make(map[string]struct{}, 2*linear)
		for _, x := range ks.few {
			ks.many[string(x)] = struct{}{}
		}
	}
	if _, dup = ks.many[string(k)]; !dup {
		ks.many[string(k)] = struct{}{}
	}
	return dup
}

// DecodeStatus decodes a status payload: "online" or "offline" as plain text,
// as a JSON string, or as {"status":"online"} (other keys ignored), in any
// ASCII case. It returns "online" or "offline".
func DecodeStatus(b []byte) (string, error) {
	b = trimSpace(b)
	if len(b) == 0 {
		return "", fail(CodeEmpty, "empty status payload")
	}
	v := b
	switch b[0] {
	case '{':
		s := scanner{b: b}
		var err *Error
		if v, err = s.status(); err != nil {
			return "", syntaxFirst(b, err)
		}
	case '"':
		s := scanner{b: b}
		var err *Error
		if v, err = s.str(); err == nil {
			err = s.end()
		}
		if err != nil {
			return "", syntaxFirst(b, err)
		}
	}
	switch {
	case equalFoldASCII(v, "online"):
		return "online", nil
	case equalFoldASCII(v, "offline"):
		return "offline", nil
	}
	return "", fail(CodeBadStatus, "status "+strconv.Quote(clip(string(v)))+` must be "online" or "offline"`)
}

func (s *scanner) status() ([]byte, *Error) {
	s.i++ // '{'
	var v []byte
	found := false
	if !s.eat('}') {
		for {
			k, err := s.key()
			if err != nil {
				return nil, err
			}
			if string(k) == "status" {
				if found {
					return nil, fail(CodeBadStatus, `"status" appears twice`)
				}
				found = true
				if s.peek() != '"' {
					return nil, fail(CodeBadStatus, `"status" must be the string "online" or "offline"`)
				}
				if v, err = s.str(); err != nil {
					return nil, err
				}
			} else if err := s.skip(1); err != nil {
				return nil, err
			}
			more, err := s.more('}')
			if err != nil {
				return nil, err
			}
			if !more {
				break
			}
		}
	}
	if err := s.end(); err != nil {
		return nil, err
	}
	if !found {
		return nil, fail(CodeBadStatus, `the status object has no "status"; send {"status":"online"}`)
	}
	return v, nil
}

// equalFoldASCII avoids Unicode folding, under which the Kelvin sign and
// similar would match ASCII letters.
func equalFoldASCII(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
