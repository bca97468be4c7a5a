// Package storage moves records from Kafka into ClickHouse and reads them
// back for the API.
//
// Delivery is at-least-once: Kafka offsets are committed only after
// ClickHouse accepted the rows, so a crash between the two re-delivers a
// batch. The raw tables are ReplacingMergeTree, so a re-inserted row
// collapses on merge; queries that need exact counts use FINAL. The rollup
// views see inserts, not merges: after such a re-delivery their count and
// avg include the duplicate (min, max and last do not change).
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

// Retry bounds while ClickHouse refuses a batch.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// attemptTimeout bounds one insert of a batch.
	attemptTimeout = time.Minute
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Brokers are the Kafka seed addresses.
	Brokers []string
	// Conn is a clickhouse-go native connection; if nil, DSN is opened
	// (clickhouse://127.0.0.1:9000) and closed by Close.
	Conn driver.Conn
	DSN  string
	// Database holding the schema (see storage/schema); default "polis".
	Database string
	// Flavor of the schema; zero detects it from the server when Run starts.
	Flavor schema.Flavor
	// MaxRows flushes a batch at this many rows (default 100000).
	MaxRows int
	// MaxWait flushes a batch this long after its first record (default 1s).
	MaxWait time.Duration
	// ShutdownTimeout bounds the last flush and commit after ctx is
	// cancelled (default 10s).
	ShutdownTimeout time.Duration
	Logger          *slog.Logger
	// Registerer gets the storage_* metrics if non-nil.
	Registerer prometheus.Registerer
}

// Writer is the storage consumer: Kafka in, ClickHouse out.
type Writer struct {
	o       WriterOptions
	conn    driver.Conn
	ownConn bool
	log     *slog.Logger
	m       *metrics
	flavor  schema.Flavor
	skipLog throttle
	// draining makes every poll flush and commit at once (shutdown);
	// drainStart interrupts a poll waiting for MaxWait.
	draining   atomic.Bool
	drainCtx   context.Context
	drainStart context.CancelFunc
}

// Drain makes the writer insert and commit after every poll instead of
// waiting for MaxRows or MaxWait, so that a shutdown can wait for the
// consumer lag to reach zero.
func (w *Writer) Drain() {
	w.draining.Store(true)
	w.drainStart()
}

// NewWriter validates opts and connects to ClickHouse lazily (the first
// query dials); Kafka is joined by Run.
func NewWriter(opts WriterOptions) (*Writer, error) {
	if len(opts.Brokers) == 0 {
		return nil, errors.New("cannot create storage writer: no Kafka brokers")
	}
	if opts.Database == "" {
		opts.Database = schema.DefaultDatabase
	}
	if err := schema.ValidDatabase(opts.Database); err != nil {
		return nil, err
	}
	if opts.Flavor != 0 && !opts.Flavor.Valid() {
		return nil, fmt.Errorf("cannot create storage writer: unknown flavor %s", opts.Flavor)
	}
	if opts.MaxRows <= 0 {
		opts.MaxRows = 100000
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{o: opts, conn: opts.Conn, flavor: opts.Flavor, log: opts.Logger.With("component", "storage")}
	w.drainCtx, w.drainStart = context.WithCancel(context.Background())
	w.skipLog.every = 10 * time.Second
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	w.m = m
	if w.conn == nil {
		if opts.DSN == "" {
			return nil, errors.New("cannot create storage writer: neither Conn nor DSN given")
		}
		co, err := clickhouse.ParseDSN(opts.DSN)
		if err != nil {
			return nil, fmt.Errorf("cannot parse ClickHouse DSN: %w", err)
		}
		if co.DialTimeout == 0 || co.DialTimeout > 5*time.Second {
			// A hung server must not stall a retry for the driver's 30s default.
			co.DialTimeout = 5 * time.Second
		}
		if w.conn, err = clickhouse.Open(co); err != nil {
			return nil, fmt.Errorf("cannot open ClickHouse connection: %w", err)
		}
		w.ownConn = true
	}
	return w, nil
}

// Close releases the ClickHouse connection if the Writer opened it.
func (w *Writer) Close() error {
	if w.ownConn {
		return w.conn.Close()
	}
	return nil
}

// Run consumes until ctx is cancelled, then flushes what it polled, commits
// and returns nil. An error means the last batch could not be stored in
// time; its offsets stay uncommitted and the records will be consumed again.
// The schema must exist (schema.Apply); until it does, inserts fail and
// are retried like an outage. Run must not be called concurrently on one
// Writer.
func (w *Writer) Run(ctx context.Context) error {
	if err := w.detectFlavor(ctx); err != nil {
		return nil // cancelled before ClickHouse answered: nothing polled
	}
	if err := Ping(ctx, w.conn); err != nil {
		w.m.up.Set(0)
		w.log.Warn("ClickHouse does not answer; consuming anyway, batches wait for it", "err", err)
	} else {
		w.m.up.Set(1)
	}
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(w.o.Brokers...),
		kgo.ConsumerGroup(kafka.GroupStorage),
		kgo.ConsumeTopics(kafka.TopicTelemetry, kafka.TopicEvents, kafka.TopicDeadLetter, kafka.TopicAlerts),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch is committed, so a commit never
		// lands on partitions this member no longer owns.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { w.m.dropLag(r) }),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) { w.m.dropLag(r) }),
		kgo.WithLogger(kgoLogger{w.log}),
	)
	if err != nil {
		return fmt.Errorf("cannot create Kafka consumer: %w", err)
	}
	defer func() {
		cl.AllowRebalance()
		cl.Close()
	}()
	w.log.Info("storage writer started", "database", w.o.Database, "flavor", w.flavor,
		"max_rows", w.o.MaxRows, "max_wait", w.o.MaxWait)
	return w.loop(ctx, cl)
}

