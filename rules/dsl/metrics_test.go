package dsl

import (
	"slices"
	"testing"
	"time"

	"github.com/polis-platform/polis/loadtest"
)

// DefaultMetrics must name every metric the fleet's device models send, or
// a correct rule would be refused as naming an unknown metric.
func TestDefaultMetricsCoverTheFleet(t *testing.T) {
	for _, typ := range []string{"atm", "totem", "locker", "showcase", "evc", "pv", "env", "meter", "outdoor", "desk", "room", "gateway"} {
		for _, coworking := range []bool{false, true} {
			m := loadtest.NewModel(typ, loadtest.Place{Lat: 45, Lon: 9, Coworking: coworking, Desks: 10}, 1)
			var s loadtest.Sample
			for i := range 50 { // a morning, so that daily and opening-hours metrics appear
				m.Step(time.Date(2026, 3, 2, 8+i/10, i, 0, 0, time.UTC), &s)
			}
			for _, x := range s.Metrics {
				if !slices.Contains(DefaultMetrics, x.Name) {
					t.Errorf("%s sends %q, which DefaultMetrics does not list", typ, x.Name)
				}
			}
		}
	}
}
