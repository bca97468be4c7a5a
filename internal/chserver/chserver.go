// Package chserver runs a real clickhouse-server process with its own config
// and data directory, bound to loopback only. Tests and the single-machine
// mode use it; production points at a ClickHouse cluster instead.
package chserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// ClickHouse's own ports, where `polis clickhouse` and `polis dev` run
// the server unless told otherwise.
const (
	DefaultTCPPort  = 9000
	DefaultHTTPPort = 8123
)

// Defaults of Options, used for a zero field.
const (
	DefaultStartTimeout = 30 * time.Second
	DefaultStopTimeout  = 20 * time.Second
)

// Options configure a server.
type Options struct {
	// Dir holds config.xml, users.xml, data, logs. Required; created if missing.
	Dir string
	// TCPPort (native protocol) and HTTPPort; 0 picks a free loopback port
	// (DefaultTCPPort and DefaultHTTPPort are the commands' defaults).
	TCPPort, HTTPPort int
	Logger            *slog.Logger
	// Binary defaults to clickhouse-server on PATH, then /usr/sbin/clickhouse-server.
	Binary string
	// StartTimeout bounds Start and Restart; default DefaultStartTimeout.
	StartTimeout time.Duration
	// StopTimeout is how long Stop waits after SIGTERM before SIGKILL;
	// default DefaultStopTimeout.
	StopTimeout time.Duration
	// Analyst, if set, adds the read-only user AnalystUser to users.xml.
	Analyst *Analyst
}

// Server is a running (or stopped, see Restart) clickhouse-server.
type Server struct {
	o Options

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd exits
	werr error         // cmd.Wait's result, set before done closes
}

// Start writes the config into o.Dir, starts the server and waits until it
// answers SELECT 1 on its native port.
func Start(ctx context.Context, o Options) (*Server, error) {
	if o.Dir == "" {
		return nil, errors.New("cannot start clickhouse-server: Options.Dir is empty")
	}
	dir, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("cannot resolve %q: %w", o.Dir, err)
	}
	o.Dir = dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	if o.Analyst != nil {
		if err := o.Analyst.validate(); err != nil {
			return nil, fmt.Errorf("cannot start clickhouse-server: %w", err)
		}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	o.Logger = o.Logger.With("component", "chserver")
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.Binary, err = findBinary(o.Binary); err != nil {
		return nil, err
	}
	if o.TCPPort == 0 || o.HTTPPort == 0 {
		// Pick both at once so the two cannot collide with each other.
		ports, err := freePorts(2)
		if err != nil {
			return nil, err
		}
		if o.TCPPort == 0 {
			o.TCPPort = ports[0]
		}
		if o.HTTPPort == 0 {
			o.HTTPPort = ports[1]
		}
	}
	s := &Server{o: o}
	if err := s.start(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// NativeAddr is host:port of the native protocol (clickhouse-go, clickhouse-client).
func (s *Server) NativeAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.o.TCPPort))
}

// HTTPAddr is host:port of the HTTP interface.
func (s *Server) HTTPAddr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.o.HTTPPort))
}

// Dir is the server's config and data directory.
func (s *Server) Dir() string { return s.o.Dir }

// Running reports whether the process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

// Version asks the server for its version, e.g. "18.16.1".
func (s *Server) Version(ctx context.Context) (string, error) {
	return queryVersion(ctx, s.NativeAddr())
}

// Stop sends SIGTERM, waits up to StopTimeout, then kills. Stopping a
// stopped server is a no-op.
func (s *Server) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopLocked()
}

// Kill stops the server with SIGKILL, as a crash would: no shutdown, no
// flush. Restart starts it again on the same data.
func (s *Server) Kill() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot kill clickhouse-server: %w", err)
	}
	<-done
	return nil
}

// Restart stops the server if it runs and starts it again on the same ports
// and data directory.
func (s *Server) Restart(ctx context.Context) error {
	if err := s.Stop(); err != nil {
		return err
	}
	return s.start(ctx)
}

// ErrorLogTail returns the end of the server's error log and stdout, for
// error messages and failed tests.
func (s *Server) ErrorLogTail() string {
	return logTail(s.o.Dir)
}

