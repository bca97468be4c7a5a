package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// LifecycleWriterOptions configure a LifecycleWriter.
type LifecycleWriterOptions struct {
	Brokers []string
	// Kafka is how its client connects (SASL, TLS); zero: plaintext.
	Kafka    kafka.ClientOptions
	Conn     driver.Conn
	Database string
	Flavor   schema.Flavor
	Logger   *slog.Logger
}

// LifecycleWriter stores the lifecycle log (polis.lifecycle.v1) in
// lifecycle_events, in its own consumer group (kafka.GroupLifecycleStore),
// so that every instance may run one and each event is stored once. It
// commits offsets only after ClickHouse has the rows, retrying while
// ClickHouse is down; an event stored twice (its commit was lost) collapses
// in the ReplacingMergeTree. Events with cause lifecycle.CauseMigrated came
// from ClickHouse and are not stored again.
type LifecycleWriter struct {
	o   LifecycleWriterOptions
	log *slog.Logger
}

// NewLifecycleWriter validates the options.
func NewLifecycleWriter(o LifecycleWriterOptions) (*LifecycleWriter, error) {
	if len(o.Brokers) == 0 || o.Conn == nil {
		return nil, errors.New("cannot create lifecycle writer: Brokers and Conn are required")
	}
	if o.Database == "" {
		o.Database = schema.DefaultDatabase
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &LifecycleWriter{o: o, log: o.Logger.With("component", "lifecycle writer")}, nil
}

// Run stores the log until ctx ends. Events polled but not yet stored when
// it ends stay uncommitted and are stored by the next run.
func (w *LifecycleWriter) Run(ctx context.Context) error {
	cl, err := w.o.Kafka.NewClient(w.o.Brokers, w.log,
		kgo.ConsumerGroup(kafka.GroupLifecycleStore),
		kgo.ConsumeTopics(kafka.TopicLifecycle),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	if err != nil {
		return fmt.Errorf("cannot create lifecycle consumer: %w", err)
	}
	defer func() {
		cl.AllowRebalance()
		cl.Close()
	}()
	for {
		fs := cl.PollRecords(ctx, 10000)
		if fs.IsClientClosed() || ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			w.log.Warn("cannot fetch from Kafka", "topic", t, "partition", p, "err", err)
		})
		var evs []lifecycle.Event
		fs.EachRecord(func(r *kgo.Record) {
			var ev lifecycle.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				w.log.Warn("skipping a lifecycle event that cannot be decoded", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			if ev.Cause != lifecycle.CauseMigrated {
				evs = append(evs, ev)
			}
		})
		if len(evs) > 0 {
			b := backoff.New(200*time.Millisecond, 10*time.Second, backoff.Equal)
			for {
				err := InsertLifecycle(ctx, w.o.Conn, w.o.Database, w.o.Flavor, evs)
				if err == nil {
					break
				}
				w.log.Warn("cannot store lifecycle events; retrying", "events", len(evs), "err", err)
				if b.Wait(ctx) != nil {
					return nil // not committed: stored by the next run
				}
			}
		}
		if fs.NumRecords() > 0 {
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if err := cl.CommitUncommittedOffsets(cctx); err != nil {
				w.log.Warn("cannot commit lifecycle offsets; the events may be stored again", "err", err)
			}
			cancel()
		}
		cl.AllowRebalance()
	}
}

// InsertLifecycle inserts lifecycle events into lifecycle_events.
func InsertLifecycle(ctx context.Context, conn driver.Conn, db string, f schema.Flavor, evs []lifecycle.Event) error {
	legacy := f != schema.Modern
	cols := "site, asset, from_state, to_state, ts, actor, cause"
	if legacy {
		cols = "site, asset, from_state, to_state, ts, ts_ms, actor, cause"
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+"."+schema.TableLifecycle+" ("+cols+")")
	if err != nil {
		return fmt.Errorf("cannot store %d lifecycle events: %w", len(evs), err)
	}
	for _, ev := range evs {
		args := []any{ev.Site, ev.Asset, string(ev.From), string(ev.To), ev.At.UTC()}
		if legacy {
			args = append(args, uint16(ev.At.UnixMilli()%1000))
		}
		if err := b.Append(append(args, ev.Actor, ev.Cause)...); err != nil {
			_ = b.Abort()
			return fmt.Errorf("cannot store %d lifecycle events: %w", len(evs), err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot store %d lifecycle events: %w", len(evs), err)
	}
	return nil
}

// LatestLifecycleSQL is the query LatestLifecycle runs.
func LatestLifecycleSQL(db string, f schema.Flavor) string {
	order := "toUInt64(toUnixTimestamp(ts)) * 1000 + ts_ms"
	if f == schema.Modern {
		order = "ts"
	}
	return "SELECT site, asset, argMax(to_state, " + order + ") FROM " + db + "." + schema.TableLifecycle + " GROUP BY site, asset"
}

// LatestLifecycle reads each asset's latest stored lifecycle state: what
// the platform seeds an empty lifecycle log with (twin.Live.MigrateLifecycle),
// the lifecycle having been kept in ClickHouse only before it had a log.
func LatestLifecycle(ctx context.Context, conn driver.Conn, db string, f schema.Flavor) (map[[2]string]lifecycle.State, error) {
	rows, err := conn.Query(ctx, LatestLifecycleSQL(db, f))
	if err != nil {
		return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
	}
	defer rows.Close()
	latest := map[[2]string]lifecycle.State{}
	for rows.Next() {
		var site, asset, st string
		if err := rows.Scan(&site, &asset, &st); err != nil {
			return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
		}
		latest[[2]string{site, asset}] = lifecycle.State(st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot read lifecycle events: %w", err)
	}
	return latest, nil
}
