package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Machine describes where the test ran.
type Machine struct {
	CPUs       int
	GOMAXPROCS int
	Model      string
	MemTotal   string
	Kernel     string
	GoVersion  string
	OS, Arch   string
}

func readMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GOMAXPROCS: runtime.GOMAXPROCS(0), GoVersion: runtime.Version(),
		OS: runtime.GOOS, Arch: runtime.GOARCH, Model: "unknown", MemTotal: "unknown", Kernel: "unknown"}
	if out, err := exec.Command("nproc").Output(); err == nil {
		if n, err := strconv.Atoi(strings.TrimSpace(string(out))); err == nil {
			m.CPUs = n
		}
	}
	if v, ok := procField("/proc/cpuinfo", "model name"); ok {
		m.Model = v
	}
	if v, ok := procField("/proc/meminfo", "MemTotal"); ok {
		if kb, err := strconv.ParseFloat(strings.TrimSuffix(v, " kB"), 64); err == nil {
			m.MemTotal = fmt.Sprintf("%.1f GiB", kb/(1<<20))
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	return m
}

// procField returns the value of the first "key : value" line of a /proc file.
func procField(path, key string) (string, bool) {
	f, err := os.Open(path)
	if err != nil {
		return "", false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v), true
		}
	}
	return "", false
}

// selfCPU is the user and system CPU time this process used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// procCPUOf is another process's user and system CPU time from
// /proc/PID/stat, or -1 if unknown.
func procCPUOf(pid int) time.Duration {
	if pid <= 0 {
		return -1
	}
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	// The command name is in parentheses and may hold spaces: fields
	// start after the last ')'. utime and stime are fields 14 and 15.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return -1
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return -1
	}
	// USER_HZ is 100 on Linux for every architecture Go supports.
	return time.Duration(ut+st) * 10 * time.Millisecond
}

// machineBusy is the CPU time all processes of the machine used so far
// (user, nice, system, irq, softirq, steal from /proc/stat), or -1.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return -1
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return -1
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // user nice system irq softirq steal
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return -1
		}
		ticks += v
	}
	return time.Duration(ticks) * 10 * time.Millisecond
}

// cpuWindow samples this process, another process and the whole machine.
type cpuWindow struct {
	self, other, machine time.Duration
	at                   time.Time
}

func sampleCPU(pid int) cpuWindow {
	return cpuWindow{self: selfCPU(), other: procCPUOf(pid), machine: machineBusy(), at: time.Now()}
}

// CPUUse is CPU used over a wall-clock window, in cores.
type CPUUse struct {
	Wall    time.Duration
	Self    float64 // this process
	Other   float64 // the server process (ClickHouse or mosquitto); <0 unknown
	Machine float64 // every process on the machine; <0 unknown
}

func (w cpuWindow) since(w0 cpuWindow) CPUUse {
	u := CPUUse{Wall: w.at.Sub(w0.at), Other: -1, Machine: -1}
	secs := u.Wall.Seconds()
	if secs <= 0 {
		return u
	}
	u.Self = (w.self - w0.self).Seconds() / secs
	if w.other >= 0 && w0.other >= 0 {
		u.Other = (w.other - w0.other).Seconds() / secs
	}
	if w.machine >= 0 && w0.machine >= 0 {
		u.Machine = (w.machine - w0.machine).Seconds() / secs
	}
	return u
}

// findPID returns the first process whose command line contains substr,
// or 0.
func findPID(substr string) int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), substr) {
			return pid
		}
	}
	return 0
}

// scrapeMetrics reads a Prometheus text endpoint and sums each metric's
// series over their labels (telemetry-table rows are kept apart).
func scrapeMetrics(ctx context.Context, url string) (map[string]float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot scrape %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("cannot scrape %s: %s", url, resp.Status)
	}
	return parseMetrics(io.LimitReader(resp.Body, 16<<20))
}

func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		series := line[:i]
		name, labels, _ := strings.Cut(series, "{")
		out[name] += v
		// Keep the per-label series of the counters the report breaks down.
		if labels != "" && (strings.Contains(name, "deadletter") || strings.Contains(name, "refused") ||
			strings.Contains(name, "rows_written") || strings.Contains(name, "messages_total") ||
			strings.Contains(name, "skipped")) {
			out[series] += v
		}
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("cannot read metrics: %w", err)
	}
	return out, nil
}

// pprofTags runs `go tool pprof -tags` on a profile: CPU by pprof label.
func pprofTags(path string) (string, error) {
	return goToolPprof("-tags", path)
}

// pprofTop runs `go tool pprof -top` on a profile.
func pprofTop(path string, cum bool) (string, error) {
	args := []string{"-top", "-nodecount=15"}
	if cum {
		args = append(args, "-cum")
	}
	return goToolPprof(append(args, path)...)
}

func goToolPprof(args ...string) (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("cannot find the go command for pprof: %w", err)
	}
	args = append([]string{"tool", "pprof"}, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("cannot run go tool pprof: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return strings.TrimRight(string(out), "\n"), nil
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("cannot find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening dials addr until it accepts or timeout passes.
func waitListening(ctx context.Context, addr string, timeout time.Duration, exited <-chan struct{}) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cannot reach %s after %s: %w", addr, timeout, err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return fmt.Errorf("cannot reach %s: the process exited", addr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
