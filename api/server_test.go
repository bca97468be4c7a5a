package api

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// run starts s.Run(ctx) and returns its result's channel.
func run(ctx context.Context, s *Server) <-chan error {
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	return done
}

func waitRun(t *testing.T, done <-chan error, within time.Duration) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(within):
		t.Fatalf("Run did not return within %v", within)
		return nil
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	addr := s.Addr() // known before Run
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, s)
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), `"ok"`) {
		t.Fatalf("GET /healthz: %d %s", resp.StatusCode, b)
	}
	cancel()
	if err := waitRun(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		t.Fatal("the server still answers after Run returned")
	}
}

func TestRunReturnsListenerError(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ln.Close(); err != nil {
		t.Fatal(err)
	}
	err = waitRun(t, run(context.Background(), s), 5*time.Second)
	if err == nil || !strings.Contains(err.Error(), s.Addr()) {
		t.Fatalf("Run on a closed listener: %v, want the listener's error", err)
	}
}

func TestRunClosesSlowRequestsAfterGrace(t *testing.T) {
	old := shutdownGrace
	shutdownGrace = 200 * time.Millisecond
	t.Cleanup(func() { shutdownGrace = old })
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	s.Handle("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done() // until the connection is closed
	}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, s)
	reqErr := make(chan error, 1)
	go func() {
		resp, err := http.Get("http://" + s.Addr() + "/slow")
		if err == nil {
			resp.Body.Close()
			err = errors.New("the slow request got an answer")
		}
		reqErr <- err
	}()
	<-started
	cancel()
	if err := waitRun(t, done, 5*time.Second); err != nil {
		t.Fatalf("Run after cancel: %v, want nil", err)
	}
	if err := <-reqErr; err == nil {
		t.Fatal("the slow request was not cut")
	}
}

func TestCloseBeforeRun(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The address is free again.
	s2, err := New(Options{Addr: s.Addr()})
	if err != nil {
		t.Fatalf("the listener was not released: %v", err)
	}
	_ = s2.Close()
}

// The site (the portal) answers every path outside the API; the API's own
// unknown paths keep their JSON 404, and health stays the server's.
func TestSiteAnswersOutsideTheAPI(t *testing.T) {
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := run(ctx, s)
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + s.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/regioni/lazio"); code != 404 || !strings.Contains(body, "no such path") {
		t.Fatalf("before SetSite: %d %s, want the JSON 404", code, body)
	}
	s.SetSite(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "site "+r.URL.Path)
	}))
	for _, c := range []struct {
		path, want string
		code       int
	}{
		{"/", "site /", 200},
		{"/regioni/lazio", "site /regioni/lazio", 200},
		{"/api/v1/nope", "no such path", 404},
		{"/api/", "no such path", 404},
		{"/healthz", `"ok"`, 200},
	} {
		if code, body := get(c.path); code != c.code || !strings.Contains(body, c.want) {
			t.Errorf("GET %s: %d %q, want %d with %q", c.path, code, body, c.code, c.want)
		}
	}
	cancel()
	if err := waitRun(t, done, 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
