package api

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// BenchmarkListSites lists a programme-sized fleet (4,800 post offices,
// 250 coworking spaces) with and without the status filter, which reads
// every site's live state.
func BenchmarkListSites(b *testing.B) {
	reg, _, err := registry.Generate(registry.GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	live := newFakeLive(b, reg)
	api := &v1{o: V1Options{Fleet: reg, Live: live, Now: func() time.Time { return testNow }}}
	for _, q := range []string{"", "?asset_type=pv&limit=100", "?status=unknown&limit=1000", "?q=pv-1"} {
		b.Run(q, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/api/v1/sites"+q, nil)
			b.ReportAllocs()
			for b.Loop() {
				rec := httptest.NewRecorder()
				api.listSites(rec, req)
				if rec.Code != http.StatusOK {
					b.Fatalf("unexpected status %d: %s", rec.Code, rec.Body)
				}
			}
		})
	}
}
