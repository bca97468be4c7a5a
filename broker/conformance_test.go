package broker_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/polis-platform/polis/internal/testutil"
)

// Each test runs against the platform broker and mosquitto (forEachBroker),
// with paho (3.1.1, or 3.1), mosquitto_pub/mosquitto_sub (3.1.1 and 5) and,
// where a library hides what is tested, a raw client.

// A persistent session (clean session false in 3.1.1, session expiry > 0 in
// 5) keeps its subscriptions while its client is away and gets the QoS 1 and
// 2 messages published meanwhile when it comes back, without subscribing
// again.
func TestConformance_PersistentSession(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("ps-pub", tg), nil)

		t.Run("paho 3.1.1", func(t *testing.T) {
			id, in := clientID("ps-paho", tg), &inbox{}
			persistent := func(o *paho.ClientOptions) { o.SetCleanSession(false) }
			sub := pahoClient(t, tg, "sys", id, in, persistent)
			subscribe(t, sub, map[string]byte{"t/ps/paho/1": 1, "t/ps/paho/2": 2})
			sub.Disconnect(100)
			mustPublish(t, pub, "t/ps/paho/1", 1, false, "q1-offline")
			mustPublish(t, pub, "t/ps/paho/2", 2, false, "q2-offline")
			pahoClient(t, tg, "sys", id, in, persistent)
			if m := in.waitFor(t, "t/ps/paho/1", 1)[0]; string(m.Payload()) != "q1-offline" || m.Qos() != 1 {
				t.Fatalf("queued QoS 1 message: %s", describe([]paho.Message{m}))
			}
			if m := in.waitFor(t, "t/ps/paho/2", 1)[0]; string(m.Payload()) != "q2-offline" || m.Qos() != 2 {
				t.Fatalf("queued QoS 2 message: %s", describe([]paho.Message{m}))
			}
			// The subscriptions are still there, without a new SUBSCRIBE.
			mustPublish(t, pub, "t/ps/paho/2", 2, false, "q2-online")
			in.waitFor(t, "t/ps/paho/2", 2)
		})

		for _, v := range []string{"mqttv311", "mqttv5"} {
			t.Run("mosquitto_sub "+v, func(t *testing.T) {
				id, topic := clientID("ps-"+v[4:], tg), "t/ps/"+v
				// -c: clean session false (3.1.1), session expiry 300 s (5, -x).
				persistent := []string{"-V", v, "-c", "-x", "300", "-i", id, "-q", "2"}
				if out, err := mosq(t, tg, "mosquitto_sub", "sys", append(persistent, "-t", topic, "-E")...); err != nil {
					t.Fatalf("mosquitto_sub -E: %v %s", err, out)
				}
				for q, msg := range []string{"q0-offline", "q1-offline", "q2-offline"} {
					if out, err := mosq(t, tg, "mosquitto_pub", "wide", "-V", v, "-q", fmt.Sprint(q), "-t", topic, "-m", msg); err != nil {
						t.Fatalf("mosquitto_pub: %v %s", err, out)
					}
				}
				// Back, subscribed to another topic only: the session's own
				// subscription delivers what was queued.
				out, err := mosq(t, tg, "mosquitto_sub", "sys", append(persistent, "-t", "t/ps/other", "-C", "2", "-W", "10", "-F", "%q|%t|%p")...)
				if err != nil {
					t.Fatalf("mosquitto_sub back: %v %s", err, out)
				}
				for _, want := range []string{"1|" + topic + "|q1-offline", "2|" + topic + "|q2-offline"} {
					if !strings.Contains(out, want) {
						t.Fatalf("queued message %q not received; got %q", want, out)
					}
				}
			})
		}
	})
}

