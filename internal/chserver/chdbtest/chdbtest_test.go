package chdbtest

import (
	"strings"
	"testing"
	"time"
)

func TestBind(t *testing.T) {
	f := func(sql string, args []any, want string) {
		t.Helper()
		got, err := Bind(sql, args...)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", sql, err)
		}
		if got != want {
			t.Fatalf("unexpected binding of %q; got %q; want %q", sql, got, want)
		}
	}
	f("SELECT 1", nil, "SELECT 1")
	f("a = ? AND b LIKE ? AND c = ?", []any{"it's", `air\_q-%`, int64(-3)}, `a = 'it\'s' AND b LIKE 'air\\_q-%' AND c = -3`)
	f("x IN (?, ?) AND y = ? AND z = \\?", []any{uint32(7), 1.5, true}, "x IN (7, 1.5) AND y = 1 AND z = ?")
	f("ts = ?", []any{time.Date(2026, 3, 1, 10, 0, 0, 7e6, time.FixedZone("CET", 3600))}, "ts = toDateTime64('2026-03-01 09:00:00.007', 3, 'UTC')")

	for _, bad := range []struct {
		sql  string
		args []any
	}{{"a = ?", nil}, {"a = 1", []any{1}}, {"a = ?", []any{struct{}{}}}} {
		if _, err := Bind(bad.sql, bad.args...); err == nil {
			t.Fatalf("expected an error for %q %v", bad.sql, bad.args)
		}
	}
}

// A session answers in the formats asked for, reports errors, and keeps
// its state between queries; bound strings come back as they were.
func TestOpen(t *testing.T) {
	s := Open(t)
	v := s.MustRows(t, "SELECT version() AS v")[0].String("v")
	if !strings.HasPrefix(v, "26.") {
		t.Fatalf("unexpected chDB version %q; want 26.x (npm @chdb/lib-linux-x64-gnu 26.7.3-stable.1)", v)
	}
	if _, err := s.Query("SELECT nope", "TSV"); err == nil || !strings.Contains(err.Error(), "UNKNOWN_IDENTIFIER") {
		t.Fatalf("unexpected error for a bad query: %v", err)
	}
	s.Exec(t, "CREATE DATABASE d", "CREATE TABLE d.t (s String, n UInt64) ENGINE = MergeTree ORDER BY s")
	odd := "it's a \\ \"test\"\n\tü"
	s.Exec(t, "INSERT INTO d.t VALUES ("+mustLiteral(t, odd)+", 18446744073709551615)")
	rows := s.MustRows(t, "SELECT s, n FROM d.t WHERE s = ?", odd)
	if len(rows) != 1 || rows[0].String("s") != odd || rows[0].String("n") != "18446744073709551615" {
		t.Fatalf("unexpected rows: %v", rows)
	}
	if got := s.Types(t, "SELECT s, n, toDateTime64(?, 3, 'UTC') AS ts FROM d.t", "2026-03-01 00:00:00"); strings.Join(got, ", ") != "s String, n UInt64, ts DateTime64(3, 'UTC')" {
		t.Fatalf("unexpected types: %q", got)
	}
	if out, err := s.Query("SELECT count() FROM d.t", "TSV"); err != nil || out != "1\n" {
		t.Fatalf("unexpected TSV answer %q, %v", out, err)
	}
}

func mustLiteral(t *testing.T, v any) string {
	t.Helper()
	s, err := Literal(v)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
