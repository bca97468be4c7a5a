package ingest

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	messages       *prometheus.CounterVec
	deadLetters    *prometheus.CounterVec
	points         prometheus.Counter
	late           prometheus.Counter
	produceSeconds prometheus.Histogram
	produceErrors  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_ingest_messages_total", Help: "MQTT publishes handled by ingest, by topic kind and result (accepted, failed).",
		}, []string{"kind", "result"}),
		deadLetters: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_ingest_deadletter_total", Help: "Payloads refused and sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		points: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_ingest_points_total", Help: "Telemetry points produced to Kafka.",
		}),
		late: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_ingest_late_points_total", Help: "Telemetry points accepted but marked late.",
		}),
		produceSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "polis_ingest_produce_seconds", Help: "Latency of a Kafka produce until acknowledged.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		produceErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_ingest_produce_errors_total", Help: "Kafka produces that failed.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.messages, m.deadLetters, m.points, m.late, m.produceSeconds, m.produceErrors)
	}
	return m
}
