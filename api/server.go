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
// The server's limits (timeouts, body sizes per route, streams per client
// and in total, failed token checks per client) are Options fields with
// Default* values (Limits, embedded in Options); limits.go and
// streamhub.go enforce them.
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
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultAddr is where the HTTP API and the portal listen by default.
const DefaultAddr = "127.0.0.1:8080"

// The server's limits by default (Limits; README, "API": the table).
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 10 * time.Second
	// DefaultReadTimeout bounds reading a whole request, headers and body
	// (the registry import gets BulkTimeout once its token is checked).
	// Once the body is read, the handler's own work is not bounded by it.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds writing an answer, from the end of the
	// request's headers (the registry import and export and rule
	// backtests get BulkTimeout; the stream bounds each write by
	// StreamWriteTimeout instead).
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout is how long a keep-alive connection may wait for
	// its next request.
	DefaultIdleTimeout = 2 * time.Minute
	// DefaultBulkTimeout bounds reading and answering the registry import
	// and export and a rule backtest.
	DefaultBulkTimeout = 5 * time.Minute
	// DefaultStreamWriteTimeout bounds each write to a stream client; a
	// client that does not take an event (or heartbeat) within it is
	// disconnected as too slow.
	DefaultStreamWriteTimeout = 20 * time.Second
	// DefaultMaxBodyBytes bounds the JSON and YAML bodies of every route
	// but the registry import.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxImportBytes bounds the CSV of a registry import (some
	// 200,000 asset rows).
	DefaultMaxImportBytes = 64 << 20
	// DefaultMaxStreams bounds the streams open at once on this instance.
	DefaultMaxStreams = 1000
	// DefaultMaxStreamsPerClient bounds the streams open at once from one
	// client address (an IPv6 client is its /64).
	DefaultMaxStreamsPerClient = 8
	// DefaultStreamBuffer is how many updates a stream client may lag
	// behind before it loses some (counted in
	// polis_api_stream_dropped_total).
	DefaultStreamBuffer = 256
	// DefaultAuthFailuresPerMinute is how many failed token checks one
	// client address may make per minute (a bucket of that many, refilled
	// evenly); beyond, it gets 429 before any hash is computed.
	DefaultAuthFailuresPerMinute = 10
)

