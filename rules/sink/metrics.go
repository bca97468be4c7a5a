package sink

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the sinks' own. Every sink of a process registers the same
// collectors, so the second finds the first's and shares it.
type metrics struct {
	deadLettered *prometheus.CounterVec // by sink and status
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	dl := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "polis_alert_sink_dead_lettered_total",
		Help: "Alert changes a receiver refused for good (a webhook's 4xx other than 408 and 429), by sink and the receiver's status or reason code: written to polis.deadletter.v1 (reason sink_refused) so the next changes go on.",
	}, []string{"sink", "status"})
	if reg != nil {
		if err := reg.Register(dl); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return nil, err
			}
			existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
			if !ok {
				return nil, err
			}
			dl = existing
		}
	}
	return &metrics{deadLettered: dl}, nil
}
