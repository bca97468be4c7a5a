package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/storage/schema"
)

// table is one table's share of a batch, held column by column so that the
// insert appends whole slices (clickhouse-go's fast path).
type table interface {
	name() string
	columns() []string
	// values returns one slice per column, in columns() order.
	values() []any
	len() int
	reset()
}

// batch is everything polled since the last commit.
type batch struct {
	tables  []table
	sent    []bool // tables already accepted in this batch: not resent on retry
	records int    // Kafka records polled, decodable or not
	tel     *telemetryRows
	ev      *eventRows
	dl      *deadLetterRows
	al      *alertRows
	// staged: the writer's rollups hold this batch's points.
	staged bool
}

func newBatch(f schema.Flavor) *batch {
	b := &batch{
		tel: &telemetryRows{legacy: f == schema.Legacy},
		ev:  &eventRows{legacy: f == schema.Legacy},
		dl:  &deadLetterRows{},
		al:  &alertRows{legacy: f == schema.Legacy},
	}
	b.tables = []table{b.tel, b.ev, b.dl, b.al}
	b.sent = make([]bool, len(b.tables))
	return b
}

func (b *batch) rows() int {
	n := 0
	for _, t := range b.tables {
		n += t.len()
	}
	return n
}

func (b *batch) reset() {
	for i, t := range b.tables {
		t.reset()
		b.sent[i] = false
	}
	b.records = 0
	b.staged = false
}

// insertSQL names the columns: 18.16 rejects a bare "INSERT INTO t" from
// clickhouse-go ("expected 0 arguments").
func insertSQL(db string, t table) string {
	return "INSERT INTO " + db + "." + t.name() + " (" + strings.Join(t.columns(), ", ") + ")"
}

