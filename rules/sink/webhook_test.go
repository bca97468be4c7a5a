package sink

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

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
