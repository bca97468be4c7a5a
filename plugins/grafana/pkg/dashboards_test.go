package polisds_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
)

// dashboardDir holds the provisioned dashboards (deploy/grafana).
const dashboardDir = "../../../deploy/grafana/provisioning/dashboards"

// target is what Grafana adds to every query model.
type target struct {
	RefID      string          `json:"refId"`
	Datasource json.RawMessage `json:"datasource"`
	Hide       bool            `json:"hide,omitempty"`
}

// decodeStrict decodes a target into the plugin's model of its query type,
// refusing any field the model does not know.
func decodeStrict(raw []byte) error {
	var head polisds.Query
	if err := json.Unmarshal(raw, &head); err != nil {
		return err
	}
	var v any
	switch head.QueryType {
	case "", polisds.QueryTypeTimeSeries:
		v = &struct {
			target
			polisds.TimeSeriesQuery
		}{}
	case polisds.QueryTypeAlerts:
		v = &struct {
			target
			polisds.AlertsQuery
		}{}
	case polisds.QueryTypeSQL:
		v = &struct {
			target
			polisds.SQLQuery
		}{}
	case polisds.QueryTypeMilestones:
		v = &struct {
			target
			polisds.MilestonesQuery
		}{}
	case polisds.QueryTypeTwin:
		v = &struct {
			target
			polisds.TwinQuery
		}{}
	case polisds.QueryTypeVariable:
		v = &struct {
			target
			polisds.VariableQuery
		}{}
	default:
		return fmt.Errorf("unknown queryType %q", head.QueryType)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

type dashboard struct {
	UID        string `json:"uid"`
	Title      string `json:"title"`
	Templating struct {
		List []struct {
			Name       string          `json:"name"`
			Type       string          `json:"type"`
			Datasource json.RawMessage `json:"datasource"`
			Query      json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Annotations struct {
		List []struct {
			Name   string          `json:"name"`
			Target json.RawMessage `json:"target"`
		} `json:"list"`
	} `json:"annotations"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int               `json:"id"`
	Title      string            `json:"title"`
	Type       string            `json:"type"`
	Datasource json.RawMessage   `json:"datasource"`
	Targets    []json.RawMessage `json:"targets"`
	Panels     []panel           `json:"panels"` // of a collapsed row
}

func (p panel) walk(f func(panel)) {
	f(p)
	for _, c := range p.Panels {
		c.walk(f)
	}
}

// testVariables are the values the test gives the dashboards' variables,
// as Grafana's frontend would interpolate them.
var testVariables = map[string]string{"region": "Piemonte", "site": "PO-1", "asset": "env-1", "kind": "$__all"}

func interpolate(raw []byte) []byte {
	names := make([]string, 0, len(testVariables))
	for k := range testVariables {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	s := string(raw)
	for _, k := range names {
		s = strings.ReplaceAll(s, "${"+k+"}", testVariables[k])
		s = strings.ReplaceAll(s, "$"+k, testVariables[k])
	}
	return []byte(s)
}

// TestDashboards decodes every query of every provisioned dashboard
// (panels, template variables, annotations) into the plugin's model, no
// unknown field allowed, and runs it through QueryData against the test
// ClickHouse and the fixture API: no query may answer an error.
func TestDashboards(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil || len(files) < 4 {
		t.Fatalf("dashboards in %s: %v %v", dashboardDir, files, err)
	}
	if err := decodeStrict([]byte(`{"refId":"A","queryType":"twin","regoin":"Piemonte"}`)); err == nil {
		t.Fatal("a misspelt field was accepted")
	}
	fx := newFixture(t)
	withAPI(t, fx)
	fx.secure = map[string]string{"apiToken": "tok"}
	from, to := fx.t0.Add(-24*time.Hour), time.Now()
	uids := map[string]string{}
	total := 0
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var d dashboard
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if d.UID == "" || uids[d.UID] != "" {
			t.Errorf("%s: uid %q missing or also in %s", file, d.UID, uids[d.UID])
		}
		uids[d.UID] = file
		run := func(where string, ds, raw json.RawMessage) {
			t.Helper()
			var dsRef struct{ Type, UID string }
			if len(ds) > 0 {
				if err := json.Unmarshal(ds, &dsRef); err != nil || dsRef.Type != polisds.PluginID || dsRef.UID != "polis" {
					t.Errorf("%s %s: datasource %s, want the provisioned polis", filepath.Base(file), where, ds)
				}
			}
			if err := decodeStrict(raw); err != nil {
				t.Errorf("%s %s: %v: %s", filepath.Base(file), where, err, raw)
				return
			}
			var model any
			if err := json.Unmarshal(interpolate(raw), &model); err != nil {
				t.Fatal(err)
			}
			total++
			r := fx.query(t, model, from, to, time.Minute)
			if r.Error != nil {
				t.Errorf("%s %s: %v", filepath.Base(file), where, r.Error)
				return
			}
			for _, fr := range r.Frames {
				if fr.Meta != nil {
					for _, n := range fr.Meta.Notices {
						if n.Severity.String() == "error" {
							t.Errorf("%s %s: error notice %s", filepath.Base(file), where, n.Text)
						}
					}
				}
			}
		}
		for _, v := range d.Templating.List {
			if v.Type == "query" {
				run("variable "+v.Name, v.Datasource, v.Query)
			}
		}
		for _, a := range d.Annotations.List {
			run("annotation "+a.Name, nil, a.Target)
		}
		for _, p := range d.Panels {
			p.walk(func(p panel) {
				if len(p.Targets) == 0 && p.Type != "row" {
					t.Errorf("%s panel %q has no query", filepath.Base(file), p.Title)
				}
				for i, tg := range p.Targets {
					run(fmt.Sprintf("panel %q target %d", p.Title, i), p.Datasource, tg)
				}
			})
		}
	}
	t.Logf("%d dashboards, %d queries", len(files), total)
}
