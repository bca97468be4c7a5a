package app_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// A component that fails stops the whole platform with its error: the
// HTTP API and the MQTT broker stop listening instead of serving without it.
func TestPlatform_AFailedComponentStopsEverything(t *testing.T) {
	e := newEnv(t)
	p := e.start(t)
	httpAddr, mqttAddr := p.HTTP.Addr(), p.Broker.Addr()
	for _, a := range []string{httpAddr, mqttAddr} {
		c, err := net.DialTimeout("tcp", a, 5*time.Second)
		if err != nil {
			t.Fatalf("%s does not answer before the failure: %v", a, err)
		}
		c.Close()
	}
	boom := errors.New("disk on fire")
	if err := p.RunInGroup(context.Background(), "doomed", func(ctx context.Context) error {
		select {
		case <-time.After(100 * time.Millisecond):
			return boom
		case <-ctx.Done():
			return nil
		}
	}); err != nil {
		t.Fatal(err)
	}
	werr := make(chan error, 1)
	go func() { werr <- p.Wait(context.Background(), time.Minute) }()
	select {
	case err := <-werr:
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "doomed") {
			t.Fatalf("Wait = %v, want the failure of doomed", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the platform kept running after a component failed")
	}
	for _, a := range []string{httpAddr, mqttAddr} {
		if c, err := net.DialTimeout("tcp", a, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still accepts connections after the platform stopped", a)
		}
	}
}
