package storage

import (
	"context"
	"fmt"
	"math"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/storage/schema"
)

// The rollups are exact under at-least-once delivery because the writer,
// not a materialised view, keeps them: each row of a bucket records upto,
// the Kafka position (offset<<16 | index) of the newest point it includes.
// A point is merged only if it is newer than upto, and the whole row is
// written again, replacing the previous one (ReplacingMergeTree(upto)). A
// site's points are all in one Kafka partition and come in position order,
// so a row with upto = X holds every point of its bucket up to X: a batch
// sent twice after a lost answer writes the same rows again, and a batch
// replayed after a crash merges only what the stored rows lack. Raw and
// rollup inserts are each idempotent, so no order between them matters.

type rollupKey struct {
	series uint32 // seriesIndex id of (site, asset, metric)
	bucket int64  // Unix seconds
}

// seriesIndex numbers the series (site, asset, metric) the writer has
// met, so that the rollups hash a number per point rather than three
// strings per table. It only grows: a fleet has a bounded set of series.
type seriesIndex struct {
	ids  map[[3]string]uint32
	keys [][3]string
}

func newSeriesIndex() *seriesIndex { return &seriesIndex{ids: map[[3]string]uint32{}} }

func (x *seriesIndex) id(site, asset, metric string) uint32 {
	k := [3]string{site, asset, metric}
	if id, ok := x.ids[k]; ok {
		return id
	}
	id := uint32(len(x.keys))
	x.ids[k] = id
	x.keys = append(x.keys, k)
	return id
}

// ids fills t.sid with the series of every point.
func (x *seriesIndex) fill(t *telemetryRows) {
	if len(t.sid) == t.len() {
		return
	}
	t.sid = t.sid[:0]
	for i := range t.len() {
		t.sid = append(t.sid, x.id(t.site[i], t.asset[i], t.metric[i]))
	}
}

type rollupRow struct {
	min, max, sum float64
	count         uint64
	last          float64
	lastTS        int64  // ms
	lastPos       uint64 // position of last, breaking ties of lastTS
	kpart         uint16
	upto          uint64
	seen          int64 // newest arrival time (ms) of the points merged
}

func (r *rollupRow) merge(v float64, ts int64, pos uint64, part uint16, recv int64) {
	if r.count == 0 {
		r.min, r.max = v, v
	} else {
		r.min, r.max = math.Min(r.min, v), math.Max(r.max, v)
	}
	r.sum += v
	r.count++
	if ts > r.lastTS || (ts == r.lastTS && pos > r.lastPos) || r.count == 1 {
		r.last, r.lastTS, r.lastPos = v, ts, pos
	}
	r.kpart, r.upto = part, pos
	r.seen = max(r.seen, recv)
}

// replayed says whether a point is one the row includes already: at or
// before upto and no newer than the newest arrival merged. The second test
// keeps a Kafka log started afresh (offsets from 0 again, ClickHouse kept)
// from having its new points taken for replays.
func (r *rollupRow) replayed(pos uint64, part uint16, recv int64) bool {
	return r.count > 0 && part == r.kpart && pos <= r.upto && recv <= r.seen
}

// rollup keeps one rollup table: the rows of recent buckets in memory, the
// rows a batch changed until ClickHouse has them, and their columns.
type rollup struct {
	series *seriesIndex
	table  string
	width  int64 // bucket width in seconds
	keep   int64 // buckets this much older than the newest leave the cache
	legacy bool

	cache  map[rollupKey]rollupRow
	staged map[rollupKey]rollupRow
	laid   bool // the columns hold the staged rows
	newest int64
	// crossed counts points of a series seen in another partition than
	// its row's: replays of such points cannot be told apart.
	crossed int

	// horizon[p] is a bucket above which ClickHouse holds no row of
	// partition p's series but those this writer wrote (and still caches):
	// a key above it that is not cached is empty without a query. Read
	// from ClickHouse when a partition is first met, raised when rows
	// leave the cache.
	horizon map[uint16]int64

	mu      sync.Mutex
	revoked map[int32]bool // partitions another writer now owns

	// columns of the staged rows, for insertTable
	site, asset, metric []string
	bucket              []time.Time
	min, max, sum, last []float64
	count               []uint64
	lastTSModern        []time.Time
	lastTSLegacy        []uint64
	kpart               []uint16
	upto                []uint64
	seen                []uint64
}

func newRollup(series *seriesIndex, table string, width, keep time.Duration, legacy bool) *rollup {
	return &rollup{series: series, table: table, width: int64(width / time.Second), keep: int64(keep / time.Second), legacy: legacy,
		cache: map[rollupKey]rollupRow{}, staged: map[rollupKey]rollupRow{}, revoked: map[int32]bool{}, horizon: map[uint16]int64{}}
}

func (r *rollup) name() string { return r.table }

func (r *rollup) columns() []string {
	return []string{"site", "asset", "metric", "bucket", "min", "max", "sum", "count", "last", "last_ts", "kpart", "upto", "seen"}
}

