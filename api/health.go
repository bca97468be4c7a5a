package api

import (
	"context"
	"net/http"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether a dependency is reachable.
type Check func(ctx context.Context) error

// mountHealth adds the routes for probes and scrapers: liveness, readiness
// and Prometheus metrics.
func (s *Server) mountHealth() {
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(s.o.Gatherer, promhttp.HandlerOpts{}))
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	names := make([]string, 0, len(s.o.Checks))
	for n := range s.o.Checks {
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]string{}
	status := http.StatusOK
	for _, n := range names {
		if err := s.o.Checks[n](ctx); err != nil {
			out[n] = err.Error()
			status = http.StatusServiceUnavailable
			continue
		}
		out[n] = "ok"
	}
	writeJSON(w, status, map[string]any{"ready": status == http.StatusOK, "checks": out})
}
