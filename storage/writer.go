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
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/payload"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/backoff"
	"github.com/polis-platform/polis/internal/logthrottle"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

// DefaultAddr is the ClickHouse native-protocol address the commands use
// unless told otherwise.
const DefaultAddr = "127.0.0.1:9000"

// Defaults of WriterOptions, used for a zero field.
const (
	DefaultMaxRows = 100000
	DefaultMaxWait = 500 * time.Millisecond
	// DefaultRollupEvery is how often the writer writes the rollup rows its
	// batches changed and commits their Kafka offsets.
	DefaultRollupEvery     = 5 * time.Second
	DefaultShutdownTimeout = 10 * time.Second
)

// Retry bounds while ClickHouse refuses a batch or does not answer.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
	// attemptTimeout bounds one insert of a batch.
	attemptTimeout = time.Minute
	// skipLogEvery is how often a record that cannot be stored is logged.
	skipLogEvery = 10 * time.Second
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Brokers are the Kafka seed addresses.
	Brokers []string
	// Kafka is how its clients connect (SASL, TLS); zero: plaintext.
	Kafka kafka.ClientOptions
	// Conn is a clickhouse-go native connection; if nil, DSN is opened
	// (e.g. "clickhouse://" + DefaultAddr) and closed by Close.
	Conn driver.Conn
	DSN  string
	// Database holding the schema (see storage/schema); default
	// schema.DefaultDatabase.
	Database string
	// Flavor of the schema; zero detects it from the server when Run starts.
	Flavor schema.Flavor
	// MaxRows flushes a batch at this many rows (default DefaultMaxRows).
	MaxRows int
	// MaxWait flushes a batch this long after its first record (default
	// DefaultMaxWait).
	MaxWait time.Duration
	// RollupEvery is how often the rollup rows the batches changed are
	// written (default DefaultRollupEvery); Kafka offsets are committed
	// then. Raw rows are queryable after MaxWait regardless.
	RollupEvery time.Duration
	// ShutdownTimeout bounds the last flush and commit after ctx is
	// cancelled (default DefaultShutdownTimeout).
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
	skipLog *logthrottle.Throttle
	lost    *lostWatch
	// rollups are the exact rollup tables (rollup.go), made once the
	// flavor is known, before the consumer starts. Batches merge into
	// them (rollPending); flushRollups writes them by rollDue, and only
	// then are the batches' offsets committed.
	rollups     []*rollup
	rollPending bool
	rollDue     time.Time
	rollSent    [2]bool
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
		opts.MaxRows = DefaultMaxRows
	}
	if opts.RollupEvery <= 0 {
		opts.RollupEvery = DefaultRollupEvery
	}
	if opts.MaxWait <= 0 {
		opts.MaxWait = DefaultMaxWait
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer{o: opts, conn: opts.Conn, flavor: opts.Flavor, log: opts.Logger.With("component", "storage"),
		skipLog: logthrottle.New(skipLogEvery)}
	w.drainCtx, w.drainStart = context.WithCancel(context.Background())
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, err
	}
	w.m = m
	if w.lost, err = newLostWatch(w.log, opts.Registerer); err != nil {
		return nil, err
	}
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
	w.rollups = newRollups(w.flavor)
	if err := Ping(ctx, w.conn); err != nil {
		w.m.up.Set(0)
		w.log.Warn("ClickHouse does not answer; consuming anyway, batches wait for it", "err", err)
	} else {
		w.m.up.Set(1)
	}
	var client atomic.Pointer[kgo.Client] // for lostWatch.resume
	cl, err := w.o.Kafka.NewClient(w.o.Brokers, w.log,
		kgo.ConsumerGroup(kafka.GroupStorage),
		kgo.ConsumeTopics(storedTopics...),
		// Where the group has no committed offset, and where retention
		// deleted it (reported by lostWatch).
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AdjustFetchOffsetsFn(func(ctx context.Context, o map[string]map[int32]kgo.Offset) (map[string]map[int32]kgo.Offset, error) {
			w.lost.resume(ctx, client.Load(), o)
			return o, nil
		}),
		kgo.DisableAutoCommit(),
		// Rebalances wait until the batch is committed, so a commit never
		// lands on partitions this member no longer owns.
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			w.m.dropLag(r)
			w.revokeRollups(r)
			w.lost.forget(r)
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, r map[string][]int32) {
			w.m.dropLag(r)
			w.revokeRollups(r)
			w.lost.forget(r)
		}),
	)
	if err != nil {
		return fmt.Errorf("cannot create Kafka consumer: %w", err)
	}
	client.Store(cl)
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
		wake := deadline
		if w.rollPending && (wake.IsZero() || w.rollDue.Before(wake)) {
			wake = w.rollDue
		}
		pollCtx, cancel := context.WithCancel(ctx)
		if !wake.IsZero() {
			pollCtx, cancel = context.WithDeadline(ctx, wake)
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
			w.lost.fetched(p)
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
		rollupsDue := w.rollPending && (w.draining.Load() || !time.Now().Before(w.rollDue))
		if b.records == 0 && !rollupsDue {
			if !w.rollPending {
				cl.AllowRebalance()
			}
			continue
		}
		if b.records > 0 {
			if b.rows() < w.o.MaxRows && time.Now().Before(deadline) && !w.draining.Load() && !rollupsDue {
				continue
			}
			if err := w.flush(ctx, b); err != nil {
				return w.shutdown(cl, b, uncommitted) // ctx cancelled mid-retry
			}
			perRecord = max(1, b.rows()/b.records)
			b.reset()
			deadline = time.Time{}
		}
		if ctx.Err() != nil {
			return w.shutdown(cl, b, true) // commits under the shutdown timeout
		}
		// The raw rows are in; the rollup rows of these batches go in on
		// their own, slower cadence, and only then are the offsets
		// committed (a replay then rebuilds whatever was not written).
		if w.rollPending && !w.draining.Load() && time.Now().Before(w.rollDue) {
			continue
		}
		if err := w.flushRollups(ctx); err != nil {
			return w.shutdown(cl, b, uncommitted)
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
	if err := w.flushRollups(ctx); err != nil {
		return fmt.Errorf("cannot store the rollups before stopping; the offsets stay uncommitted: %w", err)
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
			w.skip(b, kr, "decode", err)
			return
		}
		b.dl.add(&d)
		return
	}
	if kr.Topic == kafka.TopicAlerts {
		var a record.AlertChange
		if err := record.UnmarshalAlert(kr.Value, &a); err != nil {
			w.skip(b, kr, "decode", err)
			return
		}
		b.al.add(&a)
		return
	}
	var r record.Record
	if err := record.Unmarshal(kr.Value, &r); err != nil {
		w.skip(b, kr, "decode", err)
		return
	}
	switch r.Kind {
	case record.KindTelemetry:
		for _, p := range b.tel.add(&r, kr.Partition, kr.Offset) {
			w.m.refused.WithLabelValues(schema.TableTelemetry).Inc()
			body, _ := json.Marshal(p)
			b.dl.add(&record.DeadLetter{Received: r.Received, Topic: kr.Topic, Reason: string(payload.CodeStorageRefused),
				Message: fmt.Sprintf("partition %d offset %d: point time %d ms is outside what the telemetry table's time column holds",
					kr.Partition, kr.Offset, p.TS), Site: r.Site, Asset: r.Asset, Payload: body})
		}
	case record.KindEvent, record.KindStatus, record.KindReported:
		b.ev.add(&r, kr.Partition, kr.Offset)
	default:
		w.skip(b, kr, "kind", fmt.Errorf("unknown record kind %q", r.Kind))
	}
}

