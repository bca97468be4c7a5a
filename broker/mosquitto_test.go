package broker_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/internal/testutil"
)

// The conformance tests run every behaviour against the platform broker and
// against Debian's mosquitto, configured with the same accounts and rights:
// the platform must do at least what mosquitto does.

const mosquittoBin = "/usr/sbin/mosquitto"

// confAccount is a service account of the conformance tests: a service
// account of the platform broker, a password-file user with an ACL in
// mosquitto.
type confAccount struct {
	user, pass         string
	publish, subscribe []string
}

var confAccounts = []confAccount{
	{"wide", "wide-secret-1", []string{"#"}, []string{"#"}},
	{"sys", "sys-secret-1", []string{"t/#", "$app/#"}, []string{"t/#", "$app/#", "$SYS/#"}},
	{"narrow", "narrow-secret-1", []string{"t/#"}, []string{"t/narrow/#"}},
}

func confPass(user string) string {
	for _, a := range confAccounts {
		if a.user == user {
			return a.pass
		}
	}
	panic("no conformance account " + user)
}

// target is a broker under test.
type target struct {
	name  string
	addr  string // 127.0.0.1:port
	polis *stack // the platform broker's stack; nil for mosquitto
}

func (tg target) url() string { return "tcp://" + tg.addr }

// forEachBroker runs f against the platform broker and against mosquitto,
// each started for this test.
func forEachBroker(t *testing.T, f func(t *testing.T, tg target)) {
	t.Helper()
	var accounts []broker.Account
	for _, a := range confAccounts {
		accounts = append(accounts, broker.Account{Username: a.user, SecretHash: credential.Hash(a.pass), Publish: a.publish, Subscribe: a.subscribe})
	}
	s := newStack(t, accounts...)
	targets := []target{{name: "polis", addr: s.broker.Addr(), polis: s}, {name: "mosquitto", addr: startMosquitto(t)}}
	for _, tg := range targets {
		t.Run(tg.name, func(t *testing.T) {
			t.Parallel() // the two brokers are independent; most of the time is waiting
			f(t, tg)
		})
	}
}

// startMosquitto runs mosquitto on a free loopback port with a password file
// and an ACL file made from confAccounts, and returns its address.
func startMosquitto(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(mosquittoBin); err != nil {
		t.Fatalf("mosquitto not found at %s: install Debian's mosquitto (make deps does): %v", mosquittoBin, err)
	}
	dir := t.TempDir()
	pwFile, aclFile := filepath.Join(dir, "passwd"), filepath.Join(dir, "acl")
	var acl strings.Builder
	for i, a := range confAccounts {
		args := []string{"-b", pwFile, a.user, a.pass}
		if i == 0 {
			args = append([]string{"-c"}, args...)
		}
		if out, err := exec.Command("mosquitto_passwd", args...).CombinedOutput(); err != nil {
			t.Fatalf("mosquitto_passwd: %v: %s", err, out)
		}
		fmt.Fprintf(&acl, "user %s\n", a.user)
		for _, f := range a.publish {
			if slices.Contains(a.subscribe, f) {
				fmt.Fprintf(&acl, "topic readwrite %s\n", f)
			} else {
				fmt.Fprintf(&acl, "topic write %s\n", f)
			}
		}
		for _, f := range a.subscribe {
			if !slices.Contains(a.publish, f) {
				fmt.Fprintf(&acl, "topic read %s\n", f)
			}
		}
	}
	if err := os.WriteFile(aclFile, []byte(acl.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s\nacl_file %s\n", port, pwFile, aclFile)
	if u, err := user.Current(); err == nil && os.Geteuid() == 0 {
		conf += "user " + u.Username + "\n" // else it switches to user mosquitto, who cannot read the files
	}
	cfg := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	cmd := exec.Command(mosquittoBin, "-c", cfg)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("cannot start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", out.String())
		}
	})
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		select {
		case <-done:
			t.Fatalf("mosquitto exited at start:\n%s", out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	}, "mosquitto listens on %s", addr)
	return addr
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// mosq runs a mosquitto client (mosquitto_pub or mosquitto_sub) against the
// target as user, for at most 15 s, and returns its output (stdout and
// stderr).
func mosq(t *testing.T, tg target, bin, user string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	host, port, _ := net.SplitHostPort(tg.addr)
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"-h", host, "-p", port, "-u", user, "-P", confPass(user)}, args...)...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// bgSub is a mosquitto_sub running in the background.
type bgSub struct {
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// startSub starts mosquitto_sub as user with the arguments, killed at the
// end of the test at the latest, and waits until it is subscribed (-d
// prints the SUBACK).
func startSub(t *testing.T, tg target, user string, args ...string) *bgSub {
	t.Helper()
	host, port, _ := net.SplitHostPort(tg.addr)
	b := &bgSub{out: &syncBuffer{}, done: make(chan struct{})}
	// stdbuf: line-buffered, so that the test sees the output as it comes
	// (stdbuf execs mosquitto_sub: the process is mosquitto_sub's).
	b.cmd = exec.Command("stdbuf", append([]string{"-oL", "mosquitto_sub", "-h", host, "-p", port, "-u", user, "-P", confPass(user), "-d"}, args...)...)
	b.cmd.Stdout, b.cmd.Stderr = b.out, b.out
	if err := b.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = b.cmd.Wait(); close(b.done) }()
	t.Cleanup(func() {
		_ = b.cmd.Process.Kill()
		<-b.done
	})
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(b.out.String(), "Subscribed (mid") },
		"mosquitto_sub subscribed (output %v)", testutil.Lazy(func() any { return b.out.String() }))
	return b
}

