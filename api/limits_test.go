package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"golang.org/x/crypto/bcrypt"
)

// clientFrom returns a client whose connections come from ip (every
// 127.0.0.0/8 address is the loopback on Linux), so that one test can be
// several clients. timeout 0: none (for streams, ended by their context).
func clientFrom(t *testing.T, ip string, timeout time.Duration) *http.Client {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// openStream opens /api/v1/stream with cl and wants status: an open
// stream (closed at the end of the test) for 200, else the error, whose
// Retry-After and body it checks against the contract.
func (e *env) openStream(t *testing.T, ctx context.Context, cl *http.Client, status int, hdr ...string) (*http.Response, Error) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == http.StatusOK && status == http.StatusOK {
		checkContract(t, req, resp, nil, true)
		t.Cleanup(func() { resp.Body.Close() })
		return resp, Error{}
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != status {
		t.Fatalf("stream %v: unexpected status; got %d; want %d: %s", hdr, resp.StatusCode, status, b)
	}
	checkContract(t, req, resp, b, false)
	if status == http.StatusTooManyRequests {
		if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 {
			t.Fatalf("429 with Retry-After %q, want whole seconds", resp.Header.Get("Retry-After"))
		}
	}
	return resp, decodeError(t, b)
}

// value reads a gauge or counter.
func value(m prometheus.Metric) float64 {
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		panic(err)
	}
	if d.Gauge != nil {
		return d.Gauge.GetValue()
	}
	return d.Counter.GetValue()
}

func limited(e *env, limit string) int {
	return int(value(e.srv.m.limited.WithLabelValues(limit)))
}

// TestStreamLimits: streams are limited per client address and in total;
// the hub holds one subscription to the twin however many are open.
func TestStreamLimits(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxStreams: 3, MaxStreamsPerClient: 2}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b, c := clientFrom(t, "127.0.0.1", 0), clientFrom(t, "127.0.0.2", 0), clientFrom(t, "127.0.0.3", 0)

	a1, _ := e.openStream(t, ctx, a, http.StatusOK)
	e.openStream(t, ctx, a, http.StatusOK)
	if _, er := e.openStream(t, ctx, a, http.StatusTooManyRequests); er.Code != CodeTooManyRequests || !strings.Contains(er.Message, "127.0.0.1") {
		t.Fatalf("a third stream from one address: %+v", er)
	}
	e.openStream(t, ctx, b, http.StatusOK)
	if _, er := e.openStream(t, ctx, c, http.StatusTooManyRequests); !strings.Contains(er.Message, "3 streams open") {
		t.Fatalf("a fourth stream: %+v", er)
	}
	if n := e.live.subscribers(); n != 1 {
		t.Fatalf("%d subscriptions to the twin for 3 streams, want 1 (the hub's)", n)
	}
	if got := value(e.srv.m.streams); got != 3 {
		t.Fatalf("polis_api_streams = %v, want 3", got)
	}
	// A stream closes: its place is free again.
	a1.Body.Close()
	waitFor(t, 5*time.Second, "the closed stream to leave", func() bool { return value(e.srv.m.streams) == 2 })
	e.openStream(t, ctx, c, http.StatusOK)
	if limited(e, limitStreamsPerClient) != 1 || limited(e, limitStreams) != 1 {
		t.Fatalf("limited: per client %d, total %d; want 1 and 1", limited(e, limitStreamsPerClient), limited(e, limitStreams))
	}
	cancel()
	waitFor(t, 5*time.Second, "every stream to end and the hub to unsubscribe", func() bool {
		return e.live.subscribers() == 0 && value(e.srv.m.streams) == 0
	})
}

