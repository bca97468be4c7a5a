package payload

import (
	"testing"
	"time"

	"github.com/polis-platform/polis/ingest/record"
)

var (
	benchNow = time.Date(2025, 3, 14, 9, 30, 0, 0, time.UTC)

	// What an environment/meter asset sends every few seconds.
	benchJSON = []byte(`{"ts":"2025-03-14T09:29:58.123Z","m":{"temp_c":21.5,"humidity_pct":48.2,"co2_ppm":612,"power_kw":3.42,"energy_kwh":15234.7,"occupied_count":7,"door_open":false,"illuminance_lx":340.5,"voltage_v":229.8,"current_a":14.9}}`)

	// The same sample as a SenML pack from a gateway using device URNs.
	benchSenML = []byte(`[{"bn":"urn:dev:mac:0024befffe804ff1:","bt":1741944598.123,"n":"temp","u":"Cel","v":21.5},{"n":"humidity","u":"%RH","v":48.2},{"n":"co2","u":"ppm","v":612},{"n":"power","u":"W","v":3420},{"n":"energy","u":"kWh","v":15234.7},{"n":"occupied","u":"count","v":7},{"n":"door_open","vb":false},{"n":"illuminance","u":"lx","v":340.5},{"n":"voltage","u":"V","v":229.8},{"n":"current","u":"A","v":14.9}]`)
)

type decodeFunc func([]record.Point, []byte, time.Time, Limits) ([]record.Point, error)

func benchDecode(b *testing.B, decode decodeFunc, payload []byte) {
	b.Helper()
	dst, err := decode(nil, payload, benchNow, Limits{})
	if err != nil || len(dst) != 10 {
		b.Fatalf("unexpected result; got %d points, %v; want 10 points", len(dst), err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	var buf []record.Point
	for b.Loop() {
		buf, err = decode(buf[:0], payload, benchNow, Limits{})
		if err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeJSON(b *testing.B)  { benchDecode(b, DecodeTelemetry, benchJSON) }
func BenchmarkDecodeSenML(b *testing.B) { benchDecode(b, DecodeTelemetry, benchSenML) }

// The encoding/json decoder the scanner replaced, kept to re-check that
// decision (benchstat against the two above).
func BenchmarkStdDecodeJSON(b *testing.B)  { benchDecode(b, stdDecodeTelemetry, benchJSON) }
func BenchmarkStdDecodeSenML(b *testing.B) { benchDecode(b, stdDecodeTelemetry, benchSenML) }