func (r *rollup) values() []any {
	var lastTS any = r.lastTSModern
	if r.legacy {
		lastTS = r.lastTSLegacy
	}
	return []any{r.site, r.asset, r.metric, r.bucket, r.min, r.max, r.sum, r.count, r.last, lastTS, r.kpart, r.upto, r.seen}
}

func (r *rollup) len() int { return len(r.site) }

// reset drops the staged rows (written, or abandoned) and their columns.
func (r *rollup) reset() {
	clear(r.staged)
	r.clearColumns()
}

func (r *rollup) clearColumns() {
	r.laid = false
	r.site, r.asset, r.metric, r.bucket = r.site[:0], r.asset[:0], r.metric[:0], r.bucket[:0]
	r.min, r.max, r.sum, r.last, r.count = r.min[:0], r.max[:0], r.sum[:0], r.last[:0], r.count[:0]
	r.lastTSModern, r.lastTSLegacy, r.kpart, r.upto = r.lastTSModern[:0], r.lastTSLegacy[:0], r.kpart[:0], r.upto[:0]
	r.seen = r.seen[:0]
}

// revoke forgets the cached rows of partitions another writer takes over:
// they will change there. Called from franz-go's rebalance callbacks.
func (r *rollup) revoke(parts []int32) {
	r.mu.Lock()
	for _, p := range parts {
		r.revoked[p] = true
	}
	r.mu.Unlock()
}

func (r *rollup) purgeRevoked() {
	r.mu.Lock()
	rev := r.revoked
	r.revoked = map[int32]bool{}
	r.mu.Unlock()
	if len(rev) == 0 {
		return
	}
	for p := range rev {
		delete(r.horizon, uint16(p))
	}
	for k, row := range r.cache {
		if rev[int32(row.kpart)] {
			delete(r.cache, k)
		}
	}
}

func (r *rollup) key(t *telemetryRows, i int) rollupKey {
	sec := t.tsMilli[i] / 1000
	if t.tsMilli[i] < 0 && t.tsMilli[i]%1000 != 0 {
		sec--
	}
	b := sec - ((sec%r.width)+r.width)%r.width
	return rollupKey{series: t.sid[i], bucket: b}
}

// stage merges the batch's points into the rows they belong to, reading
// from ClickHouse the rows not in the cache. It runs once per batch, before
// the first insert attempt: retries send the same rows.
func (r *rollup) stage(ctx context.Context, conn driver.Conn, db string, t *telemetryRows) error {
	r.purgeRevoked()
	if missing := r.missing(t); len(missing) > 0 {
		for _, p := range missing {
			if _, ok := r.horizon[p]; !ok {
				h, err := r.readHorizon(ctx, conn, db, p)
				if err != nil {
					return err
				}
				r.horizon[p] = h
			}
		}
		load := map[rollupKey]uint16{}
		for k, p := range missing {
			if k.bucket > r.horizon[p] {
				r.cache[k] = rollupRow{} // nothing stored there yet
			} else {
				load[k] = p
			}
		}
		if len(load) > 0 {
			if err := r.load(ctx, conn, db, load); err != nil {
				return err
			}
		}
	}
	r.mergeBatch(t)
	return nil
}

// horizonWindow bounds the horizon query: buckets older than this are
// always read back, so the query scans only recent rows.
const horizonWindow = 48 * time.Hour

// readHorizon is the newest bucket ClickHouse holds for partition p's
// series (rows of an upgraded database carry kpart 0, so those count for
// every partition), or the start of horizonWindow when there is none.
func (r *rollup) readHorizon(ctx context.Context, conn driver.Conn, db string, p uint16) (int64, error) {
	floor := time.Now().Add(-horizonWindow).Unix()
	var newest time.Time
	if err := conn.QueryRow(ctx, r.horizonSQL(db), p, floor).Scan(&newest); err != nil {
		return 0, fmt.Errorf("cannot read the newest bucket of %s.%s: %w", db, r.table, err)
	}
	return max(newest.Unix(), floor-1), nil
}

// horizonSQL is the query readHorizon runs, with a partition and a floor
// (Unix seconds).
func (r *rollup) horizonSQL(db string) string {
	return "SELECT max(bucket) FROM " + db + "." + r.table + " WHERE kpart IN (0, ?) AND bucket >= toDateTime(?)"
}

// missing returns the keys of the batch's rows that are not in the cache,
// with their Kafka partition.
func (r *rollup) missing(t *telemetryRows) map[rollupKey]uint16 {
	r.series.fill(t)
	missing := map[rollupKey]uint16{}
	for i := range t.len() {
		k := r.key(t, i)
		if _, ok := r.cache[k]; !ok {
			missing[k] = t.kpart[i]
		}
	}
	return missing
}

