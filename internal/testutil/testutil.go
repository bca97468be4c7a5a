// Package testutil holds helpers shared by the integration tests.
package testutil

import (
	"fmt"
	"testing"
	"time"
)

// Eventually polls f every step until it holds, failing the test with the
// message once timeout has passed: a bounded wait instead of a sleep.
func Eventually(t testing.TB, timeout, step time.Duration, f func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(step)
	}
}
