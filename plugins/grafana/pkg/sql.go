package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/gtime"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// SQLQuery is the JSON model of a "sql" query: one read-only SELECT (or
// WITH ... SELECT), with these macros replaced textually first:
//
//	$__timeFilter(col)            col >= toDateTime(<from>) AND col < toDateTime(<to>), Unix seconds
//	$__timeGroup(col, interval)   toDateTime(intDiv(toUInt32(col), <s>) * <s>), interval like 30s, 5m, 1h, 1d or $__interval
//	$__interval_ms                the panel's interval in milliseconds
//	$__interval                   the panel's interval in whole seconds, as "<n>s"
//	$__database                   the datasource's database (e.g. polis)
//
// It runs with readonly=1 (no writes, no DDL, no settings: the query
// cannot lift a limit) unless the login is read-only already (the
// polis_analyst user, whose profile also sets its limits), within the
// query timeout, and at most maxSQLRows rows are returned. The answer is one table frame, columns as the query
// names them.
type SQLQuery struct {
	QueryType string `json:"queryType"` // "sql"
	RawSQL    string `json:"rawSql"`
}

// maxSQLRows bounds a sql query's answer (the rest is cut, with a notice).
const maxSQLRows = 100000

var (
	timeFilterRE = regexp.MustCompile(`\$__timeFilter\(\s*([^()]+?)\s*\)`)
	timeGroupRE  = regexp.MustCompile(`\$__timeGroup\(\s*([^(),]+?)\s*,\s*'?([^(),']+?)'?\s*\)`)
	leadingRE    = regexp.MustCompile(`(?s)^(\s+|--[^\n]*(\n|$)|/\*.*?\*/)+`)
	firstWordRE  = regexp.MustCompile(`^[A-Za-z]+`)
)

// ExpandMacros replaces the macros of a sql query for [from, to) and
// interval.
func ExpandMacros(sql string, from, to time.Time, interval time.Duration) (string, error) {
	sec := max(int64(interval/time.Second), 1)
	sql = strings.ReplaceAll(sql, "$__interval_ms", strconv.FormatInt(max(interval.Milliseconds(), 1), 10))
	sql = strings.ReplaceAll(sql, "$__interval", strconv.FormatInt(sec, 10)+"s")
	var err error
	sql = timeGroupRE.ReplaceAllStringFunc(sql, func(m string) string {
		g := timeGroupRE.FindStringSubmatch(m)
		d, perr := gtime.ParseDuration(g[2])
		if perr != nil || d < time.Second {
			if n, nerr := strconv.ParseInt(g[2], 10, 64); nerr == nil && n > 0 {
				d, perr = time.Duration(n)*time.Second, nil
			} else if err == nil {
				err = badQuery("$__timeGroup(%s, %s): the interval must be like 30s, 5m, 1h or 1d", g[1], g[2])
			}
		}
		s := int64(d / time.Second)
		return fmt.Sprintf("toDateTime(intDiv(toUInt32(%s), %d) * %d)", g[1], s, s)
	})
	if err != nil {
		return "", err
	}
	hi := to.Unix()
	if to.After(time.Unix(hi, 0)) {
		hi++
	}
	sql = timeFilterRE.ReplaceAllString(sql, fmt.Sprintf("$1 >= toDateTime(%d) AND $1 < toDateTime(%d)", from.Unix(), hi))
	if strings.Contains(sql, "$__") {
		i := strings.Index(sql, "$__")
		return "", badQuery("unknown macro at %q: macros are $__timeFilter(col), $__timeGroup(col, interval), $__interval, $__interval_ms", clip(sql[i:], 30))
	}
	return sql, nil
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

// CheckReadOnly refuses what is not one SELECT (or WITH ... SELECT):
// a first word other than SELECT or WITH, or a second statement. The
// server's readonly setting is the real guard; this gives a clear message.
func CheckReadOnly(sql string) error {
	body := leadingRE.ReplaceAllString(sql, "")
	w := strings.ToUpper(firstWordRE.FindString(body))
	if w != "SELECT" && w != "WITH" {
		return badQuery("only SELECT queries are allowed (this one starts with %q)", clip(body, 20))
	}
	if i := strings.Index(strings.TrimRight(strings.TrimSpace(body), ";"), ";"); i >= 0 && !inQuotes(body, i) {
		return badQuery("one statement per query: remove the ';' in the middle")
	}
	return nil
}

// inQuotes reports whether byte i of s is inside a '...' string.
func inQuotes(s string, i int) bool {
	in := false
	for j := 0; j < i; j++ {
		switch s[j] {
		case '\\':
			j++
		case '\'':
			in = !in
		}
	}
	return in
}

func (d *Datasource) sql(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q SQLQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the sql query: %v", err)
	}
	if strings.TrimSpace(q.RawSQL) == "" {
		return backend.DataResponse{}, badQuery("rawSql is empty")
	}
	if err := CheckReadOnly(q.RawSQL); err != nil {
		return backend.DataResponse{}, err
	}
	sql, err := ExpandMacros(strings.ReplaceAll(q.RawSQL, "$__database", d.cfg.Database), dq.TimeRange.From.UTC(), dq.TimeRange.To.UTC(), dq.Interval)
	if err != nil {
		return backend.DataResponse{}, err
	}
	sql = strings.TrimRight(strings.TrimSpace(sql), ";")
	ro, err := d.sessionReadOnly(ctx)
	if err != nil {
		return backend.DataResponse{}, err
	}
	if !ro {
		// readonly=1: no writes, no DDL, and no settings either, so the
		// query cannot lift a limit (readonly=2 would let it SET
		// max_execution_time = 0). Its time limit is the context's: the
		// driver cancels the query when it ends.
		ctx = clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"readonly": 1}))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := d.conn.Query(ctx, sql)
	if err != nil {
		return backend.DataResponse{}, badQuery("%v", err)
	}
	defer rows.Close()
	cts := rows.ColumnTypes()
	fields := make([]*data.Field, len(cts))
	convs := make([]func(any) any, len(cts))
	dest := make([]any, len(cts))
	for i, ct := range cts {
		st := ct.ScanType()
		dest[i] = reflect.New(st).Interface()
		fields[i], convs[i] = fieldFor(ct.Name(), st)
	}
	fr := data.NewFrame("", fields...)
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeTable, ExecutedQueryString: sql}
	n := 0
	for rows.Next() {
		if n++; n > maxSQLRows {
			fr.AppendNotices(data.Notice{Severity: data.NoticeSeverityWarning, Text: fmt.Sprintf("cut at %d rows", maxSQLRows)})
			cancel() // before rows.Close: the rest of the answer is not read
			return backend.DataResponse{Frames: data.Frames{fr}}, nil
		}
		if err := rows.Scan(dest...); err != nil {
			return backend.DataResponse{}, fmt.Errorf("cannot read the answer: %w", err)
		}
		for i, p := range dest {
			fields[i].Append(convs[i](reflect.ValueOf(p).Elem().Interface()))
		}
	}
	if err := rows.Err(); err != nil {
		return backend.DataResponse{}, badQuery("%v", err)
	}
	return backend.DataResponse{Frames: data.Frames{fr}}, nil
}

