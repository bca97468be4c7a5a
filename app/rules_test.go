package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/rules/sink"
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
	hooked := make(chan record.AlertChange, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a record.AlertChange
		if r.Header.Get(sink.SignatureHeader) == sink.Sign([]byte("k"), body) && record.UnmarshalAlert(body, &a) == nil {
			hooked <- a
		}
	}))
	defer hook.Close()
	e.cfg.AlertWebhook, e.cfg.AlertWebhookKey = hook.URL, "k"
	// The MQTT sink publishes to the platform's own broker with a service
	// account; an operator's client subscribes to the alerts.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.cfg.MQTTAddr = l.Addr().String()
	l.Close()
	accounts := filepath.Join(t.TempDir(), "accounts.yaml")
	if err := os.WriteFile(accounts, []byte(fmt.Sprintf("accounts:\n  - username: alerts\n    secret_hash: %q\n    publish: [\"polis/alerts/v1/#\"]\n    subscribe: [\"polis/alerts/v1/#\"]\n",
		credential.Hash("alerts-secret"))), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.AccountsPath = accounts
	e.cfg.AlertMQTT, e.cfg.AlertMQTTUsername, e.cfg.AlertMQTTPassword = "tcp://"+e.cfg.MQTTAddr, "alerts", "alerts-secret"
	token := e.operatorToken(t)
	p := e.start(t)
	defer stop(t, p)
	mqttAlerts := make(chan paho.Message, 16)
	sub := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID("operator-console").
		SetUsername("alerts").SetPassword("alerts-secret").SetAutoReconnect(false))
	if tok := sub.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect the alert subscriber: %v", tok.Error())
	}
	defer sub.Disconnect(50)
	if tok := sub.Subscribe("polis/alerts/v1/#", 1, func(_ paho.Client, m paho.Message) { mqttAlerts <- m }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	c, cl := connectDevice(t, e, p, "env")
	defer cl.Disconnect(50)
	for _, v := range []int{22, 31} {
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, fmt.Sprintf(`{"m":{"temp_c":%d}}`, v)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cons, err := kgo.NewClient(kgo.SeedBrokers(p.Brokers...), kgo.ConsumeTopics(kafka.TopicAlerts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
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
			// The signed webhook got it.
			select {
			case a := <-hooked:
				if a.Kind != "fired" || a.RuleID != "too_hot" {
					t.Fatalf("webhook got %+v", a)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the webhook did not receive the alert")
			}
			// The MQTT sink published it on the platform's broker.
			select {
			case m := <-mqttAlerts:
				var a record.AlertChange
				if err := record.UnmarshalAlert(m.Payload(), &a); err != nil || a.Kind != "fired" ||
					m.Topic() != "polis/alerts/v1/"+c.Site+"/"+c.Asset+"/too_hot" {
					t.Fatalf("MQTT sink published %s %s (%v)", m.Topic(), m.Payload(), err)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the MQTT sink did not publish the alert")
			}
			// The API lists it and an operator acknowledges it.
			var list struct {
				Items []struct{ Fingerprint, State string }
			}
			if code := getJSON(t, "http://"+p.HTTP.Addr()+"/api/v1/alerts?rule=too_hot", &list); code != 200 || len(list.Items) != 1 {
				t.Fatalf("GET alerts: %d %+v", code, list)
			}
			req, _ := http.NewRequest("POST", "http://"+p.HTTP.Addr()+"/api/v1/alerts/"+list.Items[0].Fingerprint+"/ack",
				strings.NewReader(`{"comment":"on it"}`))
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("ack: %v %v", err, resp.StatusCode)
			}
			resp.Body.Close()
			eventually(t, 20*time.Second, func() bool {
				return e.count(t, "SELECT count() FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = 'acked' AND acked_by = 'ops'") == 1
			})
			return
		}
	}
	t.Fatal("no fired alert for too_hot on polis.alerts.v1")
}

// A clock rule (asset.status) fires when a device drops its connection,
// without a point to trigger it; a backtest replays ClickHouse's history
// of the same device through a rule saved over the API.
func TestRules_StatusAndBacktest(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	rule := `groups:
  - name: fleet
    rules:
      - id: env_offline
        scope: {asset_types: [env]}
        expr: asset.status == "offline"
        severity: critical
        summary: "{{ asset.id }} is {{ asset.status }}"
`
	if err := os.WriteFile(filepath.Join(dir, "fleet.yaml"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.RulesDir = dir
	e.cfg.MilestonesPath = "../rules/milestones/polis.yaml"
	token := e.operatorToken(t)
	p := e.start(t)
	defer stop(t, p)
	base := "http://" + p.HTTP.Addr()
	// The portal's milestones, from the registry's lifecycle states.
	var ms struct {
		Items []struct {
			ID      string
			Current int
			Target  int
		}
	}
	if code := getJSON(t, base+"/api/v1/milestones", &ms); code != 200 || len(ms.Items) < 10 || ms.Items[0].Target <= 0 {
		t.Fatalf("GET milestones: %d %+v", code, ms)
	}
	c, cl := connectDevice(t, e, p, "env")
	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	for i, v := range []int{22, 33, 34, 21} {
		ts := start.Add(time.Duration(i) * 10 * time.Second).UnixMilli()
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false,
			fmt.Sprintf(`{"ts":%d,"m":{"temp_c":%d}}`, ts, v)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cl.Disconnect(50)
	eventually(t, 20*time.Second, func() bool {
		return len(p.Rules.Alerts(engine.Filter{RuleID: "env_offline", Asset: c.Asset, States: []engine.State{engine.StateFiring}})) == 1
	})

	// A rule saved through the API, then backtested over what ClickHouse holds.
	put := func(body string) (int, string) {
		req, _ := http.NewRequest("PUT", base+"/api/v1/rules/env_hot", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+token)
		req.Header.Set("Content-Type", "application/yaml")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, b := put("id: env_hot\nscope: {asset_types: [env]}\nexpr: last(\"temp_c\") > 30\nseverity: warning\n"); code != 200 {
		t.Fatalf("PUT rule: %d %s", code, b)
	}
	if _, ok := p.Rules.Evaluator().Rule("env_hot"); !ok {
		t.Fatal("the saved rule is not running")
	}
	eventually(t, 20*time.Second, func() bool {
		return e.count(t, "SELECT count() FROM %s.telemetry WHERE site = '"+c.Site+"' AND asset = '"+c.Asset+"'") == 4
	})
	body := fmt.Sprintf(`{"rule_ids": ["env_hot"], "from": %q, "to": %q, "sites": [%q], "step": "10s"}`,
		start.Add(-time.Minute).Format(time.RFC3339), time.Now().Add(time.Minute).Format(time.RFC3339), c.Site)
	req, _ := http.NewRequest("POST", base+"/api/v1/rules/backtest", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var res struct {
		Points int
		Alerts []struct {
			Rule, Asset string
			FiredAt     time.Time `json:"fired_at"`
			ResolvedAt  time.Time `json:"resolved_at"`
		}
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &res); err != nil || resp.StatusCode != 200 {
		t.Fatalf("backtest: %d %s", resp.StatusCode, b)
	}
	if res.Points != 4 || len(res.Alerts) != 1 || res.Alerts[0].Asset != c.Asset ||
		!res.Alerts[0].FiredAt.Equal(start.Add(10*time.Second)) || !res.Alerts[0].ResolvedAt.Equal(start.Add(30*time.Second)) {
		t.Fatalf("backtest found %s", b)
	}
}

// connectDevice connects a paho client as the first device of the type.
func connectDevice(t *testing.T, e *env, p *app.Platform, typ string) (registry.Credential, paho.Client) {
	t.Helper()
	var c registry.Credential
	for _, cr := range e.creds {
		if a, ok := p.Registry.Asset(cr.Site, cr.Asset); ok && a.Type == typ {
			c = cr
			break
		}
	}
	if c.Username == "" {
		t.Fatalf("no %s device in the test fleet", typ)
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect as %s: %v", c.Username, tok.Error())
	}
	return c, cl
}

// An open alert keeps its acknowledgement and assignee, and a silence
// stays, across a restart of the platform: both are restored from their
// compacted topics, and the condition, still true, does not fire the
// alert a second time.
func TestRules_AlertStateSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	rule := "groups:\n  - name: comfort\n    rules:\n      - id: too_hot\n        scope: {asset_types: [env]}\n" +
		"        expr: last(\"temp_c\") > 30\n        severity: warning\n"
	if err := os.WriteFile(filepath.Join(dir, "comfort.yaml"), []byte(rule), 0o600); err != nil {
		t.Fatal(err)
	}
	e.cfg.RulesDir = dir
	publish := func(p *app.Platform, v int) registry.Credential {
		t.Helper()
		c, cl := connectDevice(t, e, p, "env")
		defer cl.Disconnect(50)
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, fmt.Sprintf(`{"m":{"temp_c":%d}}`, v)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		return c
	}
	p := e.start(t)
	c := publish(p, 35)
	fp := engine.Fingerprint("too_hot", c.Site, c.Asset)
	eventually(t, 20*time.Second, func() bool { a, ok := p.Rules.Get(fp); return ok && a.State == engine.StateFiring })
	if _, err := p.Rules.Ack(fp, "ops", "on it", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Rules.Assign(fp, "maria", time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := p.Rules.Silence(engine.Silence{ID: "works", Matchers: []engine.Matcher{{Label: "site", Value: "PO-1"}},
		Start: time.Now(), End: time.Now().Add(time.Hour), CreatedBy: "ops"}); err != nil {
		t.Fatal(err)
	}
	stop(t, p)

	p = e.start(t)
	stopped := false
	defer func() {
		if !stopped {
			stop(t, p)
		}
	}()
	if sl := p.Rules.Silences(); len(sl) != 1 || sl[0].ID != "works" {
		t.Fatalf("silences after restart: %+v", sl)
	}
	eventually(t, 20*time.Second, func() bool {
		a, ok := p.Rules.Get(fp)
		return ok && a.State == engine.StateFiring && a.Ack != nil && a.Ack.By == "ops" && a.Assignee == "maria" && a.Occurrence == 1
	})
	publish(p, 36)
	eventually(t, 20*time.Second, func() bool {
		a, _ := p.Rules.Get(fp)
		return a.Value == 36
	})
	// Stopping writes every queued change and drains the topic into
	// ClickHouse: the history is complete.
	stop(t, p)
	stopped = true
	for kind, want := range map[string]uint64{"fired": 1, "acked": 1, "assigned": 1} {
		if n := e.count(t, "SELECT count() FROM %s.alerts WHERE rule_id = 'too_hot' AND kind = '"+kind+"'"); n != want {
			t.Errorf("%d %s changes in the history; want %d", n, kind, want)
		}
	}
}
