package sink

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/kafka"
)

// receiver is a webhook endpoint that can be down, and checks signatures.
type receiver struct {
	mu     sync.Mutex
	down   bool
	failed int
	got    []string // fingerprints in arrival order
	badSig int
	secret []byte
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.down {
		r.failed++
		http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
		return
	}
	if req.Header.Get(SignatureHeader) != Sign(r.secret, body) {
		r.badSig++
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var a record.AlertChange
	if err := record.UnmarshalAlert(body, &a); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.got = append(r.got, a.Fingerprint)
}

func (r *receiver) set(down bool) { r.mu.Lock(); r.down = down; r.mu.Unlock() }

// received returns the fingerprints in order of first arrival. Delivery
// is at least once: a sink stopped while a POST is in flight sends that
// alert again after its restart, which the receiver dedups by fingerprint.
func (r *receiver) received() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	seen := map[string]bool{}
	var out []string
	for _, fp := range r.got {
		if !seen[fp] {
			seen[fp] = true
			out = append(out, fp)
		}
	}
	return out
}

// A receiver that is down delays delivery but loses nothing; alerts held
// back (Deliver false) are not sent; bodies are signed; a restarted sink
// resumes where it stopped.
func TestWebhook_DownReceiverLosesNothing(t *testing.T) {
	k, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	rcv := &receiver{secret: []byte("s3cret"), down: true}
	srv := httptest.NewServer(rcv)
	defer srv.Close()

	var want []string
	produce := func(from, to int) {
		for i := from; i < to; i++ {
			a := &record.AlertChange{Kind: "fired", At: time.Now().UnixMilli(), Deliver: i%4 != 3, Fingerprint: fmt.Sprintf("fp%03d", i),
				RuleID: "r", Site: "PO-001001-1", Asset: "env-1", State: "firing"}
			b, err := record.MarshalAlert(a)
			if err != nil {
				t.Fatal(err)
			}
			if err := prod.ProduceSync(context.Background(), &kgo.Record{Topic: kafka.TopicAlerts, Key: []byte(a.Site), Value: b}).FirstErr(); err != nil {
				t.Fatal(err)
			}
			if a.Deliver {
				want = append(want, a.Fingerprint)
			}
		}
	}
	start := func() (context.CancelFunc, chan struct{}) {
		w, err := NewWebhook(WebhookOptions{Name: "test", URL: srv.URL, Secret: rcv.secret, Brokers: k.Addrs(),
			MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = w.Run(ctx) }()
		return cancel, done
	}

	produce(0, 20)
	cancel, done := start()
	testutil.Eventually(t, 10*time.Second, 20*time.Millisecond, func() bool {
		rcv.mu.Lock()
		defer rcv.mu.Unlock()
		return rcv.failed >= 3
	}, "the sink retries while the receiver is down")
	rcv.set(false)
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return len(rcv.received()) == len(want) },
		"every delivered alert arrives (got %d of %d)", len(rcv.received()), len(want))
	cancel()
	<-done

	produce(20, 40) // while no sink runs
	cancel, done = start()
	defer func() { cancel(); <-done }()
	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool { return len(rcv.received()) == len(want) },
		"the restarted sink resumes (got %d of %d)", len(rcv.received()), len(want))
	if got := rcv.received(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("alerts out of order or missing:\n got %v\nwant %v", got, want)
	}
	if rcv.badSig != 0 {
		t.Fatalf("%d requests with a bad signature", rcv.badSig)
	}
}

