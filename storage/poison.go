package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/polis-platform/polis/ingest/payload"
	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

// A row ClickHouse refuses for good must not hold its partition up for
// ever: the writer splits the refused insert until it finds the rows, sends
// them to the dead-letter table with ClickHouse's reason, and inserts the
// rest.

// appendError is a value the driver cannot encode for its column: it will
// not pass on a retry.
type appendError struct{ err error }

func (e *appendError) Error() string { return e.err.Error() }
func (e *appendError) Unwrap() error { return e.err }

// refusedCodes are ClickHouse errors about the data itself.
var refusedCodes = map[int32]bool{
	6:   true, // CANNOT_PARSE_TEXT
	27:  true, // CANNOT_PARSE_INPUT_ASSERTION_FAILED
	41:  true, // CANNOT_PARSE_DATETIME
	53:  true, // TYPE_MISMATCH
	69:  true, // ARGUMENT_OUT_OF_BOUND
	70:  true, // CANNOT_CONVERT_TYPE
	72:  true, // CANNOT_PARSE_NUMBER
	117: true, // INCORRECT_DATA
	131: true, // TOO_LARGE_STRING_SIZE
	321: true, // VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
}

// refused reports whether err says the rows themselves are refused, not
// that ClickHouse or the network failed.
func refused(err error) bool {
	var ae *appendError
	if errors.As(err, &ae) {
		return true
	}
	var ex *clickhouse.Exception
	return errors.As(err, &ex) && refusedCodes[ex.Code]
}

// span is rows [lo, hi) of a table.
type span struct {
	table
	lo, hi int
}

func (s span) values() []any {
	vs := s.table.values()
	out := make([]any, len(vs))
	for i, v := range vs {
		out[i] = reflect.ValueOf(v).Slice(s.lo, s.hi).Interface()
	}
	return out
}

func (s span) len() int { return s.hi - s.lo }

// insertSplitting inserts rows [lo, hi) of t; where ClickHouse refuses
// them for good it splits them in halves, down to the rows refused, which
// it hands to bad.
func (w *Writer) insertSplitting(ctx context.Context, t table, lo, hi int, bad func(i int, err error)) error {
	return splitInsert(ctx, func(ctx context.Context, t table) error { return insertTable(ctx, w.conn, w.o.Database, t) }, t, lo, hi, bad)
}

func splitInsert(ctx context.Context, insert func(context.Context, table) error, t table, lo, hi int, bad func(i int, err error)) error {
	err := insert(ctx, span{t, lo, hi})
	if err == nil || !refused(err) {
		return err
	}
	if hi-lo == 1 {
		bad(lo, err)
		return nil
	}
	mid := lo + (hi-lo)/2
	if err := splitInsert(ctx, insert, t, lo, mid, bad); err != nil {
		return err
	}
	return splitInsert(ctx, insert, t, mid, hi, bad)
}

// deadLetterRow turns row i of t into a dead letter (the row as JSON).
func deadLetterRow(t table, i int, err error) *record.DeadLetter {
	row := map[string]any{}
	for j, v := range t.values() {
		row[t.columns()[j]] = reflect.ValueOf(v).Index(i).Interface()
	}
	d := &record.DeadLetter{Received: time.Now().UnixMilli(), Reason: string(payload.CodeStorageRefused),
		Message: fmt.Sprintf("ClickHouse refused this row of %s: %v", t.name(), err)}
	if r, ok := row["received"].(time.Time); ok {
		d.Received = r.UnixMilli() // a replay dead-letters the same row again, which collapses
	}
	d.Site, _ = row["site"].(string)
	d.Asset, _ = row["asset"].(string)
	switch t.name() {
	case schema.TableTelemetry:
		d.Topic = kafka.TopicTelemetry
	case schema.TableEvents:
		d.Topic = kafka.TopicEvents
	case schema.TableAlerts:
		d.Topic = kafka.TopicAlerts
	default:
		d.Topic = t.name()
	}
	d.Payload, _ = json.Marshal(row)
	return d
}
