package sink

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
)

const mosquittoBin = "/usr/sbin/mosquitto"

func TestNewMQTT_Options(t *testing.T) {
	kafka := []string{"127.0.0.1:9092"}
	tests := []struct {
		name    string
		o       MQTTOptions
		wantErr string // substring; empty: valid
	}{
		{"valid", MQTTOptions{Name: "ops", Brokers: kafka, URL: "tcp://127.0.0.1:1883"}, ""},
		{"no name", MQTTOptions{Brokers: kafka, URL: "tcp://127.0.0.1:1883"}, "Name, URL and Brokers are required"},
		{"no url", MQTTOptions{Name: "ops", Brokers: kafka}, "Name, URL and Brokers are required"},
		{"no brokers", MQTTOptions{Name: "ops", URL: "tcp://127.0.0.1:1883"}, "Name, URL and Brokers are required"},
		{"no scheme", MQTTOptions{Name: "ops", Brokers: kafka, URL: "127.0.0.1:1883"}, "not of the form tcp://host:port"},
		{"http scheme", MQTTOptions{Name: "ops", Brokers: kafka, URL: "http://broker:1883"}, "not of the form tcp://host:port"},
		{"no host", MQTTOptions{Name: "ops", Brokers: kafka, URL: "tcp://"}, "not of the form tcp://host:port"},
		{"password alone", MQTTOptions{Name: "ops", Brokers: kafka, URL: "tcp://b:1883", Password: "x"}, "Password given without Username"},
		{"wildcard prefix", MQTTOptions{Name: "ops", Brokers: kafka, URL: "tcp://b:1883", TopicPrefix: "a/+/b"}, "wildcard"},
		{"backoff inverted", MQTTOptions{Name: "ops", Brokers: kafka, URL: "tcp://b:1883", MinBackoff: time.Second, MaxBackoff: time.Millisecond}, "below MinBackoff"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMQTT(tt.o)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("NewMQTT: %v", err)
				}
				if m.o.ClientID != "polis-sink-ops" || m.o.TopicPrefix != DefaultTopicPrefix {
					t.Fatalf("defaults: client id %q, prefix %q", m.o.ClientID, m.o.TopicPrefix)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("NewMQTT error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestAlertTopic(t *testing.T) {
	tests := []struct {
		prefix, site, asset, rule, want string
	}{
		{"polis/alerts/v1", "PO-001001-1", "env-1", "temp-high", "polis/alerts/v1/PO-001001-1/env-1/temp-high"},
		{"polis/alerts/v1", "PO-001001-1", "", "site-offline", "polis/alerts/v1/PO-001001-1/_/site-offline"},
		{"x", "", "", "", "x/_/_/_"},
		{"x", "a/b", "c+d", "e#f", "x/a_b/c_d/e_f"},
	}
	for _, tt := range tests {
		a := &record.AlertChange{Site: tt.site, Asset: tt.asset, RuleID: tt.rule}
		if got := alertTopic(tt.prefix, a); got != tt.want {
			t.Errorf("alertTopic(%q, %q/%q/%q) = %q, want %q", tt.prefix, tt.site, tt.asset, tt.rule, got, tt.want)
		}
	}
}

// Deliverable alert changes arrive on <prefix>/<site>/<asset>/<rule_id>, in
// order per site, with the Kafka value as body; held-back ones do not.
func TestMQTT_PublishesDeliverableAlerts(t *testing.T) {
	mosq := newMosquitto(t, freePort(t))
	mosq.start(t)
	k := startKafka(t)
	prod := newProducer(t, k)
	sub := newSubscriber(t, mosq.url(), "polis-test-sub", true)

	tests := []struct {
		site, asset, rule string
		deliver           bool
		topic             string // expected; empty when not to be published
	}{
		{"PO-001001-1", "env-1", "temp-high", true, "polis/alerts/v1/PO-001001-1/env-1/temp-high"},
		{"PO-001002-1", "pump-2", "pressure", true, "polis/alerts/v1/PO-001002-1/pump-2/pressure"},
		{"PO-001001-1", "env-1", "temp-high", false, ""}, // silenced
		{"PO-001001-1", "", "site-offline", true, "polis/alerts/v1/PO-001001-1/_/site-offline"},
		{"PO-001002-1", "pump-2", "flow/low+", true, "polis/alerts/v1/PO-001002-1/pump-2/flow_low_"},
		{"PO-001003-1", "door", "open", false, ""}, // inhibited
		{"PO-001003-1", "door", "open", true, "polis/alerts/v1/PO-001003-1/door/open"},
		{"PO-001001-1", "env-1", "temp-high", true, "polis/alerts/v1/PO-001001-1/env-1/temp-high"},
		{"PO-001002-1", "pump-2", "pressure", false, ""},
		{"PO-001002-1", "pump-2", "pressure", true, "polis/alerts/v1/PO-001002-1/pump-2/pressure"},
	}
	want := map[string][]message{} // per site, in order
	n := 0
	for i, tt := range tests {
		a := &record.AlertChange{Kind: "fired", At: time.Now().UnixMilli(), Deliver: tt.deliver,
			Fingerprint: fmt.Sprintf("fp%03d", i), RuleID: tt.rule, Site: tt.site, Asset: tt.asset, State: "firing"}
		raw, _ := produceAlert(t, prod, a)
		if tt.deliver {
			want[tt.site] = append(want[tt.site], message{topic: tt.topic, body: string(raw)})
			n++
		}
	}

	logs := &logRecorder{}
	m, err := NewMQTT(MQTTOptions{Name: "mqtt", Brokers: k.Addrs(), URL: mosq.url(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, AckTimeout: 5 * time.Second,
		Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	runSink(t, m.Run)

	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return len(sub.received()) >= n },
		"every deliverable alert arrives (got %v of %d)", testutil.Lazy(func() any { return len(sub.received()) }), n)
	got := map[string][]message{}
	for _, msg := range sub.received() {
		var a record.AlertChange
		if err := record.UnmarshalAlert([]byte(msg.body), &a); err != nil {
			t.Fatalf("body on %s is not an alert change: %v", msg.topic, err)
		}
		got[a.Site] = append(got[a.Site], msg)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("published alerts differ (held back, duplicated, out of order or wrong topic):\n got %v\nwant %v", got, want)
	}
	waitCommittedToEnd(t, k, "sink-mqtt")
	if logs.has(slog.LevelWarn, "cannot deliver alert; retrying") {
		t.Fatal("the sink warned although the broker was up all along")
	}
}

// A broker that is down when the sink starts delays delivery but loses
// nothing, and offsets are committed only once the broker acked.
func TestMQTT_BrokerDownLosesNothing(t *testing.T) {
	mosq := newMosquitto(t, freePort(t))
	k := startKafka(t)
	prod := newProducer(t, k)

	// The subscriber's persistent session (QoS 1) must exist before the broker
	// goes down, so the broker queues for it what the sink publishes when it
	// is back, whoever of the two reconnects first.
	mosq.start(t)
	sub := newSubscriber(t, mosq.url(), "polis-test-sub-persistent", false)
	mosq.stop(t)
	if _, err := os.Stat(filepath.Join(mosq.dir, "mosquitto.db")); err != nil {
		t.Fatalf("mosquitto saved no session to restart with: %v", err)
	}

	logs := &logRecorder{}
	m, err := NewMQTT(MQTTOptions{Name: "mqtt-down", Brokers: k.Addrs(), URL: mosq.url(),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, AckTimeout: 2 * time.Second,
		Logger: slog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	runSink(t, m.Run)

	var want []string
	firstDeliverable := map[int32]int64{} // per partition: nothing may be committed past it while down
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			a := &record.AlertChange{Kind: "fired", At: time.Now().UnixMilli(), Deliver: i%4 != 3,
				Fingerprint: fmt.Sprintf("fp%03d", i), RuleID: "temp-high", Site: fmt.Sprintf("PO-00100%d-1", i%3), Asset: "env-1", State: "firing"}
			raw, r := produceAlert(t, prod, a)
			if a.Deliver {
				want = append(want, string(raw))
				if _, ok := firstDeliverable[r.Partition]; !ok {
					firstDeliverable[r.Partition] = r.Offset
				}
			}
		}
	}
	produce(0, 24)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool { return logs.has(slog.LevelWarn, "cannot deliver alert; retrying") },
		"the sink warns that it cannot deliver")
	adm := kadm.NewClient(prod)
	assertNotCommittedPast := func() {
		t.Helper()
		offs := fetchCommitted(t, adm, "sink-mqtt-down")
		for p, first := range firstDeliverable {
			if o, ok := offs.Lookup(kafka.TopicAlerts, p); ok && o.At > first {
				t.Fatalf("partition %d committed to %d past undelivered alert at %d while the broker is down", p, o.At, first)
			}
		}
	}
	// While the sink retries for a while, it must neither skip nor commit.
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		assertNotCommittedPast()
	}
	if n := len(sub.received()); n != 0 {
		t.Fatalf("%d messages arrived while the broker was down", n)
	}

	mosq.start(t)
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool { return len(sub.received()) >= len(want) },
		"every deliverable alert arrives once the broker is up (got %v of %d)", testutil.Lazy(func() any { return len(sub.received()) }), len(want))
	waitCommittedToEnd(t, k, "sink-mqtt-down")
	if !logs.has(slog.LevelInfo, "sink delivers again") {
		t.Fatal("the sink did not log that delivery resumed")
	}

	// A broker that restarts under a connected sink is survived too.
	mosq.stop(t)
	produce(24, 36)
	mosq.start(t)
	testutil.Eventually(t, 30*time.Second, 20*time.Millisecond, func() bool { return len(sub.received()) >= len(want) },
		"every deliverable alert arrives after a broker restart (got %v of %d)", testutil.Lazy(func() any { return len(sub.received()) }), len(want))
	waitCommittedToEnd(t, k, "sink-mqtt-down")

	// Per site in order; across sites the partitions interleave freely.
	bySite := func(bodies []string) map[string][]string {
		out := map[string][]string{}
		for _, b := range bodies {
			var a record.AlertChange
			if err := record.UnmarshalAlert([]byte(b), &a); err != nil {
				t.Fatalf("body is not an alert change: %v", err)
			}
			out[a.Site] = append(out[a.Site], b)
		}
		return out
	}
	var gotBodies []string
	for _, msg := range sub.received() {
		gotBodies = append(gotBodies, msg.body)
	}
	if got, want := bySite(gotBodies), bySite(want); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts lost, held back ones sent, duplicated or out of order:\n got %v\nwant %v", got, want)
	}
}

