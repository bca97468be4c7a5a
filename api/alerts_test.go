package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/engine"
)

const (
	alertSite  = "PO-001002-1"
	alertSite2 = "PO-001272-1"
)

// newAlertEngine is a real engine with three alerts: temp_high firing on
// alertSite/env-1, temp_high resolved on alertSite2/env-1 and door_open
// pending on alertSite/door-1.
func newAlertEngine(t *testing.T) *engine.Engine {
	t.Helper()
	en := engine.New(engine.Options{})
	err := en.SetRules([]engine.Rule{
		{ID: "temp_high", Severity: "warning", Labels: map[string]string{"team": "facilities"},
			Cond:    func(e engine.Eval) (bool, error) { return e.Value > 30, nil },
			Summary: func(e engine.Eval) string { return "too hot" }},
		{ID: "door_open", Severity: "critical", For: 10 * time.Minute,
			Cond: func(e engine.Eval) (bool, error) { return e.Value > 0, nil }},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		rule, site, asset, metric string
		v                         float64
		ago                       time.Duration
	}{
		{"temp_high", alertSite, "env-1", "temp_c", 35, 5 * time.Minute},
		{"temp_high", alertSite2, "env-1", "temp_c", 40, 5 * time.Minute},
		{"temp_high", alertSite2, "env-1", "temp_c", 20, 4 * time.Minute},
		{"door_open", alertSite, "door-1", "open", 1, 2 * time.Minute},
	} {
		ev := engine.Eval{Site: p.site, Asset: p.asset, Metric: p.metric, Value: p.v, TS: testNow.Add(-p.ago)}
		if _, err := en.Observe(ev, p.rule); err != nil {
			t.Fatal(err)
		}
	}
	return en
}

func newAlertEnv(t *testing.T) (*env, *engine.Engine) {
	t.Helper()
	en := newAlertEngine(t)
	return newEnvWith(t, func(o *V1Options) { o.Alerts = en }), en
}

func decodeAlert(t *testing.T, b []byte) alertDTO {
	t.Helper()
	var a alertDTO
	if err := json.Unmarshal(b, &a); err != nil {
		t.Fatalf("cannot decode alert %s: %v", b, err)
	}
	return a
}

func (e *env) alertKeys(t *testing.T, query string) []string {
	t.Helper()
	resp, b := e.do(t, "GET", "/api/v1/alerts"+query, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET alerts%s: %d: %s", query, resp.StatusCode, b)
	}
	var l alertList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	keys := make([]string, len(l.Items))
	for i, a := range l.Items {
		keys[i] = a.RuleID + " " + a.Site + "/" + a.Asset + " " + a.State
	}
	slices.Sort(keys)
	return keys
}

func TestAlertsList(t *testing.T) {
	e, _ := newAlertEnv(t)
	firing := "temp_high " + alertSite + "/env-1 firing"
	resolved := "temp_high " + alertSite2 + "/env-1 resolved"
	pending := "door_open " + alertSite + "/door-1 pending"
	for _, c := range []struct {
		query string
		want  []string
	}{
		{"", []string{pending, firing, resolved}},
		{"?state=firing", []string{firing}},
		{"?state=firing,resolved", []string{firing, resolved}},
		{"?site=" + alertSite, []string{pending, firing}},
		{"?site=" + alertSite + "&asset=env-1", []string{firing}},
		{"?rule=temp_high", []string{firing, resolved}},
		{"?severity=critical", []string{pending}},
		{"?state=nodata", []string{}},
		{"?site=nowhere", []string{}},
	} {
		if got := e.alertKeys(t, c.query); !slices.Equal(got, c.want) {
			t.Errorf("GET /api/v1/alerts%s: got %q, want %q", c.query, got, c.want)
		}
	}

	resp, b := e.do(t, "GET", "/api/v1/alerts?state=burning", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad state: %d: %s", resp.StatusCode, b)
	}
	if er := decodeError(t, b); !slices.Equal(er.Allowed, alertStates) || !strings.Contains(er.Message, "firing") {
		t.Fatalf("bad state: unexpected error %+v", er)
	}
	resp, b = e.do(t, "GET", "/api/v1/alerts?colour=red", "")
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("unknown parameter: %d: %s", resp.StatusCode, b)
	}
}

