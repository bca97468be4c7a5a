package storage

import (
	"fmt"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	rows         *prometheus.CounterVec // by table
	rollupRows   *prometheus.CounterVec // by rollup table
	unkeyed      prometheus.Counter
	refused      *prometheus.CounterVec // by table
	batchRows    prometheus.Histogram
	flushSeconds prometheus.Histogram
	insertErrors prometheus.Counter
	up           prometheus.Gauge
	lag          *prometheus.GaugeVec   // by topic
	consumed     *prometheus.CounterVec // by topic
	skipped      *prometheus.CounterVec // by reason

	mu   sync.Mutex
	lags map[string]map[int32]int64 // topic -> partition -> lag
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_storage_rows_refused_total",
			Help: "Rows ClickHouse refused for good, by table: dead-lettered (reason storage_refused) so the partition moves on.",
		}, []string{"table"}),
		unkeyed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_storage_rollup_unkeyed_points_total",
			Help: "Points of a series found in another Kafka partition than the series' earlier points: their producer did not key records by site, and the rollups cannot tell their replays apart.",
		}),
		rollupRows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_storage_rollup_rows_written_total",
			Help: "Rollup rows written, by table: one per series and bucket a batch changed (a row replaces the bucket's previous one).",
		}, []string{"table"}),
		rows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_storage_rows_written_total", Help: "Rows ClickHouse accepted, by table.",
		}, []string{"table"}),
		batchRows: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "polis_storage_batch_rows", Help: "Rows per flushed batch (all tables).",
			Buckets: prometheus.ExponentialBuckets(1, 4, 10),
		}),
		flushSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "polis_storage_flush_seconds", Help: "Time to insert a batch, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		}),
		insertErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_storage_insert_errors_total", Help: "Failed insert attempts (each is retried).",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "polis_storage_clickhouse_up", Help: "1 if the last ClickHouse insert or ping succeeded.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "polis_storage_consumer_lag", Help: "Records behind the high watermark, by topic, as of the last fetch.",
		}, []string{"topic"}),
		consumed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_storage_records_consumed_total", Help: "Kafka records polled, by topic.",
		}, []string{"topic"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_storage_records_skipped_total", Help: "Records that could not be stored, by reason.",
		}, []string{"reason"}),
		lags: map[string]map[int32]int64{},
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.rows, m.rollupRows, m.unkeyed, m.refused, m.batchRows, m.flushSeconds, m.insertErrors, m.up, m.lag, m.consumed, m.skipped} {
		if err := reg.Register(c); err != nil {
			// One writer per registry: a second one collides here.
			return nil, fmt.Errorf("cannot register storage metrics: %w", err)
		}
	}
	return m, nil
}

// setLag records one partition's lag and republishes its topic's sum.
func (m *metrics) setLag(topic string, partition int32, lag int64) {
	if lag < 0 {
		lag = 0
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ps := m.lags[topic]
	if ps == nil {
		ps = map[int32]int64{}
		m.lags[topic] = ps
	}
	ps[partition] = lag
	m.publishLocked(topic)
}

// dropLag forgets partitions this member no longer owns.
func (m *metrics) dropLag(revoked map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for topic, parts := range revoked {
		for _, p := range parts {
			delete(m.lags[topic], p)
		}
		m.publishLocked(topic)
	}
}

func (m *metrics) publishLocked(topic string) {
	var sum int64
	for _, l := range m.lags[topic] {
		sum += l
	}
	m.lag.WithLabelValues(topic).Set(float64(sum))
}
