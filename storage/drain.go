package storage

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/polis-platform/polis/kafka"
)

// RunDraining is Run for a platform that stops: when ctx ends, the writer
// inserts and commits after every poll until its group has stored
// everything in Kafka (or within passes), then stops. What it cannot
// reach in time stays in Kafka for the next start.
func (w *Writer) RunDraining(ctx context.Context, within time.Duration) error {
	inner, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-stopped:
			return
		case <-ctx.Done():
		}
		w.Drain()
		dctx, dcancel := context.WithTimeout(inner, within)
		defer dcancel()
		if err := w.waitDrained(dctx); err != nil {
			w.log.Warn("storage writer did not catch up before stopping; the rest is inserted at next start", "err", err)
		}
		cancel()
	}()
	return w.Run(inner)
}

// waitDrained waits until the storage group has committed every record of
// the topics it consumes.
func (w *Writer) waitDrained(ctx context.Context) error {
	cl, err := w.o.Kafka.NewClient(w.o.Brokers, w.log)
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	for {
		lags, err := adm.Lag(ctx, kafka.GroupStorage)
		if err == nil {
			err = lags.Error()
		}
		if err == nil {
			var total int64
			lags.Each(func(l kadm.DescribedGroupLag) {
				for _, t := range storedTopics {
					for _, pl := range l.Lag[t] {
						total += pl.Lag
					}
				}
			})
			if total == 0 {
				return nil
			}
			err = fmt.Errorf("%d records not yet stored", total)
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// storedTopics are the topics the writer consumes.
var storedTopics = []string{kafka.TopicTelemetry, kafka.TopicEvents, kafka.TopicDeadLetter, kafka.TopicAlerts}
