package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

func getJSON(t *testing.T, url string, v any) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if v != nil {
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
			t.Fatalf("GET %s: %v", url, err)
		}
	}
	return resp.StatusCode
}

// Devices publish; the twin API shows their live state; an operator sets a
// desired property and the device receives it retained on its own topic; a
// lifecycle move lands in ClickHouse.
func TestTwin_EndToEnd(t *testing.T) {
	e := newEnv(t)
	token := e.operatorToken(t)
	p := e.start(t)
	defer stop(t, p)
	base := "http://" + p.HTTP.Addr()

	c := e.creds[0]
	got := make(chan []byte, 4)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(100)
	desiredTopic := fmt.Sprintf("polis/v1/%s/%s/state/desired", c.Site, c.Asset)
	if tok := cl.Subscribe(desiredTopic, 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, `{"m":{"temp_c":22.5}}`)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}

	// The live twin shows the point.
	eventually(t, 20*time.Second, func() bool {
		var a map[string]any
		if getJSON(t, fmt.Sprintf("%s/api/v1/sites/%s/assets/%s", base, c.Site, c.Asset), &a) != 200 {
			return false
		}
		b, _ := json.Marshal(a)
		return bytes.Contains(b, []byte("temp_c")) && bytes.Contains(b, []byte("22.5"))
	})
	if code := getJSON(t, base+"/api/v1/sites/PO-999999-9", nil); code != 404 {
		t.Fatalf("unknown site: status %d; want 404", code)
	}

	// Desired state: refused without a token, accepted with one, delivered.
	req := func(method, url, body string, hdr map[string]string) *http.Response {
		r, _ := http.NewRequest(method, url, bytes.NewBufferString(body))
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	desiredURL := fmt.Sprintf("%s/api/v1/sites/%s/assets/%s/desired", base, c.Site, c.Asset)
	if resp := req("PATCH", desiredURL, `{"setpoint_c":21}`, map[string]string{"If-Match": `"0"`}); resp.StatusCode != 401 {
		t.Fatalf("desired without token: %d; want 401", resp.StatusCode)
	}
	if resp := req("PATCH", desiredURL, `{"setpoint_c":21}`, map[string]string{"If-Match": `"0"`, "Authorization": "Bearer " + token}); resp.StatusCode != 200 {
		t.Fatalf("desired with token: %d; want 200", resp.StatusCode)
	}
	select {
	case b := <-got:
		if !bytes.Contains(b, []byte(`"setpoint_c":21`)) {
			t.Fatalf("desired payload %s", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device did not receive its desired state")
	}

	// Lifecycle: an operator move is stored in ClickHouse.
	lcURL := fmt.Sprintf("%s/api/v1/sites/%s/assets/%s/lifecycle", base, c.Site, c.Asset)
	resp := req("POST", lcURL, `{"to":"decommissioned","cause":"test"}`, map[string]string{"Authorization": "Bearer " + token})
	if resp.StatusCode != 200 {
		t.Fatalf("lifecycle move: %d; want 200", resp.StatusCode)
	}
	eventually(t, 20*time.Second, func() bool {
		return e.count(t, "SELECT count() FROM %s.lifecycle_events WHERE to_state = 'decommissioned'") == 1
	})

	// Registry export and re-import through the API, as an operator.
	r, _ := http.NewRequest("GET", base+"/api/v1/registry/export", nil)
	r.Header.Set("Authorization", "Bearer "+token)
	exp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	csvBody, _ := io.ReadAll(exp.Body)
	exp.Body.Close()
	if exp.StatusCode != 200 || !bytes.Contains(csvBody, []byte(c.Site)) {
		t.Fatalf("export: status %d, %d bytes", exp.StatusCode, len(csvBody))
	}
	r, _ = http.NewRequest("POST", base+"/api/v1/registry/import?strict=true", bytes.NewReader(csvBody))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "text/csv")
	imp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	var rep struct {
		Sites       int
		Refused     []any
		Credentials []any
	}
	if err := json.NewDecoder(imp.Body).Decode(&rep); err != nil {
		t.Fatal(err)
	}
	imp.Body.Close()
	if n, _ := p.Registry.Len(); imp.StatusCode != 200 || rep.Sites != n || len(rep.Refused) != 0 || len(rep.Credentials) != 0 {
		t.Fatalf("re-import: status %d, report %+v", imp.StatusCode, rep)
	}
}

// Two instances share the fleet by Kafka partition; each redirects requests
// for the other's sites; when one stops, the other serves everything.
func TestTwin_TwoInstancesRedirectAndTakeOver(t *testing.T) {
	e := newEnv(t)
	ext, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	e.cfg.KafkaBrokers = ext.Addrs()
	token := e.operatorToken(t)
	a := e.start(t)
	cfgB := e.cfg
	cfgB.DataDir = t.TempDir()
	b, err := app.Start(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 60*time.Second, func() bool {
		return len(a.Twin.Owned()) > 0 && len(b.Twin.Owned()) > 0 && len(a.Twin.Owned())+len(b.Twin.Owned()) == 4
	})
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// A site b owns, asked of a.
	var site string
	for _, s := range a.Registry.Sites() {
		resp, err := noFollow.Get("http://" + b.HTTP.Addr() + "/api/v1/sites/" + s.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == 200 {
			site = s.ID
			break
		}
	}
	if site == "" {
		t.Fatal("b serves no site")
	}
	eventually(t, 10*time.Second, func() bool {
		resp, err := noFollow.Get("http://" + a.HTTP.Addr() + "/api/v1/sites/" + site)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == 307 && resp.Header.Get("Location") == "http://"+b.HTTP.Addr()+"/api/v1/sites/"+site
	})
	if code := getJSON(t, "http://"+a.HTTP.Addr()+"/api/v1/sites/"+site, nil); code != 200 {
		t.Fatalf("following the redirect: status %d", code)
	}

	// A bulk import on a reaches b through the registry topic: the new
	// device can log in on b's broker.
	extra, creds, err := registry.Generate(registry.GenerateOptions{Sites: 1, Seed: 4242})
	if err != nil {
		t.Fatal(err)
	}
	var csvBuf bytes.Buffer
	if err := registry.ExportCSV(&csvBuf, extra); err != nil {
		t.Fatal(err)
	}
	r, _ := http.NewRequest("POST", "http://"+a.HTTP.Addr()+"/api/v1/registry/import", &csvBuf)
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("Content-Type", "text/csv")
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("import on a: status %d", resp.StatusCode)
	}
	nc := creds[0]
	eventually(t, 20*time.Second, func() bool {
		cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + b.Broker.Addr()).SetClientID(nc.Username).
			SetUsername(nc.Username).SetPassword(nc.Password).SetAutoReconnect(false).SetConnectTimeout(2 * time.Second))
		tok := cl.Connect()
		ok := tok.WaitTimeout(3*time.Second) && tok.Error() == nil
		if ok {
			cl.Disconnect(50)
		}
		return ok
	})

	// Desired state set on the owner (b) reaches a device connected to a's
	// broker: it travels through the desired topic that every broker follows.
	var dc registry.Credential
	for _, c := range e.creds {
		if c.Site == site {
			dc = c
			break
		}
	}
	got := make(chan []byte, 1)
	dcl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + a.Broker.Addr()).SetClientID(dc.Username).
		SetUsername(dc.Username).SetPassword(dc.Password).SetAutoReconnect(false))
	if tok := dcl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect to a: %v", tok.Error())
	}
	defer dcl.Disconnect(50)
	dtopic := fmt.Sprintf("polis/v1/%s/%s/state/desired", dc.Site, dc.Asset)
	if tok := dcl.Subscribe(dtopic, 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe on a: %v", tok.Error())
	}
	r, _ = http.NewRequest("PATCH", fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s/desired", b.HTTP.Addr(), dc.Site, dc.Asset),
		bytes.NewBufferString(`{"mode":"eco"}`))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("If-Match", `"0"`)
	if resp, err = http.DefaultClient.Do(r); err != nil || resp.StatusCode != 200 {
		t.Fatalf("PATCH desired on b: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	select {
	case m := <-got:
		if !bytes.Contains(m, []byte(`"mode":"eco"`)) {
			t.Fatalf("desired payload %s", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the device on a's broker did not receive the desired state set on b")
	}

	stop(t, b)
	eventually(t, 60*time.Second, func() bool { return len(a.Twin.Owned()) == 4 })
	if code := getJSON(t, "http://"+a.HTTP.Addr()+"/api/v1/sites/"+site, nil); code != 200 {
		t.Fatalf("after takeover: status %d", code)
	}
	stop(t, a)
}

// Desired state survives a restart: the broker's retained messages are
// rebuilt from the desired topic before devices connect.
func TestTwin_DesiredSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	token := e.operatorToken(t)
	c := e.creds[1]
	p := e.start(t)
	r, _ := http.NewRequest("PATCH", fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s/desired", p.HTTP.Addr(), c.Site, c.Asset),
		bytes.NewBufferString(`{"brightness_pct":40}`))
	r.Header.Set("Authorization", "Bearer "+token)
	r.Header.Set("If-Match", `"0"`)
	resp, err := http.DefaultClient.Do(r)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("PATCH desired: %v %v", err, resp.StatusCode)
	}
	resp.Body.Close()
	stop(t, p)

	p2 := e.start(t)
	defer stop(t, p2)
	got := make(chan []byte, 1)
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p2.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(50)
	dtopic := fmt.Sprintf("polis/v1/%s/%s/state/desired", c.Site, c.Asset)
	if tok := cl.Subscribe(dtopic, 1, func(_ paho.Client, m paho.Message) { got <- m.Payload() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	select {
	case m := <-got:
		if !bytes.Contains(m, []byte(`"brightness_pct":40`)) {
			t.Fatalf("retained desired payload %s", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no retained desired state after restart")
	}
	// The twin kept the desired version too (restored from its snapshot).
	var a struct {
		DesiredVersion int `json:"desired_version"`
	}
	eventually(t, 20*time.Second, func() bool {
		return getJSON(t, fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s", p2.HTTP.Addr(), c.Site, c.Asset), &a) == 200 && a.DesiredVersion == 1
	})
}

// Evidence moves lifecycles too: a planned asset that reports telemetry is
// installed, and the change is stored with its cause.
func TestTwin_LifecycleByEvidence(t *testing.T) {
	e := newEnv(t)
	p := e.start(t)
	defer stop(t, p)
	var c registry.Credential
	for _, cr := range e.creds {
		if a, ok := p.Registry.Asset(cr.Site, cr.Asset); ok && (a.Lifecycle == "planned" || a.Lifecycle == "") {
			c = cr
			break
		}
	}
	if c.Site == "" {
		t.Fatal("the generated fleet has no planned asset to test with")
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(50)
	if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, `{"m":{"temp_c":20}}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	q := fmt.Sprintf("SELECT count() FROM %%s.lifecycle_events WHERE site = '%s' AND asset = '%s' AND from_state = 'planned' AND to_state = 'installed' AND actor = 'system'", c.Site, c.Asset)
	eventually(t, 30*time.Second, func() bool { return e.count(t, q) == 1 })
}

// operatorToken configures an API token with the operator role and returns it.
func (e *env) operatorToken(t *testing.T) string {
	t.Helper()
	const token = "an-operator-token-for-tests"
	e.cfg.TokensPath = filepath.Join(e.cfg.DataDir, "tokens.yaml")
	yaml := fmt.Sprintf("tokens:\n  - name: ops\n    role: operator\n    hash: %q\n", credential.Hash(token))
	if err := os.WriteFile(e.cfg.TokensPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return token
}
