package main

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestStartDebug(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if addr, stop, err := startDebug("", log); err != nil || addr != "" {
		t.Fatalf("off: %q, %v", addr, err)
	} else {
		stop()
	}
	if _, _, err := startDebug("127.0.0.1:notaport", log); err == nil || !strings.Contains(err.Error(), "--debug-addr") {
		t.Fatalf("bad address: %v, want an error naming --debug-addr", err)
	}
	addr, stop, err := startDebug("127.0.0.1:0", log)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	cl := &http.Client{Timeout: 10 * time.Second}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/profile?seconds=1"} {
		resp, err := cl.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(b) == 0 {
			t.Errorf("%s: %s, %d bytes", path, resp.Status, len(b))
		}
	}
	stop()
	if _, err := cl.Get("http://" + addr + "/debug/pprof/"); err == nil {
		t.Error("the profiler still answers after stop")
	}
}
