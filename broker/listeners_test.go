package broker_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"os/exec"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/broker"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// The same device, over WebSocket and over TLS: both listeners authenticate
// and ingest like the TCP one.
func TestListeners_WebSocketAndTLS(t *testing.T) {
	wsAddr, tlsAddr := freeAddr(t), freeAddr(t)
	cert := selfSigned(t)
	s := newStackWith(t, func(o *broker.Options) {
		o.WSAddr, o.TLSAddr = wsAddr, tlsAddr
		o.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	u := registry.Username(siteA, "env-1")
	pool := x509.NewCertPool()
	leaf, _ := x509.ParseCertificate(cert.Certificate[0])
	pool.AddCert(leaf)
	// mochi's WebSocket listener binds in its own goroutine: wait for it.
	for _, addr := range []string{wsAddr, tlsAddr} {
		testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool {
			c, err := net.Dial("tcp", addr)
			if err == nil {
				c.Close()
			}
			return err == nil
		}, "nothing listens on %s", addr)
	}
	for i, url := range []string{"ws://" + wsAddr, "ssl://" + tlsAddr} {
		o := paho.NewClientOptions().AddBroker(url).SetClientID(u + "-" + url[:3]).SetUsername(u).SetPassword(s.secrets[u]).
			SetAutoReconnect(false).SetConnectTimeout(5 * time.Second).SetTLSConfig(&tls.Config{RootCAs: pool})
		c := paho.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("connect over %s: %v", url, tok.Error())
		}
		if err := publish(t, c, "polis/v1/"+siteA+"/env-1/telemetry", 1, `{"m":{"temp_c":21}}`); err != nil {
			t.Fatalf("publish over %s: %v", url, err)
		}
		c.Disconnect(100)
		if got := len(s.consume(t, i+1, 10*time.Second, kafka.TopicTelemetry)); got != i+1 {
			t.Fatalf("after %s: %d telemetry records; want %d", url, got, i+1)
		}
	}
}

// mosquitto_pub speaks MQTT 5: a bad payload gets PUBACK reason 0x99 with
// the dead-letter reason, a good one is acknowledged, a wrong secret refused.
func TestMosquittoPub_MQTT5ReasonCodes(t *testing.T) {
	bin, err := exec.LookPath("mosquitto_pub")
	if err != nil {
		t.Fatal("mosquitto_pub not found: install Debian's mosquitto-clients (make deps does)")
	}
	s := newStack(t)
	host, port, _ := net.SplitHostPort(s.broker.Addr())
	u := registry.Username(siteA, "env-1")
	pub := func(v, secret, payload string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, bin, "-V", v, "-h", host, "-p", port, "-u", u, "-P", secret, "-q", "1",
			"-t", "polis/v1/"+siteA+"/env-1/telemetry", "-m", payload)
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		return out.String(), err
	}
	if out, err := pub("mqttv5", s.secrets[u], `{"m":{"temp_c":20}}`); err != nil || out != "" {
		t.Fatalf("good publish: %v %q", err, out)
	}
	if out, _ := pub("mqttv5", s.secrets[u], `{"m":{"temp_c":`); !strings.Contains(out, "Payload format invalid") || !strings.Contains(out, "bad_json") {
		t.Fatalf("bad publish over MQTT 5: want reason 0x99 with bad_json; got %q", out)
	}
	if out, err := pub("mqttv311", s.secrets[u], `{"m":{"temp_c":`); err != nil {
		t.Fatalf("bad publish over MQTT 3.1.1 must be acknowledged (dead-lettered): %v %q", err, out)
	}
	if _, err := pub("mqttv311", "wrong-secret", `{"m":{"temp_c":1}}`); err == nil {
		t.Fatal("wrong secret accepted")
	}
	if got := len(s.consume(t, 1, 10*time.Second, kafka.TopicTelemetry)); got != 1 {
		t.Fatalf("telemetry records; got %d; want 1", got)
	}
	if got := len(s.consume(t, 2, 10*time.Second, kafka.TopicDeadLetter)); got != 2 {
		t.Fatalf("dead letters; got %d; want 2", got)
	}
}