func TestAlertGet(t *testing.T) {
	e, _ := newAlertEnv(t)
	fp := engine.Fingerprint("temp_high", alertSite, "env-1")
	resp, b := e.do(t, "GET", "/api/v1/alerts/"+fp, "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET alert: %d: %s", resp.StatusCode, b)
	}
	a := decodeAlert(t, b)
	if a.Fingerprint != fp || a.State != "firing" || a.Severity != "warning" || a.Summary != "too hot" || a.Value != 35 ||
		a.Labels["team"] != "facilities" || a.Labels["site"] != alertSite || a.Occurrence != 1 || a.Acked != nil ||
		!a.FiredAt.Equal(testNow.Add(-5*time.Minute)) {
		t.Fatalf("unexpected alert %+v", a)
	}
	resp, b = e.do(t, "GET", "/api/v1/alerts/0123456789abcdef", "")
	if resp.StatusCode != http.StatusNotFound || decodeError(t, b).Code != "unknown_alert" {
		t.Fatalf("unknown alert: %d: %s", resp.StatusCode, b)
	}
}

func TestAlertAck(t *testing.T) {
	e, en := newAlertEnv(t)
	fp := engine.Fingerprint("temp_high", alertSite, "env-1")
	path := "/api/v1/alerts/" + fp + "/ack"
	body := `{"comment": "technician on the way"}`

	resp, b := e.do(t, "POST", path, body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ack without token: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", path, body, bearer("wrong")...)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("ack with a bad token: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", path, `{"note": "x"}`, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("ack with a bad body: %d: %s", resp.StatusCode, b)
	}
	if a, _ := en.Get(fp); a.Ack != nil {
		t.Fatalf("refused acks changed the alert: %+v", a.Ack)
	}

	resp, b = e.do(t, "POST", path, body, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("ack: %d: %s", resp.StatusCode, b)
	}
	a := decodeAlert(t, b)
	if a.Acked == nil || a.Acked.By != "ops" || a.Acked.Comment != "technician on the way" || !a.Acked.At.Equal(testNow) {
		t.Fatalf("ack answered %+v", a)
	}
	_, b = e.do(t, "GET", "/api/v1/alerts/"+fp, "")
	if a := decodeAlert(t, b); a.Acked == nil || a.Acked.By != "ops" {
		t.Fatalf("the alert does not show the ack: %s", b)
	}

	// A facility manager may too; the pending alert can be acknowledged.
	pfp := engine.Fingerprint("door_open", alertSite, "door-1")
	resp, b = e.do(t, "POST", "/api/v1/alerts/"+pfp+"/ack", `{}`, bearer(managerToken)...)
	if resp.StatusCode != http.StatusOK || decodeAlert(t, b).Acked.By != "facility" {
		t.Fatalf("ack by the facility manager: %d: %s", resp.StatusCode, b)
	}

	// A resolved alert is not open.
	rfp := engine.Fingerprint("temp_high", alertSite2, "env-1")
	resp, b = e.do(t, "POST", "/api/v1/alerts/"+rfp+"/ack", body, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusConflict || decodeError(t, b).Code != "alert_not_open" {
		t.Fatalf("ack of a resolved alert: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/api/v1/alerts/0123456789abcdef/ack", body, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("ack of an unknown alert: %d: %s", resp.StatusCode, b)
	}
}

func TestAlertAssign(t *testing.T) {
	e, en := newAlertEnv(t)
	fp := engine.Fingerprint("temp_high", alertSite, "env-1")
	path := "/api/v1/alerts/" + fp + "/assign"
	resp, b := e.do(t, "POST", path, `{"assignee": "mario"}`)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("assign without token: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", path, `{"assignee": "mario"}`, bearer(managerToken)...)
	if resp.StatusCode != http.StatusOK || decodeAlert(t, b).Assignee != "mario" {
		t.Fatalf("assign: %d: %s", resp.StatusCode, b)
	}
	if a, _ := en.Get(fp); a.Assignee != "mario" {
		t.Fatalf("the engine has assignee %q", a.Assignee)
	}
	resp, b = e.do(t, "POST", "/api/v1/alerts/0123456789abcdef/assign", `{"assignee": "mario"}`, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("assign of an unknown alert: %d: %s", resp.StatusCode, b)
	}
}

func (e *env) silenceIDs(t *testing.T) []string {
	t.Helper()
	resp, b := e.do(t, "GET", "/api/v1/silences", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET silences: %d: %s", resp.StatusCode, b)
	}
	var l silenceList
	if err := json.Unmarshal(b, &l); err != nil {
		t.Fatal(err)
	}
	ids := make([]string, len(l.Items))
	for i, s := range l.Items {
		ids[i] = s.ID
	}
	return ids
}

func TestSilences(t *testing.T) {
	e, en := newAlertEnv(t)
	if ids := e.silenceIDs(t); len(ids) != 0 {
		t.Fatalf("silences at start: %v", ids)
	}
	end := testNow.Add(2 * time.Hour).Format(time.RFC3339)
	body := `{"matchers": [{"label": "site", "value": "PO-001.*", "regex": true}, {"label": "severity", "value": "warning"}], "end": "` + end + `", "comment": "maintenance"}`

	resp, b := e.do(t, "POST", "/api/v1/silences", body)
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("silence without token: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/api/v1/silences", body, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("silence: %d: %s", resp.StatusCode, b)
	}
	var s silenceDTO
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	if s.ID == "" || s.CreatedBy != "ops" || s.Comment != "maintenance" || !s.Start.Equal(testNow) || len(s.Matchers) != 2 || !s.Matchers[0].Regex {
		t.Fatalf("unexpected silence %+v", s)
	}
	resp, b = e.do(t, "POST", "/api/v1/silences",
		`{"id": "door", "matchers": [{"label": "rule", "value": "door_open"}], "start": "`+testNow.Format(time.RFC3339)+`", "end": "`+end+`"}`,
		bearer(managerToken)...)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("silence with an id: %d: %s", resp.StatusCode, b)
	}
	want := []string{"door", s.ID}
	slices.Sort(want)
	if ids := e.silenceIDs(t); !slices.Equal(ids, want) {
		t.Fatalf("silences %v, want %v", ids, want)
	}
	if got := en.Silences(); len(got) != 2 {
		t.Fatalf("the engine holds %d silences", len(got))
	}

	for name, bad := range map[string]string{
		"bad regex":   `{"matchers": [{"label": "site", "value": "(", "regex": true}], "end": "` + end + `"}`,
		"no matchers": `{"matchers": [], "end": "` + end + `"}`,
		"no label":    `{"matchers": [{"label": "", "value": "x"}], "end": "` + end + `"}`,
		"no end":      `{"matchers": [{"label": "site", "value": "x"}]}`,
		"end first":   `{"matchers": [{"label": "site", "value": "x"}], "start": "` + end + `", "end": "` + testNow.Format(time.RFC3339) + `"}`,
		"bad id":      `{"id": "a/b", "matchers": [{"label": "site", "value": "x"}], "end": "` + end + `"}`,
		"bad field":   `{"matchers": [{"label": "site", "value": "x"}], "end": "` + end + `", "until": "never"}`,
	} {
		resp, b := e.do(t, "POST", "/api/v1/silences", bad, bearer(operatorToken)...)
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %d: %s", name, resp.StatusCode, b)
		}
	}
	if got := en.Silences(); len(got) != 2 {
		t.Fatalf("refused silences changed the engine: %d silences", len(got))
	}

	resp, b = e.do(t, "DELETE", "/api/v1/silences/door", "")
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("DELETE without token: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "DELETE", "/api/v1/silences/door", "", bearer(operatorToken)...)
	if resp.StatusCode != http.StatusNoContent || len(b) != 0 {
		t.Fatalf("DELETE: %d: %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "DELETE", "/api/v1/silences/door", "", bearer(operatorToken)...)
	if resp.StatusCode != http.StatusNotFound || decodeError(t, b).Code != "unknown_silence" {
		t.Fatalf("DELETE unknown: %d: %s", resp.StatusCode, b)
	}
	if ids := e.silenceIDs(t); !slices.Equal(ids, []string{s.ID}) {
		t.Fatalf("silences after DELETE %v", ids)
	}
}

// TestAlertsNotMounted: without an AlertStore the routes are not there.
func TestAlertsNotMounted(t *testing.T) {
	e := newEnv(t)
	assertNotMounted(t, e, "GET /api/v1/alerts", "GET /api/v1/silences", "POST /api/v1/silences")
}

// assertNotMounted checks that optional routes answer 404 when their
// dependency is not given, even to an operator.
func assertNotMounted(t *testing.T, e *env, routes ...string) {
	t.Helper()
	for _, m := range routes {
		method, path, _ := strings.Cut(m, " ")
		req, err := http.NewRequest(method, e.base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+operatorToken)
		resp, err := noRedirects.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Fatalf("%s not mounted: %d, want 404", m, resp.StatusCode)
		}
	}
}