// TestStreamLimitsBehindProxy: X-Forwarded-For names the client only when
// the connection comes from a trusted proxy.
func TestStreamLimitsBehindProxy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl := clientFrom(t, "127.0.0.1", 0)
	xff := func(v string) []string { return []string{"X-Forwarded-For", v} }

	e := newEnvLimits(t, Limits{MaxStreamsPerClient: 1, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}}, nil)
	e.openStream(t, ctx, cl, http.StatusOK, xff("198.51.100.1")...)
	e.openStream(t, ctx, cl, http.StatusOK, xff("198.51.100.2")...)
	// The right-most address not a trusted proxy is the client; what is
	// left of it (written by the client) does not count.
	e.openStream(t, ctx, cl, http.StatusTooManyRequests, xff("203.0.113.9, 198.51.100.1")...)
	e.openStream(t, ctx, cl, http.StatusTooManyRequests, xff("198.51.100.2, 127.0.0.9")...)

	// Off by default: the header is ignored, the connection counts.
	d := newEnvLimits(t, Limits{MaxStreamsPerClient: 1}, nil)
	d.openStream(t, ctx, cl, http.StatusOK, xff("198.51.100.1")...)
	d.openStream(t, ctx, cl, http.StatusTooManyRequests, xff("198.51.100.2")...)
}

