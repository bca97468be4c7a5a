package storage

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// The limits of a SQL query by default (SQLLimits).
const (
	DefaultSQLMaxExecutionTime = 30 * time.Second
	DefaultSQLMaxResultRows    = 1_000_000
	DefaultSQLMaxResultBytes   = 256 << 20
)

// SQLLimits bound an ad hoc query; a zero field takes its default.
type SQLLimits struct {
	MaxExecutionTime time.Duration // ClickHouse's max_execution_time
	MaxResultRows    uint64        // max_result_rows (result_overflow_mode=throw)
	MaxResultBytes   uint64        // max_result_bytes (result_overflow_mode=throw)
}

func (l SQLLimits) withDefaults() SQLLimits {
	if l.MaxExecutionTime <= 0 {
		l.MaxExecutionTime = DefaultSQLMaxExecutionTime
	}
	if l.MaxResultRows == 0 {
		l.MaxResultRows = DefaultSQLMaxResultRows
	}
	if l.MaxResultBytes == 0 {
		l.MaxResultBytes = DefaultSQLMaxResultBytes
	}
	return l
}

// SQLExecutor runs the read-only queries of POST /api/v1/sql: a statement
// must start with SELECT, WITH, SHOW, DESCRIBE (DESC) or EXPLAIN, and runs
// with readonly=1 and the limits as ClickHouse settings. Tables are named
// with their database (polis.telemetry).
type SQLExecutor struct {
	Conn   driver.Conn
	Limits SQLLimits
}

// NewSQLExecutor returns an executor on conn with the default limits.
func NewSQLExecutor(conn driver.Conn) *SQLExecutor { return &SQLExecutor{Conn: conn} }

// SQLErrorKind says whose fault a failed query is.
type SQLErrorKind int

const (
	// SQLBad is a query ClickHouse cannot run: syntax, unknown table or
	// column, wrong types.
	SQLBad SQLErrorKind = iota
	// SQLRefused is a statement that is not read-only.
	SQLRefused
	// SQLLimit is a query over a limit: rows, bytes, time, memory.
	SQLLimit
	// SQLUnavailable is ClickHouse not answering.
	SQLUnavailable
)

// SQLError is why a query failed, with a message for a person.
type SQLError struct {
	Kind SQLErrorKind
	Msg  string
	Err  error
}

func (e *SQLError) Error() string { return e.Msg }
func (e *SQLError) Unwrap() error { return e.Err }

// readOnlyStatements are the first keywords of the statements allowed.
var readOnlyStatements = []string{"SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN", "EXISTS"}

