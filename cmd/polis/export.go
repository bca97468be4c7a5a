package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

// exportStderr gets the export's progress lines (a variable for tests).
var exportStderr io.Writer = os.Stderr

// runExport writes a time range of telemetry to a Parquet file:
//
//	polis export --clickhouse host:port --database polis --from RFC3339 --to RFC3339 [--site S] --format parquet --out FILE
func runExport(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	var co storage.ConnOptions
	fs.StringVar(&co.Addr, "clickhouse", storage.DefaultAddr, "ClickHouse native protocol address")
	fs.StringVar(&co.User, "clickhouse-user", "", "ClickHouse user (empty: default)")
	fs.StringVar(&co.Password, "clickhouse-password", "", "ClickHouse password")
	db := fs.String("database", schema.DefaultDatabase, "database holding the telemetry table")
	from := fs.String("from", "", "start of the range, RFC 3339, included (required)")
	to := fs.String("to", "", "end of the range, RFC 3339, excluded (required)")
	site := fs.String("site", "", "export only this site (empty: every site)")
	format := fs.String("format", "parquet", "output format: parquet")
	out := fs.String("out", "", "file to write (required; written to FILE.partial, renamed when complete)")
	groupRows := fs.Int("row-group-rows", 128<<10, "rows per Parquet row group")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *format != "parquet" {
		return fmt.Errorf("--format %q: only parquet is supported", *format)
	}
	if *out == "" {
		return errors.New("--out is required: the Parquet file to write")
	}
	o := storage.ExportOptions{Database: *db, Site: *site, RowGroupRows: *groupRows}
	var err error
	if o.From, err = time.Parse(time.RFC3339, *from); err != nil {
		return fmt.Errorf("--from %q: want RFC 3339, e.g. 2026-03-01T00:00:00Z", *from)
	}
	if o.To, err = time.Parse(time.RFC3339, *to); err != nil {
		return fmt.Errorf("--to %q: want RFC 3339, e.g. 2026-03-02T00:00:00Z", *to)
	}
	if !o.To.After(o.From) {
		return fmt.Errorf("--to %s is not after --from %s", *to, *from)
	}
	conn, err := storage.Open(co, nil)
	if err != nil {
		return err
	}
	defer conn.Close()

	tmp := *out + ".partial"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("cannot create %s: %w", tmp, err)
	}
	defer os.Remove(tmp) // after the rename, a no-op
	start := time.Now()
	var mu sync.Mutex
	o.Progress = func(rows int64) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(exportStderr, "export: %d rows, %.0f rows/s\n", rows, float64(rows)/max(time.Since(start).Seconds(), 1e-9))
	}
	st, err := storage.ExportParquet(ctx, conn, o, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("cannot write %s: %w", tmp, cerr)
	}
	took := time.Since(start)
	fmt.Fprintf(exportStderr, "export: %d rows in %s (%.0f rows/s), %d errors\n", st.Rows, took.Round(time.Millisecond),
		float64(st.Rows)/max(took.Seconds(), 1e-9), st.Errors)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return fmt.Errorf("cannot rename %s: %w", tmp, err)
	}
	fmt.Fprintf(stdout, "wrote %d rows of %s .. %s to %s (%d errors)\n", st.Rows, *from, *to, filepath.Clean(*out), st.Errors)
	return nil
}
