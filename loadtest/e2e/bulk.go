package e2e

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/registry"
)

// The bulk baseline's databases; this tool owns them and recreates them.
const (
	bulkClientDB = "polis_bulk"
	bulkWriterDB = "polis_bulk2"
	// pointsPerRecord is how many points one Kafka record carries.
	pointsPerRecord = 10
	bulkTimeout     = 10 * time.Minute
)

// bulkColumns are polis.telemetry's columns on 18.16
// (storage/schema/testdata/legacy.sql), in the writer's order.
var bulkColumns = []string{"site", "asset", "metric", "ts", "ts_ms", "value", "received", "late"}

var bulkMetrics = [pointsPerRecord]string{"temp_c", "humidity_pct", "co2_ppm", "power_kw", "energy_kwh",
	"occupancy_count", "voc_ppb", "pm25_ugm3", "noise_db", "light_lux"}

// BulkResult compares clickhouse-client's TSV insert with the storage
// writer on the same rows.
type BulkResult struct {
	Rows, Records int
	TSVBytes      int64

	ClientTook time.Duration
	ClientRows uint64
	ClientCPU  CPUUse // Other is ClickHouse

	KafkaBytes    int64
	ProduceTook   time.Duration
	WriterTook    time.Duration
	WriterRows    uint64
	WriterReached bool
	WriterCPU     CPUUse // Self is the writer, Other ClickHouse
	Problems      []string
}

// bulkGen makes the same rows for both paths: record k is one device's 10
// metrics at one timestamp, every timestamp distinct, so no two rows share
// the ReplacingMergeTree key.
type bulkGen struct {
	devs []registry.Credential
	base time.Time
	rows int
}

func newBulkGen(fleet *FleetInfo, rows int) *bulkGen {
	g := &bulkGen{base: time.Now().UTC().Truncate(time.Hour).Add(-2 * time.Hour), rows: rows}
	for _, c := range fleet.creds {
		if registry.AssetTypeOf(c.Asset) != registry.GatewayType {
			g.devs = append(g.devs, c)
		}
	}
	return g
}

func (g *bulkGen) records() int { return (g.rows + pointsPerRecord - 1) / pointsPerRecord }

func (g *bulkGen) record(k int, r *record.Record) {
	d := g.devs[k%len(g.devs)]
	ts := g.base.Add(time.Duration(k) * 7 * time.Millisecond)
	n := min(pointsPerRecord, g.rows-k*pointsPerRecord)
	*r = record.Record{Kind: record.KindTelemetry, Site: d.Site, Asset: d.Asset,
		Received: ts.Add(time.Second).UnixMilli(), Points: r.Points[:0]}
	for i := range n {
		v := math.Round((50+40*math.Sin(float64(k)/100+float64(i)))*100) / 100
		r.Points = append(r.Points, record.Point{Metric: bulkMetrics[i], TS: ts.UnixMilli(), Value: v})
	}
}

