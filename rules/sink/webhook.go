// Package sink delivers alert changes from polis.alerts.v1 to the outside.
// Each sink is its own consumer group and commits an offset only after the
// receiver took the alert, so a receiver that is down delays delivery but
// loses nothing.
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
	"time"

	"github.com/polis-platform/polis/ingest/record"
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
	Client  *http.Client // default: one with DefaultWebhookTimeout
	// Backoff bounds between retries of one alert (default
	// DefaultMinBackoff, DefaultMaxBackoff).
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Webhook posts every delivered alert change as JSON, in order per site.
type Webhook struct {
	o   WebhookOptions
	log *slog.Logger
}

// NewWebhook validates the options.
func NewWebhook(o WebhookOptions) (*Webhook, error) {
	if o.Name == "" || o.URL == "" || len(o.Brokers) == 0 {
		return nil, errors.New("cannot create webhook sink: Name, URL and Brokers are required")
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
	return &Webhook{o: o, log: o.Logger.With("component", "sink", "sink", o.Name)}, nil
}

// Sign returns the signature header value of body under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Run delivers until ctx ends.
func (w *Webhook) Run(ctx context.Context) error {
	return consume(ctx, w.o.Name, w.o.Brokers, w.log, func(ctx context.Context, raw []byte, _ *record.AlertChange) error {
		return retry(ctx, w.log, w.o.MinBackoff, w.o.MaxBackoff,
			func(ctx context.Context) error { return w.post(ctx, raw) }, "url", w.o.URL)
	})
}

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
		return fmt.Errorf("cannot post alert: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("receiver answered %s", resp.Status)
	}
	return nil
}
