package loadtest

import (
	"context"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

// BenchmarkModelStep steps one device by one simulated second, the typical
// cadence of a paced run, and encodes its telemetry.
func BenchmarkModelStep(b *testing.B) {
	types := []string{registry.TypePV, registry.TypeEVC, registry.TypeMeter, registry.TypeLocker, registry.TypeEnv,
		registry.TypeATM, registry.TypeTotem, registry.TypeShowcase, registry.TypeDesk, registry.TypeRoom,
		registry.TypeOutdoor, registry.GatewayType}
	for _, typ := range types {
		b.Run(typ, func(b *testing.B) {
			m := NewModel(typ, Place{Lat: 41.9, Lon: 12.5, Desks: 20}, 1)
			now := local(2024, 6, 4, 9, 0)
			var s Sample
			var buf []byte
			b.ReportAllocs()
			for b.Loop() {
				now = now.Add(time.Second)
				s.Reset()
				m.Step(now, &s)
				buf = appendTelemetry(buf[:0], now, s.Metrics)
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

// BenchmarkRun publishes b.N messages through a local mochi broker and
// reports the end-to-end rate (connection setup excluded).
func BenchmarkRun(b *testing.B) {
	for _, qos := range []byte{0, 1} {
		b.Run([]string{"qos0", "qos1"}[qos], func(b *testing.B) {
			broker, _ := startBrokerTB(b)
			_, creds, err := registry.Generate(registry.GenerateOptions{Sites: 20, Seed: 1})
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			st, err := Run(context.Background(), Options{Broker: broker, Credentials: creds, Messages: b.N, QoS: qos})
			if err != nil || st.Errors != 0 {
				b.Fatalf("run failed: %v, %+v", err, st)
			}
			b.ReportMetric(float64(st.Sent)/st.Elapsed.Seconds(), "msg/s")
			b.ReportMetric(float64(st.Points)/st.Elapsed.Seconds(), "points/s")
		})
	}
}
