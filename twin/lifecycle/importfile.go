package lifecycle

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// The import format: a history of lifecycle events for a batch import
// (Tracker.CheckBatch), as NDJSON (one JSON object a line; blank lines are
// skipped) or as one JSON array of the same objects:
//
//	{"site":"PO-001002-1","asset":"atm-1","to":"installed","at":"2023-05-04T08:12:00Z","cause":"rollout:installation"}
//
// site, asset, to and at (RFC 3339) are required; from (the state the
// asset leaves, checked when given) and cause (at most MaxCauseBytes) are
// optional. Any other member is refused: in particular the actor is whoever
// imports, never the file.

// MaxCauseBytes bounds an event's cause.
const MaxCauseBytes = 200

// importRecord is one event of the import format.
type importRecord struct {
	Site  string `json:"site"`
	Asset string `json:"asset"`
	From  State  `json:"from,omitempty"`
	To    State  `json:"to"`
	At    string `json:"at"`
	Cause string `json:"cause,omitempty"`
}

// DecodeError is a fault in an import file: the 1-based line it is on, the
// 0-based index of the event (-1 when the fault is not in an event), and
// what is wrong.
type DecodeError struct {
	Line, Index int
	Msg         string
}

func (e *DecodeError) Error() string {
	if e.Index < 0 {
		return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
	}
	return fmt.Sprintf("line %d, event %d: %s", e.Line, e.Index, e.Msg)
}

// DecodeImport reads an import file, NDJSON or a JSON array (told apart by
// the first character that is not white space), and checks each event's
// form; the events have no Actor. lines[i] is the 1-based line event i
// starts on. The first fault is a *DecodeError; an error reading r is
// returned wrapped as it is.
func DecodeImport(r io.Reader) (events []Event, lines []int, err error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot read the lifecycle import: %w", err)
	}
	if first := bytes.TrimLeft(b, " \t\r\n"); len(first) > 0 && first[0] == '[' {
		return decodeArray(b)
	}
	return decodeLines(b)
}

func decodeLines(b []byte) ([]Event, []int, error) {
	var out []Event
	var lines []int
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), len(b)+1) // b is in memory already: any line fits
	line := 0
	for sc.Scan() {
		line++
		l := bytes.TrimSpace(sc.Bytes())
		if len(l) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(l))
		dec.DisallowUnknownFields()
		var rec importRecord
		if err := dec.Decode(&rec); err != nil {
			return nil, nil, &DecodeError{Line: line, Index: len(out), Msg: jsonMsg(err)}
		}
		if dec.More() {
			return nil, nil, &DecodeError{Line: line, Index: len(out), Msg: "more than one JSON value on the line; write one event a line"}
		}
		ev, msg := rec.event()
		if msg != "" {
			return nil, nil, &DecodeError{Line: line, Index: len(out), Msg: msg}
		}
		out, lines = append(out, ev), append(lines, line)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, &DecodeError{Line: line + 1, Index: -1, Msg: err.Error()}
	}
	return out, lines, nil
}

func decodeArray(b []byte) ([]Event, []int, error) {
	lineAt := func(off int64) int { return 1 + bytes.Count(b[:min(int(off), len(b))], []byte("\n")) }
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if _, err := dec.Token(); err != nil { // the '[' seen by DecodeImport
		return nil, nil, &DecodeError{Line: lineAt(dec.InputOffset()), Index: -1, Msg: jsonMsg(err)}
	}
	var out []Event
	var lines []int
	for dec.More() {
		start := dec.InputOffset()
		for start < int64(len(b)) && bytes.IndexByte([]byte(" \t\r\n,"), b[start]) >= 0 {
			start++ // the event starts after the separator
		}
		var rec importRecord
		if err := dec.Decode(&rec); err != nil {
			return nil, nil, &DecodeError{Line: lineAt(start), Index: len(out), Msg: jsonMsg(err)}
		}
		ev, msg := rec.event()
		if msg != "" {
			return nil, nil, &DecodeError{Line: lineAt(start), Index: len(out), Msg: msg}
		}
		out, lines = append(out, ev), append(lines, lineAt(start))
	}
	if _, err := dec.Token(); err != nil {
		return nil, nil, &DecodeError{Line: lineAt(dec.InputOffset()), Index: -1, Msg: "the array does not close: " + jsonMsg(err)}
	}
	if tok, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, nil, &DecodeError{Line: lineAt(dec.InputOffset()), Index: -1, Msg: fmt.Sprintf("%v after the array; send one array", tok)}
	}
	return out, lines, nil
}

// jsonMsg words a decoding error for someone fixing the file.
func jsonMsg(err error) string {
	var ute *json.UnmarshalTypeError
	switch {
	case errors.As(err, &ute) && ute.Field == "":
		return "not an event object: " + ute.Value + ` where {"site": ..., "asset": ..., "to": ..., "at": ...} belongs`
	case errors.As(err, &ute):
		return fmt.Sprintf("%s must be a string", ute.Field)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends early"
	case strings.HasPrefix(err.Error(), "json: unknown field"):
		return strings.TrimPrefix(err.Error(), "json: ") + "; an event has site, asset, to, at and optionally from and cause (the actor is who imports)"
	}
	return "not an event object: " + strings.TrimPrefix(err.Error(), "json: ")
}

// event checks a record's form and returns it as an Event, or why not.
func (r importRecord) event() (Event, string) {
	switch {
	case r.Site == "" || r.Asset == "":
		return Event{}, `site and asset are required, e.g. {"site":"PO-001002-1","asset":"atm-1","to":"installed","at":"2023-05-04T08:12:00Z"}`
	case !cleanText(r.Site) || !cleanText(r.Asset) || len(r.Site) > 64 || len(r.Asset) > 64:
		return Event{}, "site or asset holds control characters, invalid UTF-8 or is over 64 bytes"
	case !r.To.Valid():
		return Event{}, fmt.Sprintf("to %q is not a lifecycle state: want one of %s", r.To, joinStates(States))
	case r.From != "" && !r.From.Valid():
		return Event{}, fmt.Sprintf("from %q is not a lifecycle state: want one of %s", r.From, joinStates(States))
	case len(r.Cause) > MaxCauseBytes || !cleanText(r.Cause):
		return Event{}, fmt.Sprintf("cause is over %d bytes, or holds control characters or invalid UTF-8", MaxCauseBytes)
	}
	at, err := time.Parse(time.RFC3339Nano, r.At)
	if err != nil {
		return Event{}, fmt.Sprintf("at %q is not an RFC 3339 time such as 2023-05-04T08:12:00Z", r.At)
	}
	return Event{Site: r.Site, Asset: r.Asset, From: r.From, To: r.To, At: at.UTC(), Cause: r.Cause}, ""
}

func cleanText(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, c := range s {
		if unicode.IsControl(c) {
			return false
		}
	}
	return true
}

// WriteImport writes events in the import format, NDJSON, one event a line,
// times in RFC 3339 UTC; the actor is left out (whoever imports is).
func WriteImport(w io.Writer, events []Event) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for _, ev := range events {
		rec := importRecord{Site: ev.Site, Asset: ev.Asset, From: ev.From, To: ev.To,
			At: ev.At.UTC().Format(time.RFC3339Nano), Cause: ev.Cause}
		if err := enc.Encode(rec); err != nil {
			return fmt.Errorf("cannot write lifecycle event %s/%s: %w", ev.Site, ev.Asset, err)
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("cannot write lifecycle events: %w", err)
	}
	return nil
}
