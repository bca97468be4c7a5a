package opendata

import (
	"bytes"
	"fmt"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet"
	"github.com/apache/arrow-go/v18/parquet/compress"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// parquetEncoder writes a table as one Parquet file with one row group:
// every column nullable, strings as UTF-8, integers as int64, numbers as
// double, dates as DATE (days since 1970-01-01, the day in Italy), Snappy
// compressed (the codec every reader has). The file's key-value metadata
// carries the table's name, licence and time, and the stored Arrow schema
// each column's description.
type parquetEncoder struct {
	meta   bodyMeta
	t      Table
	schema *arrow.Schema
	b      *array.RecordBuilder
}

func arrowType(t ColumnType) (arrow.DataType, error) {
	switch t {
	case TypeString:
		return arrow.BinaryTypes.String, nil
	case TypeInteger:
		return arrow.PrimitiveTypes.Int64, nil
	case TypeNumber:
		return arrow.PrimitiveTypes.Float64, nil
	case TypeBoolean:
		return arrow.FixedWidthTypes.Boolean, nil
	case TypeDate:
		return arrow.FixedWidthTypes.Date32, nil
	}
	return nil, fmt.Errorf("column type %q has no Arrow type", t)
}

// arrowSchema is the Arrow schema of a table, its column descriptions as
// field metadata.
func arrowSchema(t Table) (*arrow.Schema, error) {
	fields := make([]arrow.Field, len(t.Columns))
	for i, c := range t.Columns {
		dt, err := arrowType(c.Type)
		if err != nil {
			return nil, fmt.Errorf("column %s: %w", c.Name, err)
		}
		fields[i] = arrow.Field{Name: c.Name, Type: dt, Nullable: true,
			Metadata: arrow.NewMetadata([]string{"description"}, []string{c.Description})}
	}
	return arrow.NewSchema(fields, nil), nil
}

func (e *parquetEncoder) header(t Table) error {
	s, err := arrowSchema(t)
	if err != nil {
		return err
	}
	e.t, e.schema = t, s
	e.b = array.NewRecordBuilder(memory.DefaultAllocator, s)
	return nil
}

func (e *parquetEncoder) row(vals []value) error {
	for i, v := range vals {
		fb := e.b.Field(i)
		if v.k == kNull {
			fb.AppendNull()
			continue
		}
		switch b := fb.(type) {
		case *array.StringBuilder:
			b.Append(v.s)
		case *array.Int64Builder:
			b.Append(v.i)
		case *array.Float64Builder:
			b.Append(v.f)
		case *array.BooleanBuilder:
			b.Append(v.b)
		case *array.Date32Builder:
			y, m, d := v.ymd()
			b.Append(arrow.Date32(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400))
		default:
			return fmt.Errorf("column %s: no Parquet writer for %T", e.t.Columns[i].Name, fb)
		}
	}
	return nil
}

func (e *parquetEncoder) finish() ([]byte, error) {
	defer e.b.Release()
	rec := e.b.NewRecordBatch()
	defer rec.Release()
	var buf bytes.Buffer
	props := parquet.NewWriterProperties(
		parquet.WithCompression(compress.Codecs.Snappy),
		parquet.WithMaxRowGroupLength(1<<20),
		parquet.WithCreatedBy("polis opendata"),
	)
	fw, err := pqarrow.NewFileWriter(e.schema, &buf, props, pqarrow.NewArrowWriterProperties(pqarrow.WithStoreSchema()))
	if err != nil {
		return nil, fmt.Errorf("open Parquet writer: %w", err)
	}
	for _, kv := range [][2]string{
		{"table", e.t.Name},
		{"title", e.t.Title},
		{"licence", LicenceURL},
		{"modified", e.meta.modified.UTC().Format(time.RFC3339)},
	} {
		if err := fw.AppendKeyValueMetadata(kv[0], kv[1]); err != nil {
			return nil, fmt.Errorf("write Parquet metadata %s: %w", kv[0], err)
		}
	}
	if err := fw.Write(rec); err != nil {
		fw.Close()
		return nil, fmt.Errorf("write Parquet rows: %w", err)
	}
	if err := fw.Close(); err != nil {
		return nil, fmt.Errorf("close Parquet file: %w", err)
	}
	return buf.Bytes(), nil
}