func (w *Writer) loop(ctx context.Context, cl *kgo.Client) error {
	b := newBatch(w.flavor)
	uncommitted := false
	var deadline time.Time
	// Telemetry records carry several points: poll about as many records as
	// fit in MaxRows, going by the last batch's rows per record.
	perRecord := 1
	for {
		if ctx.Err() != nil {
			return w.shutdown(cl, b, uncommitted)
		}
		if w.draining.Load() {
			// A short wait still collects what the client has buffered.
			deadline = time.Now().Add(50 * time.Millisecond)
		}
		pollCtx, cancel := context.WithCancel(ctx)
		if !deadline.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, deadline)
		}
		stopDrainWatch := func() bool { return false }
		if !w.draining.Load() {
			stopDrainWatch = context.AfterFunc(w.drainCtx, cancel)
		}
		fs := cl.PollRecords(pollCtx, max(1, (w.o.MaxRows-b.rows())/perRecord))
		stopDrainWatch()
		cancel()
		if fs.IsClientClosed() {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				w.log.Warn("cannot fetch from Kafka", "topic", t, "partition", p, "err", err)
			}
		})
		fs.EachPartition(func(p kgo.FetchTopicPartition) {
			if n := len(p.Records); n > 0 {
				w.m.setLag(p.Topic, p.Partition, p.HighWatermark-p.Records[n-1].Offset-1)
				w.m.consumed.WithLabelValues(p.Topic).Add(float64(n))
			}
		})
		fs.EachRecord(func(r *kgo.Record) {
			w.add(b, r)
			uncommitted = true
		})
		if b.records > 0 && deadline.IsZero() {
			deadline = time.Now().Add(w.o.MaxWait)
		}
		if b.records == 0 {
			cl.AllowRebalance()
			continue
		}
		if b.rows() < w.o.MaxRows && time.Now().Before(deadline) && !w.draining.Load() {
			continue
		}
		if err := w.flush(ctx, b); err != nil {
			return w.shutdown(cl, b, uncommitted) // ctx cancelled mid-retry
		}
		perRecord = max(1, b.rows()/b.records)
		b.reset()
		deadline = time.Time{}
		if ctx.Err() != nil {
			return w.shutdown(cl, b, true) // commits under the shutdown timeout
		}
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			// The rows are stored; the next commit covers these offsets too.
			w.log.Warn("cannot commit Kafka offsets; will retry with the next batch", "err", err)
		} else {
			uncommitted = false
		}
		cl.AllowRebalance()
	}
}

// shutdown stores what was polled and commits it, within ShutdownTimeout.
func (w *Writer) shutdown(cl *kgo.Client, b *batch, uncommitted bool) error {
	ctx, cancel := context.WithTimeout(context.Background(), w.o.ShutdownTimeout)
	defer cancel()
	if err := w.flush(ctx, b); err != nil {
		return fmt.Errorf("cannot store the last %d rows before stopping; their offsets stay uncommitted: %w", b.rows(), err)
	}
	if uncommitted || b.records > 0 {
		if err := cl.CommitUncommittedOffsets(ctx); err != nil {
			return fmt.Errorf("cannot commit Kafka offsets before stopping: %w", err)
		}
	}
	w.log.Info("storage writer stopped")
	return nil
}

