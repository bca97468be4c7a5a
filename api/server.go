// Package api serves the HTTP API of the platform: the server (server.go),
// health, readiness and Prometheus metrics (health.go), and the v1 API
// mounted by MountV1 (twin.go; its contract is openapi.yaml, served at
// /api/v1/openapi.json). Every error is written through the catalogue of
// errors.go.
//
// v1 API routes (all JSON; errors are Error):
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
// and, when their dependencies are given, the registry, alert, rule and
// milestone routes listed in openapi.yaml.
//
// Its dependencies are the interfaces Fleet, Live and History (and
// Registrar, AlertStore, RuleStore, MilestoneSource), declared here and
// implemented by internal/platform.
package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultAddr is where the HTTP API and the portal listen by default.
const DefaultAddr = "127.0.0.1:8080"

// Options configure the HTTP server.
type Options struct {
	Addr     string // default DefaultAddr
	Checks   map[string]Check
	Gatherer prometheus.Gatherer
	Logger   *slog.Logger
}

// shutdownGrace is how long Run lets requests in progress finish once its
// context ends, before it closes their connections (a variable so that
// tests need not wait 10 s).
var shutdownGrace = 10 * time.Second

// Server is the HTTP API.
type Server struct {
	o   Options
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	mu  sync.Mutex
	mux *http.ServeMux
	// served is set by Run; Close before it only closes the
	// listener.
	served atomic.Bool
	// stopped is closed when http.Server.Serve returns, with its error
	// (nil after Close or Run's shutdown) in serveErr.
	stopped  chan struct{}
	serveErr error
}

// New listens on o.Addr, so that Addr is known at once; Run
// starts answering.
func New(o Options) (*Server, error) {
	if o.Addr == "" {
		o.Addr = DefaultAddr
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
	s := &Server{o: o, ln: ln, log: o.Logger.With("component", "api"), mux: http.NewServeMux(), stopped: make(chan struct{})}
	s.mountHealth()
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, CodeNotFound, fmt.Sprintf("no such path %s; see /api/v1/ for the API", r.URL.Path))
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

// start serves on the listener in the background; stopped is closed when
// it stops.
func (s *Server) start() {
	s.served.Store(true)
	s.log.Info("HTTP API listening", "addr", s.Addr())
	go func() {
		err := s.srv.Serve(s.ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		}
		s.serveErr = err
		close(s.stopped)
	}()
}

// Run serves on the listener New bound until ctx ends, then shuts down:
// requests in progress get 10 seconds to finish (streams end at once),
// then their connections are closed. It returns nil once stopped, or the
// error the listener failed with.
func (s *Server) Run(ctx context.Context) error {
	s.start()
	select {
	case <-s.stopped:
		if s.serveErr != nil {
			return fmt.Errorf("HTTP server on %s failed: %w", s.Addr(), s.serveErr)
		}
		return nil // stopped by Close
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		s.log.Warn("HTTP requests still running after the grace period; closing their connections", "grace", shutdownGrace, "err", err)
		_ = s.srv.Close()
	}
	<-s.stopped
	s.log.Info("HTTP API stopped")
	return nil
}

// Close releases the listener of a server that never ran (a start that
// failed after New), or stops a running one at once, without waiting for
// requests in progress.
func (s *Server) Close() error {
	if !s.served.Load() {
		return s.ln.Close()
	}
	return s.srv.Close()
}
