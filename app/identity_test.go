package app_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tried as a new user would: five demo devices each publish 200 QoS 1
// messages with mosquitto_pub -l, without "ts" (arrival time), as fast as
// it sends them, so many share a millisecond. Every acknowledged message is
// a row, before and after merges, and nothing is dead-lettered.
func TestMosquittoPub_PointsSharingAMillisecondAreAllKept(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not found: install Debian's mosquitto-clients (make deps does)")
	}
	e := newEnv(t)
	p := e.start(t)
	defer stop(t, p)
	host, port, _ := strings.Cut(p.Broker.Addr(), ":")
	const devices, msgs = 5, 200
	var lines bytes.Buffer
	for i := range msgs {
		fmt.Fprintf(&lines, `{"m":{"temp_c":%d.5}}`+"\n", i)
	}
	var wg sync.WaitGroup
	errs := make(chan error, devices)
	for _, c := range e.creds[:devices] {
		wg.Go(func() {
			cmd := exec.Command(bin, "-h", host, "-p", port, "-u", c.Username, "-P", c.Password, "-q", "1",
				"-t", fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), "-l")
			cmd.Stdin = bytes.NewReader(lines.Bytes())
			done := make(chan error, 1)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				errs <- err
				return
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err != nil {
					errs <- fmt.Errorf("mosquitto_pub %s: %v\n%s", c.Username, err, out.String())
				}
			case <-time.After(time.Minute):
				_ = cmd.Process.Kill()
				errs <- fmt.Errorf("mosquitto_pub %s did not finish", c.Username)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	const want = devices * msgs
	q := "SELECT count() FROM %s.telemetry FINAL"
	eventually(t, 30*time.Second, func() bool { return e.count(t, q) >= want })
	if got := e.count(t, q); got != want {
		t.Fatalf("rows with FINAL: %d; want %d", got, want)
	}
	shared := e.count(t, "SELECT count() FROM (SELECT site, asset, ts FROM %s.telemetry GROUP BY site, asset, ts HAVING count() > 1)")
	if err := e.conn.Exec(t.Context(), fmt.Sprintf("OPTIMIZE TABLE %s.telemetry FINAL", e.cfg.Database)); err != nil {
		t.Fatal(err)
	}
	if got := e.count(t, "SELECT count() FROM %s.telemetry"); got != want {
		t.Fatalf("rows after merging: %d; want %d (%d milliseconds were shared by points)", got, want, shared)
	}
	if n := e.count(t, "SELECT count() FROM %s.deadletter"); n != 0 {
		t.Fatalf("%d dead letters", n)
	}
	t.Logf("%d milliseconds held more than one point of a device", shared)
	eventually(t, 30*time.Second, func() bool { return e.count(t, "SELECT toUInt64(sum(count)) FROM %s.telemetry_1m FINAL") == want })
}

// Two messages with the same explicit ts are two points: both are kept and
// counted, and the newer is the bucket's last value.
func TestSameExplicitTimestamp_BothKeptNewerIsLast(t *testing.T) {
	e := newEnv(t)
	p := e.start(t)
	defer stop(t, p)
	c := e.creds[0]
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not found: install Debian's mosquitto-clients (make deps does)")
	}
	host, port, _ := strings.Cut(p.Broker.Addr(), ":")
	ts := time.Now().Add(-time.Minute).Truncate(time.Second).UnixMilli()
	for _, v := range []string{"20", "30"} {
		out, err := exec.Command(bin, "-h", host, "-p", port, "-u", c.Username, "-P", c.Password, "-q", "1",
			"-t", fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), "-m", fmt.Sprintf(`{"ts":%d,"m":{"temp_c":%s}}`, ts, v)).CombinedOutput()
		if err != nil {
			t.Fatalf("mosquitto_pub: %v\n%s", err, out)
		}
	}
	eventually(t, 30*time.Second, func() bool { return e.count(t, "SELECT count() FROM %s.telemetry FINAL") == 2 })
	eventually(t, 30*time.Second, func() bool {
		return e.count(t, "SELECT toUInt64(sum(count)) FROM %s.telemetry_1m FINAL") == 2 &&
			e.count(t, "SELECT toUInt64(any(last)) FROM %s.telemetry_1m FINAL") == 30
	})
}
