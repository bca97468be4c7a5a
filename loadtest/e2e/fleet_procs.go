package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Components of a fleet run: every child process belongs to one, and the
// report sums CPU and memory by component.
const (
	compPlatform   = "platform"
	compSimulator  = "simulator"
	compClickHouse = "clickhouse"
	compKafka      = "kafka"
	compMosquitto  = "mosquitto"
)

// child is a process the fleet run started: its output goes to a log file,
// and the lines it prints can be watched for.
type child struct {
	name, comp string
	cmd        *exec.Cmd
	log        string
	done       chan struct{}
	err        error

	mu      sync.Mutex
	watch   map[string]chan struct{} // line prefix → closed when seen, until seen
	seenCh  map[string]chan struct{} // every watched prefix
	onLine  func(string)
	lastErr string
}

// childSpec describes a process to start.
type childSpec struct {
	name, comp string
	log        string   // stdout and stderr go here
	env        []string // added to the harness's environment
	bin        string
	args       []string
	watch      []string // line prefixes to wait for (child.seenLine)
	onLine     func(string)
}

// startChild starts a process. Children die with the harness
// (Pdeathsig), so a killed run leaves no platform behind.
func startChild(s childSpec) (*child, error) {
	f, err := os.Create(s.log)
	if err != nil {
		return nil, fmt.Errorf("cannot create log of %s: %w", s.name, err)
	}
	c := &child{name: s.name, comp: s.comp, log: s.log, done: make(chan struct{}), watch: map[string]chan struct{}{}, onLine: s.onLine}
	for _, w := range s.watch {
		c.watch[w] = make(chan struct{})
	}
	c.seenCh = maps.Clone(c.watch)
	c.cmd = exec.Command(s.bin, s.args...)
	if len(s.env) > 0 {
		c.cmd.Env = append(os.Environ(), s.env...)
	}
	pr, pw := io.Pipe()
	c.cmd.Stdout, c.cmd.Stderr = pw, pw
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := c.cmd.Start(); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cannot start %s (%s): %w", s.name, s.bin, err)
	}
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			_, _ = fmt.Fprintln(f, line)
			c.seen(line)
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		c.err = c.cmd.Wait()
		_ = pw.Close()
		<-copied
		_ = f.Close()
		close(c.done)
	}()
	return c, nil
}

// seenLine is closed once the child printed a line starting with prefix,
// one of its spec's watch prefixes.
func (c *child) seenLine(prefix string) <-chan struct{} {
	ch, ok := c.seenCh[prefix]
	if !ok {
		panic("e2e: not watching for " + prefix)
	}
	return ch
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// cpu is the CPU time the child used so far, also once it has exited
// (from its rusage), or -1.
func (c *child) cpu() time.Duration {
	if !c.exited() {
		if t := procCPUOf(c.pid()); t >= 0 {
			return t
		}
		// Reaped between the two looks: its rusage comes with done.
		select {
		case <-c.done:
		case <-time.After(200 * time.Millisecond):
			return -1
		}
	}
	ps := c.cmd.ProcessState
	if ps == nil {
		return -1
	}
	return ps.UserTime() + ps.SystemTime()
}

func (c *child) seen(line string) {
	c.mu.Lock()
	for p, ch := range c.watch {
		if strings.HasPrefix(line, p) {
			close(ch)
			delete(c.watch, p)
		}
	}
	if strings.Contains(line, "level=ERROR") || strings.Contains(line, "cannot ") {
		c.lastErr = line
	}
	on := c.onLine
	c.mu.Unlock()
	if on != nil {
		on(line)
	}
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends SIGTERM and waits up to grace, then SIGKILL.
func (c *child) stop(grace time.Duration) error {
	if c.exited() {
		return c.exitErr()
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
		return c.exitErr()
	case <-time.After(grace):
	}
	_ = c.cmd.Process.Kill()
	<-c.done
	return fmt.Errorf("%s did not stop within %s of SIGTERM; killed", c.name, grace)
}

func (c *child) exitErr() error {
	var ee *exec.ExitError
	if c.err == nil || (errors.As(c.err, &ee) && ee.ExitCode() == 0) {
		return nil
	}
	return fmt.Errorf("%s: %w (last error line: %s; log %s)", c.name, c.err, c.lastError(), c.log)
}

func (c *child) lastError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.lastErr == "" {
		return tail(c.log, 3)
	}
	return c.lastErr
}

// procRSS is a process's resident memory in bytes from /proc/PID/status,
// or -1.
func procRSS(pid int) int64 {
	v, ok := procField(filepath.Join("/proc", strconv.Itoa(pid), "status"), "VmRSS")
	if !ok {
		return -1
	}
	kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
	if err != nil {
		return -1
	}
	return kb << 10
}

// waitAll waits for every channel, or returns the first child that exited
// meanwhile, or ctx's error after timeout.
func waitAll(ctx context.Context, what string, chans []<-chan struct{}, kids []*child, timeout time.Duration) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for _, ch := range chans {
	wait:
		for {
			select {
			case <-ch:
				break wait
			case <-ctx.Done():
				return ctx.Err()
			case <-deadline.C:
				return fmt.Errorf("cannot %s within %s", what, timeout)
			case <-tick.C:
				for _, k := range kids {
					if k.exited() {
						return fmt.Errorf("cannot %s: %s exited: %v", what, k.name, k.exitErr())
					}
				}
			}
		}
	}
	return nil
}
