package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/ingest"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

const (
	siteA = "PO-001001-1"
	siteB = "PO-001002-1"
)

type stack struct {
	cluster *kfake.Cluster
	broker  *broker.Broker
	reg     *prometheus.Registry
	secrets map[string]string // username -> secret
	brokers []string
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newStack(t *testing.T, accounts ...broker.Account) *stack {
	t.Helper()
	return newStackWith(t, func(o *broker.Options) { o.Accounts = accounts })
}

func newStackWith(t testing.TB, configure func(*broker.Options)) *stack {
	t.Helper()
	return newStackFleet(t, 0, nil, configure)
}

// newStackProducer is newStackWith with ingest's producer wrapped by wrap
// (nil: none).
func newStackProducer(t testing.TB, wrap func(ingest.Producer) ingest.Producer, configure func(*broker.Options)) *stack {
	t.Helper()
	return newStackFleet(t, 0, wrap, configure)
}

// fleetAsset is the id of the i-th (from 0) extra device newStackFleet
// registers at siteA.
func fleetAsset(i int) string { return fmt.Sprintf("env-%d", 100+i) }

// newStackFleet is newStackProducer with fleet more devices registered at
// siteA (fleetAsset), for tests that hold many connections.
func newStackFleet(t testing.TB, fleet int, wrap func(ingest.Producer) ingest.Producer, configure func(*broker.Options)) *stack {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.ListenFn(func(n, a string) (netListener, error) { return listenLoopback(n, a) }),
		kfake.SeedTopics(4, kafka.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	s := &stack{cluster: c, secrets: map[string]string{}, brokers: c.ListenAddrs(), reg: prometheus.NewRegistry()}
	r := registry.New()
	for _, site := range []string{siteA, siteB} {
		st := &registry.Site{ID: site, Kind: registry.KindPostOffice}
		assets := []struct{ id, typ string }{{"atm-1", "atm"}, {"env-1", "env"}, {"gw-1", registry.GatewayType}}
		if site == siteA {
			for i := range fleet {
				assets = append(assets, struct{ id, typ string }{fleetAsset(i), "env"})
			}
		}
		for _, a := range assets {
			sec := credential.New()
			s.secrets[registry.Username(site, a.id)] = sec
			st.Assets = append(st.Assets, &registry.Asset{ID: a.id, Type: a.typ, SecretHash: credential.Hash(sec)})
		}
		if err := r.Add(st); err != nil {
			t.Fatal(err)
		}
	}
	prod, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ProducerLinger(0), kgo.RecordPartitioner(kafka.SitePartitioner()),
		kgo.RecordDeliveryTimeout(3*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	var producer ingest.Producer = prod
	if wrap != nil {
		producer = wrap(prod)
	}
	pipe, err := ingest.New(ingest.Options{Producer: producer, Directory: r, Logger: testLogger(t), Registerer: s.reg, MaxPayload: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	o := broker.Options{Addr: "127.0.0.1:0", Ingest: pipe, Logger: testLogger(t), Registerer: s.reg,
		IngestTimeout: 5 * time.Second, MaxPacket: 64 << 10,
		Devices: func(u string, sec []byte) (string, bool) {
			a, err := r.Authenticate(u, sec)
			if err != nil {
				return "", false
			}
			return a.Type, true
		}}
	configure(&o)
	b, err := broker.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	s.broker = b
	return s
}

type clientOpt func(*paho.ClientOptions)

func (s *stack) connect(t *testing.T, user, secret string, opts ...clientOpt) (paho.Client, error) {
	t.Helper()
	o := paho.NewClientOptions().AddBroker("tcp://" + s.broker.Addr()).SetClientID(fmt.Sprintf("%s-%d", user, time.Now().UnixNano())).
		SetUsername(user).SetPassword(secret).SetAutoReconnect(false).SetConnectRetry(false).
		SetConnectTimeout(5 * time.Second).SetProtocolVersion(4).SetCleanSession(true)
	for _, f := range opts {
		f(o)
	}
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(5 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c, nil
}

func (s *stack) device(t *testing.T, site, asset string, opts ...clientOpt) paho.Client {
	t.Helper()
	u := registry.Username(site, asset)
	c, err := s.connect(t, u, s.secrets[u], opts...)
	if err != nil {
		t.Fatalf("cannot connect as %s: %v", u, err)
	}
	return c
}

func publish(t *testing.T, c paho.Client, topic string, qos byte, payload string) error {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(5 * time.Second) {
		return errors.New("publish not acknowledged within 5s")
	}
	return tok.Error()
}

// consume reads records from the topics until want of them arrived or the
// deadline passed.
func (s *stack) consume(t *testing.T, want int, timeout time.Duration, topics ...string) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(s.brokers...), kgo.ConsumeTopics(topics...), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var out []*kgo.Record
	for len(out) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { out = append(out, r) })
	}
	return out
}

func decodeAll(t *testing.T, rs []*kgo.Record) []record.Record {
	t.Helper()
	var out []record.Record
	for _, r := range rs {
		var rec record.Record
		if err := record.Unmarshal(r.Value, &rec); err != nil {
			t.Fatalf("cannot decode record %s: %v", r.Value, err)
		}
		if string(r.Key) != rec.Site && string(r.Key) != rec.Site+"/"+rec.Asset {
			t.Fatalf("record key %q does not name its site %s", r.Key, rec.Site)
		}
		out = append(out, rec)
	}
	return out
}

func TestPublish_QoS1ReachesKafkaKeyedBySite(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "env-1")
	for i := range 5 {
		if err := publish(t, c, "polis/v1/"+siteA+"/env-1/telemetry", 1, fmt.Sprintf(`{"ts":%d,"m":{"temp_c":%d,"co2_ppm":600}}`, time.Now().UnixMilli(), 20+i)); err != nil {
			t.Fatal(err)
		}
	}
	recs := decodeAll(t, s.consume(t, 5, 10*time.Second, kafka.TopicTelemetry))
	if len(recs) != 5 {
		t.Fatalf("unexpected telemetry records; got %d; want 5", len(recs))
	}
	for _, r := range recs {
		if r.Site != siteA || r.Asset != "env-1" || len(r.Points) != 2 {
			t.Fatalf("unexpected record %+v", r)
		}
	}
}

func TestAuthentication_Refused(t *testing.T) {
	s := newStack(t)
	f := func(user, secret string) {
		t.Helper()
		if _, err := s.connect(t, user, secret); err == nil {
			t.Fatalf("connect as %q with secret %q succeeded; want refused", user, secret)
		}
	}
	f(registry.Username(siteA, "atm-1"), "wrong")
	f(registry.Username(siteA, "atm-9"), s.secrets[registry.Username(siteA, "atm-1")])
	f(registry.Username(siteA, "atm-1"), "")
	f("", "")
	if got := counterValue(t, s.reg, "polis_broker_refused_total", "bad_credentials"); got != 4 {
		t.Fatalf("unexpected refused count; got %v; want 4", got)
	}
}

func TestACL_DeviceCannotPublishAsAnother(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "atm-1")
	// MQTT 3.1.1 has no negative PUBACK: the broker drops the connection.
	_ = publish(t, c, "polis/v1/"+siteA+"/env-1/telemetry", 1, `{"m":{"temp_c":1}}`)
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool { return !c.IsConnectionOpen() }, "the broker drops the device")
	c2 := s.device(t, siteA, "atm-1")
	if err := publish(t, c2, "polis/v1/"+siteB+"/atm-1/telemetry", 0, `{"m":{"temp_c":1}}`); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool {
		return counterValue(t, s.reg, "polis_broker_refused_total", "acl_publish") == 2
	}, "two acl_publish refusals counted")
	// Nothing but status records reached Kafka.
	if recs := s.consume(t, 1, 2*time.Second, kafka.TopicTelemetry); len(recs) != 0 {
		t.Fatalf("refused publishes reached Kafka: %d records", len(recs))
	}
}

