package broker_test

import (
	"context"
	"errors"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	pahopackets "github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

// statuses returns the status records of each asset of the site, in order,
// reading for at most d.
func (s *stack) statuses(t *testing.T, site string, d time.Duration) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	for _, r := range decodeAll(t, s.consume(t, 1000, d, kafka.TopicEvents)) {
		if r.Kind == record.KindStatus && r.Site == site {
			out[r.Asset] = append(out[r.Asset], r.Status)
		}
	}
	return out
}

// A client id belongs to the principal whose session it is: a device of
// another site presenting it is refused (CONNACK 0x02 in 3.1.1, 0x85 in 5,
// counted as client_id_taken) and the holder, a device, a gateway or a
// service account, stays connected, with no offline recorded.
func TestClientID_AnotherPrincipalCannotTakeOver(t *testing.T) {
	alertsSecret := "alerts-secret-1"
	s := newStack(t, broker.Account{Username: "alerts", SecretHash: credential.Hash(alertsSecret),
		Publish: []string{"polis/alerts/#"}, Subscribe: []string{"polis/alerts/#"}})
	attacker := registry.Username(siteB, "atm-1")
	victims := []struct {
		name, user, secret, id, topic string
	}{
		{"device", registry.Username(siteA, "atm-1"), s.secrets[registry.Username(siteA, "atm-1")], "mosq-9fQ2rT7xYzA1bC3dE", "polis/v1/" + siteA + "/atm-1/telemetry"},
		{"gateway", registry.Username(siteA, "gw-1"), s.secrets[registry.Username(siteA, "gw-1")], "tsung-gw-1", "polis/v1/" + siteA + "/env-1/telemetry"},
		{"service account", "alerts", alertsSecret, "polis-sink-ops", "polis/alerts/v1/" + siteA + "/_/r"},
	}
	// The victims stay connected to the end of the test.
	for i, v := range victims {
		func() {
			lost := make(chan error, 1)
			victim, err := s.connect(t, v.user, v.secret, func(o *paho.ClientOptions) {
				o.SetClientID(v.id).SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
			})
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.connect(t, attacker, s.secrets[attacker], func(o *paho.ClientOptions) { o.SetClientID(v.id) })
			if !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
				t.Fatalf("another principal presenting the %s's client id: %v; want CONNACK 0x02 identifier rejected", v.name, err)
			}
			if got := counterValue(t, s.reg, "polis_broker_refused_total", "client_id_taken"); got != float64(i+1) {
				t.Fatalf("client_id_taken counted %v; want %d", got, i+1)
			}
			select {
			case err := <-lost:
				t.Fatalf("the %s lost its connection: %v", v.name, err)
			case <-time.After(300 * time.Millisecond):
			}
			if err := publish(t, victim, v.topic, 1, `{"m":{"temp_c":20}}`); err != nil {
				t.Fatalf("the %s cannot publish after the attempt: %v", v.name, err)
			}
		}()
	}

	t.Run("MQTT 5", func(t *testing.T) { // the service account is still connected
		host, port, _ := net.SplitHostPort(s.broker.Addr())
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "mosquitto_pub", "-V", "mqttv5", "-h", host, "-p", port, "-i", "polis-sink-ops",
			"-u", attacker, "-P", s.secrets[attacker], "-q", "1", "-t", "polis/v1/"+siteB+"/atm-1/telemetry", "-m", `{"m":{"temp_c":1}}`).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "Client Identifier not valid") {
			t.Fatalf("MQTT 5 attempt: want CONNACK 0x85 Client identifier not valid; got %v %q", err, out)
		}
	})

	t.Run("the broker's own client", func(t *testing.T) {
		// mochi's inline client, which publishes desired state, is "inline".
		if _, err := s.connect(t, attacker, s.secrets[attacker], func(o *paho.ClientOptions) { o.SetClientID("inline") }); !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
			t.Fatalf("client id inline: %v; want identifier rejected", err)
		}
		in := &inbox{}
		dev := s.device(t, siteA, "env-1", func(o *paho.ClientOptions) { o.SetDefaultPublishHandler(in.handler) })
		desired := "polis/v1/" + siteA + "/env-1/state/desired"
		if tok := dev.Subscribe(desired, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		if err := s.broker.Publish(desired, []byte(`{"setpoint_c":21}`), false, 1); err != nil {
			t.Fatal(err)
		}
		in.waitFor(t, desired, 1)
	})

	sts := s.statuses(t, siteA, 2*time.Second)
	for _, a := range []string{"atm-1", "gw-1"} {
		if strings.Join(sts[a], ",") != "online" {
			t.Fatalf("statuses of %s: %v; want online only (no offline from the attempts)", a, sts[a])
		}
	}
	if sts := s.statuses(t, siteB, time.Second); len(sts) != 0 {
		t.Fatalf("the refused principal got status records: %v", sts)
	}
}