func TestClientAddr(t *testing.T) {
	trusted, err := ParseTrustedProxies("10.0.0.0/8, 2001:db8:ffff::/48")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{o: Options{Limits: Limits{TrustedProxies: trusted}}}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1"},
		{"192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"}, // not from a proxy: ignored
		{"10.0.0.2:5000", nil, "10.0.0.2"},
		{"10.0.0.2:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"10.0.0.2:5000", []string{"198.51.100.7, 10.1.1.1"}, "198.51.100.7"},
		{"10.0.0.2:5000", []string{"203.0.113.5, 198.51.100.7"}, "198.51.100.7"}, // a spoofed entry on the left
		{"10.0.0.2:5000", []string{"198.51.100.7", "10.1.1.1"}, "198.51.100.7"},  // two headers
		{"10.0.0.2:5000", []string{"garbage, 10.1.1.1"}, "10.1.1.1"},
		{"10.0.0.2:5000", []string{"10.3.3.3"}, "10.3.3.3"}, // proxies all the way
		{"10.0.0.2:5000", []string{"[2001:db8:9::1]:555"}, "2001:db8:9::/64"},
		{"[2001:db8:1:2:3:4:5:6]:443", nil, "2001:db8:1:2::/64"}, // IPv6 by its /64
		{"[2001:db8:ffff::1]:443", []string{"192.0.2.8"}, "192.0.2.8"},
		{"[::ffff:192.0.2.1]:80", nil, "192.0.2.1"},
		{"pipe", nil, "pipe"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got != tc.want {
			t.Errorf("%s with %q: client %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}

	ps, err := ParseTrustedProxies(" 10.0.0.0/8, 192.0.2.7 ,2001:db8::1:0/112,")
	if err != nil || len(ps) != 3 || ps[1] != netip.MustParsePrefix("192.0.2.7/32") || ps[2] != netip.MustParsePrefix("2001:db8::1:0/112") {
		t.Fatalf("ParseTrustedProxies = %v, %v", ps, err)
	}
	for _, bad := range []string{"10.0.0.0/99", "nope", "10.0.0.1/8/8"} {
		if _, err := ParseTrustedProxies(bad); err == nil || !strings.Contains(err.Error(), "CIDR") {
			t.Errorf("ParseTrustedProxies(%q) = %v, want an error", bad, err)
		}
	}
	if ps, err := ParseTrustedProxies(""); ps != nil || err != nil {
		t.Fatalf("ParseTrustedProxies(\"\") = %v, %v", ps, err)
	}
}

// TestSlowBodyCut: a client that sends its headers and then trickles the
// body is cut by ReadTimeout with a 408, and one that trickles its headers
// by ReadHeaderTimeout, while others are served.
func TestSlowBodyCut(t *testing.T) {
	const readTimeout = 500 * time.Millisecond
	e := newEnvLimits(t, Limits{ReadTimeout: readTimeout, ReadHeaderTimeout: 300 * time.Millisecond}, nil)
	po := e.postOffice(t)
	path := "/api/v1/sites/" + po.ID + "/assets/env-1/desired"
	start := time.Now() // before the server can start its clock
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "PATCH " + path + " HTTP/1.1\r\nHost: polis\r\nAuthorization: Bearer " + managerToken +
		"\r\nIf-Match: \"0\"\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	// A byte every 50 ms: the whole body would take 10 s.
	stop, trickled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for range 199 {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(conn, " "); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-trickled }()
	// A client that never finishes its headers.
	slowHead, err := net.Dial("tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slowHead.Close()
	if _, err := io.WriteString(slowHead, "GET /api/v1/sites HTTP/1.1\r\nHost: polis\r\n"); err != nil {
		t.Fatal(err)
	}

	// Meanwhile, others are served.
	for range 3 {
		if resp, b := e.do(t, "GET", "/api/v1/sites/"+po.ID, ""); resp.StatusCode != http.StatusOK {
			t.Fatalf("another client while one trickles: %d %s", resp.StatusCode, b)
		}
	}

	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("the trickling client got no answer after %v: %v", took, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	req, _ := http.NewRequest("PATCH", e.base+path, nil)
	checkContract(t, req, resp, b, false)
	if er := decodeError(t, b); resp.StatusCode != http.StatusRequestTimeout || er.Code != CodeRequestTimeout {
		t.Fatalf("the trickling client: %d %s, want 408 request_timeout", resp.StatusCode, b)
	}
	if took < readTimeout-50*time.Millisecond || took > 5*time.Second {
		t.Fatalf("the trickling client was cut after %v; want about %v", took, readTimeout)
	}
	if n := limited(e, limitReadTimeout); n != 1 {
		t.Fatalf("polis_api_limited_total{limit=read_timeout} = %d, want 1", n)
	}

	_ = slowHead.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := slowHead.Read(make([]byte, 1)); err == nil || time.Since(start) > 5*time.Second {
		t.Fatalf("the client trickling its headers was not cut: read %d, %v after %v", n, err, time.Since(start))
	}
}

// TestTimeoutsSpareLongAnswers: ReadTimeout bounds reading the request,
// not the answer, and WriteTimeout does not cut the stream.
func TestTimeoutsSpareLongAnswers(t *testing.T) {
	old := heartbeatEvery
	heartbeatEvery = 50 * time.Millisecond
	defer func() { heartbeatEvery = old }()
	const readTimeout, writeTimeout = 150 * time.Millisecond, time.Second
	e := newEnvLimits(t, Limits{ReadTimeout: readTimeout, WriteTimeout: writeTimeout}, nil)

	// A handler that works longer than ReadTimeout keeps its context,
	// with or without a body.
	e.srv.Handle("POST /test/slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusInternalServerError)
		case <-time.After(3 * readTimeout):
			_, _ = io.WriteString(w, "done")
		}
	}))
	for _, body := range []string{"", `{"some":"body"}`} {
		resp, err := noRedirects.Post(e.base+"/test/slow", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "done" {
			t.Fatalf("a long answer (body %q): %d %s", body, resp.StatusCode, b)
		}
	}

	// The stream outlives both timeouts and still gets updates.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	resp, _ := e.openStream(t, ctx, http.DefaultClient, http.StatusOK)
	sc := bufio.NewScanner(resp.Body)
	start := time.Now()
	for time.Since(start) < writeTimeout+2*readTimeout {
		if !sc.Scan() {
			t.Fatalf("the stream ended after %v: %v", time.Since(start), sc.Err())
		}
	}
	site := e.reg.Sites()[0]
	e.live.emit(Update{Site: site.ID, Asset: "env-1", AssetType: "env", Region: site.Region, Kind: "telemetry", At: testNow})
	for sc.Scan() {
		if sc.Text() == "event: telemetry" {
			return
		}
	}
	t.Fatalf("no update on a stream open for %v: %v", time.Since(start), sc.Err())
}

// TestBodyLimitsPerRoute: small JSON bodies and the registry import have
// their own limits, and 413 says the route's.
func TestBodyLimitsPerRoute(t *testing.T) {
	e := newEnvLimits(t, Limits{MaxBodyBytes: 100}, nil)
	po := e.postOffice(t)
	big := `{"note":"` + strings.Repeat("x", 100) + `"}`
	resp, b := e.do(t, "PATCH", "/api/v1/sites/"+po.ID+"/assets/env-1/desired", big, append(bearer(managerToken), "If-Match", `"0"`)...)
	if resp.StatusCode != http.StatusRequestEntityTooLarge || !strings.Contains(decodeError(t, b).Message, "limit of 100 bytes") {
		t.Fatalf("a JSON body over 100 bytes: %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "POST", "/api/v1/sites/"+po.ID+"/assets/env-1/lifecycle", `{"to":"installed","cause":"`+strings.Repeat("x", 100)+`"}`, bearer(operatorToken)...)
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("a lifecycle body over 100 bytes: %d %s", resp.StatusCode, b)
	}
	// The import takes more.
	csv := readRegistryFixture(t, "import.good.csv")
	if len(csv) <= 100 {
		t.Fatal("the fixture is too small for this test")
	}
	if resp, b := e.do(t, "POST", "/api/v1/registry/import", csv, csvAs(operatorToken)...); resp.StatusCode != http.StatusOK {
		t.Fatalf("an import of %d bytes: %d %s", len(csv), resp.StatusCode, b)
	}
	if n := limited(e, limitBodySize); n != 2 {
		t.Fatalf("polis_api_limited_total{limit=body_size} = %d, want 2", n)
	}
}

// TestAuthFailuresLimited: after N failed token checks from one address,
// that address gets 429 without any hash being checked; other addresses,
// and tokens accepted before, are served meanwhile.
func TestAuthFailuresLimited(t *testing.T) {
	const perMinute = 3
	bc, err := bcrypt.GenerateFromPassword([]byte("bcrypt-operator-token"), 8)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvLimits(t, Limits{AuthFailuresPerMinute: perMinute}, func(o *V1Options) {
		o.Tokens = append(o.Tokens, Token{Name: "bcrypt-ops", Role: RoleOperator, Hash: string(bc)})
	})
	auth := func() *authenticator {
		// The env's authenticator, reached through the mounted API.
		return e.srv.v1.auth
	}
	ntok := len(auth().tokens)
	export := "/api/v1/registry/export"
	attacker, other := clientFrom(t, "127.0.0.1", 10*time.Second), clientFrom(t, "127.0.0.2", 10*time.Second)

	for i := range perMinute {
		if resp, b := e.doWith(t, attacker, "GET", export, "", bearer(fmt.Sprintf("wrong-%d", i))...); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong token %d: %d %s", i, resp.StatusCode, b)
		}
	}
	if n := auth().slowChecks.Load(); n != int64(perMinute*ntok) {
		t.Fatalf("%d slow checks after %d wrong tokens, want %d", n, perMinute, perMinute*ntok)
	}
	resp, b := e.doWith(t, attacker, "GET", export, "", bearer("wrong-again")...)
	if er := decodeError(t, b); resp.StatusCode != http.StatusTooManyRequests || er.Code != CodeTooManyRequests {
		t.Fatalf("a wrong token over the limit: %d %s", resp.StatusCode, b)
	}
	if n, err := strconv.Atoi(resp.Header.Get("Retry-After")); err != nil || n < 1 || n > 60/perMinute {
		t.Fatalf("Retry-After %q, want 1 to %d s", resp.Header.Get("Retry-After"), 60/perMinute)
	}

	// A flood from the attacker's address, while another address is
	// served: its valid token at once, its wrong token with a 401.
	const floods, each = 4, 25
	var wg sync.WaitGroup
	codes := make(chan int, floods*each)
	for f := range floods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				req, _ := http.NewRequest("GET", e.base+export, nil)
				req.Header.Set("Authorization", fmt.Sprintf("Bearer flood-%d-%d", f, i))
				resp, err := attacker.Do(req)
				if err != nil {
					codes <- 0
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				codes <- resp.StatusCode
			}
		}()
	}
	for range 5 {
		start := time.Now()
		if resp, b := e.doWith(t, other, "GET", export, "", bearer("bcrypt-operator-token")...); resp.StatusCode != http.StatusOK {
			t.Fatalf("a valid token from another address during the flood: %d %s", resp.StatusCode, b)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("a valid token from another address took %v during the flood", d)
		}
	}
	if resp, b := e.doWith(t, other, "GET", export, "", bearer("wrong-elsewhere")...); resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token from another address: %d %s", resp.StatusCode, b)
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != http.StatusTooManyRequests {
			t.Fatalf("the flood got %d, want 429 for every request", c)
		}
	}
	// The flood cost no hash: the slow checks are the first wrong tokens',
	// the bcrypt token's first use and the other address's wrong token.
	if n, want := auth().slowChecks.Load(), int64(perMinute*ntok+ntok+ntok); n != want {
		t.Fatalf("%d slow checks, want %d: the flood was hashed", n, want)
	}
	if n := limited(e, limitAuthFailures); n != 1+floods*each {
		t.Fatalf("polis_api_limited_total{limit=auth_failures} = %d, want %d", n, 1+floods*each)
	}
	// A token accepted before still works from the limited address.
	if resp, b := e.doWith(t, attacker, "GET", export, "", bearer("bcrypt-operator-token")...); resp.StatusCode != http.StatusOK {
		t.Fatalf("a known token from the limited address: %d %s", resp.StatusCode, b)
	}
	if strings.Contains(e.logs.String(), "wrong-") || !strings.Contains(e.logs.String(), "limit of failed token checks") {
		t.Fatalf("the log holds a token, or does not say a client was limited: %s", e.logs.String())
	}
}

func TestFailureLimiter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := newFailureLimiter(6) // one back every 10 s
	l.now = func() time.Time { return now }
	for i := range 6 {
		if ok, _ := l.take("a"); !ok {
			t.Fatalf("failure %d refused", i+1)
		}
	}
	ok, retry := l.take("a")
	if ok || retry != 10*time.Second {
		t.Fatalf("the 7th failure: %v, retry %v; want refused, 10s", ok, retry)
	}
	if ok, _ := l.take("b"); !ok {
		t.Fatal("another client was refused")
	}
	now = now.Add(4 * time.Second)
	if ok, retry := l.take("a"); ok || retry != 6*time.Second {
		t.Fatalf("4 s later: %v, retry %v; want refused, 6s", ok, retry)
	}
	now = now.Add(6 * time.Second)
	if ok, _ := l.take("a"); !ok {
		t.Fatal("10 s later, one failure is not back")
	}
	l.refund("a")
	if ok, _ := l.take("a"); !ok {
		t.Fatal("a refund was not given back")
	}
	if !l.exhausted("a") || l.exhausted("b") {
		t.Fatal("exhausted is wrong")
	}
	if newFailureLimiter(0) != nil || newFailureLimiter(-1) != nil {
		t.Fatal("a limiter for no limit")
	}
	// Memory is bounded: full buckets are forgotten, then the oldest.
	now = now.Add(time.Hour)
	for i := range maxLimiterClients + 10 {
		l.take(strconv.Itoa(i))
		if i%1000 == 0 {
			now = now.Add(time.Millisecond)
		}
	}
	if n := len(l.buckets); n > maxLimiterClients {
		t.Fatalf("%d clients remembered, want at most %d", n, maxLimiterClients)
	}
}