func TestACL_SubscribeOnlyOwnDesired(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "atm-1")
	f := func(filter string, ok bool) {
		t.Helper()
		tok := c.Subscribe(filter, 1, nil)
		if !tok.WaitTimeout(5 * time.Second) {
			t.Fatalf("subscribe %q timed out", filter)
		}
		st := tok.(*paho.SubscribeToken)
		code := st.Result()[filter]
		if (code < 0x80) != ok {
			t.Fatalf("subscribe %q: got code %#x; want allowed=%v", filter, code, ok)
		}
	}
	f("polis/v1/"+siteA+"/atm-1/state/desired", true)
	f("polis/v1/"+siteA+"/env-1/state/desired", false)
	f("polis/v1/"+siteA+"/+/state/desired", false)
	f("polis/v1/#", false)
	f("#", false)
}

func TestGateway_SpeaksForItsSite(t *testing.T) {
	s := newStack(t)
	gw := s.device(t, siteA, "gw-1")
	if err := publish(t, gw, "polis/v1/"+siteA+"/atm-1/telemetry", 1, `{"m":{"cassette1_pct":80}}`); err != nil {
		t.Fatal(err)
	}
	recs := decodeAll(t, s.consume(t, 1, 10*time.Second, kafka.TopicTelemetry))
	if len(recs) != 1 || recs[0].Asset != "atm-1" {
		t.Fatalf("unexpected records %+v", recs)
	}
	_ = publish(t, gw, "polis/v1/"+siteB+"/atm-1/telemetry", 1, `{"m":{"cassette1_pct":80}}`)
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool { return !gw.IsConnectionOpen() }, "the broker drops the gateway")
}

