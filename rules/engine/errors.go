package engine

import "errors"

var (
	// ErrLate is returned by Observe for a point that was not evaluated
	// because it is late (see the package doc); count it, don't log each.
	ErrLate = errors.New("point too late")
	// ErrNotFound: no alert or silence with that id.
	ErrNotFound = errors.New("not found")
	// ErrNotOpen: the alert is not pending, firing or in NoData.
	ErrNotOpen = errors.New("alert not open")
)
