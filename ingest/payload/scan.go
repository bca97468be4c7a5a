package payload

import (
	"encoding/json"
	"strconv"
)

// scanner reads JSON from a complete payload without reflection or
// per-token allocation: encoding/json spent over 85% of decode time (and
// 167 allocations for a 10-metric message) in Decoder.Token and its syntax
// pre-pass. It validates what it reads, and every caller re-checks the whole
// payload with encoding/json on its error path (see syntaxFirst), so a
// payload that is not JSON always gets bad_json whatever the scanner saw
// first. FuzzDecodeTelemetry compares it with an encoding/json decoder.
type scanner struct {
	b []byte
	i int
}

// maxDepth is encoding/json's nesting limit, kept so both accept the same.
const maxDepth = 10000

func (s *scanner) syntax(msg string) *Error {
	return fail(CodeBadJSON, "invalid JSON at byte "+strconv.Itoa(s.i)+": "+msg)
}

// peek skips white space and returns the next byte, or 0 at the end.
func (s *scanner) peek() byte {
	for s.i < len(s.b) {
		c := s.b[s.i]
		if !isSpace(c) {
			return c
		}
		s.i++
	}
	return 0
}

// eat consumes c if it is the next non-space byte.
func (s *scanner) eat(c byte) bool {
	if s.peek() == c {
		s.i++
		return true
	}
	return false
}

// end checks that only white space follows the top-level value.
func (s *scanner) end() *Error {
	if s.peek() != 0 || s.i != len(s.b) {
		return s.syntax("data after the top-level value")
	}
	return nil
}

// more is called after an object member or array element: it consumes ','
// (more follows) or the closing byte.
func (s *scanner) more(close byte) (bool, *Error) {
	switch s.peek() {
	case ',':
		s.i++
		return true, nil
	case close:
		s.i++
		return false, nil
	}
	return false, s.syntax("expected ',' or '" + string(close) + "'")
}

// key reads an object key and the ':' after it.
func (s *scanner) key() ([]byte, *Error) {
	if s.peek() != '"' {
		return nil, s.syntax("expected a string key")
	}
	k, err := s.str()
	if err != nil {
		return nil, err
	}
	if !s.eat(':') {
		return nil, s.syntax("expected ':' after key")
	}
	return k, nil
}

// str reads the string at s.i (a '"') and returns its content, unescaped.
// It aliases the payload unless the string has escapes.
func (s *scanner) str() ([]byte, *Error) {
	start := s.i
	esc := false
	b := s.b
	for i := start + 1; i < len(b); {
		switch c := b[i]; {
		case c == '"':
			s.i = i + 1
			if !esc {
				return b[start+1 : i], nil
			}
			// Rare: let encoding/json apply its exact rules (surrogates,
			// invalid UTF-8 becoming U+FFFD).
			var u string
			if err := json.Unmarshal(b[start:i+1], &u); err != nil {
				s.i = start
				return nil, s.syntax("invalid string escape")
			}
			return []byte(u), nil
		case c == '\\':
			esc = true
			if i+1 >= len(b) {
				s.i = i
				return nil, s.syntax("unterminated string")
			}
			switch b[i+1] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
				i += 2
			case 'u':
				if i+5 >= len(b) || !isHex(b[i+2]) || !isHex(b[i+3]) || !isHex(b[i+4]) || !isHex(b[i+5]) {
					s.i = i
					return nil, s.syntax(`invalid \u escape`)
				}
				i += 6
			default:
				s.i = i
				return nil, s.syntax("invalid escape in string")
			}
		case c < 0x20:
			s.i = i
			return nil, s.syntax("control character in string")
		default:
			i++
		}
	}
	s.i = len(b)
	return nil, s.syntax("unterminated string")
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// number reads a JSON number (RFC 8259 grammar, stricter than ParseFloat's)
// and returns its text.
func (s *scanner) number() ([]byte, *Error) {
	b, i := s.b, s.i
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		for i++; i < len(b) && isDigit(b[i]); i++ {
		}
	default:
		s.i = i
		return nil, s.syntax("invalid number")
	}
	if i < len(b) && b[i] == '.' {
		i++
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return nil, s.syntax("invalid number: digit expected after '.'")
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			s.i = i
			return nil, s.syntax("invalid number: digit expected in exponent")
		}
		for ; i < len(b) && isDigit(b[i]); i++ {
		}
	}
	n := b[s.i:i]
	s.i = i
	return n, nil
}

// float reads a number; inRange is false for literals beyond float64 (1e999).
func (s *scanner) float() (v float64, inRange bool, err *Error) {
	n, err := s.number()
	if err != nil {
		return 0, false, err
	}
	v, perr := strconv.ParseFloat(string(n), 64)
	// The grammar is checked, so the only possible error is ErrRange (±Inf).
	return v, perr == nil, nil
}

// literal consumes the keyword lit (true, false or null).
func (s *scanner) literal(lit string) bool {
	if len(s.b)-s.i >= len(lit) && string(s.b[s.i:s.i+len(lit)]) == lit {
		s.i += len(lit)
		return true
	}
	return false
}

// boolean reads true or false; ok is false (nothing consumed) otherwise.
func (s *scanner) boolean() (v, ok bool) {
	switch {
	case s.literal("true"):
		return true, true
	case s.literal("false"):
		return false, true
	}
	return false, false
}

// skip reads and validates any value; depth is the nesting of the
// containers around it.
func (s *scanner) skip(depth int) *Error {
	switch c := s.peek(); c {
	case '"':
		_, err := s.str()
		return err
	case '{', '[':
		if depth >= maxDepth {
			return s.syntax("nested too deeply")
		}
		s.i++
		close := byte('}')
		if c == '[' {
			close = ']'
		}
		if s.eat(close) {
			return nil
		}
		for {
			if c == '{' {
				if _, err := s.key(); err != nil {
					return err
				}
			}
			if err := s.skip(depth + 1); err != nil {
				return err
			}
			more, err := s.more(close)
			if err != nil || !more {
				return err
			}
		}
	case 't':
		if s.literal("true") {
			return nil
		}
	case 'f':
		if s.literal("false") {
			return nil
		}
	case 'n':
		if s.literal("null") {
			return nil
		}
	default:
		_, err := s.number()
		return err
	}
	return s.syntax("invalid literal")
}

// syntaxFirst gives syntax errors precedence over semantic ones: the scanner
// stops at the first problem, but a payload that is not JSON at all should
// be reported as such, wherever the break is.
func syntaxFirst(b []byte, err *Error) *Error {
	if err == nil || json.Valid(b) {
		return err
	}
	var raw json.RawMessage
	if e := json.Unmarshal(b, &raw); e != nil {
		return fail(CodeBadJSON, "invalid JSON: "+e.Error())
	}
	return err
}