// Topics starting with '$' are not matched by filters starting with '#' or
// '+' [MQTT-4.7.2-1], and $SYS is readable only by an account given it.
func TestConformance_DollarTopics(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		t.Run("paho 3.1.1", func(t *testing.T) {
			wideIn, sysIn := &inbox{}, &inbox{}
			wide := pahoClient(t, tg, "wide", clientID("dl-wide", tg), wideIn)
			if codes := subscribe(t, wide, map[string]byte{"#": 1, "+/x": 1, "$share/g/#": 1}); codes["#"] != 1 || codes["+/x"] != 1 || codes["$share/g/#"] != 1 {
				t.Fatalf("wildcard subscriptions of an account given #: %v", codes)
			}
			sys := pahoClient(t, tg, "sys", clientID("dl-sys", tg), sysIn)
			subscribe(t, sys, map[string]byte{"$app/#": 1})
			mustPublish(t, sys, "$app/x", 1, false, "dollar")
			mustPublish(t, sys, "t/x", 1, false, "marker")
			sysIn.waitFor(t, "$app/x", 1)
			wideIn.waitFor(t, "t/x", 1)

			// $SYS: refused to an account given only "#" (mosquitto grants
			// the subscription and delivers nothing).
			codes := subscribe(t, wide, map[string]byte{"$SYS/#": 0})
			if tg.polis != nil && codes["$SYS/#"] != 0x80 {
				t.Fatalf("SUBACK to $SYS/# for an account given #: %#x; want 0x80", codes["$SYS/#"])
			}
			if c := subscribe(t, sys, map[string]byte{"$SYS/broker/version": 0}); c["$SYS/broker/version"] != 0 {
				t.Fatalf("SUBACK to $SYS/broker/version for an account given $SYS/#: %#x", c["$SYS/broker/version"])
			}
			sysIn.waitFor(t, "$SYS/broker/version", 1)
			time.Sleep(1500 * time.Millisecond) // the platform broker publishes $SYS every second
			for _, m := range wideIn.all() {
				if strings.HasPrefix(m.Topic(), "$") {
					t.Fatalf("a '$' topic reached the #, +/x and $share/g/# subscriber: %s", describe(wideIn.all()))
				}
			}
		})

		t.Run("mosquitto_sub mqttv5", func(t *testing.T) {
			b := startSub(t, tg, "wide", "-V", "mqttv5", "-t", "#", "-t", "$SYS/#", "-q", "1", "-F", "%t|%p")
			suback := "Subscribed (mid: 1): 1, 1" // mosquitto grants and filters at delivery
			if tg.polis != nil {
				suback = "Subscribed (mid: 1): 1, 135" // 0x87 not authorized
			}
			if !strings.Contains(b.out.String(), suback) {
				t.Fatalf("want %q; got %q", suback, b.out.String())
			}
			for _, topic := range []string{"$app/y", "t/y"} {
				if out, err := mosq(t, tg, "mosquitto_pub", "sys", "-V", "mqttv5", "-q", "1", "-t", topic, "-m", "m"); err != nil {
					t.Fatalf("mosquitto_pub: %v %s", err, out)
				}
			}
			testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(b.out.String(), "\nt/y|m") },
				"the marker arrives (output %v)", testutil.Lazy(func() any { return b.out.String() }))
			time.Sleep(1500 * time.Millisecond)
			if out := b.out.String(); strings.Contains(out, "'$") || strings.Contains(out, "\n$") {
				t.Fatalf("a '$' topic reached the # subscriber:\n%s", out)
			}
		})
	})
}

// A subscription the ACL denies gets a SUBACK failure (0x80 in 3.1.1, 0x87 in
// 5) from the platform broker, shared subscriptions being checked as their
// filter; with either broker nothing is delivered through it.
func TestConformance_SubscribeRefused(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("sr-pub", tg), nil)

		t.Run("paho 3.1.1", func(t *testing.T) {
			in := &inbox{}
			c := pahoClient(t, tg, "narrow", clientID("sr-paho", tg), in)
			codes := subscribe(t, c, map[string]byte{"t/other/#": 1, "#": 1, "t/narrow/#": 1, "$share/g/t/other/s": 1, "$share/g/t/narrow/s": 1})
			for f, want := range map[string]byte{"t/narrow/#": 1, "$share/g/t/narrow/s": 1, "t/other/#": 0x80, "#": 0x80, "$share/g/t/other/s": 0x80} {
				if got := codes[f]; got != want && (tg.polis != nil || want < 0x80) {
					t.Errorf("SUBACK to %s: %#x; want %#x", f, got, want)
				}
			}
			mustPublish(t, pub, "t/other/s", 1, false, "denied")
			mustPublish(t, pub, "t/narrow/s", 1, false, "marker")
			in.waitFor(t, "t/narrow/s", 1)
			time.Sleep(200 * time.Millisecond)
			if got := in.on("t/other/s"); len(got) != 0 {
				t.Fatalf("a message reached a denied subscription: %s", describe(got))
			}
		})

		t.Run("mosquitto_sub mqttv5", func(t *testing.T) {
			b := startSub(t, tg, "narrow", "-V", "mqttv5", "-t", "t/other/#", "-t", "t/narrow/#", "-q", "1", "-F", "%t|%p")
			suback := "Subscribed (mid: 1): 1, 1"
			if tg.polis != nil {
				suback = "Subscribed (mid: 1): 135, 1"
			}
			if !strings.Contains(b.out.String(), suback) {
				t.Fatalf("want %q; got %q", suback, b.out.String())
			}
			mustPublish(t, pub, "t/other/m", 1, false, "denied")
			mustPublish(t, pub, "t/narrow/m", 1, false, "marker")
			testutil.Eventually(t, 5*time.Second, 10*time.Millisecond, func() bool { return strings.Contains(b.out.String(), "t/narrow/m|marker") },
				"the marker arrives (output %v)", testutil.Lazy(func() any { return b.out.String() }))
			time.Sleep(200 * time.Millisecond)
			if strings.Contains(b.out.String(), "t/other/m") {
				t.Fatalf("a message reached a denied subscription:\n%s", b.out.String())
			}
		})
	})
}

