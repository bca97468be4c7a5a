// Package testutil holds helpers shared by the integration tests.
package testutil

import (
	"fmt"
	"testing"
	"time"
)

// DefaultStep is how often Eventually polls when it is given no step.
const DefaultStep = 10 * time.Millisecond

// Eventually polls f every step (DefaultStep if step is 0) until it holds,
// failing the test with the message once timeout has passed: a bounded wait
// instead of a sleep. It never sleeps past the deadline and tries f once
// more at it. The message is formatted only on failure, so an argument that
// is a Lazy (or any fmt.Stringer) shows the state at the timeout:
//
//	testutil.Eventually(t, 5*time.Second, 0, func() bool { return n() == 3 },
//		"3 rows stored (got %v)", testutil.Lazy(func() any { return n() }))
func Eventually(t testing.TB, timeout, step time.Duration, f func() bool, format string, args ...any) {
	t.Helper()
	if step <= 0 {
		step = DefaultStep
	}
	deadline := time.Now().Add(timeout)
	for !f() {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("condition not met within %s: %s", timeout, fmt.Sprintf(format, args...))
		}
		time.Sleep(min(step, left))
	}
}

// Lazy formats as what f returns when the message is built: give it to
// Eventually to report the state at the timeout rather than at the call.
type Lazy func() any

func (l Lazy) String() string { return fmt.Sprint(l()) }
