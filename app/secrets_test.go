package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/sink"
	"github.com/polis-platform/polis/storage"
)

// The platform with every secret it knows configured: a Kafka cluster that
// requires SASL/SCRAM (so every client of every component must log in: one
// that did not would leave the platform unable to start or its alert
// undelivered), a ClickHouse user with a password, a signed webhook and an
// MQTT sink with a password. An alert goes all the way (rule, webhook,
// MQTT sink, ClickHouse); then no secret is in the log, at the lowest
// level, or in /metrics.
func TestSecrets_NeverInLogsOrMetrics(t *testing.T) {
	e := newEnv(t)
	const (
		kafkaUser, kafkaPass = "polis", "kafka-SASL-s3cret-4711"
		chUser, chPass       = "polis", "clickhouse-s3cret-0815"
		webhookKey           = "webhook-hmac-s3cret-2342"
		mqttPass             = "alerts-mqtt-s3cret-1234"
		hookToken            = "hook-url-token-s3cret-9876"
	)
	secrets := []string{kafkaPass, chPass, webhookKey, mqttPass, hookToken}

	// Kafka with SASL: only the platform's user gets in.
	kc, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser(kafka.SASLScramSHA256, kafkaUser, kafkaPass),
		kfake.ListenFn(func(n, a string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(a)
			return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
		}))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	e.cfg.KafkaBrokers = kc.ListenAddrs()
	// The premise: a client without the password is refused.
	pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := (kafka.ClientOptions{}).Ping(pctx, kc.ListenAddrs(), nil); err == nil {
		t.Fatal("the SASL cluster let a client in without authentication")
	}
	pcancel()
	e.cfg.KafkaPartitions = 2
	e.cfg.Kafka = kafka.ConnConfig{SASLMechanism: kafka.SASLScramSHA256, SASLUser: kafkaUser, SASLPassword: kafkaPass}

	// ClickHouse with a user that has a password.
	e.cfg.ClickHouseAddr = clickHouseWithUser(t, chUser, chPass)
	e.cfg.ClickHouse.User, e.cfg.ClickHouse.Password = chUser, chPass
	e.cfg.Database = "polis_secrets"
	e.conn, err = storage.Open(storage.ConnOptions{Addr: e.cfg.ClickHouseAddr, User: chUser, Password: chPass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer e.conn.Close()

	// A rule, a signed webhook (its URL carries a token too) and the MQTT
	// sink on the platform's own broker.
	dir := t.TempDir()
	rule := "groups:\n  - name: comfort\n    rules:\n      - id: too_hot\n        scope: {asset_types: [env]}\n" +
		"        expr: metric == \"temp_c\" && value > 30\n        severity: warning\n"
	if err := os.WriteFile(filepath.Join(dir, "comfort.yaml"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.RulesDir = dir
	hooked := make(chan record.AlertChange, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a record.AlertChange
		if r.URL.Query().Get("token") == hookToken && r.Header.Get(sink.SignatureHeader) == sink.Sign([]byte(webhookKey), body) &&
			record.UnmarshalAlert(body, &a) == nil {
			hooked <- a
		}
	}))
	defer hook.Close()
	e.cfg.AlertWebhook, e.cfg.AlertWebhookKey = hook.URL+"/alerts?token="+hookToken, webhookKey
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.MQTTAddr = l.Addr().String()
	l.Close()
	accounts := filepath.Join(t.TempDir(), "accounts.yaml")
	if err := os.WriteFile(accounts, []byte(fmt.Sprintf("accounts:\n  - username: alerts\n    secret_hash: %q\n    publish: [\"polis/alerts/v1/#\"]\n    subscribe: [\"polis/alerts/v1/#\"]\n",
		credential.Hash(mqttPass))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.AccountsPath = accounts
	e.cfg.AlertMQTT, e.cfg.AlertMQTTUsername, e.cfg.AlertMQTTPassword = "tcp://"+e.cfg.MQTTAddr, "alerts", mqttPass

	// Every record of every component, franz-go's debug included.
	logs := &lockedBuffer{}
	e.cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: kafka.LevelKafkaDebug}))
	if testing.Verbose() {
		e.cfg.Logger = slog.New(slog.NewTextHandler(io.MultiWriter(logs, os.Stderr), &slog.HandlerOptions{Level: kafka.LevelKafkaDebug}))
	}

	p := e.start(t)
	stopped := false
	defer func() {
		if !stopped {
			stop(t, p)
		}
	}()
	mqttAlerts := make(chan paho.Message, 16)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID("operator-console").
		SetUsername("alerts").SetPassword(mqttPass).SetAutoReconnect(false))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the alert subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(50)
	if tok := sub.Subscribe("polis/alerts/v1/#", 1, func(_ paho.Client, m paho.Message) { mqttAlerts <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c, cl := connectDevice(t, e, p, "env")
	for _, v := range []int{22, 31} {
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, fmt.Sprintf(`{"m":{"temp_c":%d}}`, v)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cl.Disconnect(50)
	select {
	case a := <-hooked:
		if a.Kind != "fired" || a.RuleID != "too_hot" {
			t.Fatalf("webhook got %+v", a)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the signed webhook did not receive the alert")
	}
	select {
	case m := <-mqttAlerts:
		if !strings.HasPrefix(m.Topic(), "polis/alerts/v1/"+c.Site+"/") {
			t.Fatalf("MQTT sink published on %s", m.Topic())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the MQTT sink did not publish the alert")
	}
	// The storage writer, logged in to ClickHouse as polis, stored the
	// points and the alert.
	eventually(t, 30*time.Second, func() bool {
		return e.count(t, "SELECT count() FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = 'fired'") == 1 &&
			e.count(t, "SELECT count() FROM %s.telemetry") == 2
	})

	resp, err := http.Get("http://" + p.HTTP.Addr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(metrics, []byte("polis_ingest_messages_total")) {
		t.Fatalf("GET /metrics: %d\n%.500s", resp.StatusCode, metrics)
	}
	stop(t, p)
	stopped = true

	out := logs.String()
	if !strings.Contains(out, "polis serving") || !strings.Contains(out, "sasl") {
		t.Fatalf("the log is not the platform's at debug level (no start line, no SASL step):\n%.2000s", out)
	}
	for _, s := range secrets {
		if i := strings.Index(out, s); i >= 0 {
			t.Errorf("the log holds secret %q: ...%s...", s, out[max(0, i-300):min(len(out), i+100)])
		}
		if bytes.Contains(metrics, []byte(s)) {
			t.Errorf("/metrics holds secret %q", s)
		}
	}
}

// clickHouseWithUser starts a ClickHouse of this test alone with a user
// who logs in with a password (users.d, merged into users.xml by every
// server version), and returns its native address.
func clickHouseWithUser(t *testing.T, user, pass string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "users.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	xml := `<?xml version="1.0"?>
<yandex>
    <users>
        <` + user + `>
            <password>` + pass + `</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </` + user + `>
    </users>
</yandex>
`
	if err := os.WriteFile(filepath.Join(dir, "users.d", "polis.xml"), []byte(xml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	// The premise: the password is checked.
	conn, err := storage.Open(storage.ConnOptions{Addr: s.NativeAddr(), User: user, Password: "not-" + pass}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err == nil {
		t.Fatalf("ClickHouse let %s in with a wrong password", user)
	}
	return s.NativeAddr()
}

// lockedBuffer collects a logger's output from many goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
