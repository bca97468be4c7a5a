package polisds_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// column is field name of fr, each value as text (a nil pointer as "").
func column(t *testing.T, fr *data.Frame, name string) []string {
	t.Helper()
	f, i := fr.FieldByName(name)
	if i < 0 {
		t.Fatalf("frame %s has no field %s", fr.Name, name)
	}
	var out []string
	for j := range f.Len() {
		v, ok := f.ConcreteAt(j)
		switch {
		case !ok:
			out = append(out, "")
		default:
			out = append(out, fmt.Sprint(v))
		}
	}
	return out
}

func withAPI(t *testing.T, fx *fixture) *fakeAPI {
	t.Helper()
	api := startAPI(t, "tok")
	fx.apiURL = api.URL
	fx.updated = fx.updated.Add(time.Second)
	return api
}

func TestMilestones(t *testing.T) {
	fx := newFixture(t)
	now := time.Now()
	if r := fx.query(t, map[string]any{"queryType": "milestones"}, now.Add(-time.Hour), now, time.Minute); r.Error == nil ||
		!strings.Contains(r.Error.Error(), "apiUrl") {
		t.Errorf("without apiUrl: %v", r.Error)
	}
	withAPI(t, fx)
	fx.secure = map[string]string{"apiToken": "tok"}
	frs := mustOK(t, fx.query(t, map[string]any{"queryType": "milestones"}, now.Add(-time.Hour), now, time.Minute))
	fr := frs[0]
	if got := strings.Join(column(t, fr, "id"), ","); got != "evc-installed,sites-coworking" {
		t.Errorf("ids %s", got)
	}
	for name, want := range map[string]string{"title": "EV chargers installed,Coworking spaces open", "current": "1200,260",
		"target": "5000,250", "expected": "1500,250", "percent": "24,104", "status": "at_risk,achieved"} {
		if got := strings.Join(column(t, fr, name), ","); got != want {
			t.Errorf("%s: %s, want %s", name, got, want)
		}
	}
	frs = mustOK(t, fx.query(t, map[string]any{"queryType": "milestones", "lines": []string{"spazi_per_italia"}}, now.Add(-time.Hour), now, time.Minute))
	if got := strings.Join(column(t, frs[0], "id"), ","); got != "sites-coworking" {
		t.Errorf("by line: %s", got)
	}
	fx.secure = map[string]string{"apiToken": "wrong"}
	fx.updated = fx.updated.Add(time.Second)
	if r := fx.query(t, map[string]any{"queryType": "milestones"}, now.Add(-time.Hour), now, time.Minute); r.Error == nil ||
		!strings.Contains(r.Error.Error(), "401") {
		t.Errorf("bad token: %v", r.Error)
	}
}

func TestTwin(t *testing.T) {
	fx := newFixture(t)
	withAPI(t, fx)
	fx.secure = map[string]string{"apiToken": "tok"}
	now := time.Now()
	q := func(m map[string]any) *data.Frame {
		t.Helper()
		m["queryType"] = "twin"
		return mustOK(t, fx.query(t, m, now.Add(-time.Hour), now, time.Minute))[0]
	}
	fr := q(map[string]any{})
	for name, want := range map[string]string{"site": "PO-1,PO-2,PO-3", "status": "fault,stale,unknown", "region": "Piemonte,Lombardia,Piemonte",
		"latitude": "45.07,45.46,44.9", "assets": "4,1,0", "online": "3,0,0", "fault": "1,0,0"} {
		if got := strings.Join(column(t, fr, name), ","); got != want {
			t.Errorf("sites %s: %s, want %s", name, got, want)
		}
	}
	fr = q(map[string]any{"region": "Piemonte", "kind": "post_office", "live": true})
	for name, want := range map[string]string{"site": "PO-1,PO-3", "pv_power_kw": "3.5,3.5", "temp_c": "21.5,21.5"} {
		if got := strings.Join(column(t, fr, name), ","); got != want {
			t.Errorf("live %s: %s, want %s", name, got, want)
		}
	}
	fr = q(map[string]any{"format": "assets", "province": "TO"})
	for name, want := range map[string]string{"asset": "env-1,evc-1,meter-1,pv-1", "type": "env,evc,meter,pv", "status": "online,fault,online,online"} {
		if got := strings.Join(column(t, fr, name), ","); got != want {
			t.Errorf("assets %s: %s, want %s", name, got, want)
		}
	}
	fr = q(map[string]any{"format": "assets", "site": "PO-2"})
	if got := strings.Join(column(t, fr, "asset"), ","); got != "env-1" {
		t.Errorf("one site's assets: %s", got)
	}
	if r := fx.query(t, map[string]any{"queryType": "twin", "kind": "castle"}, now.Add(-time.Hour), now, time.Minute); r.Error == nil ||
		!strings.Contains(r.Error.Error(), "post_office") {
		t.Errorf("bad kind: %v", r.Error)
	}
	if r := fx.query(t, map[string]any{"queryType": "twin", "format": "assets", "site": "nowhere"}, now.Add(-time.Hour), now, time.Minute); r.Error == nil ||
		!strings.Contains(r.Error.Error(), "404") {
		t.Errorf("unknown site: %v", r.Error)
	}
}

