//go:build !unix

package loadtest

// openFileLimit is unknown here.
func openFileLimit() (uint64, bool) { return 0, false }
