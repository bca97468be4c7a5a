// Package api serves the HTTP API of the platform. For now: health,
// readiness and Prometheus metrics; the twin, rules and portal APIs join it.
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
}

// WriteError writes an API error.
func WriteError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, Error{Code: code, Message: msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