// QoS 2 runs PUBLISH, PUBREC, PUBREL, PUBCOMP both ways and delivers once; a
// refused QoS 2 publish (MQTT 5) is answered with a PUBREC carrying the
// reason, not a PUBACK; a PUBLISH resent after its PUBREC was lost is
// answered PUBREC success and delivered once.
func TestConformance_QoS2(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		t.Run("paho 3.1.1", func(t *testing.T) {
			in := &inbox{}
			sub := pahoClient(t, tg, "sys", clientID("q2-sub", tg), in)
			subscribe(t, sub, map[string]byte{"t/q2/paho": 2})
			pub := pahoClient(t, tg, "wide", clientID("q2-pub", tg), nil)
			for i := range 3 {
				mustPublish(t, pub, "t/q2/paho", 2, false, fmt.Sprint(i))
			}
			in.waitFor(t, "t/q2/paho", 3)
			time.Sleep(200 * time.Millisecond)
			ms := in.on("t/q2/paho")
			if len(ms) != 3 {
				t.Fatalf("QoS 2 delivered %d times for 3 messages: %s", len(ms), describe(ms))
			}
			for i, m := range ms {
				if m.Qos() != 2 || string(m.Payload()) != fmt.Sprint(i) {
					t.Fatalf("QoS 2 messages: %s", describe(ms))
				}
			}
		})

		for _, v := range []string{"mqttv311", "mqttv5"} {
			t.Run("mosquitto "+v, func(t *testing.T) {
				topic := "t/q2/" + v
				b := startSub(t, tg, "sys", "-V", v, "-q", "2", "-t", topic, "-C", "1", "-F", "%q|%p")
				out, err := mosq(t, tg, "mosquitto_pub", "wide", "-d", "-V", v, "-q", "2", "-t", topic, "-m", "exactly-once")
				if err != nil || strings.Contains(out, "Warning") {
					t.Fatalf("mosquitto_pub: %v %s", err, out)
				}
				for _, step := range []string{"received PUBREC", "sending PUBREL", "received PUBCOMP"} {
					if !strings.Contains(out, step) {
						t.Fatalf("publisher's QoS 2 flow lacks %q:\n%s", step, out)
					}
				}
				out = b.wait(t, 10*time.Second)
				for _, step := range []string{"received PUBLISH (d0, q2", "sending PUBREC", "received PUBREL", "sending PUBCOMP", "\n2|exactly-once"} {
					if !strings.Contains(out, step) {
						t.Fatalf("subscriber's QoS 2 flow lacks %q:\n%s", step, out)
					}
				}
			})
		}

		t.Run("refused mqttv5", func(t *testing.T) {
			// A topic outside the account's rights, and $SYS, which no
			// account may publish on.
			for _, c := range []struct{ user, topic string }{{"narrow", "u/denied"}, {"wide", "$SYS/broker/fake"}} {
				for _, q := range []string{"1", "2"} {
					out, _ := mosq(t, tg, "mosquitto_pub", c.user, "-d", "-V", "mqttv5", "-q", q, "-t", c.topic, "-m", "x")
					ack := map[string]string{"1": "received PUBACK", "2": "received PUBREC"}[q]
					if !strings.Contains(out, ack) || !strings.Contains(out, "Not authorized") || strings.Contains(out, "sending PUBREL") {
						t.Fatalf("QoS %s publish to %s: want %s with reason Not authorized and no PUBREL; got:\n%s", q, c.topic, ack, out)
					}
				}
			}
		})

		t.Run("refused raw v4", func(t *testing.T) {
			// No negative acknowledgement in 3.1.1: mosquitto acknowledges and
			// drops, the platform closes the connection (as for any publish its
			// ACL refuses); neither leaves the publisher waiting.
			raw, _ := dialRaw(t, tg.addr, rawConnect{v: 4, id: clientID("sys-raw", tg), user: "wide", pass: confPass("wide"), clean: true})
			raw.publish(3, "$SYS/broker/fake", 1, false, "x")
			pk, err := raw.read(5 * time.Second)
			switch {
			case tg.polis != nil && err == nil:
				t.Fatalf("QoS 1 publish on $SYS over 3.1.1: got packet type %d; want the connection closed", pk.FixedHeader.Type)
			case tg.polis == nil && (err != nil || pk.FixedHeader.Type != packets.Puback):
				t.Fatalf("mosquitto: %v %+v", err, pk.FixedHeader)
			case tg.polis != nil && !errors.Is(err, io.EOF):
				t.Fatalf("QoS 1 publish on $SYS over 3.1.1: %v; want the connection closed", err)
			}
		})

		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("raw v%d PUBLISH resent", v), func(t *testing.T) {
				topic := fmt.Sprintf("t/q2/dup%d", v)
				in := &inbox{}
				sub := pahoClient(t, tg, "sys", clientID("q2-dup", tg), in)
				subscribe(t, sub, map[string]byte{topic: 2})
				rc := rawConnect{v: v, id: clientID("q2-raw", tg), user: "wide", pass: confPass("wide"), expiry: 300}
				raw, _ := dialRaw(t, tg.addr, rc)
				raw.publish(7, topic, 2, false, "once")
				if rec := raw.expect(packets.Pubrec, 5*time.Second); rec.PacketID != 7 || rec.ReasonCode != 0 {
					t.Fatalf("PUBREC %+v", rec)
				}
				raw.c.Close() // as if the PUBREC was lost: the client resends the PUBLISH
				raw, ack := dialRaw(t, tg.addr, rc)
				if !ack.SessionPresent {
					t.Fatal("session not present after reconnecting")
				}
				raw.publish(7, topic, 2, true, "once")
				// Every PUBREC for 7 is a success (mochi also resends the
				// PUBREC it had in flight when the session resumes).
				for released := false; ; {
					pk, err := raw.read(5 * time.Second)
					if err != nil {
						t.Fatalf("waiting for PUBCOMP: %v", err)
					}
					if pk.PacketID != 7 || pk.ReasonCode != 0 {
						t.Fatalf("packet type %d id %d reason %#x; want id 7, success", pk.FixedHeader.Type, pk.PacketID, pk.ReasonCode)
					}
					if pk.FixedHeader.Type == packets.Pubcomp {
						break
					}
					if pk.FixedHeader.Type != packets.Pubrec {
						t.Fatalf("packet type %d; want PUBREC or PUBCOMP", pk.FixedHeader.Type)
					}
					if !released {
						raw.ack(packets.Pubrel, 7)
						released = true
					}
				}
				raw.disconnect()
				in.waitFor(t, topic, 1)
				time.Sleep(200 * time.Millisecond)
				if got := in.on(topic); len(got) != 1 {
					t.Fatalf("a QoS 2 message resent after a lost PUBREC was delivered %d times: %s", len(got), describe(got))
				}
			})
		}
	})
}