// CheckReadOnly refuses anything but one SELECT, WITH, SHOW, DESCRIBE or
// EXPLAIN statement (comments and a trailing semicolon allowed). It is the
// first of two guards: the query also runs with readonly=1.
func CheckReadOnly(query string) error {
	q := skipSpaceAndComments(query)
	for strings.HasPrefix(q, "(") {
		q = skipSpaceAndComments(q[1:])
	}
	if q == "" {
		return &SQLError{Kind: SQLBad, Msg: "the query is empty; send {\"query\": \"SELECT ...\"}"}
	}
	end := strings.IndexFunc(q, func(r rune) bool { return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z') })
	if end < 0 {
		end = len(q)
	}
	kw := strings.ToUpper(q[:end])
	allowed := false
	for _, s := range readOnlyStatements {
		allowed = allowed || kw == s
	}
	if !allowed {
		return &SQLError{Kind: SQLRefused, Msg: fmt.Sprintf("%s statements are refused: this endpoint is read-only and runs only SELECT, WITH, SHOW, DESCRIBE and EXPLAIN", firstWord(kw))}
	}
	if i := statementEnd(query); i >= 0 && strings.TrimSpace(skipSpaceAndComments(query[i+1:])) != "" {
		return &SQLError{Kind: SQLRefused, Msg: "send one statement per request: the query has text after a ';'"}
	}
	return nil
}

func firstWord(kw string) string {
	if kw == "" {
		return "these"
	}
	return kw
}

// skipSpaceAndComments drops leading spaces, -- and # line comments and
// /* */ block comments.
func skipSpaceAndComments(q string) string {
	for {
		q = strings.TrimLeft(q, " \t\r\n\f\v")
		switch {
		case strings.HasPrefix(q, "--") || strings.HasPrefix(q, "#"):
			i := strings.IndexByte(q, '\n')
			if i < 0 {
				return ""
			}
			q = q[i+1:]
		case strings.HasPrefix(q, "/*"):
			i := strings.Index(q[2:], "*/")
			if i < 0 {
				return ""
			}
			q = q[i+4:]
		default:
			return q
		}
	}
}

// statementEnd is the index of the first ';' outside quotes and
// comments, or -1.
func statementEnd(q string) int {
	for i := 0; i < len(q); i++ {
		switch c := q[i]; {
		case c == ';':
			return i
		case c == '\'' || c == '"' || c == '`':
			for i++; i < len(q) && q[i] != c; i++ {
				if q[i] == '\\' {
					i++
				}
			}
		case c == '-' && i+1 < len(q) && q[i+1] == '-', c == '#':
			for i < len(q) && q[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(q) && q[i+1] == '*':
			j := strings.Index(q[i+2:], "*/")
			if j < 0 {
				return -1
			}
			i += j + 3
		}
	}
	return -1
}

// Query checks that query is read-only and runs it with readonly=1 and the
// limits; the rows must be closed. Errors are *SQLError.
func (x *SQLExecutor) Query(ctx context.Context, query string) (driver.Rows, error) {
	if err := CheckReadOnly(query); err != nil {
		return nil, err
	}
	l := x.Limits.withDefaults()
	settings := clickhouse.Settings{
		"readonly":           1,
		"max_execution_time": max(1, int(l.MaxExecutionTime.Round(time.Second)/time.Second)),
		"max_result_rows":    int(l.MaxResultRows),
		"max_result_bytes":   int(l.MaxResultBytes),
	}
	// Servers before 19.x (revision 54429) take only numeric settings
	// from clickhouse-go; their result_overflow_mode is throw unless a
	// profile changed it.
	if v, err := x.Conn.ServerVersion(); err != nil || v.Revision > settingsAsStringsRevision {
		settings["result_overflow_mode"] = "throw"
	}
	ctx = clickhouse.Context(ctx, clickhouse.WithSettings(settings))
	q := strings.TrimRightFunc(strings.TrimSpace(query), func(r rune) bool { return r == ';' || r == ' ' || r == '\n' || r == '\t' || r == '\r' })
	rows, err := x.Conn.Query(ctx, q)
	if err != nil {
		return nil, ClassifySQLError(err)
	}
	return rows, nil
}

// settingsAsStringsRevision is the last server revision whose settings
// clickhouse-go sends as numbers.
const settingsAsStringsRevision = 54429

// ClickHouse error codes that say a limit was hit.
var limitCodes = map[int32]bool{
	158: true, // TOO_MANY_ROWS
	159: true, // TIMEOUT_EXCEEDED
	160: true, // TOO_SLOW
	241: true, // MEMORY_LIMIT_EXCEEDED
	307: true, // TOO_MANY_BYTES
	396: true, // TOO_MANY_ROWS_OR_BYTES
}

// ClassifySQLError turns a query's error into a *SQLError with ClickHouse's
// message and advice.
func ClassifySQLError(err error) *SQLError {
	var se *SQLError
	if errors.As(err, &se) {
		return se
	}
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		msg := fmt.Sprintf("ClickHouse error %d (%s): %s", ex.Code, ex.Name, ex.Message)
		switch {
		case limitCodes[ex.Code]:
			return &SQLError{Kind: SQLLimit, Err: err, Msg: msg + "; narrow the query (WHERE on ts, LIMIT, aggregate) to stay within the limits"}
		case ex.Code == 164: // READONLY
			return &SQLError{Kind: SQLRefused, Err: err, Msg: msg + "; this endpoint is read-only"}
		}
		return &SQLError{Kind: SQLBad, Err: err, Msg: msg}
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &SQLError{Kind: SQLLimit, Err: err, Msg: "the query ran out of time; narrow it (WHERE on ts, LIMIT, aggregate)"}
	}
	return &SQLError{Kind: SQLUnavailable, Err: err, Msg: fmt.Sprintf("cannot reach ClickHouse: %v; retry later", err)}
}
