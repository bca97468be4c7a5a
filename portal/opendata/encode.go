package opendata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"
)

// encoder writes one table in one format: its header, then its rows.
type encoder interface {
	header(t Table) error
	row(vals []value) error
	finish() ([]byte, error)
}

// encode writes a table's rows in a format.
func encode(s spec, v *view, f Filter, format string, meta bodyMeta) ([]byte, error) {
	t := s.table()
	var e encoder
	switch format {
	case FormatCSV:
		e = newCSV(t.CSV)
	case FormatJSON:
		e = &jsonEncoder{meta: meta, filter: f}
	case FormatParquet:
		e = &parquetEncoder{meta: meta}
	default:
		return nil, fmt.Errorf("encode table %s: unknown format %q", t.Name, format)
	}
	if err := e.header(t); err != nil {
		return nil, fmt.Errorf("encode table %s as %s: %w", t.Name, format, err)
	}
	if err := s.write(v, f, e); err != nil {
		return nil, fmt.Errorf("encode table %s as %s: %w", t.Name, format, err)
	}
	b, err := e.finish()
	if err != nil {
		return nil, fmt.Errorf("encode table %s as %s: %w", t.Name, format, err)
	}
	return b, nil
}

// bodyMeta is what every download says about itself besides its rows.
type bodyMeta struct {
	modified time.Time // the snapshot's time
}

// csvEncoder writes RFC 4180 CSV in a dialect: the plain one (comma, no
// BOM, ISO dates, dot decimals) or the national one (semicolon, BOM,
// dd/mm/yyyy, decimal comma). It formats into one buffer, without an
// allocation per cell: apparati has some 46,000 rows.
type csvEncoder struct {
	buf      []byte
	sep      byte
	national bool
}

func newCSV(d CSVDialect) *csvEncoder {
	if d.Separator == "" {
		d = PlainCSV
	}
	return &csvEncoder{buf: make([]byte, 0, 64<<10), sep: d.Separator[0], national: d.Separator == NationalCSV.Separator}
}

// utf8BOM marks the national layout's file as UTF-8 for spreadsheets.
const utf8BOM = "\xEF\xBB\xBF"

func (e *csvEncoder) header(t Table) error {
	if t.CSV.BOM {
		e.buf = append(e.buf, utf8BOM...)
	}
	for i, c := range t.Columns {
		if i > 0 {
			e.buf = append(e.buf, e.sep)
		}
		e.buf = e.appendString(e.buf, c.Name)
	}
	e.buf = append(e.buf, '\r', '\n')
	return nil
}

func (e *csvEncoder) row(vals []value) error {
	for i, v := range vals {
		if i > 0 {
			e.buf = append(e.buf, e.sep)
		}
		e.buf = e.appendValue(e.buf, v)
	}
	e.buf = append(e.buf, '\r', '\n')
	return nil
}

func (e *csvEncoder) finish() ([]byte, error) { return e.buf, nil }

func (e *csvEncoder) appendValue(b []byte, v value) []byte {
	switch v.k {
	case kStr:
		return e.appendString(b, v.s)
	case kInt:
		return strconv.AppendInt(b, v.i, 10)
	case kNum:
		n := len(b)
		b = strconv.AppendFloat(b, v.f, 'f', -1, 64)
		if e.national {
			if i := bytes.IndexByte(b[n:], '.'); i >= 0 {
				b[n+i] = ','
			}
		}
		return b
	case kBool:
		switch {
		case e.national && v.b:
			return append(b, "SI"...)
		case e.national:
			return append(b, "NO"...)
		}
		return strconv.AppendBool(b, v.b)
	case kDate:
		y, m, d := v.ymd()
		if e.national {
			return appendDMY(b, y, m, d)
		}
		return appendISODate(b, y, m, d)
	}
	return b // null: an empty field
}

// appendString writes a field, quoted (RFC 4180: doubled quotes inside)
// when it holds the separator, a quote or a line break. Invalid UTF-8 is
// replaced, so that the file is UTF-8 whatever the registry holds.
func (e *csvEncoder) appendString(b []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = string(bytes.ToValidUTF8([]byte(s), []byte("\uFFFD")))
	}
	quote := false
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == e.sep || c == '"' || c == '\r' || c == '\n' {
			quote = true
			break
		}
	}
	if !quote {
		return append(b, s...)
	}
	b = append(b, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' {
			b = append(b, '"')
		}
		b = append(b, s[i])
	}
	return append(b, '"')
}

