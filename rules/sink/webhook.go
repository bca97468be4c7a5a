// Package sink delivers alert changes from polis.alerts.v1 to the outside.
// Each sink is its own consumer group and commits an offset only after the
// receiver took the alert, so a receiver that is down delays delivery but
// loses nothing; a change the receiver refuses for good (Refused) is
// written to polis.deadletter.v1 first, so it does not hold back the rest.
package sink

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Polis-Signature"

// Defaults of both sinks' options, used for a zero field.
const (
	// DefaultMinBackoff and DefaultMaxBackoff bound the pause between two
	// attempts to deliver one alert.
	DefaultMinBackoff = 200 * time.Millisecond
	DefaultMaxBackoff = 30 * time.Second
	// DefaultWebhookTimeout bounds one POST of the default webhook client.
	DefaultWebhookTimeout = 10 * time.Second
)

// WebhookOptions configure a webhook sink.
type WebhookOptions struct {
	Name    string // consumer group "sink-<name>"
	URL     string
	Secret  []byte // HMAC key; empty: unsigned
	Brokers []string
	// Kafka is how its Kafka client connects (SASL, TLS); zero: plaintext.
	Kafka  kafka.ClientOptions
	Client *http.Client // default: one with DefaultWebhookTimeout
	// Backoff bounds between retries of one alert (default
	// DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
	// Registerer gets polis_alert_sink_dead_lettered_total if non-nil.
	Registerer prometheus.Registerer
}

// Webhook posts every delivered alert change as JSON, in order per site.
//
// A 2xx answer delivers the change. A network error, 408, 429 or 5xx is
// retried with backoff, for ever: the receiver is down or busy, and the
// changes after it wait. Any other 4xx refuses that change for good: it is
// dead-lettered (polis.deadletter.v1, reason sink_refused, with the status
// and the start of the body) and the next change is posted.
type Webhook struct {
	o   WebhookOptions
	c   *consumer
	log *slog.Logger
}

// NewWebhook validates the options.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if o.Name == "" || o.URL == "" || len(o.Brokers) == 0 {
		return nil, errors.New("cannot create webhook sink: Name, URL and Brokers are required")
	}
	u, err := url.Parse(o.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("cannot create webhook sink: URL %s is not an http(s) URL", RedactURL(o.URL))
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: DefaultWebhookTimeout}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}
	log := o.Logger.With("component", "sink", "sink", o.Name)
	return &Webhook{o: o, log: log, c: &consumer{name: o.Name, kind: "webhook", target: RedactURL(o.URL), brokers: o.Brokers,
		conn: o.Kafka, log: log, min: o.MinBackoff, max: o.MaxBackoff, m: m}}, nil
}

// Sign returns the signature header value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Run delivers until ctx ends.
func (w *Webhook) Run(ctx context.Context) error {
	return w.c.consume(ctx, func(ctx context.Context, raw []byte, _ *record.AlertChange) error {
		return retry(ctx, w.log, w.o.MinBackoff, w.o.MaxBackoff,
			func(ctx context.Context) error { return w.post(ctx, raw) }, "url", w.c.target)
	})
}

// post sends one alert change. It returns nil on a 2xx, a *Refused error
// on a 4xx other than 408 and 429, and another error for what may pass.
func (w *Webhook) post(ctx context.Context, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.o.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("cannot build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if len(w.o.Secret) > 0 {
		req.Header.Set(SignatureHeader, Sign(w.o.Secret, body))
	}
	resp, err := w.o.Client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its text holds the whole URL, which may carry a token
		}
		return fmt.Errorf("cannot post alert: %w", err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, maxDetail+1))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	switch code := resp.StatusCode; {
	case code/100 == 2:
		return nil
	case code/100 == 4 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests:
		return &Refused{Status: strconv.Itoa(code), Detail: "HTTP " + resp.Status + "; body: " + clip(string(answer), maxDetail)}
	default:
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
}

// RedactURL is u fit for logs and dead letters: scheme, host and port
// only (a webhook's path or query often is its secret, and user info is a
// password).
func RedactURL(u string) string {
	p, err := url.Parse(u)
	if err != nil || p.Host == "" {
		return "(unparsable URL)"
	}
	s := p.Scheme + "://" + p.Host
	if p.Path != "" || p.RawQuery != "" {
		s += "/..."
	}
	return s
}
