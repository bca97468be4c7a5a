package api

import (
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

type milestoneFunc func(time.Time) []milestone.Progress

func (f milestoneFunc) Milestones(now time.Time) []milestone.Progress { return f(now) }

func TestMilestones(t *testing.T) {
	ms, err := milestone.Load("m.yaml", []byte(`milestones:
  - id: atm_operational
    title: ATMs in service
    line: sportello_unico
    count: assets
    where: asset.type == "atm" && asset.lifecycle == "operational"
    target: 4
    deadline: 2026-12-31
    source: {fact: F16, url: "https://example.org/f16"}
`))
	if err != nil {
		t.Fatal(err)
	}
	var reg *registry.Registry
	e := newEnvWith(t, func(o *V1Options) {
		reg = o.Fleet.(*registry.Registry)
		o.Milestones = milestoneFunc(func(now time.Time) []milestone.Progress {
			return milestone.Compute(ms, reg.Sites(), func(site, asset string) (lifecycle.State, bool) {
				return lifecycle.Operational, strings.HasPrefix(asset, "atm-")
			}, now)
		})
	})
	resp, b := e.do(t, "GET", "/api/v1/milestones", "")
	var out milestoneList
	mustJSON(t, b, &out)
	atms := 0
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			if a.Type == "atm" {
				atms++
			}
		}
	}
	if resp.StatusCode != 200 || len(out.Items) != 1 || out.Items[0].Current != atms || atms == 0 || out.Items[0].Status != milestone.StatusAchieved {
		t.Fatalf("milestones = %d %s (atms %d)", resp.StatusCode, b, atms)
	}
}