func (s *Server) start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return errors.New("cannot start clickhouse-server: already running")
	}
	if err := writeConfig(s.o.Dir, s.o.TCPPort, s.o.HTTPPort, s.o.Analyst); err != nil {
		return fmt.Errorf("cannot configure clickhouse-server: %w", err)
	}
	out, err := os.OpenFile(filepath.Join(s.o.Dir, logDir, stdoutLog), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("cannot open server output log: %w", err)
	}
	defer out.Close() // the child has its own descriptor
	cmd := exec.Command(s.o.Binary, "--config-file="+filepath.Join(s.o.Dir, configFile))
	cmd.Dir = s.o.Dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = sysProcAttr()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("cannot start %s: %w", s.o.Binary, err)
	}
	s.cmd, s.done, s.werr = cmd, make(chan struct{}), nil
	done := s.done
	go func() {
		err := cmd.Wait()
		s.werr = err
		close(done)
	}()
	if err := s.waitReady(ctx); err != nil {
		_ = s.stopLocked()
		return err
	}
	s.o.Logger.Info("clickhouse-server started", "addr", s.NativeAddr(), "pid", cmd.Process.Pid,
		"dir", s.o.Dir, "seconds", time.Since(began).Seconds())
	return nil
}

// waitReady polls SELECT 1 until it answers, the process dies or time runs out.
func (s *Server) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.o.StartTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		select {
		case <-s.done:
			return fmt.Errorf("cannot start clickhouse-server: it exited (%v); log tail:\n%s", s.werr, logTail(s.o.Dir))
		default:
		}
		if last = ping(ctx, s.NativeAddr()); last == nil {
			return nil
		}
		select {
		case <-s.done:
			// Reported at the top of the loop.
		case <-ctx.Done():
			return fmt.Errorf("cannot start clickhouse-server: not ready after %s (last error: %w); log tail:\n%s",
				s.o.StartTimeout, last, logTail(s.o.Dir))
		case <-tick.C:
		}
	}
}

func (s *Server) stopLocked() error {
	if s.cmd == nil {
		return nil
	}
	cmd, done := s.cmd, s.done
	s.cmd = nil
	select {
	case <-done:
		return nil // already gone
	default:
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot signal clickhouse-server: %w", err)
	}
	t := time.NewTimer(s.o.StopTimeout)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
	}
	s.o.Logger.Warn("clickhouse-server did not stop in time; killing it", "pid", cmd.Process.Pid, "timeout", s.o.StopTimeout)
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("cannot kill clickhouse-server: %w", err)
	}
	<-done
	return nil
}

func findBinary(b string) (string, error) {
	if b != "" {
		p, err := exec.LookPath(b)
		if err != nil {
			return "", fmt.Errorf("cannot find clickhouse-server binary %q: %w", b, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath("clickhouse-server"); err == nil {
		return p, nil
	}
	const fallback = "/usr/sbin/clickhouse-server"
	if _, err := os.Stat(fallback); err != nil {
		return "", fmt.Errorf("cannot find clickhouse-server (install Debian's clickhouse-server package): %w", err)
	}
	return fallback, nil
}

// freePorts asks the kernel for n distinct free loopback ports. They are
// released before the server binds them; a collision in between is possible
// but rare, and shows up as a failed start.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("cannot pick a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func logTail(dir string) string {
	var out string
	for _, name := range []string{serverErrorLog, stdoutLog} {
		b, err := os.ReadFile(filepath.Join(dir, logDir, name))
		if err != nil || len(b) == 0 {
			continue
		}
		const max = 4096
		if len(b) > max {
			b = b[len(b)-max:]
		}
		out += "== " + name + " ==\n" + string(b)
	}
	if out == "" {
		return "(no log output)"
	}
	return out
}

// openConn opens a short-lived native connection to addr.
func openConn(addr string) (clickhouse.Conn, error) {
	return clickhouse.Open(&clickhouse.Options{
		Addr:         []string{addr},
		DialTimeout:  time.Second,
		MaxOpenConns: 1,
	})
}

func ping(ctx context.Context, addr string) error {
	c, err := openConn(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	var one uint8
	if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
		return err
	}
	if one != 1 {
		return fmt.Errorf("SELECT 1 returned %d", one)
	}
	return nil
}

func queryVersion(ctx context.Context, addr string) (string, error) {
	c, err := openConn(addr)
	if err != nil {
		return "", fmt.Errorf("cannot connect to %s: %w", addr, err)
	}
	defer c.Close()
	var v string
	if err := c.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("cannot query version of %s: %w", addr, err)
	}
	return v, nil
}