// A retained message reaches a new subscriber with the retain flag, a live
// one without it (3.1.1), and an empty retained message clears it.
func TestConformance_Retained(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("rt-pub", tg), nil)
		// A subscriber from before the publish: once it has the message the
		// broker is done delivering it live (mochi acknowledges a QoS 1
		// publish before it delivers it, so a subscription made in between
		// could also get it live).
		seen := &inbox{}
		witness := pahoClient(t, tg, "sys", clientID("rt-wit", tg), seen)
		subscribe(t, witness, map[string]byte{"t/ret/#": 1})
		mustPublish(t, pub, "t/ret/a", 1, true, "kept")
		seen.waitFor(t, "t/ret/a", 1)

		t.Run("paho 3.1.1", func(t *testing.T) {
			in := &inbox{}
			sub := pahoClient(t, tg, "sys", clientID("rt-sub", tg), in)
			subscribe(t, sub, map[string]byte{"t/ret/#": 1})
			if m := in.waitFor(t, "t/ret/a", 1)[0]; !m.Retained() || string(m.Payload()) != "kept" {
				t.Fatalf("retained message: %s", describe([]paho.Message{m}))
			}
			mustPublish(t, pub, "t/ret/a", 1, true, "live")
			if m := in.waitFor(t, "t/ret/a", 2)[1]; m.Retained() || string(m.Payload()) != "live" {
				t.Fatalf("live message to an existing subscription keeps the retain flag [MQTT-3.3.1-9]: %s", describe([]paho.Message{m}))
			}
		})

		t.Run("mosquitto_sub mqttv5", func(t *testing.T) {
			out, err := mosq(t, tg, "mosquitto_sub", "sys", "-V", "mqttv5", "-t", "t/ret/#", "-C", "1", "-W", "5", "-F", "%r|%t|%p")
			if err != nil || strings.TrimSpace(out) != "1|t/ret/a|live" {
				t.Fatalf("retained message: %v %q", err, out)
			}
		})

		// An MQTT 5 Message Expiry Interval still ends a retained message
		// (the broker turns off only the forced expiry of those without).
		t.Run("message expiry mqttv5", func(t *testing.T) {
			if out, err := mosq(t, tg, "mosquitto_pub", "wide", "-V", "mqttv5", "-r", "-q", "1", "-t", "t/ret/exp", "-m", "soon gone",
				"-D", "publish", "message-expiry-interval", "1"); err != nil {
				t.Fatalf("mosquitto_pub: %v %s", err, out)
			}
			out, err := mosq(t, tg, "mosquitto_sub", "sys", "-V", "mqttv5", "-t", "t/ret/exp", "-C", "1", "-W", "3", "-F", "%p")
			if err != nil || strings.TrimSpace(out) != "soon gone" {
				t.Fatalf("before expiry: %v %q", err, out)
			}
			time.Sleep(3 * time.Second) // past its expiry and a broker sweep
			if out, _ := mosq(t, tg, "mosquitto_sub", "sys", "-V", "mqttv5", "-t", "t/ret/exp", "-C", "1", "-W", "2", "-F", "%p"); strings.Contains(out, "soon gone") {
				t.Fatalf("an expired retained message was delivered: %q", out)
			}
		})

		t.Run("cleared", func(t *testing.T) {
			if out, err := mosq(t, tg, "mosquitto_pub", "wide", "-r", "-n", "-q", "1", "-t", "t/ret/a"); err != nil {
				t.Fatalf("mosquitto_pub -r -n: %v %s", err, out)
			}
			in := &inbox{}
			sub := pahoClient(t, tg, "sys", clientID("rt-clr", tg), in)
			subscribe(t, sub, map[string]byte{"t/ret/#": 1})
			mustPublish(t, pub, "t/ret/marker", 1, false, "m")
			in.waitFor(t, "t/ret/marker", 1)
			if got := in.on("t/ret/a"); len(got) != 0 {
				t.Fatalf("a cleared retained message was delivered: %s", describe(got))
			}
		})
	})
}