// add decodes one Kafka record into the batch. A record that cannot be
// decoded already passed ingest's validation, so it is a bug or a foreign
// producer: log (throttled), count, skip. Its offset is still committed.
func (w *Writer) add(b *batch, kr *kgo.Record) {
	b.records++
	if kr.Topic == kafka.TopicDeadLetter {
		var d record.DeadLetter
		if err := record.UnmarshalDeadLetter(kr.Value, &d); err != nil {
			w.skip(kr, "decode", err)
			return
		}
		b.dl.add(&d)
		return
	}
	if kr.Topic == kafka.TopicAlerts {
		var a record.AlertChange
		if err := record.UnmarshalAlert(kr.Value, &a); err != nil {
			w.skip(kr, "decode", err)
			return
		}
		b.al.add(&a)
		return
	}
	var r record.Record
	if err := record.Unmarshal(kr.Value, &r); err != nil {
		w.skip(kr, "decode", err)
		return
	}
	switch r.Kind {
	case record.KindTelemetry:
		b.tel.add(&r)
	case record.KindEvent, record.KindStatus, record.KindReported:
		b.ev.add(&r)
	default:
		w.skip(kr, "kind", fmt.Errorf("unknown record kind %q", r.Kind))
	}
}

func (w *Writer) skip(kr *kgo.Record, reason string, err error) {
	w.m.skipped.WithLabelValues(reason).Inc()
	if n, ok := w.skipLog.allow(time.Now()); ok {
		w.log.Warn("skipping a record that cannot be stored", "topic", kr.Topic, "partition", kr.Partition,
			"offset", kr.Offset, "err", err, "skipped_since_last_log", n)
	}
}

// flush inserts the batch, retrying with capped exponential backoff until
// ClickHouse accepts every table or ctx ends. Nothing is dropped.
//
// Cancelling ctx stops the retries but not an insert in flight (only ctx's
// deadline or attemptTimeout does): an insert cut off after the server took
// it would be sent again by the shutdown flush, a duplicate.
func (w *Writer) flush(ctx context.Context, b *batch) error {
	rows := b.rows()
	if rows == 0 {
		return nil
	}
	began := time.Now()
	delay := retryMin
	for attempt := 1; ; attempt++ {
		deadline := time.Now().Add(attemptTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		actx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		err := w.insert(actx, b)
		cancel()
		if err == nil {
			w.m.up.Set(1)
			w.m.batchRows.Observe(float64(rows))
			w.m.flushSeconds.Observe(time.Since(began).Seconds())
			if attempt > 1 {
				w.log.Info("ClickHouse accepts inserts again", "attempts", attempt, "down_for", time.Since(began).Round(time.Millisecond), "rows", rows)
			}
			return nil
		}
		if ctx.Err() != nil {
			return errors.Join(ctx.Err(), err)
		}
		w.m.insertErrors.Inc()
		w.m.up.Set(0)
		if attempt == 1 {
			w.log.Warn("cannot insert batch; keeping it and retrying", "rows", rows, "err", err)
		} else {
			w.log.Debug("insert retry failed", "attempt", attempt, "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(ctx.Err(), err)
		case <-t.C:
		}
		delay = min(delay*2, retryMax)
	}
}

// insert sends every table not yet accepted in this batch.
func (w *Writer) insert(ctx context.Context, b *batch) error {
	for i, t := range b.tables {
		if b.sent[i] || t.len() == 0 {
			continue
		}
		if err := insertTable(ctx, w.conn, w.o.Database, t); err != nil {
			return err
		}
		b.sent[i] = true
		w.m.rows.WithLabelValues(t.name()).Add(float64(t.len()))
	}
	return nil
}

// detectFlavor asks the server when the options did not say, retrying while
// ClickHouse is unreachable. It fails only when ctx ends.
func (w *Writer) detectFlavor(ctx context.Context) error {
	delay := retryMin
	for attempt := 1; w.flavor == 0; attempt++ {
		f, err := schema.Detect(ctx, w.conn)
		if err == nil {
			w.flavor = f
			w.m.up.Set(1)
			return nil
		}
		w.m.up.Set(0)
		if attempt == 1 {
			w.log.Warn("cannot detect ClickHouse version; retrying", "err", err)
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		delay = min(delay*2, retryMax)
	}
	return nil
}

// throttle lets one log line through per period and counts the rest.
type throttle struct {
	every      time.Duration
	last       time.Time
	suppressed int
}

func (t *throttle) allow(now time.Time) (suppressed int, ok bool) {
	if !t.last.IsZero() && now.Sub(t.last) < t.every {
		t.suppressed++
		return 0, false
	}
	n := t.suppressed
	t.last, t.suppressed = now, 0
	return n, true
}

// kgoLogger forwards franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, kv ...any) {
	switch level {
	case kgo.LogLevelError:
		k.l.Error(msg, kv...)
	case kgo.LogLevelWarn:
		k.l.Warn(msg, kv...)
	default:
		k.l.Debug(msg, kv...)
	}
}
