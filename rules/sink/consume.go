package sink

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/kafka"
)

// commitTimeout bounds a commit, also the last one after Run was stopped.
const commitTimeout = 5 * time.Second

// deliverFunc hands one alert change to the receiver. raw is the record's
// value, a its decoded form. It returns nil once the receiver took the
// alert, and an error only when ctx ended first.
type deliverFunc func(ctx context.Context, raw []byte, a *record.AlertChange) error

// consume reads polis.alerts.v1 as consumer group "sink-<name>" and passes
// every alert change to be delivered to deliver, in order per partition
// (alerts are keyed by site). Offsets are committed only past alerts that
// were delivered or skipped, so a receiver that is down delays but loses
// nothing. It returns nil when ctx ends.
func consume(ctx context.Context, name string, brokers []string, log *slog.Logger, deliver deliverFunc) error {
	cl, err := kafka.NewClient(brokers, log, kgo.ConsumerGroup("sink-"+name),
		kgo.ConsumeTopics(kafka.TopicAlerts), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
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
		var (
			failed error
			done   []*kgo.Record // delivered or skipped, in fetch order
		)
		fs.EachRecord(func(r *kgo.Record) {
			if failed != nil {
				return
			}
			var a record.AlertChange
			if err := record.UnmarshalAlert(r.Value, &a); err == nil && a.Deliver {
				// Otherwise held back (silence, inhibition, flapping) or not ours.
				if failed = deliver(ctx, r.Value, &a); failed != nil {
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
			log.Warn("cannot commit sink offsets; alerts may be sent again", "err", err)
		}
		if failed != nil || ctx.Err() != nil {
			return nil
		}
		cl.AllowRebalance()
	}
}

// retry calls try until it succeeds or ctx ends, pausing between attempts
// for a time that doubles from minPause up to maxPause, with jitter. It
// warns on the first failure and tells when delivery resumes, so an outage
// logs two lines, not one per attempt. attrs say where the alert goes.
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
		if attempt == 1 {
			log.Warn("cannot deliver alert; retrying", "err", err)
		}
		if err := bo.Wait(ctx); err != nil {
			return err
		}
	}
}