// mosquitto is a real broker run as a child process on a fixed loopback port,
// so it can be stopped and started again where clients expect it.
type mosquitto struct {
	port int
	dir  string
	cfg  string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	out  *syncBuffer
}

func newMosquitto(t *testing.T, port int) *mosquitto {
	t.Helper()
	_, err := os.Stat(mosquittoBin)
	testutil.Need(t, err == nil, "skipping: MQTT tests need a real broker at %s (apt-get install mosquitto): %v", mosquittoBin, err)
	dir := t.TempDir()
	conf := fmt.Sprintf("listener %d 127.0.0.1\nallow_anonymous true\npersistence true\npersistence_location %s/\n", port, dir)
	if u, err := user.Current(); err == nil && os.Geteuid() == 0 {
		// Run as root, mosquitto would switch to user "mosquitto", who cannot
		// write the persistence file into the test's private directory.
		conf += "user " + u.Username + "\n"
	}
	m := &mosquitto{port: port, dir: dir, cfg: filepath.Join(dir, "mosquitto.conf"), out: &syncBuffer{}}
	if err := os.WriteFile(m.cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.cmd != nil {
			_ = m.cmd.Process.Kill()
			<-m.done
			m.cmd = nil
		}
		if t.Failed() {
			t.Logf("mosquitto output:\n%s", m.out.String())
		}
	})
	return m
}

