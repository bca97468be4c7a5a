package platform_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/bus"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
)

// A rule in the rules directory fires on a device's telemetry and its alert
// lands on polis.alerts.v1.
func TestRules_FireOnTelemetry(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	rule := `groups:
  - name: comfort
    rules:
      - id: too_hot
        scope: {asset_types: [env]}
        expr: metric == "temp_c" && value > 30
        severity: warning
        summary: "{{ asset.id }} at {{ value }} C"
`
	if err := os.WriteFile(filepath.Join(dir, "comfort.yaml"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.RulesDir = dir
	p := e.start(t)
	defer stop(t, p)
	var c registry.Credential
	for _, cr := range e.creds {
		if a, ok := p.Registry.Asset(cr.Site, cr.Asset); ok && a.Type == "env" {
			c = cr
			break
		}
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(50)
	for _, v := range []int{22, 31} {
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, fmt.Sprintf(`{"m":{"temp_c":%d}}`, v)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.ConsumeTopics(bus.TopicAlerts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cons.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		var fired bool
		cons.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var n record.AlertChange
			if record.UnmarshalAlert(r.Value, &n) == nil && n.Kind == "fired" && n.Deliver && n.RuleID == "too_hot" &&
				n.Asset == c.Asset && n.Summary == c.Asset+" at 31 C" {
				fired = true
			}
		})
		if fired {
			if got := len(p.Rules.Alerts(engine.Filter{RuleID: "too_hot", States: []engine.State{engine.StateFiring}})); got != 1 {
				t.Fatalf("current alerts: %d; want 1", got)
			}
			// The storage writer keeps the alert history in ClickHouse.
			eventually(t, 20*time.Second, func() bool {
				return e.count(t, "SELECT count() FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = 'fired' AND delivered = 1") == 1
			})
			return
		}
	}
	t.Fatal("no fired alert for too_hot on polis.alerts.v1")
}