func appendISODate(b []byte, y int, m time.Month, d int) []byte {
	b = appendPad(b, y, 4)
	b = append(b, '-')
	b = appendPad(b, int(m), 2)
	b = append(b, '-')
	return appendPad(b, d, 2)
}

func appendDMY(b []byte, y int, m time.Month, d int) []byte {
	b = appendPad(b, d, 2)
	b = append(b, '/')
	b = appendPad(b, int(m), 2)
	b = append(b, '/')
	return appendPad(b, y, 4)
}

func appendPad(b []byte, n, width int) []byte {
	var tmp [20]byte
	s := strconv.AppendInt(tmp[:0], int64(n), 10)
	for i := len(s); i < width; i++ {
		b = append(b, '0')
	}
	return append(b, s...)
}

// jsonEncoder writes {"table", "title", "description", "licence",
// "modified", "filter", "columns", "rows"}: rows are objects keyed by
// column name, one per line, with ISO dates and JSON numbers; an unknown
// value is null.
type jsonEncoder struct {
	meta   bodyMeta
	filter Filter
	cols   []string // column names, quoted
	buf    []byte
	n      int
}

type jsonHeader struct {
	Table       string            `json:"table"`
	Title       string            `json:"title"`
	Description string            `json:"description"`
	Licence     string            `json:"licence"`
	Modified    string            `json:"modified"`
	Filter      map[string]string `json:"filter,omitempty"`
	Columns     []Column          `json:"columns"`
}

func (e *jsonEncoder) header(t Table) error {
	h := jsonHeader{
		Table: t.Name, Title: t.Title, Description: t.Description,
		Licence: LicenceURL, Modified: e.meta.modified.UTC().Format(time.RFC3339), Columns: t.Columns,
	}
	if e.filter.Regione != "" || e.filter.Provincia != "" {
		h.Filter = map[string]string{}
		if e.filter.Regione != "" {
			h.Filter[FilterRegione] = e.filter.Regione
		}
		if e.filter.Provincia != "" {
			h.Filter[FilterProvincia] = e.filter.Provincia
		}
	}
	b, err := json.Marshal(h)
	if err != nil {
		return err
	}
	// Reopen the object to append the rows after the columns.
	e.buf = append(make([]byte, 0, 64<<10), b[:len(b)-1]...)
	e.buf = append(e.buf, `,"rows":[`...)
	e.cols = make([]string, len(t.Columns))
	for i, c := range t.Columns {
		e.cols[i] = string(appendJSONString(nil, c.Name)) + ":"
	}
	return nil
}

func (e *jsonEncoder) row(vals []value) error {
	if e.n > 0 {
		e.buf = append(e.buf, ',')
	}
	e.n++
	e.buf = append(e.buf, '\n', '{')
	for i, v := range vals {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = append(e.buf, e.cols[i]...)
		e.buf = appendJSONValue(e.buf, v)
	}
	e.buf = append(e.buf, '}')
	return nil
}

func (e *jsonEncoder) finish() ([]byte, error) {
	if e.n > 0 {
		e.buf = append(e.buf, '\n')
	}
	return append(e.buf, "]}\n"...), nil
}

func appendJSONValue(b []byte, v value) []byte {
	switch v.k {
	case kStr:
		return appendJSONString(b, v.s)
	case kInt:
		return strconv.AppendInt(b, v.i, 10)
	case kNum:
		return strconv.AppendFloat(b, v.f, 'f', -1, 64) // finite: number() made sure
	case kBool:
		return strconv.AppendBool(b, v.b)
	case kDate:
		y, m, d := v.ymd()
		b = append(b, '"')
		b = appendISODate(b, y, m, d)
		return append(b, '"')
	}
	return append(b, "null"...)
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters escaped, U+2028 and U+2029 too (so that the output
// is also valid JavaScript), invalid UTF-8 replaced by U+FFFD.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
