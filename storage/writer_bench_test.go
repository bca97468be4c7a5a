package storage

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage/schema"
)

const benchRows = 100_000

// benchRecords makes benchRows telemetry points, 10 per record, as Kafka
// records of the telemetry topic.
func benchRecords(b *testing.B) []*kgo.Record {
	b.Helper()
	base := time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC).UnixMilli()
	out := make([]*kgo.Record, 0, benchRows/10)
	for i := range benchRows / 10 {
		r := &record.Record{Kind: record.KindTelemetry, Site: fmt.Sprintf("PO-%06d-1", i%4800), Asset: fmt.Sprintf("env-%d", i%4),
			Received: base + int64(i)*10 + 30}
		for m := range 10 {
			r.Points = append(r.Points, record.Point{Metric: fmt.Sprintf("m%d_c", m), TS: base + int64(i)*10, Value: float64(i*m) / 3})
		}
		v, err := record.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		out = append(out, &kgo.Record{Topic: kafka.TopicTelemetry, Value: v})
	}
	return out
}

// BenchmarkWriterInsert measures one 100,000-row columnar INSERT into the
// real ClickHouse (rollup views included), the writer's flush path.
func BenchmarkWriterInsert(b *testing.B) {
	addr := chtest.Shared(b)
	db := chtest.Database(b, addr)
	conn := chtest.Conn(b, addr)
	ctx := context.Background()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	f, err := schema.Detect(ctx, conn)
	if err != nil {
		b.Fatal(err)
	}
	w, err := NewWriter(WriterOptions{Brokers: []string{"127.0.0.1:1"}, Conn: conn, Database: db, Flavor: f})
	if err != nil {
		b.Fatal(err)
	}
	batch := newBatch(f)
	for _, r := range benchRecords(b) {
		w.add(batch, r)
	}
	if batch.rows() != benchRows {
		b.Fatalf("unexpected rows; got %d; want %d", batch.rows(), benchRows)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if err := insertTable(ctx, conn, db, batch.tel); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkBatchAdd measures decoding Kafka records into columns.
func BenchmarkBatchAdd(b *testing.B) {
	w, err := NewWriter(WriterOptions{Brokers: []string{"127.0.0.1:1"}, DSN: "clickhouse://127.0.0.1:1", Flavor: schema.Legacy})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	recs := benchRecords(b)
	var size int64
	for _, r := range recs {
		size += int64(len(r.Value))
	}
	batch := newBatch(schema.Legacy)
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		batch.reset()
		for _, r := range recs {
			w.add(batch, r)
		}
	}
	b.ReportMetric(float64(benchRows*b.N)/b.Elapsed().Seconds(), "rows/s")
}