// A change the receiver refuses for good (400) is dead-lettered with the
// status and the body, and the changes after it, on the same partition,
// are all delivered in order; 408, 429 and 503 are retried, not
// dead-lettered.
func TestWebhook_PoisonChangeIsDeadLetteredAndTheRestFlow(t *testing.T) {
	k := startKafka(t)
	prod := newProducer(t, k)
	const site = "PO-001001-1" // one site: one partition, one order
	var (
		mu       sync.Mutex
		got      []string
		attempts = map[string]int{}
	)
	transient := map[string]int{"fp001": http.StatusTooManyRequests, "fp003": http.StatusRequestTimeout, "fp005": http.StatusServiceUnavailable}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var a record.AlertChange
		if err := record.UnmarshalAlert(body, &a); err != nil {
			t.Errorf("receiver got a body that is not an alert change: %v", err)
			http.Error(w, "bad body", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		attempts[a.Fingerprint]++
		if a.Fingerprint == "poison" {
			http.Error(w, `{"error":"rule poison-rule is unknown here"}`, http.StatusBadRequest)
			return
		}
		if code, ok := transient[a.Fingerprint]; ok && attempts[a.Fingerprint] <= 2 {
			http.Error(w, "try later", code)
			return
		}
		got = append(got, a.Fingerprint)
	}))
	defer srv.Close()

	var want []string
	var poisonRaw []byte
	var poisonRec *kgo.Record
	for i := range 8 {
		fp := fmt.Sprintf("fp%03d", i)
		if i == 2 {
			fp = "poison"
		}
		a := &record.AlertChange{Kind: "fired", At: time.Now().UnixMilli(), Deliver: true, Fingerprint: fp,
			RuleID: "r", Site: site, Asset: "env-1", State: "firing"}
		if fp == "poison" {
			a.RuleID = "poison-rule"
		}
		raw, r := produceAlert(t, prod, a)
		if fp == "poison" {
			poisonRaw, poisonRec = raw, r
		} else {
			want = append(want, fp)
		}
	}

	reg := prometheus.NewRegistry()
	logs := &syncBuffer{}
	w, err := NewWebhook(WebhookOptions{Name: "poison", URL: srv.URL + "/hook?token=s3cret-token", Brokers: k.Addrs(),
		MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: kafka.LevelKafkaDebug}))})
	if err != nil {
		t.Fatal(err)
	}
	runSink(t, w.Run)

	testutil.Eventually(t, 20*time.Second, 20*time.Millisecond, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(got) >= len(want)
	}, "every good change arrives")
	waitCommittedToEnd(t, k, "sink-poison")
	mu.Lock()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("good changes out of order, missing or twice:\n got %v\nwant %v", got, want)
	}
	if attempts["poison"] != 1 {
		t.Errorf("the refused change was posted %d times; want once", attempts["poison"])
	}
	mu.Unlock()

	// The dead letter: on polis.deadletter.v1, the site's partition, with
	// the status and the body, the change as payload.
	dls := readDeadLetters(t, k, 1)
	d := dls[0]
	if d.Reason != "sink_refused" || d.Topic != kafka.TopicAlerts || d.Site != site || d.Asset != "env-1" {
		t.Fatalf("dead letter %+v; want reason sink_refused, topic %s, site %s", d, kafka.TopicAlerts, site)
	}
	for _, s := range []string{"400 Bad Request", `{"error":"rule poison-rule is unknown here"}`, "poison-rule", `webhook sink "poison"`} {
		if !strings.Contains(d.Message, s) {
			t.Errorf("dead-letter message %q lacks %q", d.Message, s)
		}
	}
	if strings.Contains(d.Message, "s3cret-token") {
		t.Errorf("dead-letter message carries the webhook URL's query: %q", d.Message)
	}
	if string(d.Payload) != string(poisonRaw) {
		t.Errorf("dead-letter payload %s; want the alert change %s", d.Payload, poisonRaw)
	}
	if d.Received != poisonRec.Timestamp.UnixMilli() {
		t.Errorf("dead letter received %d; want the alert record's time %d", d.Received, poisonRec.Timestamp.UnixMilli())
	}
	if n := counterValue(t, reg, "polis_alert_sink_dead_lettered_total", map[string]string{"sink": "poison", "status": "400"}); n != 1 {
		t.Errorf("polis_alert_sink_dead_lettered_total{sink=poison,status=400} = %v; want 1", n)
	}
	if n := counterTotal(t, reg, "polis_alert_sink_dead_lettered_total"); n != 1 {
		t.Errorf("%v changes counted as dead-lettered; want 1 (408, 429 and 503 are retried)", n)
	}
	if s := logs.String(); !strings.Contains(s, `level=WARN msg="receiver refused an alert for good; dead-lettered, the next alerts go on"`) ||
		!strings.Contains(s, "status=400") {
		t.Errorf("the dead letter was not logged with its status:\n%s", s)
	}
	if s := logs.String(); strings.Contains(s, "s3cret-token") {
		t.Errorf("the logs carry the webhook URL's query:\n%s", s)
	}
}

// readDeadLetters waits for n records on the dead-letter topic and returns
// them decoded.
func readDeadLetters(t *testing.T, k *kafka.Embedded, n int) []record.DeadLetter {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...), kgo.ConsumeTopics(kafka.TopicDeadLetter),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []record.DeadLetter
	deadline := time.Now().Add(10 * time.Second)
	for len(out) < n && time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		fs := cl.PollFetches(ctx)
		cancel()
		fs.EachRecord(func(r *kgo.Record) {
			var d record.DeadLetter
			if err := record.UnmarshalDeadLetter(r.Value, &d); err != nil {
				t.Fatalf("dead letter at %d: %v", r.Offset, err)
			}
			if string(r.Key) != d.Site {
				t.Errorf("dead letter keyed %q; want its site %q", r.Key, d.Site)
			}
			out = append(out, d)
		})
	}
	if len(out) != n {
		t.Fatalf("%d dead letters; want %d", len(out), n)
	}
	return out
}

func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metric:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue metric
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

func counterTotal(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}
