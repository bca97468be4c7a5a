package chserver

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// One server for the whole lifecycle: start, query, restart keeps data and
// ports, stop, stop again.
func TestServer_Lifecycle(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	if !strings.HasPrefix(s.NativeAddr(), "127.0.0.1:") || !strings.HasPrefix(s.HTTPAddr(), "127.0.0.1:") {
		t.Fatalf("unexpected addresses; got %s and %s; want loopback", s.NativeAddr(), s.HTTPAddr())
	}
	v, err := s.Version(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if v == "" {
		t.Fatal("empty version")
	}
	t.Logf("clickhouse-server %s at %s", v, s.NativeAddr())

	c, err := openConn(s.NativeAddr())
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"CREATE TABLE default.keep (x UInt32) ENGINE = MergeTree() ORDER BY x",
		// INSERT ... VALUES through Exec hangs on 18.16 (the server waits for
		// data blocks); INSERT ... SELECT does not.
		"INSERT INTO default.keep (x) SELECT 42",
	} {
		if err := c.Exec(ctx, q); err != nil {
			t.Fatalf("cannot run %q: %v", q, err)
		}
	}
	c.Close()

	native, httpAddr := s.NativeAddr(), s.HTTPAddr()
	if err := s.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	if s.NativeAddr() != native || s.HTTPAddr() != httpAddr {
		t.Fatalf("unexpected addresses after restart; got %s, %s; want %s, %s", s.NativeAddr(), s.HTTPAddr(), native, httpAddr)
	}
	c, err = openConn(s.NativeAddr())
	if err != nil {
		t.Fatal(err)
	}
	var x uint32
	if err := c.QueryRow(ctx, "SELECT x FROM default.keep").Scan(&x); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if x != 42 {
		t.Fatalf("unexpected row after restart; got %d; want 42", x)
	}

	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	if s.Running() {
		t.Fatal("server still running after Stop")
	}
	if err := ping(ctx, native); err == nil {
		t.Fatal("server still answers after Stop")
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	for _, f := range []string{configFile, usersFile, dataDir, filepath.Join(logDir, stdoutLog)} {
		if _, err := os.Stat(filepath.Join(s.Dir(), f)); err != nil {
			t.Fatalf("missing %s under Dir: %v", f, err)
		}
	}
}

// A server that cannot start (its port is taken) fails fast with the log tail.
// The port is held by a plain listener: the server binds with SO_REUSEPORT,
// so a second clickhouse-server on the same port would not fail.
func TestStart_Failure(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	began := time.Now()
	b, err := Start(ctx, Options{Dir: t.TempDir(), TCPPort: l.Addr().(*net.TCPAddr).Port})
	if err == nil {
		b.Stop()
		t.Fatal("expected an error starting a second server on a taken port")
	}
	if !strings.Contains(err.Error(), "log tail") || !strings.Contains(err.Error(), "exited") {
		t.Fatalf("unexpected error; got %v; want the exit and the log tail", err)
	}
	t.Logf("start failed as expected: %v", err)
	if d := time.Since(began); d > 20*time.Second {
		t.Fatalf("failure took %s; want it reported when the process exits", d)
	}
}

func TestStart_NoBinary(t *testing.T) {
	_, err := Start(context.Background(), Options{Dir: t.TempDir(), Binary: "/nonexistent/clickhouse-server"})
	if err == nil || !strings.Contains(err.Error(), "cannot find clickhouse-server") {
		t.Fatalf("unexpected error; got %v", err)
	}
}

func TestWriteConfig_Escapes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a&b<c")
	if err := writeConfig(dir, 1, 2, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "a&amp;b&lt;c") {
		t.Fatalf("path not escaped in config:\n%s", b)
	}
	if strings.Contains(string(b), "0.0.0.0") || strings.Contains(string(b), "<listen_host>::</listen_host>") {
		t.Fatal("config listens beyond loopback")
	}
}