// fieldFor is the frame field for a column scanned as st, and how to turn
// a scanned value into the field's type: the types frames hold as they
// are, the others (decimals, arrays, maps, UUIDs ...) as text.
func fieldFor(name string, st reflect.Type) (*data.Field, func(any) any) {
	same := func(v any) any { return v }
	vt := st
	nullable := st.Kind() == reflect.Pointer
	if nullable {
		vt = st.Elem()
	}
	if ft := data.FieldTypeFor(reflect.Zero(vt).Interface()); ft != data.FieldTypeUnknown && vt.Kind() != reflect.Slice {
		if nullable {
			ft = ft.NullableType()
		}
		if vt == reflect.TypeFor[time.Time]() {
			if nullable {
				return named(ft, name), func(v any) any {
					if t := v.(*time.Time); t != nil {
						u := t.UTC()
						return &u
					}
					return (*time.Time)(nil)
				}
			}
			return named(ft, name), func(v any) any { return v.(time.Time).UTC() }
		}
		return named(ft, name), same
	}
	return named(data.FieldTypeNullableString, name), func(v any) any {
		rv := reflect.ValueOf(v)
		if !rv.IsValid() || (rv.Kind() == reflect.Pointer && rv.IsNil()) {
			return (*string)(nil)
		}
		if rv.Kind() == reflect.Pointer {
			v = rv.Elem().Interface()
		}
		var s string
		switch x := v.(type) {
		case fmt.Stringer:
			s = x.String()
		default:
			if b, err := json.Marshal(x); err == nil {
				s = string(b)
			} else {
				s = fmt.Sprint(x)
			}
		}
		return &s
	}
}

func named(ft data.FieldType, name string) *data.Field {
	f := data.NewFieldFromFieldType(ft, 0)
	f.Name = name
	return f
}