// A client whose connection drops without DISCONNECT has its will published;
// one that disconnects cleanly does not.
func TestConformance_Will(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		in := &inbox{}
		watch := pahoClient(t, tg, "sys", clientID("wl-watch", tg), in)
		subscribe(t, watch, map[string]byte{"t/will/#": 1})
		for _, v := range []string{"mqttv311", "mqttv5"} {
			t.Run("mosquitto_sub "+v, func(t *testing.T) {
				will := []string{"-V", v, "-t", "t/none", "--will-qos", "1", "--will-payload", "gone"}
				b := startSub(t, tg, "wide", append(will, "--will-topic", "t/will/killed-"+v)...)
				_ = b.cmd.Process.Kill() // no DISCONNECT
				b.wait(t, 5*time.Second)
				if m := in.waitFor(t, "t/will/killed-"+v, 1)[0]; string(m.Payload()) != "gone" {
					t.Fatalf("will: %s", describe([]paho.Message{m}))
				}
				if out, err := mosq(t, tg, "mosquitto_sub", "wide", append(will, "--will-topic", "t/will/clean-"+v, "-E")...); err != nil {
					t.Fatalf("mosquitto_sub -E: %v %s", err, out)
				}
			})
		}
		t.Run("paho 3.1.1", func(t *testing.T) {
			c := pahoClient(t, tg, "wide", clientID("wl-paho", tg), nil, func(o *paho.ClientOptions) { o.SetWill("t/will/clean-paho", "gone", 1, false) })
			c.Disconnect(100)
			raw, _ := dialRaw(t, tg.addr, rawConnect{v: 4, id: clientID("wl-raw", tg), user: "wide", pass: confPass("wide"), clean: true,
				willTopic: "t/will/dropped-raw", willMsg: "gone"})
			raw.c.Close()
			in.waitFor(t, "t/will/dropped-raw", 1)
		})
		mustPublish(t, watch, "t/will/marker", 1, false, "m")
		in.waitFor(t, "t/will/marker", 1)
		time.Sleep(200 * time.Millisecond)
		for _, m := range in.all() {
			if strings.HasPrefix(m.Topic(), "t/will/clean-") {
				t.Fatalf("the will of a clean disconnect was published: %s", describe(in.all()))
			}
		}
	})
}

