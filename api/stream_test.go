package api

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/internal/testutil"
)

type sseEvent struct {
	event, data string
}

// readEvents parses Server-Sent Events from r until n events (and at least
// one heartbeat when wantBeat) have come, or the context ends.
func readEvents(t *testing.T, r io.Reader, n int, wantBeat bool) ([]sseEvent, int) {
	t.Helper()
	sc := bufio.NewScanner(r)
	var out []sseEvent
	var cur sseEvent
	beats := 0
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			if cur.event != "" || cur.data != "" {
				out = append(out, cur)
				cur = sseEvent{}
			}
		case strings.HasPrefix(line, ": heartbeat"):
			beats++
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "event: "):
			cur.event = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		default:
			t.Fatalf("unexpected stream line %q", line)
		}
		if len(out) >= n && (!wantBeat || beats > 0) {
			return out, beats
		}
	}
	t.Fatalf("stream ended after %d events and %d heartbeats: %v", len(out), beats, sc.Err())
	return nil, 0
}

// waitFor polls f every 5 ms for at most d.
func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	testutil.Eventually(t, d, 5*time.Millisecond, f, "%s", what)
}

func TestStream(t *testing.T) {
	old := heartbeatEvery
	heartbeatEvery = 50 * time.Millisecond
	defer func() { heartbeatEvery = old }()
	e := newEnv(t)
	sites := e.reg.Sites()
	a, b := sites[0], sites[len(sites)-1]

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", e.base+"/api/v1/stream?region="+strings.ToLower(a.Region)+"&asset_type=env,evc", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	checkContract(t, req, resp, nil, true)
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("unexpected Content-Type %q", ct)
	}
	waitFor(t, 5*time.Second, "the subscription", func() bool { return e.live.subscribers() == 1 })

	at := testNow
	sent := []Update{
		{Site: a.ID, Asset: "env-1", AssetType: "env", Region: a.Region, Kind: "telemetry", Metrics: []string{"temp_c"}, At: at},
		{Site: a.ID, Asset: "totem-1", AssetType: "totem", Region: a.Region, Kind: "status", Status: "online", At: at}, // type filtered out
		{Site: b.ID, Asset: "env-1", AssetType: "env", Region: "Elsewhere", Kind: "telemetry", At: at},                 // region filtered out
		{Site: a.ID, Asset: "evc-1", AssetType: "evc", Region: a.Region, Kind: "status", Status: "offline", At: at},
	}
	for _, u := range sent {
		e.live.emit(u)
	}
	got, _ := readEvents(t, resp.Body, 2, true)
	doc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Update{sent[0], sent[3]} {
		if got[i].event != want.Kind {
			t.Fatalf("event %d: unexpected kind; got %q; want %q", i, got[i].event, want.Kind)
		}
		var v any
		if err := json.Unmarshal([]byte(got[i].data), &v); err != nil {
			t.Fatal(err)
		}
		if err := doc.Components.Schemas["Update"].Value.VisitJSON(v); err != nil {
			t.Fatalf("event %d does not match the Update schema: %v: %s", i, err, got[i].data)
		}
		var u Update
		if err := json.Unmarshal([]byte(got[i].data), &u); err != nil {
			t.Fatal(err)
		}
		if u.Site != want.Site || u.Asset != want.Asset || u.Status != want.Status || !u.At.Equal(want.At) {
			t.Fatalf("event %d: unexpected update; got %+v; want %+v", i, u, want)
		}
	}
	// The client goes away: the handler ends and unsubscribes.
	cancel()
	waitFor(t, 5*time.Second, "the stream to unsubscribe", func() bool { return e.live.subscribers() == 0 })
}

// TestStreamEndsOnShutdown: an open stream must not hold up a graceful
// shutdown until its deadline.
func TestStreamEndsOnShutdown(t *testing.T) {
	reg := testFleet(t)
	live := newFakeLive(t, reg)
	s, err := New(Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.MountV1(V1Options{Fleet: reg, Live: live}); err != nil {
		t.Fatal(err)
	}
	sctx, stop := context.WithCancel(context.Background())
	defer stop()
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+s.Addr()+"/api/v1/stream", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	checkContract(t, req, resp, nil, true)
	waitFor(t, 5*time.Second, "the subscription", func() bool { return live.subscribers() == 1 })
	start := time.Now()
	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown with an open stream: %v after %v", err, time.Since(start))
		}
	case <-time.After(3 * time.Second):
		t.Fatal("an open stream held the shutdown up")
	}
	if _, err := io.ReadAll(resp.Body); err != nil {
		t.Fatalf("the stream did not end cleanly: %v", err)
	}
	waitFor(t, 5*time.Second, "the stream to unsubscribe", func() bool { return live.subscribers() == 0 })
}
