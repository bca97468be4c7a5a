// Package chtest gives tests a real ClickHouse.
//
// Shared starts one clickhouse-server per test binary, lazily, on free
// loopback ports in a temporary directory. A package that calls Shared must
// stop it from its TestMain:
//
//	func TestMain(m *testing.M) { chtest.Main(m) }
//
// or, checking for leaked goroutines once it has stopped:
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }
//
// (Without it the server still dies with the test binary, through the
// parent-death signal, but its temporary directory stays behind.)
//
// Set POLIS_TEST_CLICKHOUSE=host:port to use a server you run instead.
// Tests that share a server isolate their rows with Database.
package chtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/internal/chserver"
)

// EnvAddr names the variable that points tests at an existing server.
const EnvAddr = "POLIS_TEST_CLICKHOUSE"

var shared struct {
	once sync.Once
	srv  *chserver.Server
	dir  string
	addr string
	err  error
}

// Main runs the package's tests and then stops the shared server.
func Main(m *testing.M) { os.Exit(Runner(m).Run()) }

// Runner wraps m so that its Run also stops the shared server, for a
// TestMain that checks something once the server is gone, such as
// testutil.VerifyNoLeaks.
func Runner(m *testing.M) interface{ Run() int } { return runner{m} }

type runner struct{ m *testing.M }

func (r runner) Run() int {
	code := r.m.Run()
	stopShared()
	return code
}

// Shared returns the native address of the test binary's ClickHouse.
func Shared(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv(EnvAddr); addr != "" {
		return addr
	}
	shared.once.Do(func() {
		shared.dir, shared.err = os.MkdirTemp("", "polis-clickhouse-")
		if shared.err != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		shared.srv, shared.err = chserver.Start(ctx, chserver.Options{Dir: shared.dir, Logger: logger()})
		if shared.err != nil {
			os.RemoveAll(shared.dir)
			return
		}
		shared.addr = shared.srv.NativeAddr()
	})
	if shared.err != nil {
		t.Fatalf("cannot start the shared ClickHouse (or set %s=host:port): %v", EnvAddr, shared.err)
	}
	return shared.addr
}

func stopShared() {
	if shared.srv == nil {
		return
	}
	if err := shared.srv.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "chtest: %v\n", err)
	}
	os.RemoveAll(shared.dir)
}

// Private starts a server for this test alone, stopped when the test ends.
// Its directory is removed on success and kept (and logged) on failure.
func Private(t testing.TB) *chserver.Server {
	t.Helper()
	dir, err := os.MkdirTemp("", "polis-clickhouse-")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: dir, Logger: logger()})
	if err != nil {
		os.RemoveAll(dir)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
		if t.Failed() {
			t.Logf("ClickHouse directory kept: %s; log tail:\n%s", dir, s.ErrorLogTail())
			return
		}
		os.RemoveAll(dir)
	})
	return s
}

// Conn opens a native connection to addr, closed when the test ends.
func Conn(t testing.TB, addr string) driver.Conn {
	t.Helper()
	c, err := clickhouse.Open(&clickhouse.Options{
		Addr:        []string{addr},
		DialTimeout: 2 * time.Second,
	})
	if err != nil {
		t.Fatalf("cannot connect to ClickHouse at %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// Database creates a database unique to this test and drops it when the
// test ends, so tests sharing a server do not see each other's rows.
func Database(t testing.TB, addr string) string {
	t.Helper()
	name := strings.Trim(unsafeChars.ReplaceAllString(strings.ToLower(t.Name()), "_"), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name = "t_" + name + "_" + hex.EncodeToString(rnd[:])
	c := Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("cannot create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		// The server may be gone already (a Private one stopped by the test).
		_ = c.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
	})
	return name
}

// logger is silent unless POLIS_TEST_LOG=debug, like the nats test servers.
func logger() *slog.Logger {
	if os.Getenv("POLIS_TEST_LOG") == "debug" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}
