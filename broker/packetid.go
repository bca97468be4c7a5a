package broker

import (
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// packetIDs keeps apart the two packet identifier spaces of a session.
//
// In MQTT the client numbers its PUBLISH (QoS > 0), SUBSCRIBE and UNSUBSCRIBE
// and the server numbers its own PUBLISH, independently: both start at 1.
// mochi (v2.7.9) keeps the QoS state of both directions in one map keyed by
// packet id (Client.State.Inflight), so when a client's id equals one the
// server has in flight to it (typically the messages queued for a
// persistent session, resent from id 1 when it reconnects):
//   - a SUBSCRIBE or UNSUBSCRIBE is refused whole with 0x91 (packet
//     identifier in use), so a persistent subscriber that subscribes again
//     on reconnect, as paho and mosquitto_sub do, gets "all denied";
//   - a PUBLISH deletes the server's message from the map, which is then
//     never redelivered, and a QoS 2 PUBLISH overwrites it.
//
// The hook therefore gives such a client id another id inside mochi, one
// that nothing in flight uses, on the way in (OnPacketRead: PUBLISH, PUBREL,
// SUBSCRIBE, UNSUBSCRIBE carry the client's ids), and gives the client its
// own id back on the way out (OnPacketEncode: PUBACK, PUBREC, PUBCOMP, SUBACK
// and UNSUBACK answer the client's packets). Ids that collide with nothing
// pass unchanged. The table belongs to the session: a QoS 2 flow may span a
// reconnect.
type packetIDs struct {
	mu  sync.Mutex
	fwd map[uint16]uint16 // the client's id -> the id inside mochi
	rev map[uint16]uint16 // the id inside mochi -> the client's id
}

func newPacketIDs() *packetIDs {
	return &packetIDs{fwd: map[uint16]uint16{}, rev: map[uint16]uint16{}}
}

// serverOwned reports whether mochi has a packet of the server's own
// numbering in flight under id: a PUBLISH waiting for its PUBACK or PUBREC,
// or a PUBREL waiting for its PUBCOMP. (A PUBREC is the client's QoS 2
// publish waiting for its PUBREL: the client's numbering.)
func serverOwned(cl *mqtt.Client, id uint16) bool {
	pk, ok := cl.State.Inflight.Get(id)
	return ok && (pk.FixedHeader.Type == packets.Publish || pk.FixedHeader.Type == packets.Pubrel)
}

// inbound returns the id mochi is to see for a packet the client numbered.
func (m *packetIDs) inbound(cl *mqtt.Client, pk *packets.Packet) uint16 {
	id := pk.PacketID
	m.mu.Lock()
	defer m.mu.Unlock()
	if x, ok := m.fwd[id]; ok {
		return x // a flow already translated: a PUBREL, a PUBLISH resent
	}
	if pk.FixedHeader.Type == packets.Pubrel {
		return id
	}
	if _, usedInside := m.rev[id]; !usedInside && !serverOwned(cl, id) {
		return id
	}
	// From the top down: mochi numbers the server's packets from the bottom up.
	for x := uint16(65535); x > 0; x-- {
		if _, ok := m.rev[x]; ok {
			continue
		}
		if _, ok := cl.State.Inflight.Get(x); ok {
			continue
		}
		m.fwd[id], m.rev[x] = x, id
		return x
	}
	return id // 65535 ids in flight: leave it to mochi
}

// outbound gives the client back its own id in an acknowledgement of one of
// its packets, and forgets the translation once the flow is over.
func (m *packetIDs) outbound(pk *packets.Packet) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id, ok := m.rev[pk.PacketID]
	if !ok {
		return
	}
	x := pk.PacketID
	pk.PacketID = id
	if pk.FixedHeader.Type == packets.Pubrec && pk.ReasonCode < packets.ErrUnspecifiedError.Code {
		return // the flow goes on: PUBREL, PUBCOMP
	}
	delete(m.rev, x)
	delete(m.fwd, id)
}