func TestDeadLetter_EachClass(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "env-1")
	gw := s.device(t, siteA, "gw-1")
	cases := []struct {
		client  paho.Client
		topic   string
		payload string
		reason  string
	}{
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `{"m":{"temp_c":`, "bad_json"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `{"m":{}}`, "no_metrics"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `{"m":{"Temp C":1}}`, "bad_metric_name"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `{"ts":"yesterday","m":{"temp_c":1}}`, "bad_timestamp"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", fmt.Sprintf(`{"ts":%d,"m":{"temp_c":1}}`, time.Now().Add(24*time.Hour).UnixMilli()), "future_timestamp"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `[{"n":"temp","u":"Cel","vs":"warm"}]`, "non_numeric"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", "", "empty"},
		{c, "polis/v1/" + siteA + "/env-1/status", "sleepy", "bad_status"},
		{gw, "polis/v1/" + siteA + "/pv-7/telemetry", `{"m":{"power_kw":1}}`, "unknown_asset"},
		{c, "polis/v1/" + siteA + "/env-1/telemetry", `{"m":{"temp_c":1},"pad":"` + strings.Repeat("x", 20<<10) + `"}`, "too_large"},
	}
	for _, tc := range cases {
		if err := publish(t, tc.client, tc.topic, 1, tc.payload); err != nil {
			t.Fatalf("publish %q: %v", tc.payload, err)
		}
	}
	rs := s.consume(t, len(cases), 10*time.Second, kafka.TopicDeadLetter)
	if len(rs) != len(cases) {
		t.Fatalf("unexpected dead letters; got %d; want %d", len(rs), len(cases))
	}
	got := map[string]record.DeadLetter{}
	for _, r := range rs {
		var dl record.DeadLetter
		if err := json.Unmarshal(r.Value, &dl); err != nil {
			t.Fatal(err)
		}
		if dl.Message == "" || dl.Topic == "" {
			t.Fatalf("dead letter without message or topic: %+v", dl)
		}
		got[dl.Reason] = dl
	}
	for _, tc := range cases {
		dl, ok := got[tc.reason]
		if !ok {
			t.Fatalf("no dead letter with reason %s; got %v", tc.reason, keys(got))
		}
		want := tc.payload
		if tc.reason == "too_large" {
			want = want[:16<<10] // kept up to the ingest limit
		}
		if string(dl.Payload) != want {
			t.Fatalf("dead letter %s lost the payload: got %d bytes; want %d", tc.reason, len(dl.Payload), len(want))
		}
	}
	if recs := s.consume(t, 1, time.Second, kafka.TopicTelemetry); len(recs) != 0 {
		t.Fatalf("bad payloads reached the telemetry topic")
	}
}

func TestServiceAccount_BrokersForeignTopicsWithoutIngesting(t *testing.T) {
	secret := "bridge-secret-123"
	s := newStack(t, broker.Account{Username: "bridge", SecretHash: credential.Hash(secret),
		Publish: []string{"bridge/#"}, Subscribe: []string{"bridge/#", "polis/v1/+/+/telemetry"}})
	sub, err := s.connect(t, "bridge", secret)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	tok := sub.Subscribe("bridge/#", 1, func(paho.Client, paho.Message) { got.Add(1) })
	tok.WaitTimeout(5 * time.Second)
	if tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	pub, err := s.connect(t, "bridge", secret, func(o *paho.ClientOptions) { o.SetClientID("bridge-pub") })
	if err != nil {
		t.Fatal(err)
	}
	if err := publish(t, pub, "bridge/site/x", 1, "not json at all"); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool { return got.Load() == 1 }, "the subscriber gets the foreign message")
	if rs := s.consume(t, 1, time.Second, kafka.TopicDeadLetter, kafka.TopicTelemetry); len(rs) != 0 {
		t.Fatalf("foreign topic was ingested: %d records", len(rs))
	}
	if _, err := s.connect(t, "bridge", "wrong"); err == nil {
		t.Fatal("service account connected with a wrong secret")
	}
}