// TestSlowStreamReader: a stream client that stops reading neither holds
// up the updates to the others nor the twin: it loses updates, then is
// disconnected by the stream write timeout.
func TestSlowStreamReader(t *testing.T) {
	e := newEnvLimits(t, Limits{StreamBuffer: 4, StreamWriteTimeout: 300 * time.Millisecond}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The slow client: asks for the stream and never reads.
	// A small receive buffer, set before connecting so that the window
	// stays small: the server's writes block sooner.
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096)
		}); err != nil {
			return err
		}
		return serr
	}}
	slow, err := d.DialContext(ctx, "tcp", strings.TrimPrefix(e.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := io.WriteString(slow, "GET /api/v1/stream HTTP/1.1\r\nHost: polis\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the slow stream", func() bool { return value(e.srv.m.streams) == 1 })
	resp, _ := e.openStream(t, ctx, http.DefaultClient, http.StatusOK)
	waitFor(t, 5*time.Second, "the fast stream", func() bool { return value(e.srv.m.streams) == 2 })

	// Big updates, one at a time: each must reach the fast client before
	// the next is sent, however far behind the slow one is.
	site := e.reg.Sites()[0]
	metrics := make([]string, 64)
	for i := range metrics {
		metrics[i] = fmt.Sprintf("metric_with_a_long_name_%02d_kwh", i)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	const rounds = 20000
	sent := 0
	for i := range rounds {
		asset := fmt.Sprintf("env-%d", i)
		e.live.emit(Update{Site: site.ID, Asset: asset, AssetType: "env", Region: site.Region, Kind: "telemetry", Metrics: metrics, At: testNow})
		sent++
		for {
			if !sc.Scan() {
				t.Fatalf("the fast stream ended at update %d: %v", i, sc.Err())
			}
			line, ok := strings.CutPrefix(sc.Text(), "data: ")
			if !ok {
				continue
			}
			var u Update
			if err := json.Unmarshal([]byte(line), &u); err != nil {
				t.Fatal(err)
			}
			if u.Asset != asset {
				t.Fatalf("the fast stream got %s, want %s: it lost or reordered updates", u.Asset, asset)
			}
			break
		}
		if value(e.srv.m.slow) == 1 {
			break
		}
	}
	if value(e.srv.m.slow) != 1 {
		t.Fatalf("the slow stream was not disconnected after %d updates", sent)
	}
	if d := value(e.srv.m.dropped); d < 1 {
		t.Fatalf("the slow stream lost no update (dropped %v)", d)
	}
	waitFor(t, 5*time.Second, "the slow stream to leave", func() bool { return value(e.srv.m.streams) == 1 })
	if n := e.live.subscribers(); n != 1 {
		t.Fatalf("%d subscriptions to the twin, want the hub's only", n)
	}
	t.Logf("the slow stream was cut after %d updates of %d bytes", sent, len(strings.Join(metrics, `","`)))
}

func TestLimitDefaults(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Options{Addr: "127.0.0.1:0", Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.srv.ReadHeaderTimeout != DefaultReadHeaderTimeout || s.srv.ReadTimeout != DefaultReadTimeout ||
		s.srv.WriteTimeout != DefaultWriteTimeout || s.srv.IdleTimeout != DefaultIdleTimeout {
		t.Fatalf("unexpected server timeouts %v %v %v %v", s.srv.ReadHeaderTimeout, s.srv.ReadTimeout, s.srv.WriteTimeout, s.srv.IdleTimeout)
	}
	o := s.o.Limits
	if !reflect.DeepEqual(o, DefaultLimits()) {
		t.Fatalf("the server's limits %+v are not DefaultLimits %+v", o, DefaultLimits())
	}
	if o.BulkTimeout != DefaultBulkTimeout || o.StreamWriteTimeout != DefaultStreamWriteTimeout || o.MaxBodyBytes != DefaultMaxBodyBytes ||
		o.MaxImportBytes != DefaultMaxImportBytes || o.MaxStreams != DefaultMaxStreams || o.MaxStreamsPerClient != DefaultMaxStreamsPerClient ||
		o.StreamBuffer != DefaultStreamBuffer || o.AuthFailuresPerMinute != DefaultAuthFailuresPerMinute || o.TrustedProxies != nil {
		t.Fatalf("unexpected defaults %+v", o)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		names = append(names, mf.GetName())
	}
	for _, n := range []string{"polis_api_streams", "polis_api_stream_dropped_total", "polis_api_stream_slow_total", "polis_api_limited_total"} {
		if !slices.Contains(names, n) {
			t.Errorf("metric %s is not registered: %v", n, names)
		}
	}
	// Negative: off.
	s2, err := New(Options{Addr: "127.0.0.1:0", Gatherer: reg,
		Limits: Limits{ReadTimeout: -1, WriteTimeout: -1, MaxStreams: -1, MaxBodyBytes: -1, AuthFailuresPerMinute: -1}})
	if err != nil {
		t.Fatalf("a second server on the same registry: %v", err)
	}
	defer s2.Close()
	if s2.srv.ReadTimeout != 0 || s2.srv.WriteTimeout != 0 || s2.o.MaxStreams != -1 || s2.o.MaxBodyBytes != -1 || s2.o.AuthFailuresPerMinute != -1 {
		t.Fatalf("negative limits are not off: %+v", s2.o)
	}
}
