package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	"github.com/polis-platform/polis/storage/schema"
)

var exportBase = time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)

// fillTelemetry migrates db and inserts n points, server-side: point i is
// site PO-<i%sites>, asset env-1, metric temp_c, at exportBase + i/10 s +
// (i%10)*100 ms, value i/4, received a second later, late when i%3 == 0.
func fillTelemetry(t testing.TB, conn driver.Conn, db string, n, sites int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	q := fmt.Sprintf(`INSERT INTO %s.telemetry (site, asset, metric, ts, ts_ms, value, received, late, koffset)
SELECT concat('PO-', toString(number %% %d)), 'env-1', 'temp_c', toDateTime(%d + intDiv(number, 10)), toUInt16((number %% 10) * 100),
       number / 4, toDateTime(%d + intDiv(number, 10) + 1), toUInt8(number %% 3 = 0), number
FROM system.numbers LIMIT %d`, db, sites, exportBase.Unix(), exportBase.Unix(), n)
	if err := conn.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
}

func TestExportParquet(t *testing.T) {
	addr := chtest.Shared(t)
	conn := chtest.Conn(t, addr)
	db := chtest.Database(t, addr)
	fillTelemetry(t, conn, db, 1000, 2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var buf bytes.Buffer
	var progress []int64
	from, to := exportBase.Add(10*time.Second+500*time.Millisecond), exportBase.Add(90*time.Second)
	st, err := ExportParquet(ctx, conn, ExportOptions{Database: db, From: from, To: to, Site: "PO-0", RowGroupRows: 100,
		Progress: func(n int64) { progress = append(progress, n) }}, &buf)
	if err != nil {
		t.Fatal(err)
	}
	// i in [105, 900), even: 100..104 are before the milliseconds of from.
	var want []int
	for i := 105; i < 900; i++ {
		if i%2 == 0 {
			want = append(want, i)
		}
	}
	if st.Rows != int64(len(want)) || st.Errors != 0 {
		t.Fatalf("exported %+v, want %d rows", st, len(want))
	}
	if len(progress) != (len(want)+99)/100 || progress[len(progress)-1] != st.Rows {
		t.Fatalf("progress %v", progress)
	}

	pf, err := file.NewParquetReader(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.NumRows() != int64(len(want)) || pf.NumRowGroups() != len(progress) {
		t.Fatalf("the file has %d rows in %d row groups, want %d in %d", pf.NumRows(), pf.NumRowGroups(), len(want), len(progress))
	}
	fr, err := pqarrow.NewFileReader(pf, pqarrow.ArrowReadProperties{BatchSize: 1000}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	for i, f := range tbl.Schema().Fields() {
		if w := ExportSchema.Field(i); f.Name != w.Name || !arrow.TypeEqual(f.Type, w.Type) {
			t.Fatalf("field %d is %s %s, want %s %s", i, f.Name, f.Type, w.Name, w.Type)
		}
	}
	tr := array.NewTableReader(tbl, 1000)
	defer tr.Release()
	row := 0
	for tr.Next() {
		rec := tr.RecordBatch()
		for j := 0; j < int(rec.NumRows()); j++ {
			i := want[row]
			ts := exportBase.Add(time.Duration(i/10)*time.Second + time.Duration(i%10)*100*time.Millisecond)
			got := fmt.Sprint(rec.Column(0).(*array.String).Value(j), rec.Column(1).(*array.String).Value(j), rec.Column(2).(*array.String).Value(j),
				rec.Column(3).(*array.Timestamp).Value(j).ToTime(arrow.Millisecond).UTC().Format(time.RFC3339Nano), rec.Column(4).(*array.Float64).Value(j),
				rec.Column(5).(*array.Timestamp).Value(j).ToTime(arrow.Millisecond).UTC().Format(time.RFC3339), rec.Column(6).(*array.Boolean).Value(j))
			wantRow := fmt.Sprint("PO-0", "env-1", "temp_c", ts.Format(time.RFC3339Nano), float64(i)/4,
				exportBase.Add(time.Duration(i/10+1)*time.Second).Format(time.RFC3339), i%3 == 0)
			if got != wantRow {
				t.Fatalf("row %d: %s, want %s", row, got, wantRow)
			}
			row++
		}
	}
	if row != len(want) {
		t.Fatalf("read %d rows, want %d", row, len(want))
	}
}

// BenchmarkArrowExport measures, in one run, rows/s of an Arrow IPC export
// of the telemetry (WriteArrowStream to io.Discard) against clickhouse-client
// writing the same rows as TabSeparated to /dev/null, and reports their
// ratio (docs/benchmarks.md).
func BenchmarkArrowExport(b *testing.B) {
	client, err := exec.LookPath("clickhouse-client")
	testutil.Need(b, err == nil, "no clickhouse-client (apt-get install clickhouse-client)")
	addr := chtest.Shared(b)
	conn := chtest.Conn(b, addr)
	db := chtest.Database(b, addr)
	const n = 1_000_000
	fillTelemetry(b, conn, db, n, 50)
	host, port, _ := strings.Cut(addr, ":")
	q := "SELECT site, asset, metric, ts, ts_ms, value, received, late FROM " + db + ".telemetry"
	ctx := context.Background()
	var arrowTime, tsvTime time.Duration
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		rows, err := conn.Query(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		got, err := WriteArrowStream(io.Discard, NewRowScanner(rows), ArrowBatchRows)
		rows.Close()
		if err != nil || got != n {
			b.Fatalf("arrow: %d rows, %v", got, err)
		}
		arrowTime += time.Since(start)

		start = time.Now()
		cmd := exec.Command(client, "--host", host, "--port", port, "--query", q+" FORMAT TabSeparated")
		cmd.Stdout = io.Discard
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			b.Fatalf("clickhouse-client: %v: %s", err, stderr.String())
		}
		tsvTime += time.Since(start)
	}
	arrowRate := float64(n*b.N) / arrowTime.Seconds()
	tsvRate := float64(n*b.N) / tsvTime.Seconds()
	b.ReportMetric(arrowRate, "arrow_rows/s")
	b.ReportMetric(tsvRate, "tsv_rows/s")
	b.ReportMetric(arrowRate/tsvRate, "arrow/tsv")
}

func TestArrowType(t *testing.T) {
	for ch, want := range map[string]string{
		"LowCardinality(String)":           "utf8",
		"Nullable(Int64)":                  "int64 nullable",
		"LowCardinality(Nullable(String))": "utf8 nullable",
		"DateTime64(3, 'UTC')":             "timestamp[ms, tz=UTC]",
		"DateTime64(6)":                    "timestamp[us, tz=UTC]",
		"DateTime('Europe/Rome')":          "timestamp[s, tz=Europe/Rome]",
		"Date":                             "date32",
		"Bool":                             "bool",
		"UInt8":                            "uint8",
		"FixedString(4)":                   "utf8",
		"Decimal(10, 2)":                   "utf8 unknown",
		"Array(String)":                    "utf8 unknown",
	} {
		typ, nullable, known := ArrowType(ch)
		got := typ.String()
		if nullable {
			got += " nullable"
		}
		if !known {
			got += " unknown"
		}
		if got != want {
			t.Errorf("ArrowType(%q) = %s, want %s", ch, got, want)
		}
	}
}
