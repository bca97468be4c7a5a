// Package chdbtest gives tests the current ClickHouse engine: chDB, ClickHouse
// 26.x as a library (libchdb.so, from @chdb/lib-linux-x64-gnu, the platform
// package of npm's chdb), driven by github.com/chdb-io/chdb-go. The Modern schema and the queries the platform
// runs on a current ClickHouse are executed on it, as the Legacy branch is on
// Debian's 18.16 server (package chtest).
//
// scripts/install-deps (run by make test and make run) installs the library
// under .cache/chdb/; the Makefile points CHDB_LIB_PATH at it, and without
// the variable the tests look there themselves. A missing library fails the
// test with what to run, except under go test -short, where it skips.
//
// Each Open starts a session in a temporary directory, in a small process of
// its own (chdbrun): chdb-go loads the library when its package initialises
// and panics if it is missing, which a test binary could not turn into that
// message.
package chdbtest

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// EnvLib is chdb-go's own variable naming the library.
const EnvLib = "CHDB_LIB_PATH"

// cachedLib is where scripts/install-deps links the library, from the root
// of the module.
const cachedLib = ".cache/chdb/libchdb.so"

const runner = "github.com/polis-platform/polis/internal/chserver/chdbtest/chdbrun"

// LibPath returns the library the tests use: $CHDB_LIB_PATH if set, else
// .cache/chdb/libchdb.so in the module's root. It fails if that file is
// missing.
func LibPath() (string, error) {
	p := os.Getenv(EnvLib)
	if p == "" {
		root, err := moduleRoot()
		if err != nil {
			return "", err
		}
		p = filepath.Join(root, cachedLib)
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("chDB's libchdb.so is missing (%v): run scripts/install-deps, which installs it from npm into .cache/chdb/ (or set %s to a libchdb.so)", err, EnvLib)
	}
	return filepath.Abs(p)
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		up := filepath.Dir(dir)
		if up == dir {
			return "", errors.New("cannot find the module's root (go.mod) above the working directory")
		}
		dir = up
	}
}

// Session is one chDB session with its data in a temporary directory. It is
// safe for concurrent use; queries run one at a time.
type Session struct {
	mu   sync.Mutex // one query at a time
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Reader
	errs *stderrBuffer
}

// Open starts a session, closed when the test ends.
func Open(t testing.TB) *Session {
	t.Helper()
	lib, err := LibPath()
	if err != nil {
		if testing.Short() {
			t.Skip(err)
		}
		t.Fatal(err)
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "chdbrun")
	// go test puts its own toolchain first on PATH. chdb-go needs no cgo
	// (purego), and a -race from GOFLAGS would need it.
	build := exec.Command("go", "build", "-buildvcs=false", "-o", bin, runner)
	build.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("cannot build %s: %v\n%s", runner, err, out)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Session{cmd: exec.Command(bin, data), errs: &stderrBuffer{}}
	s.cmd.Env = append(os.Environ(), EnvLib+"="+lib)
	s.cmd.Stderr = s.errs
	if s.in, err = s.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := s.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.out = bufio.NewReaderSize(stdout, 1<<16)
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("cannot start chdbrun: %v", err)
	}
	t.Cleanup(func() {
		s.in.Close()
		done := make(chan error, 1)
		go func() { done <- s.cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("chdbrun: %v\n%s", err, s.stderr())
			}
		case <-time.After(30 * time.Second):
			s.cmd.Process.Kill()
			<-done
			t.Errorf("chdbrun did not stop within 30s; killed")
		}
	})
	if _, err := s.Query("SELECT 1", "TSV"); err != nil {
		t.Fatalf("cannot open a chDB session with %s: %v", lib, err)
	}
	return s
}

// stderrBuffer keeps what chdbrun prints on stderr (written by exec's
// copying goroutine), for the messages of failed queries.
type stderrBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *stderrBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (s *Session) stderr() string {
	s.errs.mu.Lock()
	defer s.errs.mu.Unlock()
	return s.errs.b.String()
}

