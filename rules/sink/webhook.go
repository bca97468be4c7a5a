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

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/bus"
)

// SignatureHeader carries "sha256=<hex HMAC-SHA256 of the body>".
const SignatureHeader = "X-Polis-Signature"

// WebhookOptions configure a webhook sink.
type WebhookOptions struct {
	Name    string // consumer group "sink-<name>"
	URL     string
	Secret  []byte // HMAC key; empty: unsigned
	Brokers []string
	Client  *http.Client
	// Backoff bounds between retries of one alert.
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
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 200 * time.Millisecond
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
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
	cl, err := kgo.NewClient(kgo.SeedBrokers(w.o.Brokers...), kgo.ConsumerGroup("sink-"+w.o.Name),
		kgo.ConsumeTopics(bus.TopicAlerts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll())
	if err != nil {
		return fmt.Errorf("cannot create sink consumer: %w", err)
	}
	defer func() {
		cl.AllowRebalance() // Close waits for a rebalance blocked by the poll
		cl.Close()
	}()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil || fs.IsClientClosed() {
			return nil
		}
		var failed error
		fs.EachRecord(func(r *kgo.Record) {
			if failed != nil {
				return
			}
			var a record.AlertChange
			if err := record.UnmarshalAlert(r.Value, &a); err != nil || !a.Deliver {
				return // held back (silence, inhibition, flapping) or not ours
			}
			failed = w.deliver(ctx, r.Value)
		})
		if failed != nil {
			return nil // ctx ended mid-retry: nothing committed past the undelivered alert
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil && ctx.Err() == nil {
			w.log.Warn("cannot commit sink offsets; alerts may be sent again", "err", err)
		}
		cl.AllowRebalance()
	}
}

// deliver posts one alert until the receiver answers 2xx or ctx ends.
func (w *Webhook) deliver(ctx context.Context, body []byte) error {
	delay := w.o.MinBackoff
	for attempt := 1; ; attempt++ {
		err := w.post(ctx, body)
		if err == nil {
			if attempt > 1 {
				w.log.Info("webhook delivers again", "attempts", attempt)
			}
			return nil
		}
		if attempt == 1 {
			w.log.Warn("cannot deliver alert; retrying", "url", w.o.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(delay*2, w.o.MaxBackoff)
	}
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