func (w *Writer) skip(b *batch, kr *kgo.Record, reason string, err error) {
	w.m.skipped.WithLabelValues(reason).Inc()
	// Nothing is dropped: the record goes to the dead-letter table as it was.
	received := kr.Timestamp.UnixMilli()
	if kr.Timestamp.IsZero() {
		received = time.Now().UnixMilli()
	}
	b.dl.add(&record.DeadLetter{Received: received, Topic: kr.Topic, Reason: string(payload.CodeBadRecord),
		Message: fmt.Sprintf("partition %d offset %d: %v", kr.Partition, kr.Offset, err), Site: string(kr.Key), Payload: kr.Value})
	if n, ok := w.skipLog.Allow("skip"); ok {
		w.log.Warn("skipping a record that cannot be stored", "topic", kr.Topic, "partition", kr.Partition,
			"offset", kr.Offset, "err", err, "skipped_since_last_log", n)
	}
}

// flush inserts the batch, retrying with capped exponential backoff (with
// jitter) until ClickHouse accepts every table or ctx ends. Nothing is
// dropped.
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
	if err := w.retry(ctx, rows, func(ctx context.Context) error { return w.insert(ctx, b) }); err != nil {
		return err
	}
	w.m.batchRows.Observe(float64(rows))
	w.m.flushSeconds.Observe(time.Since(began).Seconds())
	return nil
}

// flushRollups writes the rollup rows the batches since the last call
// changed, retrying like flush. The Kafka offsets of those batches may be
// committed once it returns nil.
func (w *Writer) flushRollups(ctx context.Context) error {
	w.rollDue = time.Time{}
	if !w.rollPending {
		return nil
	}
	rows := 0
	for _, r := range w.rollups {
		rows += len(r.staged)
	}
	if err := w.retry(ctx, rows, w.insertRollups); err != nil {
		return err
	}
	w.rollPending = false
	return nil
}

