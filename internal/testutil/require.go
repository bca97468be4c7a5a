package testutil

import (
	"os"
	"testing"
)

// RequireEnv is the environment variable `make test` sets: a component a
// test needs (a browser, mosquitto, network namespaces) that is missing
// is then a failure, not a skip, since a skipped test proves nothing and
// make test installs every one of them.
const RequireEnv = "POLIS_TEST_REQUIRE"

// Need skips the test, saying why, when ok is false; under RequireEnv=1
// it fails it instead.
func Need(t testing.TB, ok bool, format string, args ...any) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("missing, and "+RequireEnv+"=1 (make test) requires it: "+format, args...)
		return
	}
	t.Skipf(format, args...)
}