func TestVariables(t *testing.T) {
	fx := newFixture(t)
	withAPI(t, fx)
	fx.secure = map[string]string{"apiToken": "tok"}
	now := time.Now()
	for _, c := range []struct {
		q    map[string]any
		want string
	}{
		{map[string]any{"variable": "regions"}, "Lombardia,Piemonte"},
		{map[string]any{"variable": "provinces", "region": "Piemonte"}, "AT,TO"},
		{map[string]any{"variable": "provinces", "region": "$__all"}, "AT,MI,TO"},
		{map[string]any{"variable": "sites", "region": "Piemonte"}, "PO-1,PO-3"},
		{map[string]any{"variable": "sites", "region": "Piemonte", "province": "AT"}, "PO-3"},
		{map[string]any{"variable": "sites"}, "PO-1,PO-2"}, // with telemetry, from ClickHouse
		{map[string]any{"variable": "assets", "site": "PO-1"}, "env-1,meter-1"},
		{map[string]any{"variable": "metrics", "site": "PO-1", "asset": "meter-1"}, "energy_kwh"},
		{map[string]any{"variable": "metrics", "site": "nowhere"}, ""},
	} {
		c.q["queryType"] = "variable"
		frs := mustOK(t, fx.query(t, c.q, now.Add(-time.Hour), now, time.Minute))
		if len(frs) != 1 || len(frs[0].Fields) != 1 {
			t.Fatalf("%v: frames %v", c.q, frs)
		}
		if got := strings.Join(column(t, frs[0], "value"), ","); got != c.want {
			t.Errorf("%v: %s, want %s", c.q, got, c.want)
		}
	}
	if r := fx.query(t, map[string]any{"queryType": "variable", "variable": "planets"}, now.Add(-time.Hour), now, time.Minute); r.Error == nil {
		t.Error("unknown variable accepted")
	}
}

func TestAdhocFilters(t *testing.T) {
	fx := newFixture(t)
	withAPI(t, fx)
	fx.secure = map[string]string{"apiToken": "tok"}
	from, to := fx.t0, fx.t0.Add(2*time.Minute)
	names := func(filters ...map[string]string) string {
		t.Helper()
		frs := mustOK(t, fx.query(t, map[string]any{"queryType": "timeseries", "adhocFilters": filters}, from, to, 10*time.Second))
		var out []string
		for _, fr := range frs {
			out = append(out, fr.Name)
		}
		return strings.Join(out, ",")
	}
	for _, c := range []struct {
		filters []map[string]string
		want    string
	}{
		{nil, "PO-1/env-1/temp_c,PO-1/meter-1/energy_kwh,PO-2/env-1/temp_c"},
		{[]map[string]string{{"key": "site", "operator": "=", "value": "PO-2"}}, "PO-2/env-1/temp_c"},
		{[]map[string]string{{"key": "site", "operator": "!=", "value": "PO-2"}, {"key": "metric", "operator": "=~", "value": "temp.*"}}, "PO-1/env-1/temp_c"},
		{[]map[string]string{{"key": "asset", "operator": "!~", "value": "env-.*"}}, "PO-1/meter-1/energy_kwh"},
		{[]map[string]string{{"key": "region", "operator": "=", "value": "Lombardia"}}, "PO-2/env-1/temp_c"},
		{[]map[string]string{{"key": "region", "operator": "!=", "value": "Lombardia"}, {"key": "asset", "operator": "=", "value": "env-1"}}, "PO-1/env-1/temp_c"},
		{[]map[string]string{{"key": "region", "operator": "=", "value": "Sardegna"}}, ""},
	} {
		if got := names(c.filters...); got != c.want {
			t.Errorf("%v: %s, want %s", c.filters, got, c.want)
		}
	}
	for _, bad := range []map[string]string{{"key": "colour", "operator": "=", "value": "x"}, {"key": "site", "operator": "<", "value": "x"},
		{"key": "region", "operator": "=~", "value": "P.*"}} {
		r := fx.query(t, map[string]any{"queryType": "timeseries", "adhocFilters": []map[string]string{bad}}, from, to, 10*time.Second)
		if r.Error == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}
