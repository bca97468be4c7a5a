package api

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The limits of the HTTP API (Options, README "API"): timeouts on the
// server and per route, body sizes per route, streams per client and in
// total, failed token checks per client; this file holds what they share.

// Limit names, as polis_api_limited_total labels them.
const (
	limitStreams          = "streams"
	limitStreamsPerClient = "streams_per_client"
	limitAuthFailures     = "auth_failures"
	limitBodySize         = "body_size"
	limitReadTimeout      = "read_timeout"
)

// metrics are the API's own.
type metrics struct {
	streams prometheus.Gauge
	dropped prometheus.Counter
	slow    prometheus.Counter
	limited *prometheus.CounterVec
}

func newMetrics(r prometheus.Registerer) (*metrics, error) {
	m := &metrics{}
	var err error
	if m.streams, err = register(r, prometheus.NewGauge(prometheus.GaugeOpts{Name: "polis_api_streams",
		Help: "Event streams open."})); err != nil {
		return nil, err
	}
	if m.dropped, err = register(r, prometheus.NewCounter(prometheus.CounterOpts{Name: "polis_api_stream_dropped_total",
		Help: "Twin updates a stream client lost because it lagged a whole buffer behind."})); err != nil {
		return nil, err
	}
	if m.slow, err = register(r, prometheus.NewCounter(prometheus.CounterOpts{Name: "polis_api_stream_slow_total",
		Help: "Streams ended because the client did not take a write within the stream write timeout."})); err != nil {
		return nil, err
	}
	if m.limited, err = register(r, prometheus.NewCounterVec(prometheus.CounterOpts{Name: "polis_api_limited_total",
		Help: "Requests refused or cut by a limit: streams, streams_per_client, auth_failures (429), body_size (413), read_timeout (408)."},
		[]string{"limit"})); err != nil {
		return nil, err
	}
	for _, l := range []string{limitStreams, limitStreamsPerClient, limitAuthFailures, limitBodySize, limitReadTimeout} {
		m.limited.WithLabelValues(l)
	}
	return m, nil
}

// register registers c, or returns the collector of the same name a
// server before this one registered on the same registry.
func register[C prometheus.Collector](r prometheus.Registerer, c C) (C, error) {
	err := r.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if ex, ok := are.ExistingCollector.(C); ok {
			return ex, nil
		}
	}
	return c, fmt.Errorf("cannot register the API's metrics: %w", err)
}

// readDeadlineOnce lets http.Server's ReadTimeout bound reading the
// request only: once the body is read to its end (at once when there is
// none) the read deadline is lifted. Otherwise the server's background
// read, which watches for the client going away, would time out and
// cancel the request's context in the middle of a long answer (a stream,
// a backtest). IdleTimeout sets a new deadline after the answer.
func readDeadlineOnce(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rc := http.NewResponseController(w)
		if r.Body == nil || r.Body == http.NoBody {
			_ = rc.SetReadDeadline(time.Time{})
		} else {
			r.Body = &liftAtEOF{ReadCloser: r.Body, rc: rc}
		}
		h.ServeHTTP(w, r)
	})
}

type liftAtEOF struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *liftAtEOF) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		_ = b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// ParseTrustedProxies reads a comma-separated list of CIDR prefixes or
// single addresses (10.0.0.0/8, 192.0.2.7, 2001:db8::/32) for
// Options.TrustedProxies. Empty: none.
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		if strings.Contains(f, "/") {
			p, err := netip.ParsePrefix(f)
			if err != nil {
				return nil, fmt.Errorf("trusted proxy %q: want a CIDR prefix such as 10.0.0.0/8 or an address", f)
			}
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q: want a CIDR prefix such as 10.0.0.0/8 or an address", f)
		}
		a = a.Unmap()
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// clientAddr is the address the limits count a request against: the
// connection's, or, from a trusted proxy, the right-most address of
// X-Forwarded-For that is not a trusted proxy itself. IPv6 addresses count
// by their /64, which one host can hop around in.
func (s *Server) clientAddr(r *http.Request) string {
	ip, ok := parseIP(r.RemoteAddr)
	if !ok {
		return r.RemoteAddr
	}
	if len(s.o.TrustedProxies) > 0 && s.trusted(ip) {
		ip = s.forwardedFor(r, ip)
	}
	return clientKey(ip)
}

func (s *Server) trusted(ip netip.Addr) bool {
	for _, p := range s.o.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// forwardedFor walks X-Forwarded-For from the right (each proxy appends
// the address that connected to it) past the trusted proxies. A malformed
// entry stops the walk at the last address a trusted proxy vouched for.
func (s *Server) forwardedFor(r *http.Request, proxy netip.Addr) netip.Addr {
	var hops []string
	for _, v := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(v, ",")...)
	}
	ip := proxy
	for i := len(hops) - 1; i >= 0; i-- {
		hop, ok := parseIP(strings.TrimSpace(hops[i]))
		if !ok {
			return ip
		}
		ip = hop
		if !s.trusted(ip) {
			return ip
		}
	}
	return ip
}

