package e2e

import (
	"os"
	"testing"
)

// TestMain serves the fleet run's Kafka when the test binary is started as
// it (RunFleet re-runs its own binary: here, the test binary).
func TestMain(m *testing.M) {
	if handled, code := ServeKafka(); handled {
		os.Exit(code)
	}
	os.Exit(m.Run())
}