// A persistent session that is offline stays its principal's: another
// principal cannot take it (and its queued messages), and the owner gets
// them when it comes back.
func TestClientID_OfflineSessionStaysWithItsPrincipal(t *testing.T) {
	s := newStack(t,
		broker.Account{Username: "alerts", SecretHash: credential.Hash("alerts-secret-1"), Publish: []string{"polis/alerts/#"}, Subscribe: []string{"polis/alerts/#"}},
		broker.Account{Username: "other", SecretHash: credential.Hash("other-secret-1"), Publish: []string{"polis/alerts/#"}, Subscribe: []string{"polis/alerts/#"}})
	in := &inbox{}
	persistent := func(o *paho.ClientOptions) {
		o.SetClientID("alerts-consumer").SetCleanSession(false).SetDefaultPublishHandler(in.handler)
	}
	c, err := s.connect(t, "alerts", "alerts-secret-1", persistent)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Subscribe("polis/alerts/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(100)
	pub, err := s.connect(t, "other", "other-secret-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := publish(t, pub, "polis/alerts/x", 1, "queued"); err != nil {
		t.Fatal(err)
	}
	stolen := &inbox{}
	_, err = s.connect(t, "other", "other-secret-1", func(o *paho.ClientOptions) {
		o.SetClientID("alerts-consumer").SetCleanSession(false).SetDefaultPublishHandler(stolen.handler)
	})
	if !errors.Is(err, pahopackets.ErrorRefusedIDRejected) {
		t.Fatalf("another account taking an offline session: %v; want identifier rejected", err)
	}
	if _, err := s.connect(t, "alerts", "alerts-secret-1", persistent); err != nil {
		t.Fatal(err)
	}
	in.waitFor(t, "polis/alerts/x", 1)
	if len(stolen.all()) != 0 {
		t.Fatalf("the refused client got messages: %s", describe(stolen.all()))
	}
}

// The same device connecting again with its client id takes its own
// session over: the old connection is closed, the subscriptions of the
// persistent session carry on, and the status stays online: no offline for
// the replaced connection, nor from its will.
func TestClientID_SameDeviceTakesOverItsSession(t *testing.T) {
	s := newStack(t)
	u := registry.Username(siteA, "atm-1")
	desired := "polis/v1/" + siteA + "/atm-1/state/desired"
	lost := make(chan error, 1)
	first, err := s.connect(t, u, s.secrets[u], func(o *paho.ClientOptions) {
		o.SetClientID("atm-1-main").SetCleanSession(false).SetWill("polis/v1/"+siteA+"/atm-1/status", "offline", 1, true).
			SetConnectionLostHandler(func(_ paho.Client, err error) { lost <- err })
	})
	if err != nil {
		t.Fatal(err)
	}
	if tok := first.Subscribe(desired, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	in := &inbox{}
	second, err := s.connect(t, u, s.secrets[u], func(o *paho.ClientOptions) {
		o.SetClientID("atm-1-main").SetCleanSession(false).SetDefaultPublishHandler(in.handler)
	})
	if err != nil {
		t.Fatalf("the device reconnecting with its own client id: %v", err)
	}
	select {
	case <-lost:
	case <-time.After(5 * time.Second):
		t.Fatal("the replaced connection was not closed")
	}
	if err := s.broker.Publish(desired, []byte(`{"mode":"eco"}`), false, 1); err != nil {
		t.Fatal(err)
	}
	in.waitFor(t, desired, 1) // the session's subscription, not made again
	if err := publish(t, second, "polis/v1/"+siteA+"/atm-1/telemetry", 1, `{"m":{"cassette1_pct":50}}`); err != nil {
		t.Fatal(err)
	}
	if got := s.statuses(t, siteA, 2*time.Second)["atm-1"]; strings.Join(got, ",") != "online,online" {
		t.Fatalf("statuses after the takeover: %v; want online,online", got)
	}
	second.Disconnect(100)
	var got []string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && len(got) < 3; {
		got = s.statuses(t, siteA, time.Second)["atm-1"]
	}
	if strings.Join(got, ",") != "online,online,offline" {
		t.Fatalf("statuses after the clean disconnect: %v; want online,online,offline", got)
	}
	if n := counterValue(t, s.reg, "polis_broker_refused_total", "client_id_taken"); n != 0 {
		t.Fatalf("a takeover by the same device counted as client_id_taken (%v)", n)
	}
}

// A device's persistent session gets the desired state the platform
// publishes while it is offline (mochi checks the ACL of each message it
// queues, which needs the session's principal).
func TestPersistentSession_DeviceGetsDesiredPublishedWhileOffline(t *testing.T) {
	s := newStack(t)
	desired := "polis/v1/" + siteA + "/env-1/state/desired"
	in := &inbox{}
	persistent := func(o *paho.ClientOptions) {
		o.SetClientID("env-1").SetCleanSession(false).SetDefaultPublishHandler(in.handler)
	}
	c := s.device(t, siteA, "env-1", persistent)
	if tok := c.Subscribe(desired, 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	c.Disconnect(100)
	// Once the offline is recorded, the broker has ended the connection.
	for deadline := time.Now().Add(10 * time.Second); strings.Join(s.statuses(t, siteA, 500*time.Millisecond)["env-1"], ",") != "online,offline"; {
		if time.Now().After(deadline) {
			t.Fatal("no offline status after the disconnect")
		}
	}
	if err := s.broker.Publish(desired, []byte(`{"setpoint_c":19}`), false, 1); err != nil {
		t.Fatal(err)
	}
	s.device(t, siteA, "env-1", persistent)
	if m := in.waitFor(t, desired, 1)[0]; string(m.Payload()) != `{"setpoint_c":19}` || m.Qos() != 1 {
		t.Fatalf("queued desired state: %s", describe([]paho.Message{m}))
	}
}

// A device may publish telemetry at QoS 2: ingested once, completed with
// PUBCOMP; a payload dead-lettered over MQTT 5 is refused with PUBREC 0x99
// (not a PUBACK, which a QoS 2 publisher cannot take).
func TestQoS2_DeviceTelemetry(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "env-1")
	if err := publish(t, c, "polis/v1/"+siteA+"/env-1/telemetry", 2, `{"m":{"temp_c":21}}`); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(s.broker.Addr())
	u := registry.Username(siteA, "env-1")
	pub := func(payload string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "mosquitto_pub", "-d", "-V", "mqttv5", "-h", host, "-p", port, "-u", u, "-P", s.secrets[u],
			"-q", "2", "-t", "polis/v1/"+siteA+"/env-1/telemetry", "-m", payload).CombinedOutput()
		return string(out)
	}
	if out := pub(`{"m":{"temp_c":22}}`); !strings.Contains(out, "received PUBCOMP") || strings.Contains(out, "Warning") {
		t.Fatalf("QoS 2 over MQTT 5: %s", out)
	}
	out := pub(`{"m":{"temp_c":`)
	if !strings.Contains(out, "received PUBREC") || !strings.Contains(out, "Payload format invalid") || strings.Contains(out, "sending PUBREL") {
		t.Fatalf("dead-lettered QoS 2 over MQTT 5: want PUBREC 0x99 and no PUBREL; got:\n%s", out)
	}
	if got := len(s.consume(t, 3, 2*time.Second, kafka.TopicTelemetry)); got != 2 {
		t.Fatalf("telemetry records: %d; want 2 (each QoS 2 publish once)", got)
	}
	if got := len(s.consume(t, 2, 2*time.Second, kafka.TopicDeadLetter)); got != 1 {
		t.Fatalf("dead letters: %d; want 1", got)
	}
}