// writeTSV writes every row as TabSeparated in bulkColumns order.
func (g *bulkGen) writeTSV(path string) (int64, error) {
	f, err := os.Create(path)
	if err != nil {
		return 0, fmt.Errorf("cannot create %s: %w", path, err)
	}
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	var r record.Record
	var line []byte
	for k := range g.records() {
		g.record(k, &r)
		recv := time.UnixMilli(r.Received).UTC()
		for _, p := range r.Points {
			ts := time.UnixMilli(p.TS).UTC()
			line = append(line[:0], r.Site...)
			line = append(line, '\t')
			line = append(line, r.Asset...)
			line = append(line, '\t')
			line = append(line, p.Metric...)
			line = append(line, '\t')
			line = ts.AppendFormat(line, time.DateTime)
			line = append(line, '\t')
			line = strconv.AppendInt(line, p.TS%1000, 10)
			line = append(line, '\t')
			line = strconv.AppendFloat(line, p.Value, 'f', -1, 64)
			line = append(line, '\t')
			line = recv.AppendFormat(line, time.DateTime)
			line = append(line, "\t0\n"...)
			if _, err := w.Write(line); err != nil {
				return 0, fmt.Errorf("cannot write %s: %w", path, err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return 0, fmt.Errorf("cannot write %s: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return 0, fmt.Errorf("cannot stat %s: %w", path, err)
	}
	return st.Size(), f.Close()
}

// runBulk times clickhouse-client and the storage writer on the same rows.
func runBulk(ctx context.Context, cfg Config, tmp string, ch *CHInfo, fleet *FleetInfo) (*BulkResult, error) {
	g := newBulkGen(fleet, cfg.BulkRows)
	res := &BulkResult{Rows: cfg.BulkRows, Records: g.records()}
	dir := filepath.Join(tmp, "bulk")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("cannot create %s: %w", dir, err)
	}
	for _, db := range []string{bulkClientDB, bulkWriterDB} {
		if err := freshDatabase(ctx, ch.conn, db); err != nil {
			return nil, err
		}
	}

	// clickhouse-client, TabSeparated from a file.
	tsv := filepath.Join(dir, "telemetry.tsv")
	fmt.Fprintf(cfg.Progress, "e2e: bulk: writing %d rows as TSV\n", res.Rows)
	var err error
	if res.TSVBytes, err = g.writeTSV(tsv); err != nil {
		return res, err
	}
	fmt.Fprintf(cfg.Progress, "e2e: bulk: clickhouse-client INSERT ... FORMAT TabSeparated (%.1f MB)\n", float64(res.TSVBytes)/1e6)
	c0 := sampleCPU(ch.pid)
	if res.ClientTook, err = clientInsert(ctx, ch.Addr, tsv); err != nil {
		return res, err
	}
	res.ClientCPU = sampleCPU(ch.pid).since(c0)
	if res.ClientRows, err = countAll(ctx, ch.conn, bulkClientDB); err != nil {
		return res, err
	}
	if res.ClientRows != uint64(res.Rows) {
		res.Problems = append(res.Problems, fmt.Sprintf("clickhouse-client inserted %d rows, want %d", res.ClientRows, res.Rows))
	}
	_ = os.Remove(tsv)

	// The storage writer, from a Kafka topic filled beforehand.
	embedded, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", DataDir: filepath.Join(dir, "kafka"), Logger: cfg.Logger})
	if err != nil {
		return res, err
	}
	defer embedded.Close()
	fmt.Fprintf(cfg.Progress, "e2e: bulk: producing %d records of %d points to an embedded Kafka\n", res.Records, pointsPerRecord)
	began := time.Now()
	if res.KafkaBytes, err = produceBulk(ctx, embedded.Addrs(), g, cfg.Logger); err != nil {
		return res, err
	}
	res.ProduceTook = time.Since(began)

	fmt.Fprintf(cfg.Progress, "e2e: bulk: storage writer into %s\n", bulkWriterDB)
	w, err := storage.NewWriter(storage.WriterOptions{Brokers: embedded.Addrs(), Conn: ch.conn, Database: bulkWriterDB,
		MaxRows: cfg.WriterMaxRows, MaxWait: cfg.WriterMaxWait, Logger: cfg.Logger})
	if err != nil {
		return res, err
	}
	wctx, wcancel := context.WithCancel(ctx)
	defer wcancel()
	done := make(chan error, 1)
	c0 = sampleCPU(ch.pid)
	began = time.Now()
	go func() { done <- w.Run(wctx) }()
	deadline := time.Now().Add(bulkTimeout)
	lastPrint := time.Now()
	for time.Now().Before(deadline) && ctx.Err() == nil {
		n, err := countAll(ctx, ch.conn, bulkWriterDB)
		if err == nil {
			res.WriterRows = n
			if n >= uint64(res.Rows) {
				res.WriterReached = true
				break
			}
		}
		if time.Since(lastPrint) >= time.Second {
			fmt.Fprintf(cfg.Progress, "e2e: bulk: writer rows=%d of %d\n", n, res.Rows)
			lastPrint = time.Now()
		}
		time.Sleep(50 * time.Millisecond)
	}
	res.WriterTook = time.Since(began)
	res.WriterCPU = sampleCPU(ch.pid).since(c0)
	wcancel()
	select {
	case err := <-done:
		if err != nil {
			res.Problems = append(res.Problems, fmt.Sprintf("storage writer: %v", err))
		}
	case <-time.After(30 * time.Second):
		res.Problems = append(res.Problems, "storage writer did not stop within 30s of cancellation")
	}
	if !res.WriterReached {
		res.Problems = append(res.Problems, fmt.Sprintf("LOSS: the storage writer stored %d of %d rows within %s", res.WriterRows, res.Rows, bulkTimeout))
	}
	return res, nil
}

// freshDatabase drops and recreates one of this tool's own databases.
func freshDatabase(ctx context.Context, conn driver.Conn, db string) error {
	qctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := conn.Exec(qctx, "DROP DATABASE IF EXISTS "+db); err != nil {
		return fmt.Errorf("cannot drop database %s: %w", db, err)
	}
	if _, err := schema.Apply(qctx, conn, db); err != nil {
		return fmt.Errorf("cannot apply schema to %s: %w", db, err)
	}
	return nil
}

func countAll(ctx context.Context, conn driver.Conn, db string) (uint64, error) {
	qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	var n uint64
	if err := conn.QueryRow(qctx, "SELECT count() FROM "+db+".telemetry").Scan(&n); err != nil {
		return 0, fmt.Errorf("cannot count rows of %s.telemetry: %w", db, err)
	}
	return n, nil
}

// clientInsert runs clickhouse-client with the file on stdin and returns
// how long it took.
func clientInsert(ctx context.Context, addr, path string) (time.Duration, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, fmt.Errorf("cannot parse ClickHouse address %q: %w", addr, err)
	}
	bin, err := exec.LookPath("clickhouse-client")
	if err != nil {
		return 0, fmt.Errorf("cannot find clickhouse-client (apt-get install clickhouse-client): %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return 0, fmt.Errorf("cannot open %s: %w", path, err)
	}
	defer f.Close()
	cctx, cancel := context.WithTimeout(ctx, bulkTimeout)
	defer cancel()
	q := "INSERT INTO " + bulkClientDB + ".telemetry (" + strings.Join(bulkColumns, ", ") + ") FORMAT TabSeparated"
	cmd := exec.CommandContext(cctx, bin, "--host", host, "--port", port, "--query", q)
	cmd.Stdin = f
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("cannot insert with clickhouse-client: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return time.Since(began), nil
}

// produceBulk writes every record of g to the telemetry topic, keyed by
// site as ingest does, and waits until Kafka has them all.
func produceBulk(ctx context.Context, brokers []string, g *bulkGen, log *slog.Logger) (int64, error) {
	cl, err := kafka.NewClient(brokers, log, kgo.RecordPartitioner(kafka.SitePartitioner()),
		kgo.ProducerBatchMaxBytes(4<<20), kgo.MaxBufferedRecords(1<<16))
	if err != nil {
		return 0, fmt.Errorf("cannot create Kafka producer: %w", err)
	}
	defer cl.Close()
	pctx, cancel := context.WithTimeout(ctx, bulkTimeout)
	defer cancel()
	var failed atomic.Int64
	var mu sync.Mutex
	var firstErr error
	var bytes int64
	var r record.Record
	for k := range g.records() {
		g.record(k, &r)
		v, err := record.Marshal(&r)
		if err != nil {
			return bytes, fmt.Errorf("cannot encode record: %w", err)
		}
		bytes += int64(len(v))
		kr := &kgo.Record{Topic: kafka.TopicTelemetry, Key: []byte(r.Site), Value: v, Timestamp: time.UnixMilli(r.Received)}
		cl.Produce(pctx, kr, func(_ *kgo.Record, err error) {
			if err != nil {
				failed.Add(1)
				mu.Lock()
				firstErr = cmp.Or(firstErr, err)
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(pctx); err != nil {
		return bytes, fmt.Errorf("cannot flush Kafka producer: %w", err)
	}
	if n := failed.Load(); n > 0 {
		mu.Lock()
		defer mu.Unlock()
		return bytes, fmt.Errorf("cannot produce %d records: %w", n, firstErr)
	}
	return bytes, nil
}