func (m *mosquitto) url() string { return fmt.Sprintf("tcp://127.0.0.1:%d", m.port) }

// start runs the broker and waits until it accepts connections.
func (m *mosquitto) start(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	cmd := exec.Command(mosquittoBin, "-c", m.cfg)
	cmd.Stdout, cmd.Stderr = m.out, m.out
	if err := cmd.Start(); err != nil {
		m.mu.Unlock()
		t.Fatalf("cannot start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done
	m.mu.Unlock()
	addr := fmt.Sprintf("127.0.0.1:%d", m.port)
	testutil.Eventually(t, 10*time.Second, 10*time.Millisecond, func() bool {
		select {
		case <-done:
			t.Fatalf("mosquitto exited at start:\n%s", m.out.String())
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err != nil {
			return false
		}
		c.Close()
		return true
	}, "mosquitto listens on %s", addr)
}

// stop ends the broker the way an operator would, so it saves its sessions.
func (m *mosquitto) stop(t *testing.T) {
	t.Helper()
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-m.done:
	case <-time.After(10 * time.Second):
		_ = m.cmd.Process.Kill()
		<-m.done
		t.Fatal("mosquitto did not stop within 10s of SIGTERM")
	}
	m.cmd = nil
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

// freePort returns a loopback port nobody listens on right now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

type message struct{ topic, body string }

func (m message) String() string { return m.topic + " " + m.body }

// subscriber is a paho client subscribed to everything the sinks publish.
type subscriber struct {
	mu  sync.Mutex
	got []message
}

func (s *subscriber) received() []message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]message(nil), s.got...)
}