// A message matching several subscriptions of a client reaches it (once or
// once per subscription, as the broker chooses) with the highest QoS granted.
func TestConformance_OverlappingSubscriptions(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("ov-pub", tg), nil)
		t.Run("paho 3.1.1", func(t *testing.T) {
			in := &inbox{}
			sub := pahoClient(t, tg, "sys", clientID("ov-sub", tg), in)
			subscribe(t, sub, map[string]byte{"t/ov/#": 0, "t/ov/a": 2, "t/+/a": 1})
			mustPublish(t, pub, "t/ov/a", 2, false, "m")
			in.waitFor(t, "t/ov/a", 1)
			time.Sleep(300 * time.Millisecond)
			copies := 3 // mosquitto may send one per subscription
			if tg.polis != nil {
				copies = 1
			}
			checkOverlap(t, in.on("t/ov/a"), copies)
		})
		t.Run("raw v5", func(t *testing.T) {
			raw, _ := dialRaw(t, tg.addr, rawConnect{v: 5, id: clientID("ov-raw", tg), user: "sys", pass: confPass("sys"), clean: true})
			if codes := raw.subscribe(1, map[string]byte{"t/ov5/#": 0, "t/ov5/a": 2}); len(codes) != 2 || codes[0] >= 0x80 || codes[1] >= 0x80 {
				t.Fatalf("SUBACK %v", codes)
			}
			mustPublish(t, pub, "t/ov5/a", 2, false, "m")
			got := raw.drain(t, time.Second)
			var max byte
			for _, pk := range got {
				if pk.TopicName != "t/ov5/a" || string(pk.Payload) != "m" {
					t.Fatalf("unexpected message %s %q", pk.TopicName, pk.Payload)
				}
				max = maxByte(max, pk.FixedHeader.Qos)
			}
			copies := 2
			if tg.polis != nil {
				copies = 1
			}
			if len(got) == 0 || len(got) > copies || max != 2 {
				t.Fatalf("overlapping subscriptions: %d copies, highest QoS %d; want 1 to %d copies, QoS 2", len(got), max, copies)
			}
		})
	})
}

func checkOverlap(t *testing.T, ms []paho.Message, subs int) {
	t.Helper()
	var max byte
	for _, m := range ms {
		if string(m.Payload()) != "m" {
			t.Fatalf("unexpected message %s", describe(ms))
		}
		max = maxByte(max, m.Qos())
	}
	if len(ms) == 0 || len(ms) > subs || max != 2 {
		t.Fatalf("overlapping subscriptions: %s; want 1 to %d copies, one at QoS 2", describe(ms), subs)
	}
}

func maxByte(a, b byte) byte { return max(a, b) }

// drain acknowledges what the broker sends, as a well-behaved client, until
// nothing came for d, and returns the PUBLISH packets.
func (cl *rawClient) drain(t *testing.T, d time.Duration) []packets.Packet {
	t.Helper()
	var got []packets.Packet
	for {
		pk, err := cl.read(d)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return got
		}
		if err != nil {
			t.Fatalf("raw client: %v", err)
		}
		switch pk.FixedHeader.Type {
		case packets.Publish:
			got = append(got, pk)
			switch pk.FixedHeader.Qos {
			case 1:
				cl.ack(packets.Puback, pk.PacketID)
			case 2:
				cl.ack(packets.Pubrec, pk.PacketID)
			}
		case packets.Pubrel:
			cl.ack(packets.Pubcomp, pk.PacketID)
		}
	}
}

