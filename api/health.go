// Package api serves the HTTP API of the platform: health, readiness and
// Prometheus metrics (this file), and the twin API mounted by MountTwin
// (twin.go; its contract is openapi.yaml, served at /api/v1/openapi.json).
//
// Twin API routes (all JSON; errors are Error):
//
//	GET   /api/v1/sites                                   filters, pagination (open)
//	GET   /api/v1/sites/{site}                            registry data + live state (open)
//	GET   /api/v1/sites/{site}/assets/{asset}             the asset's twin, ETag = desired version (open)
//	PATCH /api/v1/sites/{site}/assets/{asset}/desired     If-Match required (operator, facility_manager)
//	POST  /api/v1/sites/{site}/assets/{asset}/lifecycle   {"to": ..., "cause": ...} (operator)
//	GET   /api/v1/sites/{site}/assets/{asset}/history     ?metric=&from=&to=&step= (open)
//	GET   /api/v1/stream                                  Server-Sent Events (open)
//	GET   /api/v1/openapi.json                            the contract
//
// Its dependencies are the interfaces Fleet, Live and History, declared
// here and implemented by internal/platform.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether a dependency is reachable.
type Check func(ctx context.Context) error

// Options configure the HTTP server.
type Options struct {
	Addr     string // default 127.0.0.1:8080
	Checks   map[string]Check
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// Server is the HTTP API.
type Server struct {
	o    Options
	ln   net.Listener
	srv  *http.Server
	log  *slog.Logger
	done chan error
	mu   sync.Mutex
	mux  *http.ServeMux
	// served is set by Serve; Shutdown before it only closes the listener.
	served atomic.Bool
}

// New listens on o.Addr; Serve starts answering.
func New(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Gatherer == nil {
		o.Gatherer = prometheus.NewRegistry()
	}
	ln, err := net.Listen("tcp", o.Addr)
	if err != nil {
		return nil, fmt.Errorf("cannot listen for HTTP on %s: %w", o.Addr, err)
	}
	s := &Server{o: o, ln: ln, log: o.Logger.With("component", "api"), mux: http.NewServeMux(), done: make(chan error, 1)}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	s.mux.HandleFunc("GET /readyz", s.ready)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Gatherer, promhttp.HandlerOpts{}))
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, http.StatusNotFound, "not_found", fmt.Sprintf("no such path %s; see /api/v1/ for the API", r.URL.Path))
	})
	s.srv = &http.Server{Handler: s.mux, ReadHeaderTimeout: 10 * time.Second}
	return s, nil
}

// Handle adds a route (other packages mount their APIs here).
func (s *Server) Handle(pattern string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mux.Handle(pattern, h)
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers requests in the background.
func (s *Server) Serve() {
	s.served.Store(true)
	s.log.Info("HTTP API listening", "addr", s.Addr())
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.done <- err
	}()
}

// Shutdown stops the server, letting requests in progress finish.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.served.Load() {
		// Start failed before serving: only the listener is open.
		return s.ln.Close()
	}
	if err := s.srv.Shutdown(ctx); err != nil {
		return fmt.Errorf("cannot stop HTTP server: %w", err)
	}
	return <-s.done
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

// Error is the JSON body of every API error.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	// Allowed lists what the caller may ask for instead, when the error is
	// about a choice (the lifecycle states an asset may move to).
	Allowed []string `json:"allowed,omitempty"`
}

// WriteError writes an API error.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Error{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // messages quote <token>, <n>: keep them readable
	_ = enc.Encode(v)
}
