package testutil

import "go.uber.org/goleak"

// VerifyNoLeaks is a TestMain: it runs the tests and then, if they passed,
// fails the test binary when goroutines other than the given known ones
// are still running, listing their stacks. Everything a test starts must
// stop by the end of its cleanups.
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(m) }
//
// With a shared ClickHouse, wrap m so the server stops first:
//
//	func TestMain(m *testing.M) { testutil.VerifyNoLeaks(chtest.Runner(m)) }
func VerifyNoLeaks(m goleak.TestingM, ignore ...goleak.Option) {
	goleak.VerifyTestMain(m, ignore...)
}