// What a persistent subscriber did not acknowledge is sent again, with DUP,
// when it reconnects; a QoS 2 message it acknowledged with PUBREC gets its
// PUBREL again, not the message.
func TestConformance_RedeliveryOnReconnect(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("rd-pub", tg), nil)
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("raw v%d", v), func(t *testing.T) {
				topic := fmt.Sprintf("t/rd/%d", v)
				rc := rawConnect{v: v, id: clientID("rd-sub", tg), user: "sys", pass: confPass("sys"), expiry: 300}
				sub, _ := dialRaw(t, tg.addr, rc)
				sub.subscribe(1, map[string]byte{topic + "/1": 1, topic + "/2": 2})
				mustPublish(t, pub, topic+"/1", 1, false, "one")
				first := sub.expect(packets.Publish, 5*time.Second)
				if first.FixedHeader.Dup || first.FixedHeader.Qos != 1 {
					t.Fatalf("first delivery: %+v", first.FixedHeader)
				}
				sub.c.Close() // no PUBACK

				sub, ack := dialRaw(t, tg.addr, rc)
				if !ack.SessionPresent {
					t.Fatal("session not present")
				}
				again := sub.expect(packets.Publish, 5*time.Second)
				if !again.FixedHeader.Dup || again.PacketID != first.PacketID || string(again.Payload) != "one" {
					t.Fatalf("redelivery: %+v id %d %q; want DUP, id %d, \"one\"", again.FixedHeader, again.PacketID, again.Payload, first.PacketID)
				}
				sub.ack(packets.Puback, again.PacketID)

				mustPublish(t, pub, topic+"/2", 2, false, "two")
				q2 := sub.expect(packets.Publish, 5*time.Second)
				sub.ack(packets.Pubrec, q2.PacketID)
				sub.expect(packets.Pubrel, 5*time.Second)
				sub.c.Close() // no PUBCOMP

				sub, _ = dialRaw(t, tg.addr, rc)
				if rel := sub.expect(packets.Pubrel, 5*time.Second); rel.PacketID != q2.PacketID {
					t.Fatalf("PUBREL resent for id %d; want %d", rel.PacketID, q2.PacketID)
				}
				sub.ack(packets.Pubcomp, q2.PacketID)
				if more := sub.drain(t, 500*time.Millisecond); len(more) != 0 {
					t.Fatalf("delivered again after the flow completed: %d messages", len(more))
				}
				sub.disconnect()
			})
		}
	})
}

// A client silent for longer than its keep-alive is disconnected and its
// will published; one that pings stays connected.
func TestConformance_KeepAlive(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		in := &inbox{}
		watch := pahoClient(t, tg, "sys", clientID("ka-watch", tg), in)
		subscribe(t, watch, map[string]byte{"t/ka/#": 1})
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("raw v%d silent", v), func(t *testing.T) {
				t.Parallel() // each waits on its own connection
				topic := fmt.Sprintf("t/ka/%d", v)
				raw, _ := dialRaw(t, tg.addr, rawConnect{v: v, id: clientID("ka-raw", tg), user: "wide", pass: confPass("wide"), clean: true,
					keepalive: 1, willTopic: topic, willMsg: "silent"})
				start := time.Now()
				// 1.5 times the keep-alive [MQTT-3.1.2-24]; mochi rounds it down
				// to whole seconds, mosquitto checks every few seconds.
				if !raw.closedByBroker(10 * time.Second) {
					t.Fatal("a client silent past its keep-alive (1 s) is still connected after 10 s")
				}
				if d := time.Since(start); d < 900*time.Millisecond {
					t.Fatalf("disconnected after %s, before its keep-alive of 1 s", d)
				}
				in.waitFor(t, topic, 1)
			})
		}
		t.Run("paho pings", func(t *testing.T) {
			t.Parallel() // each waits on its own connection
			c := pahoClient(t, tg, "wide", clientID("ka-paho", tg), nil, func(o *paho.ClientOptions) { o.SetKeepAlive(2 * time.Second) })
			time.Sleep(4500 * time.Millisecond)
			if !c.IsConnectionOpen() {
				t.Fatal("a client that pings was disconnected")
			}
			mustPublish(t, c, "t/ka/alive", 1, false, "yes")
		})
		t.Run("mosquitto_sub mqttv5 pings", func(t *testing.T) {
			t.Parallel() // each waits on its own connection
			out, err := mosq(t, tg, "mosquitto_sub", "wide", "-V", "mqttv5", "-k", "5", "-t", "t/none", "-W", "7", "-d")
			if !strings.Contains(out, "received PINGRESP") || strings.Count(out, "sending CONNECT") != 1 || strings.Contains(out, "rror") {
				t.Fatalf("keep-alive of 5 s: %v\n%s", err, out)
			}
		})
	})
}

