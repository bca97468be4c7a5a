package chtest

import (
	"context"
	"strings"
	"testing"

	"github.com/polis-platform/polis/internal/testutil"
)

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(Runner(m)) }

func TestShared_Database(t *testing.T) {
	addr := Shared(t)
	if again := Shared(t); again != addr {
		t.Fatalf("unexpected second server; got %s; want %s", again, addr)
	}
	a, b := Database(t, addr), Database(t, addr)
	if a == b || !strings.HasPrefix(a, "t_testshared_database_") {
		t.Fatalf("unexpected database names %q and %q", a, b)
	}
	c := Conn(t, addr)
	var n uint64
	if err := c.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name IN (?, ?)", a, b).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Fatalf("unexpected database count; got %d; want 2", n)
	}
}

func TestPrivate(t *testing.T) {
	s := Private(t)
	if s.NativeAddr() == Shared(t) {
		t.Fatal("Private returned the shared server")
	}
	v, err := s.Version(context.Background())
	if err != nil || v == "" {
		t.Fatalf("unexpected version %q, %v", v, err)
	}
}