// retry runs try with capped exponential backoff (with jitter) until it
// succeeds or ctx ends. Nothing is dropped.
func (w *Writer) retry(ctx context.Context, rows int, try func(context.Context) error) error {
	began := time.Now()
	bo := backoff.New(retryMin, retryMax, backoff.Equal)
	for attempt := 1; ; attempt++ {
		deadline := time.Now().Add(attemptTimeout)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		actx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
		err := try(actx)
		cancel()
		if err == nil {
			w.m.up.Set(1)
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
		if cerr := bo.Wait(ctx); cerr != nil {
			return errors.Join(cerr, err)
		}
	}
}

// insert sends every table not yet accepted in this batch, then the
// rollup rows the batch changed (staged once, so a retry sends the same
// rows), and moves those rows into the rollup cache.
func (w *Writer) insert(ctx context.Context, b *batch) error {
	// Two passes: rows refused in a later table are dead-lettered into an
	// earlier one (deadletter), which is then sent again; its copy collapses.
	for range 2 {
		for i, t := range b.tables {
			if b.sent[i] || t.len() == 0 {
				continue
			}
			if err := w.insertSplitting(ctx, t, 0, t.len(), func(row int, err error) { w.refuse(b, t, row, err) }); err != nil {
				return err
			}
			b.sent[i] = true
			w.m.rows.WithLabelValues(t.name()).Add(float64(t.len()))
		}
	}
	if b.tel.len() == 0 || b.staged {
		return nil
	}
	// The batch's points go into the rollup rows they change, in memory;
	// flushRollups writes those rows before the offsets are committed.
	for _, r := range w.rollups {
		if err := r.stage(ctx, w.conn, w.o.Database, b.tel); err != nil {
			return err
		}
	}
	b.staged = true
	w.rollPending = true
	if w.rollDue.IsZero() {
		w.rollDue = time.Now().Add(w.o.RollupEvery)
	}
	return nil
}

// insertRollups sends the staged rows of every rollup not yet accepted
// (laid out once, so a retry sends the same rows) and moves them into the
// rollup cache.
func (w *Writer) insertRollups(ctx context.Context) error {
	for i, r := range w.rollups {
		if w.rollSent[i] {
			continue
		}
		if !r.laid {
			r.lay()
		}
		if r.len() > 0 {
			if err := insertTable(ctx, w.conn, w.o.Database, r); err != nil {
				return err
			}
			w.m.rollupRows.WithLabelValues(r.name()).Add(float64(r.len()))
		}
		w.rollSent[i] = true
	}
	for i, r := range w.rollups {
		if r.crossed > 0 {
			w.m.unkeyed.Add(float64(r.crossed))
			if n, ok := w.skipLog.Allow("unkeyed"); ok {
				w.log.Warn("telemetry records not keyed by site: a series spans Kafka partitions, so its rollups may count replays twice",
					"table", r.table, "points", r.crossed, "since_last_log", n)
			}
			r.crossed = 0
		}
		r.commit()
		w.rollSent[i] = false
	}
	return nil
}

// refuse dead-letters row i of t, which ClickHouse refused for good.
func (w *Writer) refuse(b *batch, t table, i int, err error) {
	w.m.refused.WithLabelValues(t.name()).Inc()
	if t == table(b.dl) {
		w.log.Error("ClickHouse refused a dead letter; it is dropped", "err", err)
		return
	}
	if t == table(b.tel) {
		if b.tel.bad == nil {
			b.tel.bad = map[int]bool{}
		}
		b.tel.bad[i] = true
	}
	b.dl.add(deadLetterRow(t, i, err))
	for j, x := range b.tables {
		if x == table(b.dl) {
			b.sent[j] = false
		}
	}
	if n, ok := w.skipLog.Allow("refused"); ok {
		w.log.Warn("ClickHouse refused a row for good; it goes to the dead-letter table", "table", t.name(), "err", err, "since_last_log", n)
	}
}

// revokeRollups forgets the cached rollup rows of telemetry partitions
// another writer takes over.
func (w *Writer) revokeRollups(revoked map[string][]int32) {
	for _, r := range w.rollups {
		r.revoke(revoked[kafka.TopicTelemetry])
	}
}

// detectFlavor asks the server when the options did not say, retrying while
// ClickHouse is unreachable. It fails only when ctx ends.
func (w *Writer) detectFlavor(ctx context.Context) error {
	bo := backoff.New(retryMin, retryMax, backoff.Equal)
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
		if err := bo.Wait(ctx); err != nil {
			return err
		}
	}
	return nil
}