func TestStatus_WillAndCleanDisconnect(t *testing.T) {
	s := newStack(t)
	willTopic := "polis/v1/" + siteA + "/atm-1/status"
	c := s.device(t, siteA, "atm-1", func(o *paho.ClientOptions) { o.SetWill(willTopic, "offline", 1, true) })
	c.Disconnect(100) // clean: will discarded, broker records offline
	env := s.device(t, siteA, "env-1")
	_ = env
	var sts []record.Record
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		sts = nil
		for _, r := range decodeAll(t, s.consume(t, 4, 2*time.Second, kafka.TopicEvents)) {
			if r.Kind == record.KindStatus {
				sts = append(sts, r)
			}
		}
		return len(sts) >= 3
	}, "three status records")
	// Order holds per asset (one site, one partition); the two clients race.
	got := map[string][]string{}
	for _, r := range sts {
		got[r.Asset] = append(got[r.Asset], r.Status)
	}
	if strings.Join(got["atm-1"], ",") != "online,offline" || strings.Join(got["env-1"], ",") != "online" {
		t.Fatalf("unexpected status sequence; got %v", got)
	}
}

func TestQoS1_NotAcknowledgedWhileKafkaRefuses(t *testing.T) {
	s := newStack(t)
	var fail atomic.Bool
	s.cluster.ControlKey(int16(kmsg.Produce), func(req kmsg.Request) (kmsg.Response, error, bool) {
		s.cluster.KeepControl()
		if !fail.Load() {
			return nil, nil, false
		}
		pr := req.(*kmsg.ProduceRequest)
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.NotEnoughReplicas.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	c := s.device(t, siteA, "env-1")
	fail.Store(true)
	tok := c.Publish("polis/v1/"+siteA+"/env-1/telemetry", 1, false, `{"m":{"temp_c":1}}`)
	if tok.WaitTimeout(8*time.Second) && tok.Error() == nil && c.IsConnectionOpen() {
		t.Fatal("QoS 1 publish was acknowledged although Kafka refused it")
	}
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool { return !c.IsConnectionOpen() }, "the broker drops the device")
	if got := counterValue(t, s.reg, "polis_broker_refused_total", "kafka_unavailable"); got < 1 {
		t.Fatalf("kafka_unavailable not counted")
	}
	fail.Store(false)
	c2 := s.device(t, siteA, "env-1")
	if err := publish(t, c2, "polis/v1/"+siteA+"/env-1/telemetry", 1, `{"m":{"temp_c":2}}`); err != nil {
		t.Fatalf("publish after Kafka recovered: %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// counterValue reads one series of a counter labelled by reason.
func counterValue(t *testing.T, reg *prometheus.Registry, name, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestOversizedPacket_Refused(t *testing.T) {
	s := newStack(t)
	c := s.device(t, siteA, "env-1")
	_ = publish(t, c, "polis/v1/"+siteA+"/env-1/telemetry", 1, strings.Repeat("x", 70<<10)) // over MaxPacket (64 KiB)
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool { return !c.IsConnectionOpen() }, "the broker drops the device")
	testutil.Eventually(t, 5*time.Second, 50*time.Millisecond, func() bool {
		return counterValue(t, s.reg, "polis_broker_refused_total", "packet_too_large") == 1
	}, "one packet_too_large refusal counted")
}

// A device whose connection drops without DISCONNECT: its will (offline, on
// its own status topic) is ingested as its status, once, not doubled by the
// broker's own "connection lost" record.
func TestStatus_WillOnLostConnection(t *testing.T) {
	s := newStack(t)
	u := registry.Username(siteA, "atm-1")
	conn, err := net.Dial("tcp", s.broker.Addr())
	if err != nil {
		t.Fatal(err)
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4,
		Connect: packets.ConnectParams{ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: "raw-atm-1",
			UsernameFlag: true, Username: []byte(u), PasswordFlag: true, Password: []byte(s.secrets[u]),
			WillFlag: true, WillTopic: "polis/v1/" + siteA + "/atm-1/status", WillPayload: []byte("offline"), WillQos: 1}}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	ack := make([]byte, 4)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(conn, ack); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		t.Fatalf("CONNACK %x, %v", ack, err)
	}
	conn.Close() // no DISCONNECT: the broker sends the will
	var offline []record.Record
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		offline = nil
		// Ask for one record more than expected, so a duplicate would be seen.
		for _, r := range decodeAll(t, s.consume(t, 3, 2*time.Second, kafka.TopicEvents)) {
			if r.Kind == record.KindStatus && r.Asset == "atm-1" && r.Status == "offline" {
				offline = append(offline, r)
			}
		}
		return len(offline) >= 1
	}, "an offline status for atm-1")
	if len(offline) != 1 || len(offline[0].Body) != 0 {
		t.Fatalf("want exactly one offline status, from the will (no broker cause); got %+v", offline)
	}
}
