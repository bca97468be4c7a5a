package broker_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// rawClient speaks MQTT packet by packet (mochi's codec), for what the
// client libraries do not let a test control: when to acknowledge, when to
// fall silent, when to drop the connection, what to resend.
type rawClient struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
	v byte // protocol version: 3, 4 or 5
}

// rawConnect is a CONNECT of version v with the client id, credentials and
// session flag; expiry (MQTT 5) is the session expiry in seconds.
type rawConnect struct {
	v          byte
	id         string
	user, pass string
	clean      bool
	expiry     uint32
	keepalive  uint16
	willTopic  string
	willMsg    string
	willRetain bool
	receiveMax uint16 // MQTT 5 Receive Maximum; 0: not sent (65,535)
}

// dialRaw connects and returns the client and its CONNACK.
func dialRaw(t *testing.T, addr string, rc rawConnect) (*rawClient, packets.Packet) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	cl := &rawClient{t: t, c: c, r: bufio.NewReader(c), v: rc.v}
	name := []byte("MQTT")
	if rc.v == 3 {
		name = []byte("MQIsdp")
	}
	if rc.keepalive == 0 {
		rc.keepalive = 30
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: rc.v,
		Connect: packets.ConnectParams{ProtocolName: name, Clean: rc.clean, Keepalive: rc.keepalive, ClientIdentifier: rc.id,
			UsernameFlag: rc.user != "", Username: []byte(rc.user), PasswordFlag: rc.pass != "", Password: []byte(rc.pass)}}
	if rc.willTopic != "" {
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos = true, rc.willTopic, []byte(rc.willMsg), 1
		pk.Connect.WillRetain = rc.willRetain
	}
	if rc.v == 5 && rc.receiveMax > 0 {
		pk.Properties.ReceiveMaximum = rc.receiveMax
	}
	if rc.v == 5 && rc.expiry > 0 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = rc.expiry, true
	}
	cl.send(pk)
	ack := cl.expect(packets.Connack, 5*time.Second)
	return cl, ack
}

func (cl *rawClient) send(pk packets.Packet) {
	cl.t.Helper()
	pk.ProtocolVersion = cl.v
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		pk.FixedHeader.Qos = 1 // [MQTT-3.6.1-1]
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Subscribe:
		pk.FixedHeader.Qos = 1 // [MQTT-3.8.1-1]
		err = pk.SubscribeEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("raw client cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		cl.t.Fatal(err)
	}
	_ = cl.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	if _, err := cl.c.Write(buf.Bytes()); err != nil {
		cl.t.Fatalf("raw client write: %v", err)
	}
}

// read returns the next packet, or an error (io.EOF once the broker closed
// the connection, a timeout if nothing came within d).
func (cl *rawClient) read(d time.Duration) (packets.Packet, error) {
	_ = cl.c.SetReadDeadline(time.Now().Add(d))
	var pk packets.Packet
	b, err := cl.r.ReadByte()
	if err != nil {
		return pk, err
	}
	if err := pk.FixedHeader.Decode(b); err != nil {
		return pk, err
	}
	if pk.FixedHeader.Remaining, _, err = packets.DecodeLength(cl.r); err != nil {
		return pk, err
	}
	body := make([]byte, pk.FixedHeader.Remaining)
	if _, err := io.ReadFull(cl.r, body); err != nil {
		return pk, err
	}
	pk.ProtocolVersion = cl.v
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}

// expect reads the next packet and fails unless it is of type typ.
func (cl *rawClient) expect(typ byte, d time.Duration) packets.Packet {
	cl.t.Helper()
	pk, err := cl.read(d)
	if err != nil {
		cl.t.Fatalf("waiting for packet type %d: %v", typ, err)
	}
	if pk.FixedHeader.Type != typ {
		cl.t.Fatalf("got packet type %d (%+v); want %d", pk.FixedHeader.Type, pk.FixedHeader, typ)
	}
	return pk
}

// subscribe subscribes to each filter at its QoS and returns the SUBACK codes.
func (cl *rawClient) subscribe(id uint16, filters map[string]byte) []byte {
	cl.t.Helper()
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe}, PacketID: id}
	for f, q := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: q})
	}
	cl.send(pk)
	return cl.expect(packets.Suback, 5*time.Second).ReasonCodes
}

func (cl *rawClient) publish(id uint16, topic string, qos byte, dup bool, payload string) {
	cl.t.Helper()
	cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Dup: dup},
		PacketID: id, TopicName: topic, Payload: []byte(payload)})
}

func (cl *rawClient) ack(typ byte, id uint16) {
	cl.t.Helper()
	cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id})
}

// disconnect sends DISCONNECT and closes the connection.
func (cl *rawClient) disconnect() {
	cl.t.Helper()
	cl.send(packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Disconnect}})
	cl.c.Close()
}

// closedByBroker reports whether the broker closes the connection within d
// (packets it sends first are skipped).
func (cl *rawClient) closedByBroker(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		_, err := cl.read(time.Until(deadline))
		var ne net.Error
		switch {
		case err == nil:
		case errors.As(err, &ne) && ne.Timeout():
			return false
		default:
			return true
		}
	}
	return false
}
