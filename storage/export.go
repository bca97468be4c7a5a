package storage

import (
	"context"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// ArrowBatchRows is how many rows an Arrow record batch holds.
const ArrowBatchRows = 8192

// ResultColumn is a column of a query's result: its name and ClickHouse type.
type ResultColumn struct {
	Name string `json:"name"`
	Type string `json:"type"`
}

// RowScanner reads the rows of a ClickHouse result into typed values,
// one row at a time, for the JSON, CSV and Arrow encoders: each column is
// mapped from its ClickHouse type (Int*, UInt*, Float*, String,
// FixedString, LowCardinality(...), Date, Date32, DateTime, DateTime64,
// Bool, Nullable(...)); any other type is read as the driver gives it and
// shown as a string.
type RowScanner struct {
	rows driver.Rows
	cols []ResultColumn
	conv []*colConv
	dest []any
	// peeked: Next was called by Peek, its answer is next.
	peeked, next bool
}

// NewRowScanner maps rows' columns.
func NewRowScanner(rows driver.Rows) *RowScanner {
	cts := rows.ColumnTypes()
	s := &RowScanner{rows: rows, cols: make([]ResultColumn, len(cts)), conv: make([]*colConv, len(cts)), dest: make([]any, len(cts))}
	for i, ct := range cts {
		s.cols[i] = ResultColumn{Name: ct.Name(), Type: ct.DatabaseTypeName()}
		c := newColConv(ct.Name(), ct.DatabaseTypeName(), ct.ScanType())
		s.conv[i], s.dest[i] = c, c.dest.Interface()
	}
	return s
}

// Columns are the result's columns.
func (s *RowScanner) Columns() []ResultColumn { return s.cols }

// Next reads the next row; false at the end or on an error (Err).
func (s *RowScanner) Next() bool {
	if s.peeked {
		s.peeked = false
		return s.next
	}
	return s.rows.Next()
}

// Peek reads the next row ahead, so that an error that comes with the
// first block (a limit, a bad cast) is known before anything is written;
// the following Next returns the same answer without reading.
func (s *RowScanner) Peek() bool {
	if !s.peeked {
		s.next, s.peeked = s.rows.Next(), true
	}
	return s.next
}

// Err is the error that ended Next, or of the last Scan.
func (s *RowScanner) Err() error { return s.rows.Err() }

// Scan decodes the current row.
func (s *RowScanner) Scan() error { return s.rows.Scan(s.dest...) }

// Value is column i of the current row as JSON takes it: a number, a
// string, a bool, nil for NULL; times are RFC 3339 in UTC (dates
// YYYY-MM-DD); 64-bit integers stay numbers.
func (s *RowScanner) Value(i int) any {
	c := s.conv[i]
	v, ok := c.value()
	if !ok {
		return nil
	}
	switch c.kind {
	case kTime:
		return formatTime(v.Interface().(time.Time), c.arrow)
	case kOther:
		return fmt.Sprint(v.Interface())
	}
	return v.Interface()
}

// Text is column i of the current row as CSV takes it ("" for NULL).
func (s *RowScanner) Text(i int) string {
	c := s.conv[i]
	v, ok := c.value()
	if !ok {
		return ""
	}
	switch c.kind {
	case kTime:
		return formatTime(v.Interface().(time.Time), c.arrow)
	case kString:
		return v.String()
	case kFloat:
		return strconv.FormatFloat(v.Float(), 'g', -1, v.Type().Bits())
	case kInt:
		return strconv.FormatInt(v.Int(), 10)
	case kUint:
		return strconv.FormatUint(v.Uint(), 10)
	case kBool:
		return strconv.FormatBool(v.Bool())
	}
	return fmt.Sprint(v.Interface())
}

func formatTime(t time.Time, typ arrow.DataType) string {
	t = t.UTC()
	if typ.ID() == arrow.DATE32 {
		return t.Format(time.DateOnly)
	}
	return t.Format(time.RFC3339Nano)
}

// Schema is the Arrow schema of the result.
func (s *RowScanner) Schema() *arrow.Schema {
	fs := make([]arrow.Field, len(s.conv))
	for i, c := range s.conv {
		fs[i] = arrow.Field{Name: s.cols[i].Name, Type: c.arrow, Nullable: c.nullable}
	}
	return arrow.NewSchema(fs, nil)
}

// appendArrow appends the current row to b's builders.
func (s *RowScanner) appendArrow(b *array.RecordBuilder) {
	for i, c := range s.conv {
		c.append(b.Field(i))
	}
}

type colKind int

const (
	kInt colKind = iota
	kUint
	kFloat
	kString
	kBool
	kTime
	kOther
)

// colConv is one column's destination and how to read it.
type colConv struct {
	dest     reflect.Value // pointer passed to Scan
	nullable bool          // dest is **T
	kind     colKind
	arrow    arrow.DataType
	// fast appends a non-NULL column's value without reflection (nil:
	// the general path).
	fast func(array.Builder)
}

// ArrowType maps a ClickHouse type to its Arrow type, whether it is
// nullable, and whether it is known (unknown types are strings).
func ArrowType(chType string) (arrow.DataType, bool, bool) {
	t := strings.TrimSpace(chType)
	nullable := false
	for {
		switch {
		case strings.HasPrefix(t, "Nullable(") && strings.HasSuffix(t, ")"):
			t, nullable = t[len("Nullable("):len(t)-1], true
			continue
		case strings.HasPrefix(t, "LowCardinality(") && strings.HasSuffix(t, ")"):
			t = t[len("LowCardinality(") : len(t)-1]
			continue
		}
		break
	}
	switch t {
	case "Int8":
		return arrow.PrimitiveTypes.Int8, nullable, true
	case "Int16":
		return arrow.PrimitiveTypes.Int16, nullable, true
	case "Int32":
		return arrow.PrimitiveTypes.Int32, nullable, true
	case "Int64":
		return arrow.PrimitiveTypes.Int64, nullable, true
	case "UInt8":
		return arrow.PrimitiveTypes.Uint8, nullable, true
	case "UInt16":
		return arrow.PrimitiveTypes.Uint16, nullable, true
	case "UInt32":
		return arrow.PrimitiveTypes.Uint32, nullable, true
	case "UInt64":
		return arrow.PrimitiveTypes.Uint64, nullable, true
	case "Float32":
		return arrow.PrimitiveTypes.Float32, nullable, true
	case "Float64":
		return arrow.PrimitiveTypes.Float64, nullable, true
	case "String":
		return arrow.BinaryTypes.String, nullable, true
	case "Bool", "Boolean":
		return arrow.FixedWidthTypes.Boolean, nullable, true
	case "Date", "Date32":
		return arrow.FixedWidthTypes.Date32, nullable, true
	}
	if strings.HasPrefix(t, "FixedString(") {
		return arrow.BinaryTypes.String, nullable, true
	}
	if t == "DateTime" || strings.HasPrefix(t, "DateTime(") {
		return &arrow.TimestampType{Unit: arrow.Second, TimeZone: tzOf(t, "DateTime(")}, nullable, true
	}
	if strings.HasPrefix(t, "DateTime64(") {
		args := strings.SplitN(strings.TrimSuffix(t[len("DateTime64("):], ")"), ",", 2)
		p, err := strconv.Atoi(strings.TrimSpace(args[0]))
		if err != nil {
			return arrow.BinaryTypes.String, nullable, false
		}
		unit := arrow.Nanosecond
		switch {
		case p == 0:
			unit = arrow.Second
		case p <= 3:
			unit = arrow.Millisecond
		case p <= 6:
			unit = arrow.Microsecond
		}
		tz := "UTC"
		if len(args) == 2 {
			tz = strings.Trim(strings.TrimSpace(args[1]), "'")
		}
		return &arrow.TimestampType{Unit: unit, TimeZone: tz}, nullable, true
	}
	return arrow.BinaryTypes.String, nullable, false
}

// tzOf is the time zone of DateTime('Europe/Rome'); UTC without one
// (values are instants: UTC is as good as any zone).
func tzOf(t, prefix string) string {
	if !strings.HasPrefix(t, prefix) {
		return "UTC"
	}
	return strings.Trim(strings.TrimSuffix(t[len(prefix):], ")"), "' ")
}

func newColConv(name, chType string, scan reflect.Type) *colConv {
	typ, nullable, known := ArrowType(chType)
	c := &colConv{arrow: typ}
	if scan == nil {
		scan = reflect.TypeFor[any]()
	}
	c.nullable = scan.Kind() == reflect.Pointer
	elem := scan
	if c.nullable {
		elem = scan.Elem()
	}
	c.dest = reflect.New(scan)
	switch {
	case !known:
		c.kind, c.arrow = kOther, arrow.BinaryTypes.String
	case elem == reflect.TypeFor[time.Time]():
		c.kind = kTime
	case elem.Kind() == reflect.String:
		c.kind = kString
	case elem.Kind() == reflect.Bool:
		c.kind = kBool
	case elem.Kind() >= reflect.Int && elem.Kind() <= reflect.Int64:
		c.kind = kInt
	case elem.Kind() >= reflect.Uint && elem.Kind() <= reflect.Uint64:
		c.kind = kUint
	case elem.Kind() == reflect.Float32 || elem.Kind() == reflect.Float64:
		c.kind = kFloat
	default:
		c.kind, c.arrow = kOther, arrow.BinaryTypes.String
	}
	_ = nullable // the driver's scan type says it (a pointer)
	_ = name
	if c.kind != kOther {
		c.fast = fastAppend(c.dest.Interface(), c.arrow)
	}
	return c
}

// fastAppend appends *p to a builder of typ without reflection, for the
// common non-nullable types; nil for the others.
func fastAppend(p any, typ arrow.DataType) func(array.Builder) {
	switch p := p.(type) {
	case *string:
		return func(b array.Builder) { b.(*array.StringBuilder).Append(*p) }
	case *int8:
		return func(b array.Builder) { b.(*array.Int8Builder).Append(*p) }
	case *int16:
		return func(b array.Builder) { b.(*array.Int16Builder).Append(*p) }
	case *int32:
		return func(b array.Builder) { b.(*array.Int32Builder).Append(*p) }
	case *int64:
		return func(b array.Builder) { b.(*array.Int64Builder).Append(*p) }
	case *uint8:
		return func(b array.Builder) { b.(*array.Uint8Builder).Append(*p) }
	case *uint16:
		return func(b array.Builder) { b.(*array.Uint16Builder).Append(*p) }
	case *uint32:
		return func(b array.Builder) { b.(*array.Uint32Builder).Append(*p) }
	case *uint64:
		return func(b array.Builder) { b.(*array.Uint64Builder).Append(*p) }
	case *float32:
		return func(b array.Builder) { b.(*array.Float32Builder).Append(*p) }
	case *float64:
		return func(b array.Builder) { b.(*array.Float64Builder).Append(*p) }
	case *bool:
		if typ.ID() == arrow.BOOL {
			return func(b array.Builder) { b.(*array.BooleanBuilder).Append(*p) }
		}
	case *time.Time:
		switch typ := typ.(type) {
		case *arrow.Date32Type:
			return func(b array.Builder) { b.(*array.Date32Builder).Append(arrow.Date32FromTime(p.UTC())) }
		case *arrow.TimestampType:
			unit := typ.Unit
			return func(b array.Builder) {
				ts, _ := arrow.TimestampFromTime(*p, unit)
				b.(*array.TimestampBuilder).Append(ts)
			}
		}
	}
	return nil
}

// value is the scanned value (dereferenced), false for NULL.
func (c *colConv) value() (reflect.Value, bool) {
	v := c.dest.Elem()
	if c.nullable {
		if v.IsNil() {
			return reflect.Value{}, false
		}
		v = v.Elem()
	}
	if v.Kind() == reflect.Interface {
		if v.IsNil() {
			return reflect.Value{}, false
		}
		v = v.Elem()
	}
	return v, true
}

func (c *colConv) append(b array.Builder) {
	if c.fast != nil {
		c.fast(b)
		return
	}
	v, ok := c.value()
	if !ok {
		b.AppendNull()
		return
	}
	switch bb := b.(type) {
	case *array.Int8Builder:
		bb.Append(int8(v.Int()))
	case *array.Int16Builder:
		bb.Append(int16(v.Int()))
	case *array.Int32Builder:
		bb.Append(int32(v.Int()))
	case *array.Int64Builder:
		bb.Append(v.Int())
	case *array.Uint8Builder:
		if v.Kind() == reflect.Bool { // UInt8 read as bool by some drivers
			bb.Append(uint8(boolU(v.Bool())))
			return
		}
		bb.Append(uint8(v.Uint()))
	case *array.Uint16Builder:
		bb.Append(uint16(v.Uint()))
	case *array.Uint32Builder:
		bb.Append(uint32(v.Uint()))
	case *array.Uint64Builder:
		bb.Append(v.Uint())
	case *array.Float32Builder:
		bb.Append(float32(v.Float()))
	case *array.Float64Builder:
		bb.Append(v.Float())
	case *array.BooleanBuilder:
		bb.Append(v.Bool())
	case *array.Date32Builder:
		bb.Append(arrow.Date32FromTime(v.Interface().(time.Time).UTC()))
	case *array.TimestampBuilder:
		t := v.Interface().(time.Time)
		unit := c.arrow.(*arrow.TimestampType).Unit
		ts, _ := arrow.TimestampFromTime(t, unit)
		bb.Append(ts)
	case *array.StringBuilder:
		switch c.kind {
		case kString:
			bb.Append(v.String())
		default:
			bb.Append(fmt.Sprint(v.Interface()))
		}
	default:
		b.AppendNull()
	}
}

func boolU(b bool) int {
	if b {
		return 1
	}
	return 0
}

// WriteArrowStream writes rows to w as an Arrow IPC stream, in record
// batches of batchRows (ArrowBatchRows if zero), as they come: the schema
// first, then a batch whenever batchRows rows are read, then the last,
// partial one. It returns the rows written. An error after the schema
// ends the stream without its end-of-stream marker (a reader sees an
// unexpected EOF).
func WriteArrowStream(w io.Writer, s *RowScanner, batchRows int) (int64, error) {
	if batchRows <= 0 {
		batchRows = ArrowBatchRows
	}
	mem := memory.NewGoAllocator()
	schema := s.Schema()
	wr := ipc.NewWriter(w, ipc.WithSchema(schema), ipc.WithAllocator(mem))
	b := array.NewRecordBuilder(mem, schema)
	defer b.Release()
	var n int64
	inBatch := 0
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		inBatch = 0
		return wr.Write(rec)
	}
	for s.Next() {
		if err := s.Scan(); err != nil {
			return n, err
		}
		s.appendArrow(b)
		n++
		if inBatch++; inBatch == batchRows {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	if err := s.Err(); err != nil {
		return n, err
	}
	if inBatch > 0 || n == 0 {
		if err := flush(); err != nil {
			return n, err
		}
	}
	return n, wr.Close()
}

// ExportOptions choose the telemetry exported by ExportParquet.
type ExportOptions struct {
	Database string
	From, To time.Time // [From, To)
	Site     string    // empty: every site
	// RowGroupRows is how many rows a Parquet row group holds (default
	// 128 Ki).
	RowGroupRows int
	// Progress, if set, is called after every row group with the rows
	// written so far.
	Progress func(rows int64)
}

// ExportSchema is the Arrow schema of a telemetry export: ts and received
// are milliseconds in UTC.
var ExportSchema = arrow.NewSchema([]arrow.Field{
	{Name: "site", Type: arrow.BinaryTypes.String},
	{Name: "asset", Type: arrow.BinaryTypes.String},
	{Name: "metric", Type: arrow.BinaryTypes.String},
	{Name: "ts", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "value", Type: arrow.PrimitiveTypes.Float64},
	{Name: "received", Type: &arrow.TimestampType{Unit: arrow.Millisecond, TimeZone: "UTC"}},
	{Name: "late", Type: arrow.FixedWidthTypes.Boolean},
}, nil)

// ExportQuery is the query of a telemetry export, on a server with the
// legacy schema (ts DateTime and ts_ms) or the modern one (ts
// DateTime64(3)): it reads the millisecond times as UInt64 epoch
// milliseconds either way. FINAL collapses re-inserted points.
func ExportQuery(ctx context.Context, conn driver.Conn, o ExportOptions) (string, []any, error) {
	var legacy uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = 'telemetry' AND name = 'ts_ms'", o.Database).Scan(&legacy); err != nil {
		return "", nil, fmt.Errorf("cannot read the telemetry table's columns: %w", err)
	}
	ts, rec := "toUInt64(toUnixTimestamp64Milli(ts))", "toUInt64(toUnixTimestamp64Milli(received))"
	if legacy > 0 {
		ts, rec = "toUInt64(ts) * 1000 + ts_ms", "toUInt64(received) * 1000"
	}
	q := "SELECT toString(site), toString(asset), toString(metric), " + ts + " AS tsms, value, " + rec + ", late FROM " +
		quoteIdent(o.Database) + ".telemetry FINAL WHERE ts >= toDateTime(?) AND ts < toDateTime(?)"
	// DateTime bounds at second precision: widen the upper one to whole
	// seconds and filter the milliseconds on tsms.
	args := []any{o.From.Unix(), (o.To.Add(time.Second - 1)).Unix()}
	q += " AND tsms >= ? AND tsms < ?"
	args = append(args, uint64(o.From.UnixMilli()), uint64(o.To.UnixMilli()))
	if o.Site != "" {
		q += " AND site = ?"
		args = append(args, o.Site)
	}
	return q + " ORDER BY site, asset, metric, tsms", args, nil
}

func quoteIdent(s string) string { return "`" + strings.ReplaceAll(s, "`", "\\`") + "`" }

// ExportStats count an export.
type ExportStats struct {
	Rows   int64
	Errors int64 // rows that could not be read (skipped)
}

// ExportParquet writes the telemetry of o's time range to w as Parquet
// (ExportSchema, zstd), streaming: a row group every RowGroupRows rows,
// so memory stays bounded whatever the range. w is not closed.
func ExportParquet(ctx context.Context, conn driver.Conn, o ExportOptions, w io.Writer) (ExportStats, error) {
	var st ExportStats
	if o.RowGroupRows <= 0 {
		o.RowGroupRows = 128 << 10
	}
	q, args, err := ExportQuery(ctx, conn, o)
	if err != nil {
		return st, err
	}
	rows, err := conn.Query(ctx, q, args...)
	if err != nil {
		return st, fmt.Errorf("cannot query telemetry: %w", err)
	}
	defer rows.Close()
	mem := memory.NewGoAllocator()
	props := parquet.NewWriterProperties(parquet.WithCompression(compress.Codecs.Zstd), parquet.WithAllocator(mem),
		parquet.WithMaxRowGroupLength(int64(o.RowGroupRows)))
	// The Parquet writer closes a writer that is an io.Closer: hide it,
	// the caller owns w.
	fw, err := pqarrow.NewFileWriter(ExportSchema, struct{ io.Writer }{w}, props, pqarrow.NewArrowWriterProperties(pqarrow.WithAllocator(mem), pqarrow.WithStoreSchema()))
	if err != nil {
		return st, err
	}
	b := array.NewRecordBuilder(mem, ExportSchema)
	defer b.Release()
	site, asset, metric := b.Field(0).(*array.StringBuilder), b.Field(1).(*array.StringBuilder), b.Field(2).(*array.StringBuilder)
	tsb, val, recb, late := b.Field(3).(*array.TimestampBuilder), b.Field(4).(*array.Float64Builder), b.Field(5).(*array.TimestampBuilder), b.Field(6).(*array.BooleanBuilder)
	var (
		r             telemetryRow
		inGroup       int
		firstReadErr  error
		consecutiveKO int
	)
	flush := func() error {
		rec := b.NewRecordBatch()
		defer rec.Release()
		inGroup = 0
		if err := fw.Write(rec); err != nil {
			return err
		}
		if o.Progress != nil {
			o.Progress(st.Rows)
		}
		return nil
	}
	for rows.Next() {
		if err := rows.Scan(&r.site, &r.asset, &r.metric, &r.ts, &r.value, &r.received, &r.late); err != nil {
			st.Errors++
			if firstReadErr == nil {
				firstReadErr = err
			}
			if consecutiveKO++; consecutiveKO > 1000 {
				_ = fw.Close()
				return st, fmt.Errorf("cannot read telemetry rows (1000 failed in a row): %w", firstReadErr)
			}
			continue
		}
		consecutiveKO = 0
		site.Append(r.site)
		asset.Append(r.asset)
		metric.Append(r.metric)
		tsb.Append(arrow.Timestamp(r.ts))
		val.Append(r.value)
		recb.Append(arrow.Timestamp(r.received))
		late.Append(r.late != 0)
		st.Rows++
		if inGroup++; inGroup == o.RowGroupRows {
			if err := flush(); err != nil {
				_ = fw.Close()
				return st, fmt.Errorf("cannot write Parquet: %w", err)
			}
		}
	}
	if err := rows.Err(); err != nil {
		_ = fw.Close()
		return st, fmt.Errorf("cannot read telemetry: %w", err)
	}
	if inGroup > 0 {
		if err := flush(); err != nil {
			_ = fw.Close()
			return st, fmt.Errorf("cannot write Parquet: %w", err)
		}
	}
	if err := fw.Close(); err != nil {
		return st, fmt.Errorf("cannot finish Parquet: %w", err)
	}
	return st, nil
}

type telemetryRow struct {
	site, asset, metric string
	ts, received        uint64
	value               float64
	late                uint8
}