// Query runs one statement and returns its output in format (JSONEachRow,
// TSV, ...; empty for a statement without output).
func (s *Session) Query(sql, format string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	req, err := json.Marshal(struct {
		Query  string `json:"query"`
		Format string `json:"format"`
	}{sql, format})
	if err != nil {
		return "", err
	}
	if _, err := s.in.Write(append(req, '\n')); err != nil {
		return "", fmt.Errorf("chdbrun is gone: %v\n%s", err, s.stderr())
	}
	line, err := s.out.ReadBytes('\n')
	if err != nil {
		return "", fmt.Errorf("chdbrun is gone: %v\n%s", err, s.stderr())
	}
	var resp struct {
		Out   string `json:"out"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(line, &resp); err != nil {
		return "", fmt.Errorf("chdbrun answered %q: %v", line, err)
	}
	if resp.Error != "" {
		return "", errors.New(resp.Error)
	}
	return resp.Out, nil
}

// Exec runs statements that return nothing, failing the test on an error.
func (s *Session) Exec(t testing.TB, sqls ...string) {
	t.Helper()
	for _, q := range sqls {
		if _, err := s.Query(q, "TSV"); err != nil {
			t.Fatalf("%v\nin:\n%s", err, q)
		}
	}
}

// Row is one result row: numbers are json.Number (64-bit integers too),
// strings are strings.
type Row map[string]any

// String returns column c as a string, numbers in their decimal form.
func (r Row) String(c string) string {
	switch v := r[c].(type) {
	case string:
		return v
	case json.Number:
		return v.String()
	case nil:
		return ""
	default:
		return fmt.Sprint(v)
	}
}

// Float returns column c as a number; NaN if it is not one.
func (r Row) Float(c string) float64 {
	f, err := strconv.ParseFloat(r.String(c), 64)
	if err != nil {
		return math.NaN()
	}
	return f
}

// Int returns column c as an integer; -1 if it is not one.
func (r Row) Int(c string) int64 {
	n, err := strconv.ParseInt(r.String(c), 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Rows runs a query with clickhouse-go style ? placeholders bound to args
// (see Bind) and returns its rows.
func (s *Session) Rows(sql string, args ...any) ([]Row, error) {
	q, err := Bind(sql, args...)
	if err != nil {
		return nil, err
	}
	out, err := s.Query(q, "JSONEachRow")
	if err != nil {
		return nil, fmt.Errorf("%w\nin:\n%s", err, q)
	}
	var rows []Row
	dec := json.NewDecoder(strings.NewReader(out))
	dec.UseNumber()
	for dec.More() {
		var r Row
		if err := dec.Decode(&r); err != nil {
			return nil, fmt.Errorf("cannot decode %q: %v", out, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}

// Types runs a query like Rows and returns its columns as "name Type", in
// order: what a clickhouse-go Scan into Go values must match.
func (s *Session) Types(t testing.TB, sql string, args ...any) []string {
	t.Helper()
	q, err := Bind(sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Query(q, "JSONCompactEachRowWithNamesAndTypes")
	if err != nil {
		t.Fatalf("%v\nin:\n%s", err, q)
	}
	var names, types []string
	dec := json.NewDecoder(strings.NewReader(out))
	if err := dec.Decode(&names); err != nil {
		t.Fatalf("cannot decode %q: %v", out, err)
	}
	if err := dec.Decode(&types); err != nil || len(types) != len(names) {
		t.Fatalf("cannot decode %q: %v", out, err)
	}
	cols := make([]string, len(names))
	for i := range names {
		cols[i] = names[i] + " " + types[i]
	}
	return cols
}

// MustRows is Rows failing the test on an error.
func (s *Session) MustRows(t testing.TB, sql string, args ...any) []Row {
	t.Helper()
	rows, err := s.Rows(sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// Bind replaces each ? in sql with the literal of the next argument, as
// clickhouse-go binds positional arguments: strings quoted with \ and '
// escaped, integers and floats as numbers, times as DateTime64 in UTC.
func Bind(sql string, args ...any) (string, error) {
	var b strings.Builder
	n := 0
	for i := 0; i < len(sql); i++ {
		c := sql[i]
		if c == '\\' && i+1 < len(sql) && sql[i+1] == '?' {
			b.WriteByte('?')
			i++
			continue
		}
		if c != '?' {
			b.WriteByte(c)
			continue
		}
		if n >= len(args) {
			return "", fmt.Errorf("cannot bind: more placeholders than the %d arguments in %q", len(args), sql)
		}
		lit, err := Literal(args[n])
		if err != nil {
			return "", err
		}
		b.WriteString(lit)
		n++
	}
	if n != len(args) {
		return "", fmt.Errorf("cannot bind: %d arguments for %d placeholders in %q", len(args), n, sql)
	}
	return b.String(), nil
}

// Literal renders v as a ClickHouse literal.
func Literal(v any) (string, error) {
	switch x := v.(type) {
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(x) + "'", nil
	case int:
		return strconv.FormatInt(int64(x), 10), nil
	case int64:
		return strconv.FormatInt(x, 10), nil
	case int32:
		return strconv.FormatInt(int64(x), 10), nil
	case uint8:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint16:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint32:
		return strconv.FormatUint(uint64(x), 10), nil
	case uint64:
		return strconv.FormatUint(x, 10), nil
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), nil
	case bool:
		if x {
			return "1", nil
		}
		return "0", nil
	case time.Time:
		return "toDateTime64('" + x.UTC().Format("2006-01-02 15:04:05.000") + "', 3, 'UTC')", nil
	}
	return "", fmt.Errorf("cannot bind %T", v)
}
