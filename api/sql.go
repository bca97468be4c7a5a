package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"math"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage"
)

// SQLExecutor runs the read-only queries of POST /api/v1/sql
// (storage.SQLExecutor: refuses anything but SELECT, WITH, SHOW, DESCRIBE
// and EXPLAIN, runs with readonly=1 and its limits). Its errors are
// *storage.SQLError or are classified by storage.ClassifySQLError.
type SQLExecutor interface {
	Query(ctx context.Context, query string) (driver.Rows, error)
}

// The media types POST /api/v1/sql answers in, chosen by Accept.
const (
	mediaJSON  = "application/json"
	mediaCSV   = "text/csv"
	mediaArrow = "application/vnd.apache.arrow.stream"
)

// sqlErrorTrailer names the HTTP trailer that carries the error that ended
// a result after it started (JSON: code and message).
const sqlErrorTrailer = "Polis-Error"

// sqlRequest is the body of POST /api/v1/sql.
type sqlRequest struct {
	Query string `json:"query"`
}

func (a *v1) sqlRoutes() []route {
	return []route{{method: "POST", path: "/api/v1/sql", h: http.HandlerFunc(a.postSQL)}}
}

// sqlFormat picks the media type of the answer from Accept: the
// acceptable one of highest q (ties: the order of the header); no Accept,
// */* and application/* are JSON. "" when none is served.
func sqlFormat(accept string) string {
	if strings.TrimSpace(accept) == "" {
		return mediaJSON
	}
	type cand struct {
		media string
		q     float64
		i     int
	}
	var cs []cand
	for i, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		q := 1.0
		if v, ok := params["q"]; ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		if q <= 0 {
			continue
		}
		var m string
		switch mt {
		case mediaJSON, "*/*", "application/*":
			m = mediaJSON
		case mediaCSV, "text/*":
			m = mediaCSV
		case mediaArrow:
			m = mediaArrow
		default:
			continue
		}
		cs = append(cs, cand{m, q, i})
	}
	if len(cs) == 0 {
		return ""
	}
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].q > cs[j].q })
	return cs[0].media
}

// sqlErrorBody is the catalogue's error for a failed query.
func sqlErrorBody(e *storage.SQLError) *Error {
	switch e.Kind {
	case storage.SQLRefused:
		return &Error{Code: CodeSQLRefused, Message: e.Msg}
	case storage.SQLLimit:
		return &Error{Code: CodeSQLLimit, Message: e.Msg}
	case storage.SQLUnavailable:
		return &Error{Code: CodeUnavailable, Message: e.Msg}
	}
	return &Error{Code: CodeBadSQL, Message: e.Msg}
}

func (a *v1) postSQL(w http.ResponseWriter, r *http.Request) {
	tok, ok := a.auth.check(w, r, actSQL)
	if !ok {
		return
	}
	format := sqlFormat(r.Header.Get("Accept"))
	if format == "" {
		WriteError(w, CodeNotAcceptable, fmt.Sprintf("Accept %q names no format this route answers in; use %s, %s or %s",
			r.Header.Get("Accept"), mediaJSON, mediaCSV, mediaArrow))
		return
	}
	var req sqlRequest
	if !a.decodeJSON(w, r, &req, `{"query": "SELECT ..."}`) {
		return
	}
	if err := storage.CheckReadOnly(req.Query); err != nil {
		a.sqlFailed(w, tok, req.Query, err)
		return
	}
	// A large result may take longer than WriteTimeout to send.
	a.bulk(w, false, 0)
	start := time.Now()
	rows, err := a.o.SQL.Query(r.Context(), req.Query)
	if err != nil {
		a.sqlFailed(w, tok, req.Query, err)
		return
	}
	defer rows.Close()
	s := storage.NewRowScanner(rows)
	// Read the first row before answering: errors that come with the
	// first block (most limits, bad casts) are still a proper error.
	if !s.Peek() && s.Err() != nil {
		a.sqlFailed(w, tok, req.Query, s.Err())
		return
	}
	w.Header().Set("Trailer", sqlErrorTrailer)
	w.Header().Set("Content-Type", format)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	var n int64
	switch format {
	case mediaCSV:
		n, err = writeSQLCSV(w, s)
	case mediaArrow:
		n, err = storage.WriteArrowStream(w, s, storage.ArrowBatchRows)
	default:
		n, err = writeSQLJSON(w, s)
	}
	if err != nil {
		e := sqlErrorBody(storage.ClassifySQLError(err))
		switch format {
		case mediaCSV:
			fmt.Fprintf(w, "#error %s: %s\n", e.Code, oneLine(e.Message))
		case mediaJSON:
			b, _ := json.Marshal(e)
			fmt.Fprintf(w, "],\"error\":%s}\n", b)
		}
		b, _ := json.Marshal(e)
		w.Header().Set(sqlErrorTrailer, string(b))
		a.log.Warn("sql query failed while streaming", "token", tok.Name, "rows", n, "err", err)
		return
	}
	a.log.Info("sql query", "token", tok.Name, "format", format, "rows", n, "took", time.Since(start).Round(time.Millisecond))
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// sqlFailed answers a query that failed before its first byte.
func (a *v1) sqlFailed(w http.ResponseWriter, tok Token, query string, err error) {
	e := sqlErrorBody(storage.ClassifySQLError(err))
	if e.Code == CodeUnavailable {
		a.log.Error("sql query: ClickHouse unavailable", "token", tok.Name, "err", err)
	} else {
		a.log.Info("sql query refused", "token", tok.Name, "code", e.Code, "query", truncate(query, 200), "err", err)
	}
	writeCoded(w, e)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// writeSQLJSON streams {"columns": [...], "rows": [[...], ...]}, a row at
// a time. On an error it returns without closing the array: the caller
// ends the object with "error".
func writeSQLJSON(w http.ResponseWriter, s *storage.RowScanner) (int64, error) {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	cols, err := json.Marshal(s.Columns())
	if err != nil {
		return 0, err
	}
	if _, err := fmt.Fprintf(w, "{\"columns\":%s,\"rows\":[\n", cols); err != nil {
		return 0, err
	}
	row := make([]any, len(s.Columns()))
	var n int64
	for s.Next() {
		if err := s.Scan(); err != nil {
			return n, err
		}
		for i := range row {
			row[i] = jsonSafe(s.Value(i))
		}
		if n > 0 {
			if _, err := w.Write([]byte{','}); err != nil {
				return n, err
			}
		}
		if err := enc.Encode(row); err != nil {
			return n, err
		}
		n++
	}
	if err := s.Err(); err != nil {
		return n, err
	}
	_, err = w.Write([]byte("]}\n"))
	return n, err
}

// jsonSafe replaces the floats JSON has no number for with strings.
func jsonSafe(v any) any {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case float32:
		f = float64(x)
	default:
		return v
	}
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return v
}

// writeSQLCSV streams a header of column names and a record per row.
func writeSQLCSV(w http.ResponseWriter, s *storage.RowScanner) (int64, error) {
	cw := csv.NewWriter(w)
	rec := make([]string, len(s.Columns()))
	for i, c := range s.Columns() {
		rec[i] = c.Name
	}
	if err := cw.Write(rec); err != nil {
		return 0, err
	}
	var n int64
	for s.Next() {
		if err := s.Scan(); err != nil {
			cw.Flush()
			return n, err
		}
		for i := range rec {
			rec[i] = s.Text(i)
		}
		if err := cw.Write(rec); err != nil {
			return n, err
		}
		n++
	}
	cw.Flush()
	if err := s.Err(); err != nil {
		return n, err
	}
	return n, cw.Error()
}