// parseIP reads "ip", "ip:port" or "[ip]:port".
func parseIP(s string) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone(""), true
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone(""), true
	}
	return netip.Addr{}, false
}

func clientKey(ip netip.Addr) string {
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

// tooMany answers 429 with Retry-After (whole seconds, at least 1).
func tooMany(w http.ResponseWriter, retry time.Duration, msg string) {
	w.Header().Set("Retry-After", strconv.Itoa(retrySeconds(retry)))
	WriteError(w, CodeTooManyRequests, msg)
}

func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}

// bodyError answers a body that could not be read: 413 over the route's
// limit, 408 when it did not arrive within the read timeout, otherwise 400
// saying what to send (usage).
func (a *v1) bodyError(w http.ResponseWriter, err error, usage string) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		a.m.limited.WithLabelValues(limitBodySize).Inc()
		WriteError(w, CodeTooLarge, fmt.Sprintf("the body is over this route's limit of %d bytes", tooLarge.Limit))
	case errors.Is(err, os.ErrDeadlineExceeded):
		a.m.limited.WithLabelValues(limitReadTimeout).Inc()
		WriteError(w, CodeRequestTimeout, fmt.Sprintf("the request did not arrive within %v; send it whole without pausing", a.lim.ReadTimeout))
	default:
		WriteError(w, CodeBadBody, fmt.Sprintf("cannot read the body (%v); send %s", err, usage))
	}
}

// isBodyLimit says whether err is a body over its limit or one that did
// not arrive in time.
func isBodyLimit(err error) bool {
	var tooLarge *http.MaxBytesError
	return errors.As(err, &tooLarge) || errors.Is(err, os.ErrDeadlineExceeded)
}

// bulk gives a bulk route (registry import and export, backtests) the
// bulk timeout to read its body and write its answer, once its token is
// checked (so an anonymous client still has only ReadTimeout).
func (a *v1) bulk(w http.ResponseWriter, read bool, atLeast time.Duration) {
	rc := http.NewResponseController(w)
	d := a.lim.BulkTimeout
	if d > 0 && d < atLeast {
		d = atLeast
	}
	deadline := time.Time{} // none
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	if read {
		_ = rc.SetReadDeadline(deadline)
	}
	_ = rc.SetWriteDeadline(deadline)
}

// failureLimiter allows each client a bucket of n failed token checks,
// refilled at n per minute. Its memory is bounded: buckets that are full
// again are forgotten, and beyond maxLimiterClients the oldest-touched
// go first.
type failureLimiter struct {
	n     float64
	every time.Duration // to regain one failure
	now   func() time.Time

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	left float64 // failures still allowed
	at   time.Time
}

// maxLimiterClients bounds the clients a failureLimiter remembers.
const maxLimiterClients = 100_000

func newFailureLimiter(perMinute int) *failureLimiter {
	if perMinute <= 0 {
		return nil
	}
	return &failureLimiter{n: float64(perMinute), every: time.Minute / time.Duration(perMinute), now: time.Now,
		buckets: map[string]*bucket{}}
}

// refill brings b up to now; the caller holds l.mu.
func (l *failureLimiter) refill(b *bucket, now time.Time) {
	if el := now.Sub(b.at); el > 0 {
		b.left = min(l.n, b.left+float64(el)/float64(l.every))
		b.at = now
	}
}

// take spends one failure of client's bucket before a check that may
// fail; false (and how long until one is back) when it is empty.
func (l *failureLimiter) take(client string) (bool, time.Duration) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[client]
	if !ok {
		if len(l.buckets) >= maxLimiterClients {
			l.sweep(now)
		}
		b = &bucket{left: l.n, at: now}
		l.buckets[client] = b
	}
	l.refill(b, now)
	if b.left < 1 {
		return false, time.Duration((1 - b.left) * float64(l.every))
	}
	b.left--
	return true, 0
}

// refund gives back what take spent, when the check succeeded.
func (l *failureLimiter) refund(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.buckets[client]; ok {
		b.left = min(l.n, b.left+1)
	}
}

// exhausted says whether client has no failure left now.
func (l *failureLimiter) exhausted(client string) bool {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[client]
	if !ok {
		return false
	}
	l.refill(b, now)
	return b.left < 1
}

// sweep forgets full buckets, then, if still too many, the tenth
// touched longest ago; the caller holds l.mu.
func (l *failureLimiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		l.refill(b, now)
		if b.left >= l.n {
			delete(l.buckets, k)
		}
	}
	if len(l.buckets) < maxLimiterClients*9/10 {
		return
	}
	keys := slices.Collect(maps.Keys(l.buckets))
	slices.SortFunc(keys, func(x, y string) int { return l.buckets[x].at.Compare(l.buckets[y].at) })
	for _, k := range keys[:len(keys)/10+1] {
		delete(l.buckets, k)
	}
}