// MQTT 3.1 ("MQIsdp", protocol level 3) is accepted, as by mosquitto.
func TestConformance_MQTT31(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		v31 := func(o *paho.ClientOptions) { o.SetProtocolVersion(3) }
		in := &inbox{}
		sub := pahoClient(t, tg, "sys", clientID("v31s", tg), in, v31)
		subscribe(t, sub, map[string]byte{"t/v31/#": 2})
		pub := pahoClient(t, tg, "wide", clientID("v31p", tg), nil, v31)
		for q := range byte(3) {
			mustPublish(t, pub, fmt.Sprintf("t/v31/%d", q), q, false, "v31")
			if m := in.waitFor(t, fmt.Sprintf("t/v31/%d", q), 1)[0]; m.Qos() != q {
				t.Fatalf("QoS %d over MQTT 3.1 arrived as %s", q, describe([]paho.Message{m}))
			}
		}
		if out, err := mosq(t, tg, "mosquitto_pub", "wide", "-V", "mqttv31", "-i", clientID("v31c", tg), "-q", "1", "-t", "t/v31/cli", "-m", "cli"); err != nil {
			t.Fatalf("mosquitto_pub -V mqttv31: %v %s", err, out)
		}
		in.waitFor(t, "t/v31/cli", 1)
	})
}

// The client and the broker number their packets independently: a client
// reusing, for its own SUBSCRIBE and QoS 2 PUBLISH, the id of a message the
// broker has in flight to it (here one queued for its persistent session)
// gets its own acknowledgements, and the broker's message stays in flight
// until the client acknowledges it.
func TestConformance_PacketIDsOfBothSides(t *testing.T) {
	forEachBroker(t, func(t *testing.T, tg target) {
		pub := pahoClient(t, tg, "wide", clientID("id-pub", tg), nil)
		for _, v := range []byte{4, 5} {
			t.Run(fmt.Sprintf("raw v%d", v), func(t *testing.T) {
				topic := fmt.Sprintf("t/id/%d", v)
				in := &inbox{}
				watch := pahoClient(t, tg, "sys", clientID("id-watch", tg), in)
				subscribe(t, watch, map[string]byte{topic + "/up": 2})
				rc := rawConnect{v: v, id: clientID("id-raw", tg), user: "sys", pass: confPass("sys"), expiry: 300}
				raw, _ := dialRaw(t, tg.addr, rc)
				raw.subscribe(1, map[string]byte{topic + "/down": 1})
				raw.disconnect()
				mustPublish(t, pub, topic+"/down", 1, false, "queued")

				raw, _ = dialRaw(t, tg.addr, rc)
				queued := raw.expect(packets.Publish, 5*time.Second)
				id := queued.PacketID // not acknowledged yet
				if codes := raw.subscribe(id, map[string]byte{topic + "/more": 1}); len(codes) != 1 || codes[0] != 1 {
					t.Fatalf("SUBACK to a SUBSCRIBE numbered like the message in flight (%d): %#x; want granted QoS 1", id, codes)
				}
				raw.publish(id, topic+"/up", 2, false, "up")
				if rec := raw.expect(packets.Pubrec, 5*time.Second); rec.PacketID != id || rec.ReasonCode != 0 {
					t.Fatalf("PUBREC id %d reason %#x; want %d, 0", rec.PacketID, rec.ReasonCode, id)
				}
				raw.ack(packets.Pubrel, id)
				if comp := raw.expect(packets.Pubcomp, 5*time.Second); comp.PacketID != id || comp.ReasonCode != 0 {
					t.Fatalf("PUBCOMP id %d reason %#x; want %d, 0", comp.PacketID, comp.ReasonCode, id)
				}
				in.waitFor(t, topic+"/up", 1)
				raw.c.Close() // the queued message is still not acknowledged

				raw, _ = dialRaw(t, tg.addr, rc)
				again := raw.expect(packets.Publish, 5*time.Second)
				if string(again.Payload) != "queued" || !again.FixedHeader.Dup {
					t.Fatalf("the unacknowledged message was not redelivered: %q dup=%v", again.Payload, again.FixedHeader.Dup)
				}
				raw.ack(packets.Puback, again.PacketID)
				mustPublish(t, pub, topic+"/more", 1, false, "more") // the second subscription holds
				if m := raw.expect(packets.Publish, 5*time.Second); string(m.Payload) != "more" {
					t.Fatalf("got %q; want the message of the second subscription", m.Payload)
				}
				raw.disconnect()
			})
		}
	})
}
