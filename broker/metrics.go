package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/internal/logthrottle"
)

type metrics struct {
	refused        *prometheus.CounterVec
	ingested       prometheus.Counter
	deadLettered   prometheus.Counter
	publishSeconds prometheus.Histogram
	refusals       *logthrottle.Throttle // one log line per reason per refusalLogEvery
}

func newMetrics(reg prometheus.Registerer, srv *mqtt.Server) *metrics {
	m := &metrics{
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "polis_broker_refused_total",
			Help: "MQTT requests refused, by reason (bad_credentials, will_topic, client_id_taken, acl_publish, acl_subscribe, packet_too_large, kafka_unavailable).",
		}, []string{"reason"}),
		ingested: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_broker_publishes_ingested_total", Help: "Publishes accepted into Kafka.",
		}),
		deadLettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "polis_broker_publishes_deadlettered_total", Help: "Publishes whose payload was refused and dead-lettered.",
		}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "polis_broker_publish_seconds", Help: "Time from a publish's arrival to its Kafka acknowledgement.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		refusals: logthrottle.New(refusalLogEvery),
	}
	if reg != nil {
		reg.MustRegister(m.refused, m.ingested, m.deadLettered, m.publishSeconds,
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "polis_broker_clients_connected", Help: "Connected MQTT clients."},
				func() float64 { return float64(atomic.LoadInt64(&srv.Info.ClientsConnected)) }))
	}
	return m
}