// wait waits for mosquitto_sub to exit by itself, within d.
func (b *bgSub) wait(t *testing.T, d time.Duration) string {
	t.Helper()
	select {
	case <-b.done:
	case <-time.After(d):
		t.Fatalf("mosquitto_sub did not exit within %s; output:\n%s", d, b.out.String())
	}
	return b.out.String()
}

// inbox collects the messages a paho client receives.
type inbox struct {
	mu  sync.Mutex
	got []paho.Message
}

func (in *inbox) handler(_ paho.Client, m paho.Message) {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.got = append(in.got, m)
}

func (in *inbox) all() []paho.Message {
	in.mu.Lock()
	defer in.mu.Unlock()
	return slices.Clone(in.got)
}

// on returns the messages received on the topic.
func (in *inbox) on(topic string) []paho.Message {
	var out []paho.Message
	for _, m := range in.all() {
		if m.Topic() == topic {
			out = append(out, m)
		}
	}
	return out
}

// waitFor waits until n messages arrived on the topic.
func (in *inbox) waitFor(t *testing.T, topic string, n int) []paho.Message {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return len(in.on(topic)) >= n },
		"%d messages on %s (got %v)", n, topic, testutil.Lazy(func() any { return describe(in.all()) }))
	return in.on(topic)
}

func describe(ms []paho.Message) string {
	var b strings.Builder
	for _, m := range ms {
		fmt.Fprintf(&b, "[%s q%d r%v d%v %q] ", m.Topic(), m.Qos(), m.Retained(), m.Duplicate(), m.Payload())
	}
	return b.String()
}

// pahoClient connects a paho client (MQTT 3.1.1 unless set otherwise, clean
// session, messages into in when given) as user to the target.
func pahoClient(t *testing.T, tg target, user, id string, in *inbox, opts ...func(*paho.ClientOptions)) paho.Client {
	t.Helper()
	c, err := pahoConnect(t, tg, user, id, in, opts...)
	if err != nil {
		t.Fatalf("paho connect as %s (%s) to %s: %v", user, id, tg.name, err)
	}
	return c
}

func pahoConnect(t *testing.T, tg target, user, id string, in *inbox, opts ...func(*paho.ClientOptions)) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker(tg.url()).SetClientID(id).SetUsername(user).SetPassword(confPass(user)).
		SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).SetProtocolVersion(4).
		SetCleanSession(true).SetOrderMatters(true)
	if in != nil {
		o.SetDefaultPublishHandler(in.handler)
	}
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, fmt.Errorf("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(50) })
	return c, nil
}

// subscribe subscribes the paho client to the filters (with their QoS) and
// returns the SUBACK code of each.
func subscribe(t *testing.T, c paho.Client, filters map[string]byte) map[string]byte {
	t.Helper()
	tok := c.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("subscribe %v timed out", filters)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("subscribe %v: %v", filters, err)
	}
	return tok.(*paho.SubscribeToken).Result()
}

func mustPublish(t *testing.T, c paho.Client, topic string, qos byte, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, qos, retain, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		t.Fatalf("publish to %s not acknowledged within 5s", topic)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish to %s: %v", topic, err)
	}
}

// clientID is a client id unique to the test and broker, short enough for
// MQTT 3.1 (23 characters).
func clientID(prefix string, tg target) string {
	id := fmt.Sprintf("%s-%s-%d", prefix, tg.name[:1], time.Now().UnixNano()%1e6)
	if len(id) > 23 {
		id = id[len(id)-23:]
	}
	return id
}
