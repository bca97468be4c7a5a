package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/parquet/file"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/storage/schema"
)

func TestExportCommand(t *testing.T) {
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	conn := chtest.Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 3, 10, 9, 0, 0, 0, time.UTC)
	q := fmt.Sprintf(`INSERT INTO %s.telemetry (site, asset, metric, ts, ts_ms, value, received, late, koffset)
SELECT concat('PO-', toString(number %% 3)), 'env-1', 'temp_c', toDateTime(%d + number), 0, number, toDateTime(%d + number), 0, number
FROM system.numbers LIMIT 3000`, db, base.Unix(), base.Unix())
	if err := conn.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "t.parquet")
	var stderr, stdout bytes.Buffer
	exportStderr = &stderr
	defer func() { exportStderr = os.Stderr }()
	err := run(ctx, []string{"export", "--clickhouse", addr, "--database", db, "--from", base.Format(time.RFC3339),
		"--to", base.Add(30 * time.Minute).Format(time.RFC3339), "--site", "PO-1", "--format", "parquet", "--out", out,
		"--row-group-rows", "100"}, &stdout)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := file.OpenParquetFile(out, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pf.Close()
	if pf.NumRows() != 600 || pf.NumRowGroups() != 6 { // seconds 0..1799, every third
		t.Fatalf("%d rows in %d row groups, want 600 in 6", pf.NumRows(), pf.NumRowGroups())
	}
	if !strings.Contains(stderr.String(), "export: 600 rows in") || !strings.Contains(stderr.String(), "0 errors") ||
		!strings.Contains(stderr.String(), "rows/s") {
		t.Fatalf("stderr: %s", stderr.String())
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Fatalf("the partial file is left: %v", err)
	}
	if err := run(ctx, []string{"export", "--from", "yesterday", "--to", "now", "--out", out}, &stdout); err == nil ||
		!strings.Contains(err.Error(), "RFC 3339") {
		t.Fatalf("bad --from: %v", err)
	}
}