func newSubscriber(t *testing.T, brokerURL, clientID string, clean bool) *subscriber {
	t.Helper()
	s := &subscriber{}
	opts := mqtt.NewClientOptions().AddBroker(brokerURL).SetClientID(clientID).SetCleanSession(clean).
		SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
		SetConnectTimeout(5 * time.Second).SetOrderMatters(true).
		// Messages the broker kept for a persistent session arrive before any
		// Subscribe callback is routed, so collect them all here.
		SetDefaultPublishHandler(func(_ mqtt.Client, msg mqtt.Message) {
			s.mu.Lock()
			s.got = append(s.got, message{topic: msg.Topic(), body: string(msg.Payload())})
			s.mu.Unlock()
		})
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscriber cannot connect to %s: %v", brokerURL, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe(DefaultTopicPrefix+"/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("cannot subscribe: %v", tok.Error())
	}
	return s
}

func startKafka(t *testing.T) *kafka.Embedded {
	t.Helper()
	k, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(k.Close)
	return k
}

func newProducer(t *testing.T, k *kafka.Embedded) *kgo.Client {
	t.Helper()
	prod, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return prod
}

// produceAlert writes a keyed by site, as the rules service does, and
// returns the value and the record as stored.
func produceAlert(t *testing.T, prod *kgo.Client, a *record.AlertChange) ([]byte, *kgo.Record) {
	t.Helper()
	b, err := record.MarshalAlert(a)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := prod.ProduceSync(ctx, &kgo.Record{Topic: kafka.TopicAlerts, Key: []byte(a.Site), Value: b}).First()
	if err != nil {
		t.Fatal(err)
	}
	return b, r
}

// runSink runs a sink until the test ends and checks it stops when asked.
func runSink(t *testing.T, run func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-errc:
			if err != nil {
				t.Errorf("sink: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("sink did not stop within 15s of its context ending")
		}
	})
}

func fetchCommitted(t *testing.T, adm *kadm.Client, group string) kadm.OffsetResponses {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("cannot fetch offsets of %s: %v", group, err)
	}
	return offs
}

// waitCommittedToEnd waits until group committed every partition of the
// alerts topic to its end.
func waitCommittedToEnd(t *testing.T, k *kafka.Embedded, group string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	var behind string
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := adm.ListEndOffsets(ctx, kafka.TopicAlerts)
		if err != nil {
			behind = err.Error()
			return false
		}
		offs := fetchCommitted(t, adm, group)
		behind = ""
		ends.Each(func(e kadm.ListedOffset) {
			if o, _ := offs.Lookup(e.Topic, e.Partition); e.Offset > 0 && o.At != e.Offset {
				behind += fmt.Sprintf(" partition %d at %d of %d;", e.Partition, o.At, e.Offset)
			}
		})
		return behind == ""
	}, "group %s commits to the end of %s:%v", group, kafka.TopicAlerts, testutil.Lazy(func() any { return behind }))
}

// logRecorder is a slog.Handler that keeps level and message of each record.
type logRecorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (l *logRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (l *logRecorder) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, r.Clone())
	return nil
}
func (l *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logRecorder) WithGroup(string) slog.Handler      { return l }

func (l *logRecorder) has(level slog.Level, msg string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.recs {
		if r.Level == level && r.Message == msg {
			return true
		}
	}
	return false
}
