package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/payload"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/kafka"
)

// commitTimeout bounds a commit, also the last one after Run was stopped.
const commitTimeout = 5 * time.Second

// maxDetail bounds what a dead letter keeps of the receiver's answer.
const maxDetail = 2048

// deliverFunc hands one alert change to the receiver. raw is the record's
// value, a its decoded form. It returns nil once the receiver took the
// alert, a *Refused error when the receiver refused it for good, and
// otherwise an error only when ctx ended first.
type deliverFunc func(ctx context.Context, raw []byte, a *record.AlertChange) error

// Refused is the error of a delivery the receiver refused for good:
// sending the same change again would get the same answer (a webhook's
// 4xx other than 408 and 429; an MQTT 5 client would give a PUBACK reason
// such as 0x87 not authorized, but the MQTT sink speaks 3.1.1, which has
// no negative PUBACK). The change is dead-lettered and the next one
// delivered, so one change a receiver cannot take does not hold back the
// others.
type Refused struct {
	// Status is the receiver's answer: an HTTP status code ("400") or an
	// MQTT 5 reason code ("0x87"). It labels the dead-letter metric.
	Status string
	// Detail is what the receiver said: the status line and the start of
	// the body, or the reason's name.
	Detail string
}

func (e *Refused) Error() string { return "receiver refused the alert for good: " + e.Detail }

// consumer reads polis.alerts.v1 for one sink.
type consumer struct {
	name     string
	kind     string // "webhook", "mqtt": says what the receiver is in dead letters
	target   string // where the alerts go (redacted URL), for logs and dead letters
	brokers  []string
	conn     kafka.ClientOptions
	log      *slog.Logger
	min, max time.Duration
	m        *metrics
}

// consume reads polis.alerts.v1 as consumer group "sink-<name>" and passes
// every alert change to be delivered to deliver, in order per partition
// (alerts are keyed by site). Offsets are committed only past alerts that
// were delivered, skipped or dead-lettered, so a receiver that is down
// delays but loses nothing, and one that refuses a change for good
// (*Refused) gets the next one once that change is on polis.deadletter.v1.
// It returns nil when ctx ends.
func (c *consumer) consume(ctx context.Context, deliver deliverFunc) error {
	cl, err := c.conn.NewClient(c.brokers, c.log, kgo.ConsumerGroup("sink-"+c.name),
		kgo.ConsumeTopics(kafka.TopicAlerts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		// Dead letters go to their site's partition, like ingest's.
		kgo.RecordPartitioner(kafka.SitePartitioner()))
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
		var (
			failed error
			done   []*kgo.Record // delivered, skipped or dead-lettered, in fetch order
		)
		fs.EachRecord(func(r *kgo.Record) {
			if failed != nil {
				return
			}
			var a record.AlertChange
			if err := record.UnmarshalAlert(r.Value, &a); err == nil && a.Deliver {
				// Otherwise held back (silence, inhibition, flapping) or not ours.
				err := deliver(ctx, r.Value, &a)
				var ref *Refused
				if errors.As(err, &ref) {
					err = c.deadLetter(ctx, cl, r, &a, ref)
				}
				if failed = err; failed != nil {
					return
				}
			}
			done = append(done, r)
		})
		// The commit outlives ctx: what went out just before the sink was
		// stopped must not be sent again by the next one.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		if failed != nil {
			// ctx ended mid-retry: nothing past the undelivered alert.
			err = nil
			if len(done) > 0 {
				err = cl.CommitRecords(cctx, done...)
			}
		} else {
			err = cl.CommitUncommittedOffsets(cctx)
		}
		cancel()
		if err != nil {
			c.log.Warn("cannot commit sink offsets; alerts may be sent again", "err", err)
		}
		if failed != nil || ctx.Err() != nil {
			return nil
		}
		cl.AllowRebalance()
	}
}

// deadLetter writes an alert change the receiver refused for good to
// polis.deadletter.v1 (reason sink_refused; from there the storage writer
// puts it in ClickHouse's deadletter table), retrying while Kafka refuses,
// and counts it. It returns an error only when ctx ended first; the change
// is then neither delivered nor dead-lettered, and its offset is not
// committed.
//
// The dead letter's received time is the alert record's timestamp, so the
// same refusal written twice (the sink stopped before its commit) is one
// row once ClickHouse merges.
func (c *consumer) deadLetter(ctx context.Context, cl *kgo.Client, r *kgo.Record, a *record.AlertChange, ref *Refused) error {
	dl := &record.DeadLetter{Received: r.Timestamp.UnixMilli(), Topic: kafka.TopicAlerts, Reason: string(payload.CodeSinkRefused),
		Message: fmt.Sprintf("%s sink %q (%s) refused alert %s of rule %s with %s: %s", c.kind, c.name, c.target,
			a.Fingerprint, a.RuleID, ref.Status, clip(ref.Detail, maxDetail)),
		Site: a.Site, Asset: a.Asset, Payload: r.Value}
	value, err := record.MarshalDeadLetter(dl)
	if err != nil {
		return fmt.Errorf("cannot encode dead letter: %w", err) // cannot happen: plain strings and bytes
	}
	key := a.Site
	if key == "" {
		key = "unknown"
	}
	dr := &kgo.Record{Topic: kafka.TopicDeadLetter, Key: []byte(key), Value: value, Timestamp: r.Timestamp}
	err = retry(ctx, c.log, c.min, c.max, func(ctx context.Context) error {
		return cl.ProduceSync(ctx, dr).FirstErr()
	}, "what", "dead letter", "topic", kafka.TopicDeadLetter)
	if err != nil {
		return err
	}
	c.m.deadLettered.WithLabelValues(c.name, ref.Status).Inc()
	c.log.Warn("receiver refused an alert for good; dead-lettered, the next alerts go on",
		"target", c.target, "status", ref.Status, "fingerprint", a.Fingerprint, "rule", a.RuleID, "site", a.Site,
		"deadletter_topic", kafka.TopicDeadLetter, "reason", payload.CodeSinkRefused)
	return nil
}

// clip cuts s to at most n bytes of valid UTF-8, saying it did.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + " [cut]"
}

// retry calls try until it succeeds, it returns a *Refused error, or ctx
// ends, pausing between attempts for a time that doubles from minPause up
// to maxPause, with jitter. It warns on the first failure and tells when
// delivery resumes, so an outage logs two lines, not one per attempt.
// attrs say where the alert goes.
func retry(ctx context.Context, log *slog.Logger, minPause, maxPause time.Duration, try func(context.Context) error, attrs ...any) error {
	log = log.With(attrs...)
	bo := backoff.New(minPause, maxPause, backoff.Equal)
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil {
			if attempt > 1 {
				log.Info("sink delivers again", "attempts", attempt)
			}
			return nil
		}
		var ref *Refused
		if errors.As(err, &ref) {
			return err
		}
		if attempt == 1 {
			log.Warn("cannot deliver alert; retrying", "err", err)
		}
		if err := bo.Wait(ctx); err != nil {
			return err
		}
	}
}