// insertTable sends one table's rows as one INSERT.
func insertTable(ctx context.Context, conn driver.Conn, db string, t table) error {
	b, err := conn.PrepareBatch(ctx, insertSQL(db, t))
	if err != nil {
		return fmt.Errorf("cannot prepare insert into %s.%s: %w", db, t.name(), err)
	}
	defer b.Close()
	for i, v := range t.values() {
		if err := b.Column(i).Append(v); err != nil {
			return &appendError{fmt.Errorf("cannot append column %s of %s.%s: %w", t.columns()[i], db, t.name(), err)}
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert %d rows into %s.%s: %w", t.len(), db, t.name(), err)
	}
	return nil
}

// timeFits says whether a time in Unix milliseconds fits the schema's time
// columns: DateTime (1970 to 2106) on Legacy, DateTime64(3) (1900 to 2299)
// on Modern. The driver would wrap a time outside silently.
func timeFits(ms int64, legacy bool) bool {
	if legacy {
		return ms >= 0 && ms < (1<<32)*1000
	}
	return ms >= -2208988800000 && ms < 10413792000000
}

// splitMillis turns Unix milliseconds into a time and, for Legacy's DateTime
// plus ts_ms columns, the millisecond part (floored, so pre-1970 works too).
func splitMillis(ms int64) (time.Time, uint16) {
	sub := ms % 1000
	if sub < 0 {
		sub += 1000
	}
	return time.UnixMilli(ms).UTC(), uint16(sub)
}

type telemetryRows struct {
	legacy              bool
	site, asset, metric []string
	ts, received        []time.Time
	tsMS                []uint16
	value               []float64
	late                []uint8
	// The point's identity: where it came from in Kafka.
	kpart   []uint16
	koffset []uint64
	kidx    []uint16
	tsMilli []int64  // source time in ms, for the rollups (not a column)
	sid     []uint32 // series ids, filled by the rollups (not a column)
	// bad marks rows ClickHouse refused for good (dead-lettered, not in
	// the rollups).
	bad map[int]bool
}

func (r *telemetryRows) name() string { return schema.TableTelemetry }

func (r *telemetryRows) columns() []string {
	if r.legacy {
		return []string{"site", "asset", "metric", "ts", "ts_ms", "value", "received", "late", "kpart", "koffset", "kidx"}
	}
	return []string{"site", "asset", "metric", "ts", "value", "received", "late", "kpart", "koffset", "kidx"}
}

func (r *telemetryRows) values() []any {
	if r.legacy {
		return []any{r.site, r.asset, r.metric, r.ts, r.tsMS, r.value, r.received, r.late, r.kpart, r.koffset, r.kidx}
	}
	return []any{r.site, r.asset, r.metric, r.ts, r.value, r.received, r.late, r.kpart, r.koffset, r.kidx}
}

func (r *telemetryRows) len() int { return len(r.site) }

func (r *telemetryRows) reset() {
	r.site, r.asset, r.metric = r.site[:0], r.asset[:0], r.metric[:0]
	r.ts, r.received, r.tsMS = r.ts[:0], r.received[:0], r.tsMS[:0]
	r.value, r.late = r.value[:0], r.late[:0]
	r.kpart, r.koffset, r.kidx, r.tsMilli, r.sid = r.kpart[:0], r.koffset[:0], r.kidx[:0], r.tsMilli[:0], r.sid[:0]
	clear(r.bad)
}

// pos is the Kafka position of row i, ordering the points of a partition.
func (r *telemetryRows) pos(i int) uint64 { return r.koffset[i]<<16 | uint64(r.kidx[i]) }

// add appends the points of rec, which sits at offset in Kafka partition
// part. The index of a point within its record is part of its identity;
// ingest makes at most 65,536 points a record (payload.Limits), so it
// fits in kidx.
func (r *telemetryRows) add(rec *record.Record, part int32, offset int64) (outside []record.Point) {
	recv := time.UnixMilli(rec.Received).UTC()
	for i, p := range rec.Points {
		if !timeFits(p.TS, r.legacy) {
			outside = append(outside, p)
			continue
		}
		r.kpart = append(r.kpart, uint16(part))
		r.koffset = append(r.koffset, uint64(offset))
		r.kidx = append(r.kidx, uint16(i))
		r.tsMilli = append(r.tsMilli, p.TS)
		ts, ms := splitMillis(p.TS)
		r.site = append(r.site, rec.Site)
		r.asset = append(r.asset, rec.Asset)
		r.metric = append(r.metric, p.Metric)
		r.ts = append(r.ts, ts)
		if r.legacy {
			r.tsMS = append(r.tsMS, ms)
		}
		r.value = append(r.value, p.Value)
		r.received = append(r.received, recv)
		var late uint8
		if p.Late {
			late = 1
		}
		r.late = append(r.late, late)
	}
	return outside
}

type eventRows struct {
	legacy                 bool
	site, asset, typ, body []string
	ts, received           []time.Time
	tsMS                   []uint16
	kpart                  []uint16
	koffset                []uint64
}

func (r *eventRows) name() string { return schema.TableEvents }

func (r *eventRows) columns() []string {
	if r.legacy {
		return []string{"site", "asset", "ts", "ts_ms", "type", "body", "received", "kpart", "koffset"}
	}
	return []string{"site", "asset", "ts", "type", "body", "received", "kpart", "koffset"}
}

func (r *eventRows) values() []any {
	if r.legacy {
		return []any{r.site, r.asset, r.ts, r.tsMS, r.typ, r.body, r.received, r.kpart, r.koffset}
	}
	return []any{r.site, r.asset, r.ts, r.typ, r.body, r.received, r.kpart, r.koffset}
}

func (r *eventRows) len() int { return len(r.site) }

func (r *eventRows) reset() {
	r.site, r.asset, r.typ, r.body = r.site[:0], r.asset[:0], r.typ[:0], r.body[:0]
	r.ts, r.received, r.tsMS = r.ts[:0], r.received[:0], r.tsMS[:0]
	r.kpart, r.koffset = r.kpart[:0], r.koffset[:0]
}

// add stores an event, status or reported record. Status records become
// type "status" with the status word as body; reported state is kept as an
// audit trail under type "reported".
func (r *eventRows) add(rec *record.Record, part int32, offset int64) {
	typ, body := rec.Event, string(rec.Body)
	switch rec.Kind {
	case record.KindStatus:
		typ, body = "status", rec.Status
	case record.KindReported:
		typ = "reported"
	}
	src := rec.TS
	if src == 0 {
		src = rec.Received
	}
	ts, ms := splitMillis(src)
	r.site = append(r.site, rec.Site)
	r.asset = append(r.asset, rec.Asset)
	r.ts = append(r.ts, ts)
	if r.legacy {
		r.tsMS = append(r.tsMS, ms)
	}
	r.typ = append(r.typ, typ)
	r.body = append(r.body, body)
	r.received = append(r.received, time.UnixMilli(rec.Received).UTC())
	r.kpart = append(r.kpart, uint16(part))
	r.koffset = append(r.koffset, uint64(offset))
}

type deadLetterRows struct {
	received                                     []time.Time
	topic, reason, message, site, asset, payload []string
}

func (r *deadLetterRows) name() string { return schema.TableDeadLetter }

func (r *deadLetterRows) columns() []string {
	return []string{"received", "topic", "reason", "message", "site", "asset", "payload"}
}

func (r *deadLetterRows) values() []any {
	return []any{r.received, r.topic, r.reason, r.message, r.site, r.asset, r.payload}
}

func (r *deadLetterRows) len() int { return len(r.received) }

func (r *deadLetterRows) reset() {
	r.received = r.received[:0]
	r.topic, r.reason, r.message = r.topic[:0], r.reason[:0], r.message[:0]
	r.site, r.asset, r.payload = r.site[:0], r.asset[:0], r.payload[:0]
}

func (r *deadLetterRows) add(d *record.DeadLetter) {
	r.received = append(r.received, time.UnixMilli(d.Received).UTC())
	r.topic = append(r.topic, d.Topic)
	r.reason = append(r.reason, d.Reason)
	r.message = append(r.message, d.Message)
	r.site = append(r.site, d.Site)
	r.asset = append(r.asset, d.Asset)
	r.payload = append(r.payload, string(d.Payload))
}
