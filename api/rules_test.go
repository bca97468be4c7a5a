package api

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/twin/registry"
)

const fileRules = `groups:
  - name: env
    rules:
      - id: file_hot
        scope: {asset_types: [env]}
        expr: last("temp_c") > 30
        severity: warning
`

// newRulesEnv runs a real rules service (a kfake cluster for
// polis.rules.v1, a watched directory) behind the API. Backtests replay
// points from memory: ClickHouse's replay is tested in internal/platform.
func newRulesEnv(t *testing.T, history []storage.Point) (*env, *rules.Service, string) {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, kafka.Topics()...),
		kfake.ListenFn(func(n, a string) (net.Listener, error) {
			_, port, _ := net.SplitHostPort(a)
			return net.Listen(n, net.JoinHostPort("127.0.0.1", port))
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "env.yaml"), []byte(fileRules), 0o644); err != nil {
		t.Fatal(err)
	}
	reg := testFleet(t)
	svc, err := rules.New(rules.Options{Dir: dir, Registry: reg, Producer: prod, Brokers: c.ListenAddrs(), Watch: true,
		Scanner: func(ctx context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error) {
			n := 0
			for _, p := range history {
				if p.TS.Before(q.From) || !p.TS.Before(q.To) {
					continue
				}
				n++
				if err := fn(p); err != nil {
					return n, err
				}
			}
			return n, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = svc.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-svc.Ready():
	case <-time.After(30 * time.Second):
		t.Fatal("the rules service did not replay polis.rules.v1")
	}
	return newEnvWith(t, func(o *V1Options) { o.Rules = svc }), svc, dir
}

func yamlBody(token string) []string {
	return append(bearer(token), "Content-Type", "application/yaml")
}

func TestRules_CRUDAndVersions(t *testing.T) {
	e, _, _ := newRulesEnv(t, nil)
	var list ruleList
	_, b := e.do(t, "GET", "/api/v1/rules", "")
	mustJSON(t, b, &list)
	if len(list.Items) != 1 || list.Items[0].ID != "file_hot" || !strings.HasSuffix(list.Items[0].Origin, "env.yaml") ||
		strings.Join(list.Items[0].Metrics, ",") != "temp_c" {
		t.Fatalf("rules = %+v", list.Items)
	}

	rule := "id: api_cold\nscope: {asset_types: [env]}\nexpr: last(\"temp_c\") < 5\nseverity: info\n"
	for _, tc := range []struct {
		name, path, body string
		hdr              []string
		status           int
		want             string
	}{
		{"no token", "/api/v1/rules/api_cold", rule, nil, 401, "Bearer"},
		{"facility manager", "/api/v1/rules/api_cold", rule, yamlBody(managerToken), 403, "role operator"},
		{"id differs", "/api/v1/rules/other", rule, yamlBody(operatorToken), 400, "differs"},
		{"file rule", "/api/v1/rules/file_hot", strings.Replace(rule, "api_cold", "file_hot", 1), yamlBody(operatorToken), 409, "change the file"},
		{"bad expression", "/api/v1/rules/api_cold", strings.Replace(rule, `last("temp_c") < 5`, `last("temp_c") < `, 1), yamlBody(operatorToken), 400, "line 3, column"},
		{"unknown metric", "/api/v1/rules/api_cold", strings.Replace(rule, "temp_c", "tmp_c", 1), yamlBody(operatorToken), 400, `did you mean \"temp_c\"`},
		{"empty", "/api/v1/rules/api_cold", " ", yamlBody(operatorToken), 400, "send the rule"},
		{"too large", "/api/v1/rules/api_cold", rule + "# " + strings.Repeat("x", DefaultMaxBodyBytes), yamlBody(operatorToken), 413, `"code":"too_large"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, b := e.do(t, "PUT", tc.path, tc.body, tc.hdr...)
			if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
				t.Fatalf("PUT = %d %s, want %d with %q", resp.StatusCode, b, tc.status, tc.want)
			}
		})
	}
	// The fault's position is in the text sent.
	_, b = e.do(t, "PUT", "/api/v1/rules/api_cold", strings.Replace(rule, "< 5", "< 5 &&", 1), yamlBody(operatorToken)...)
	var refused ruleRefused
	mustJSON(t, b, &refused)
	if len(refused.Errors) != 1 || refused.Errors[0].Line != 3 {
		t.Fatalf("refusal = %+v", refused)
	}

	resp, b := e.do(t, "PUT", "/api/v1/rules/api_cold?comment=first", rule, append(yamlBody(operatorToken), "If-Match", `"0"`)...)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"1"` {
		t.Fatalf("create = %d %s", resp.StatusCode, b)
	}
	resp, _ = e.do(t, "PUT", "/api/v1/rules/api_cold", rule, append(yamlBody(operatorToken), "If-Match", `"0"`)...)
	if resp.StatusCode != http.StatusPreconditionFailed {
		t.Fatalf("a second create = %d, want 412", resp.StatusCode)
	}
	changed := strings.Replace(rule, "< 5", "< 4", 1)
	resp, b = e.do(t, "PUT", "/api/v1/rules/api_cold", changed, append(yamlBody(operatorToken), "If-Match", `"1"`)...)
	if resp.StatusCode != 200 || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("change = %d %s", resp.StatusCode, b)
	}
	var got rules.RuleInfo
	resp, b = e.do(t, "GET", "/api/v1/rules/api_cold", "")
	mustJSON(t, b, &got)
	if got.Origin != "api" || got.Version != 2 || got.Expr != `last("temp_c") < 4` || resp.Header.Get("ETag") != `"2"` {
		t.Fatalf("rule = %+v", got)
	}

	resp, b = e.do(t, "DELETE", "/api/v1/rules/api_cold?comment=gone", "", bearer(operatorToken)...)
	if resp.StatusCode != 200 {
		t.Fatalf("delete = %d %s", resp.StatusCode, b)
	}
	if resp, _ = e.do(t, "GET", "/api/v1/rules/api_cold", ""); resp.StatusCode != 404 {
		t.Fatalf("GET after delete = %d", resp.StatusCode)
	}
	if resp, _ = e.do(t, "DELETE", "/api/v1/rules/api_cold", "", bearer(operatorToken)...); resp.StatusCode != 404 {
		t.Fatalf("second delete = %d", resp.StatusCode)
	}
	var vs versionList
	_, b = e.do(t, "GET", "/api/v1/rules/api_cold/versions", "")
	mustJSON(t, b, &vs)
	if len(vs.Items) != 3 || vs.Items[0].Comment != "first" || vs.Items[0].By != "ops" || !vs.Items[2].Deleted || vs.Items[1].Source != changed {
		t.Fatalf("versions = %+v", vs.Items)
	}
}

func TestRules_DirectoryReload(t *testing.T) {
	e, _, dir := newRulesEnv(t, nil)
	path := filepath.Join(dir, "env.yaml")
	// A broken file is refused whole: the previous rules keep running.
	if err := os.WriteFile(path, []byte(strings.Replace(fileRules, `> 30`, `> `, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	var list ruleList
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		_, b := e.do(t, "GET", "/api/v1/rules", "")
		mustJSON(t, b, &list)
		return list.ReloadError != ""
	}, "the broken file was not reported")
	if !strings.Contains(list.ReloadError, "env.yaml:6:") || len(list.Items) != 1 {
		t.Fatalf("after a broken save: %+v", list)
	}
	fixed := strings.Replace(fileRules, `> 30`, `> 31`, 1) + `      - id: file_humid
        expr: last("humidity_pct") > 80
        severity: info
`
	if err := os.WriteFile(path, []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 10*time.Second, 50*time.Millisecond, func() bool {
		_, b := e.do(t, "GET", "/api/v1/rules", "")
		list = ruleList{}
		mustJSON(t, b, &list)
		return list.ReloadError == "" && len(list.Items) == 2
	}, "the fixed file was not loaded: %+v", &list)
	var vs versionList
	_, b := e.do(t, "GET", "/api/v1/rules/file_hot/versions", "")
	mustJSON(t, b, &vs)
	if len(vs.Items) != 2 || !strings.Contains(vs.Items[1].Source, "> 31") {
		t.Fatalf("file versions = %+v", vs.Items)
	}
}

func TestRules_Backtest(t *testing.T) {
	reg := testFleet(t)
	var site *registry.Site
	var env string
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if a.Type == "env" && env == "" {
				site, env = s, a.ID
			}
		}
	}
	if site == nil {
		t.Fatal("no env asset in the test fleet")
	}
	start := testNow.Add(-6 * time.Hour)
	var hist []storage.Point
	for i := range 120 { // a point a minute; hot from minute 30 to 59
		v := 22.0
		if i >= 30 && i < 60 {
			v = 35
		}
		hist = append(hist, storage.Point{Site: site.ID, Asset: env, Metric: "temp_c", TS: start.Add(time.Duration(i) * time.Minute), Value: v})
	}
	e, _, _ := newRulesEnv(t, hist)
	body := func(extra string) string {
		return `{"from": "` + start.Format(time.RFC3339) + `", "to": "` + start.Add(3*time.Hour).Format(time.RFC3339) + `"` + extra + `}`
	}
	resp, b := e.do(t, "POST", "/api/v1/rules/backtest", body(`, "rule_ids": ["file_hot"]`), bearer(managerToken)...)
	if resp.StatusCode != 200 {
		t.Fatalf("backtest = %d %s", resp.StatusCode, b)
	}
	var res rules.BacktestResult
	mustJSON(t, b, &res)
	if res.Points != 120 || len(res.Alerts) != 1 || res.PerRule["file_hot"] != 1 {
		t.Fatalf("backtest = %+v", res)
	}
	a := res.Alerts[0]
	if !a.FiredAt.Equal(start.Add(30*time.Minute)) || !a.ResolvedAt.Equal(start.Add(60*time.Minute)) || a.Asset != env {
		t.Fatalf("occurrence = %+v", a)
	}
	// A rule not saved yet, with for: it fires 10 minutes later.
	rule := `id: draft\nscope: {asset_types: [env]}\nexpr: last(\"temp_c\") > 30\nfor: 10m\nseverity: info`
	_, b = e.do(t, "POST", "/api/v1/rules/backtest", body(`, "rule": "`+rule+`"`), bearer(operatorToken)...)
	mustJSON(t, b, &res)
	if len(res.Alerts) != 1 || !res.Alerts[0].FiredAt.Equal(start.Add(40*time.Minute)) {
		t.Fatalf("draft backtest = %+v", res)
	}
	for _, tc := range []struct {
		body   string
		hdr    []string
		status int
		want   string
	}{
		{body(`, "rule_ids": ["file_hot"]`), nil, 401, "Bearer"},
		{body(`, "rule_ids": ["nope"]`), bearer(operatorToken), 404, "nope"},
		{body(``), bearer(operatorToken), 400, "rule_ids"},
		{body(`, "rule": "id: x\nexpr: 1 +\nseverity: info"`), bearer(operatorToken), 400, "line 2"},
		{`{"from": "yesterday", "to": "now", "rule_ids": ["file_hot"]}`, bearer(operatorToken), 400, "RFC 3339"},
		{`{"from": "2026-01-01T00:00:00Z", "to": "2026-03-01T00:00:00Z", "rule_ids": ["file_hot"]}`, bearer(operatorToken), 400, "31 days"},
	} {
		resp, b := e.do(t, "POST", "/api/v1/rules/backtest", tc.body, tc.hdr...)
		if resp.StatusCode != tc.status || !strings.Contains(string(b), tc.want) {
			t.Errorf("backtest %s = %d %s, want %d with %q", tc.body, resp.StatusCode, b, tc.status, tc.want)
		}
	}
}

func TestRules_Check(t *testing.T) {
	e, _, _ := newRulesEnv(t, nil)
	resp, b := e.do(t, "POST", "/api/v1/rules/check", "id: x\nexpr: silent_for() > 60\nseverity: info\n", "Content-Type", "application/yaml")
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"clock":true`) {
		t.Fatalf("check = %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/api/v1/rules/check", "id: x\nexpr: silent_fr() > 60\nseverity: info\n", "Content-Type", "application/yaml")
	if resp.StatusCode != 400 || !strings.Contains(string(b), "did you mean silent_for") {
		t.Fatalf("check = %d %s", resp.StatusCode, b)
	}
}

func mustJSON(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("cannot decode %s: %v", b, err)
	}
}
