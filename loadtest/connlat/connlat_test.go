package connlat

import (
	"bytes"
	"context"
	"flag"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"

	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/twin/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }

// startBroker runs mochi on a free loopback port, letting in only the
// device env-1 with the password "good".
func startBroker(t *testing.T) string {
	t.Helper()
	srv := mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), InlineClient: false})
	ledger := &auth.Ledger{
		Auth: auth.AuthRules{{Username: "PO-001001-1/env-1", Password: "good", Allow: true}},
		ACL:  auth.ACLRules{{Filters: auth.Filters{"#": auth.ReadWrite}}},
	}
	if err := srv.AddHook(new(auth.Hook), &auth.Options{Ledger: ledger}); err != nil {
		t.Fatalf("cannot add auth hook: %v", err)
	}
	l := listeners.NewTCP(listeners.Config{ID: "test", Address: "127.0.0.1:0"})
	if err := srv.AddListener(l); err != nil {
		t.Fatalf("cannot listen: %v", err)
	}
	if err := srv.Serve(); err != nil {
		t.Fatalf("cannot serve: %v", err)
	}
	t.Cleanup(func() {
		// Let clients leave first: mochi v2.7.9's Close can deadlock with
		// one still going away (see loadtest's startBroker).
		deadline := time.Now().Add(10 * time.Second)
		for srv.Clients.Len() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		_ = srv.Close()
	})
	return "tcp://" + l.Address()
}

func TestRun_TimesEachConnectionAndRecordsRefusals(t *testing.T) {
	addr := startBroker(t)
	creds := []registry.Credential{
		{Site: "PO-001001-1", Asset: "env-1", Username: "PO-001001-1/env-1", Password: "good"},
		{Site: "PO-001001-1", Asset: "atm-1", Username: "PO-001001-1/atm-1", Password: "bad"},
	}
	res, err := Run(context.Background(), Options{Broker: addr, Credentials: creds, N: 4, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Samples) != 2 || len(res.Failures) != 2 {
		t.Fatalf("got %d samples and %d failures (%v); want 2 and 2", len(res.Samples), len(res.Failures), res.Failures)
	}
	for _, f := range res.Failures {
		if !strings.Contains(f.Error(), "PO-001001-1/atm-1") || !strings.Contains(f.Error(), "connect") {
			t.Fatalf("failure %q does not name the refused device and step", f)
		}
	}
	for _, s := range res.Samples {
		if s.Connack <= 0 || s.Puback <= 0 || s.Total != s.Connack+s.Puback {
			t.Fatalf("inconsistent sample %+v", s)
		}
	}
}

func TestRun_StopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := Run(ctx, Options{Broker: "tcp://127.0.0.1:1", Credentials: []registry.Credential{{Username: "x"}}, N: 1000})
	if err == nil || len(res.Samples)+len(res.Failures) != 0 {
		t.Fatalf("got %v, %d samples, %d failures; want the context's error and nothing tried", err, len(res.Samples), len(res.Failures))
	}
	if _, err := Run(context.Background(), Options{N: 1}); err == nil {
		t.Fatal("no credentials: want an error")
	}
}

func TestPickDevices(t *testing.T) {
	var creds []registry.Credential
	for _, a := range []string{"gateway-1", "totem-1", "atm-1", "gateway-2", "locker-1", "env-1"} {
		creds = append(creds, registry.Credential{Site: "S", Asset: a})
	}
	names := func(cs []registry.Credential) string {
		var s []string
		for _, c := range cs {
			s = append(s, c.Asset)
		}
		return strings.Join(s, ",")
	}
	for _, c := range []struct {
		n    int
		want string
	}{
		{0, ""},
		{2, "totem-1,locker-1"},
		{4, "totem-1,atm-1,locker-1,env-1"},
		{9, "totem-1,atm-1,locker-1,env-1"},
	} {
		if got := names(PickDevices(creds, c.n)); got != c.want {
			t.Errorf("PickDevices(%d) = %s; want %s", c.n, got, c.want)
		}
	}
}

func TestSummarize_NearestRank(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var ds []time.Duration
		for _, n := range ns {
			ds = append(ds, time.Duration(n)*time.Millisecond)
		}
		return ds
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100..1, unsorted
	}
	for _, c := range []struct {
		name string
		in   []time.Duration
		want Summary
	}{
		{"none", nil, Summary{}},
		{"one", ms(7), Summary{7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond}},
		{"hundred", ms(hundred...), Summary{50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond}},
		{"three", ms(3, 1, 2), Summary{2 * time.Millisecond, 3 * time.Millisecond, 3 * time.Millisecond}},
	} {
		if got := summarize(c.in); got != c.want {
			t.Errorf("%s: got %+v; want %+v", c.name, got, c.want)
		}
	}
}

func TestWriteTable_Golden(t *testing.T) {
	r := Result{Failures: []error{os.ErrDeadlineExceeded}}
	for i := 1; i <= 100; i++ {
		d := time.Duration(i) * 100 * time.Microsecond
		r.Samples = append(r.Samples, Sample{Connack: d, Puback: 2 * d, Total: 3 * d})
	}
	var b bytes.Buffer
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("testdata", "table.golden")
	if *update {
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b.Bytes(), want) {
		t.Fatalf("table differs from %s:\n%s\nwant:\n%s", path, b.Bytes(), want)
	}
}
