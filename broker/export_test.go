package broker

import (
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RetainAged stores a retained message as if the platform had published
// it age ago: mochi stamps a message's creation with the wall clock, and a
// test cannot wait a day.
func RetainAged(b *Broker, topic string, payload []byte, age time.Duration) {
	b.srv.Topics.RetainMessage(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: 1, Retain: true},
		TopicName:   topic, Payload: payload, Origin: "inline",
		Created: time.Now().Add(-age).Unix(),
	})
}