// lostWatch notices records that Kafka's retention deleted before the
// writer read them: they never reach ClickHouse, and nothing else would
// say so (franz-go resets an offset out of range to the log start, by
// ConsumeResetOffset, logging it at Info, or Warn while consuming). It
// happens when the writer was stopped, or could not store (ClickHouse
// down), for longer than the stream topics' retention.
//
// It keeps, per owned partition, the offset the writer reads next: the
// group's committed offset when the partition is assigned, then one past
// the last record polled. It reports a loss when the partition's log start
// offset has moved past that offset:
//
//   - on assignment (resume), against the log start offsets it lists, so
//     a writer restarted after retention says so at once;
//   - on every poll (fetched), when the first record polled is past the
//     offset expected and the fetch's log start offset is too: a loss at
//     assignment the listing missed, or one while the writer was behind.
//     A gap below the log start is something else (transaction markers,
//     compaction) and is not reported.
//
// Each loss is logged at Error level with the topic, partition, committed
// (or next) offset and log start offset, and counted in
// polis_storage_records_lost_to_retention_total{topic} (in offsets, so a
// transaction marker in the gap counts as a record). A partition reports
// at most once per retention run of the broker.
type lostWatch struct {
	log   *slog.Logger
	count *prometheus.CounterVec // by topic

	mu   sync.Mutex
	next map[string]map[int32]int64 // topic -> partition -> offset read next
}

func newLostWatch(log *slog.Logger, reg prometheus.Registerer) (*lostWatch, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "polis_storage_records_lost_to_retention_total",
		Help: "Records Kafka's retention deleted before the storage writer stored them, by topic (offsets skipped).",
	}, []string{"topic"})
	for _, t := range storedTopics {
		c.WithLabelValues(t) // present at 0, for alerts on increase()
	}
	if reg != nil {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("cannot register storage metrics: %w", err)
		}
	}
	return &lostWatch{log: log, count: c, next: map[string]map[int32]int64{}}, nil
}

// resume notes the committed offsets the group resumes newly assigned
// partitions from (kgo.AdjustFetchOffsetsFn) and compares them with the
// partitions' log start offsets. A partition without a committed offset
// (the reset offset, negative) has nothing to lose. A failed listing is
// logged and left to fetched.
func (lw *lostWatch) resume(ctx context.Context, cl *kgo.Client, offsets map[string]map[int32]kgo.Offset) {
	var topics []string
	lw.mu.Lock()
	for t, ps := range offsets {
		listed := false
		for p, o := range ps {
			if at := o.EpochOffset().Offset; at >= 0 {
				lw.setLocked(t, p, at)
				if !listed {
					topics, listed = append(topics, t), true
				}
			}
		}
	}
	lw.mu.Unlock()
	if len(topics) == 0 || cl == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	starts, err := kadm.NewClient(cl).ListStartOffsets(ctx, topics...)
	if err != nil {
		lw.log.Warn("cannot list log start offsets to check the committed offsets against retention; checking as records arrive", "err", err)
		return
	}
	lw.mu.Lock()
	defer lw.mu.Unlock()
	starts.Each(func(s kadm.ListedOffset) {
		if s.Err != nil {
			return
		}
		if next, ok := lw.next[s.Topic][s.Partition]; ok && s.Offset > next {
			lw.reportLocked(s.Topic, s.Partition, "committed_offset", next, s.Offset)
		}
	})
}

// fetched checks one polled partition against the offset expected next,
// and moves that offset past the records polled.
func (lw *lostWatch) fetched(p kgo.FetchTopicPartition) {
	n := len(p.Records)
	if n == 0 {
		return
	}
	first := p.Records[0].Offset
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if next, ok := lw.next[p.Topic][p.Partition]; ok && first > next && p.LogStartOffset > next {
		lw.reportLocked(p.Topic, p.Partition, "next_offset", next, min(first, p.LogStartOffset))
	}
	lw.setLocked(p.Topic, p.Partition, p.Records[n-1].Offset+1)
}

// forget drops partitions this member no longer owns.
func (lw *lostWatch) forget(revoked map[string][]int32) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	for t, ps := range revoked {
		for _, p := range ps {
			delete(lw.next[t], p)
		}
	}
}

func (lw *lostWatch) setLocked(topic string, partition int32, next int64) {
	ps := lw.next[topic]
	if ps == nil {
		ps = map[int32]int64{}
		lw.next[topic] = ps
	}
	ps[partition] = next
}

// reportLocked logs and counts the offsets [from, logStart) as lost, and
// moves the partition's next offset to logStart.
func (lw *lostWatch) reportLocked(topic string, partition int32, fromName string, from, logStart int64) {
	lost := logStart - from
	lw.count.WithLabelValues(topic).Add(float64(lost))
	lw.next[topic][partition] = logStart
	lw.log.Error("Kafka retention deleted records before the storage writer stored them: they are not in ClickHouse "+
		"(keep the stream topics longer than the writer may be stopped or ClickHouse down)",
		"topic", topic, "partition", partition, fromName, from, "log_start_offset", logStart, "lost", lost)
}