// mergeBatch merges the batch into the staged rows (their previous state
// in the cache); rows staged by earlier batches not yet written merge on.
func (r *rollup) mergeBatch(t *telemetryRows) {
	r.series.fill(t)
	for i := range t.len() {
		if t.bad[i] {
			continue
		}
		k := r.key(t, i)
		row, ok := r.staged[k]
		if !ok {
			row = r.cache[k]
		}
		pos, recv := t.pos(i), t.received[i].UnixMilli()
		if row.replayed(pos, t.kpart[i], recv) {
			continue
		}
		if row.count > 0 && row.upto > 0 && t.kpart[i] != row.kpart {
			// Positions of two partitions do not compare: the records were
			// not keyed by site (ingest always keys them so). Merged, and
			// counted, so that someone looks.
			r.crossed++
		}
		row.merge(t.value[i], t.tsMilli[i], pos, t.kpart[i], recv)
		r.staged[k] = row
	}
	r.laid = false
}

// lay lays the staged rows out as the table's columns.
func (r *rollup) lay() {
	r.clearColumns()
	for k, row := range r.staged {
		s := r.series.keys[k.series]
		r.site = append(r.site, s[0])
		r.asset = append(r.asset, s[1])
		r.metric = append(r.metric, s[2])
		r.bucket = append(r.bucket, time.Unix(k.bucket, 0).UTC())
		r.min = append(r.min, row.min)
		r.max = append(r.max, row.max)
		r.sum = append(r.sum, row.sum)
		r.count = append(r.count, row.count)
		r.last = append(r.last, row.last)
		if r.legacy {
			r.lastTSLegacy = append(r.lastTSLegacy, uint64(max(row.lastTS, 0)))
		} else {
			r.lastTSModern = append(r.lastTSModern, time.UnixMilli(row.lastTS).UTC())
		}
		r.kpart = append(r.kpart, row.kpart)
		r.upto = append(r.upto, row.upto)
		r.seen = append(r.seen, uint64(max(row.seen, 0)))
	}
	r.laid = true
}

// commit moves the staged rows into the cache once ClickHouse has them.
func (r *rollup) commit() {
	for k, row := range r.staged {
		r.cache[k] = row
		r.newest = max(r.newest, k.bucket)
	}
	r.reset()
	if len(r.cache) > 4096 {
		for k, row := range r.cache {
			if k.bucket < r.newest-r.keep {
				delete(r.cache, k)
				if h, ok := r.horizon[row.kpart]; ok && k.bucket > h && row.count > 0 {
					r.horizon[row.kpart] = k.bucket // stored, and no longer cached
				}
			}
		}
	}
}

// load reads the stored rows of the missing keys into the cache; a key
// ClickHouse has no row for starts empty. One query per bucket, each for
// the bucket's sites (one placeholder per value: 18.16 refuses a slice).
func (r *rollup) load(ctx context.Context, conn driver.Conn, db string, missing map[rollupKey]uint16) error {
	bySite := map[int64]map[string]bool{}
	for k := range missing {
		if bySite[k.bucket] == nil {
			bySite[k.bucket] = map[string]bool{}
		}
		bySite[k.bucket][r.series.keys[k.series][0]] = true
		r.cache[k] = rollupRow{} // unless found below
	}
	for b, sites := range bySite {
		args := []any{b}
		marks := make([]string, 0, len(sites))
		for s := range sites {
			args = append(args, s)
			marks = append(marks, "?")
		}
		rows, err := conn.Query(ctx, r.loadSQL(db, strings.Join(marks, ", ")), args...)
		if err != nil {
			return fmt.Errorf("cannot read %s.%s to merge into it: %w", db, r.table, err)
		}
		for rows.Next() {
			var (
				site, asset, metric string
				row                 rollupRow
				bt                  time.Time
			)
			if err := rows.Scan(&site, &asset, &metric, &bt, &row.min, &row.max, &row.sum, &row.count, &row.last,
				&row.lastTS, &row.kpart, &row.upto, &row.seen); err != nil {
				rows.Close()
				return fmt.Errorf("cannot read %s.%s to merge into it: %w", db, r.table, err)
			}
			k := rollupKey{series: r.series.id(site, asset, metric), bucket: bt.Unix()}
			if _, ok := missing[k]; ok {
				r.cache[k] = row
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("cannot read %s.%s to merge into it: %w", db, r.table, err)
		}
	}
	return nil
}

func (r *rollup) loadSQL(db, marks string) string {
	lastTS := "last_ts"
	if !r.legacy {
		lastTS = "toInt64(toUnixTimestamp64Milli(last_ts))"
	} else {
		lastTS = "toInt64(last_ts)"
	}
	return "SELECT site, asset, metric, bucket, min, max, sum, count, last, " + lastTS + ", kpart, upto, toInt64(seen) FROM " +
		db + "." + r.table + " FINAL WHERE bucket = toDateTime(?) AND site IN (" + marks + ")"
}

// newRollups returns the writer's rollup tables for flavor f.
func newRollups(f schema.Flavor) []*rollup {
	legacy := f == schema.Legacy
	series := newSeriesIndex()
	return []*rollup{
		newRollup(series, schema.TableTelemetry1m, time.Minute, 10*time.Minute, legacy),
		newRollup(series, schema.TableTelemetry1h, time.Hour, 3*time.Hour, legacy),
	}
}
