package broker_test

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/broker"
)

// TestRetained_OutlivesADay: a device's desired state is published once,
// retained, and must reach the device whenever it connects, however long
// after. mochi's default deletes every retained message a day after it was
// published (its MaximumMessageExpiryInterval also forces expiry on
// messages that set none); the broker turns that off.
func TestRetained_OutlivesADay(t *testing.T) {
	for _, age := range []time.Duration{time.Minute, 25 * time.Hour, 400 * 24 * time.Hour} {
		t.Run(age.String(), func(t *testing.T) {
			s := newStack(t)
			topic := "polis/v1/" + siteA + "/atm-1/state/desired"
			broker.RetainAged(s.broker, topic, []byte(`{"mode":"maintenance"}`), age)
			// mochi sweeps expired retained messages once a second: let
			// two sweeps pass before the device asks.
			time.Sleep(2500 * time.Millisecond)
			got := make(chan string, 1)
			c := s.device(t, siteA, "atm-1")
			tok := c.Subscribe(topic, 1, func(_ paho.Client, m paho.Message) {
				select {
				case got <- string(m.Payload()):
				default:
				}
			})
			if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("subscribe: %v", tok.Error())
			}
			select {
			case p := <-got:
				if p != `{"mode":"maintenance"}` {
					t.Fatalf("retained payload %q", p)
				}
			case <-time.After(5 * time.Second):
				t.Fatalf("the desired state retained %s ago was not delivered", age)
			}
		})
	}
}