// Options configure the HTTP server.
type Options struct {
	Addr string // default DefaultAddr
	// Listener, if set, is served instead of listening on Addr (app passes
	// a TLS listener for HTTPS); Addr then names it in logs.
	Listener net.Listener
	Checks   map[string]Check
	Gatherer prometheus.Gatherer
	// Registerer gets the API's own metrics (polis_api_*); default:
	// Gatherer, when it is also a Registerer (a *prometheus.Registry is).
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Site, if set, answers every path outside the API (/api/, /healthz,
	// /readyz, /metrics): the public portal at /. nil: such paths get the
	// API's JSON 404.
	Site http.Handler
	// Limits are the server's limits; a zero field takes its default.
	Limits
}

// Limits are the HTTP API's limits (README, "API"). A zero field takes its
// Default* value; a negative one turns the limit off.
type Limits struct {
	ReadHeaderTimeout  time.Duration // DefaultReadHeaderTimeout
	ReadTimeout        time.Duration // DefaultReadTimeout
	WriteTimeout       time.Duration // DefaultWriteTimeout
	IdleTimeout        time.Duration // DefaultIdleTimeout
	BulkTimeout        time.Duration // DefaultBulkTimeout
	StreamWriteTimeout time.Duration // DefaultStreamWriteTimeout

	MaxBodyBytes   int64 // DefaultMaxBodyBytes
	MaxImportBytes int64 // DefaultMaxImportBytes

	MaxStreams          int // DefaultMaxStreams
	MaxStreamsPerClient int // DefaultMaxStreamsPerClient
	StreamBuffer        int // DefaultStreamBuffer (not negative: zero or less is the default)

	AuthFailuresPerMinute int // DefaultAuthFailuresPerMinute

	// TrustedProxies are the reverse proxies whose X-Forwarded-For is
	// believed: a request from one of them is counted against the
	// address it forwarded for (the right-most one not itself a trusted
	// proxy). Empty (the default): the limits count the connection's
	// address and X-Forwarded-For is ignored. ParseTrustedProxies reads
	// the flag's form.
	TrustedProxies []netip.Prefix
}

// DefaultLimits returns every limit at its default (for flags to show).
func DefaultLimits() Limits { return Limits{}.withDefaults() }

// withDefaults fills in the Default* values of the zero fields; negative
// ones stay (off).
func (l Limits) withDefaults() Limits {
	set := func(p *time.Duration, def time.Duration) {
		if *p == 0 {
			*p = def
		}
	}
	set(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	set(&l.ReadTimeout, DefaultReadTimeout)
	set(&l.WriteTimeout, DefaultWriteTimeout)
	set(&l.IdleTimeout, DefaultIdleTimeout)
	set(&l.BulkTimeout, DefaultBulkTimeout)
	set(&l.StreamWriteTimeout, DefaultStreamWriteTimeout)
	if l.MaxBodyBytes == 0 {
		l.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if l.MaxImportBytes == 0 {
		l.MaxImportBytes = DefaultMaxImportBytes
	}
	if l.MaxStreams == 0 {
		l.MaxStreams = DefaultMaxStreams
	}
	if l.MaxStreamsPerClient == 0 {
		l.MaxStreamsPerClient = DefaultMaxStreamsPerClient
	}
	if l.AuthFailuresPerMinute == 0 {
		l.AuthFailuresPerMinute = DefaultAuthFailuresPerMinute
	}
	if l.StreamBuffer <= 0 {
		l.StreamBuffer = DefaultStreamBuffer
	}
	return l
}

// timeout is d for http.Server, where zero means none.
func timeout(d time.Duration) time.Duration { return max(d, 0) }

// shutdownGrace is how long Run lets requests in progress finish once its
// context ends, before it closes their connections (a variable so that
// tests need not wait 10 s).
var shutdownGrace = 10 * time.Second

// Server is the HTTP API.
type Server struct {
	o   Options // with defaults
	ln  net.Listener
	srv *http.Server
	log *slog.Logger
	m   *metrics
	v1  *v1 // once MountV1 ran
	mu  sync.Mutex
	mux *http.ServeMux
	// site answers paths outside the API (SetSite); nil: JSON 404.
	site atomic.Pointer[http.Handler]
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
	if o.Registerer == nil {
		if r, ok := o.Gatherer.(prometheus.Registerer); ok {
			o.Registerer = r
		} else {
			o.Registerer = prometheus.NewRegistry() // not exposed
		}
	}
	o.Limits = o.Limits.withDefaults()
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	ln := o.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", o.Addr); err != nil {
			return nil, fmt.Errorf("cannot listen for HTTP on %s: %w", o.Addr, err)
		}
	}
	s := &Server{o: o, ln: ln, log: o.Logger.With("component", "api"), m: m, mux: http.NewServeMux(), stopped: make(chan struct{})}
	s.mountHealth()
	notFound := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		WriteError(w, CodeNotFound, fmt.Sprintf("no such path %s; see /api/v1/ for the API", r.URL.Path))
	})
	s.mux.Handle("/api/", notFound)
	if o.Site != nil {
		s.SetSite(o.Site)
	}
	s.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if h := s.site.Load(); h != nil {
			(*h).ServeHTTP(w, r)
			return
		}
		notFound(w, r)
	})
	s.srv = &http.Server{
		Handler:           readDeadlineOnce(s.mux),
		ReadHeaderTimeout: timeout(o.ReadHeaderTimeout),
		ReadTimeout:       timeout(o.ReadTimeout),
		WriteTimeout:      timeout(o.WriteTimeout),
		IdleTimeout:       timeout(o.IdleTimeout),
	}
	return s, nil
}

// SetSite sets the handler of every path outside the API (Options.Site):
// the portal is built once the twin it shows is up, after the server.
func (s *Server) SetSite(h http.Handler) { s.site.Store(&h) }

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
