package schema

import (
	"fmt"
	"strconv"
	"strings"
)

// Flavor selects the DDL dialect. The zero value is invalid, so a forgotten
// field is caught instead of silently meaning one of them.
type Flavor int

const (
	// Legacy is ClickHouse before 20.3 (Debian's 18.16): no DateTime64,
	// TTL, CODEC or LowCardinality.
	Legacy Flavor = iota + 1
	// Modern is current ClickHouse.
	Modern
)

func (f Flavor) String() string {
	switch f {
	case Legacy:
		return "legacy"
	case Modern:
		return "modern"
	}
	return fmt.Sprintf("Flavor(%d)", int(f))
}

// Valid reports whether f is one of the defined flavors.
func (f Flavor) Valid() bool { return f == Legacy || f == Modern }

// FlavorFor maps a server version ("18.16.1", "24.8.4.13") to a flavor.
func FlavorFor(version string) (Flavor, error) {
	major, minor, err := parseVersion(version)
	if err != nil {
		return 0, err
	}
	if major < 20 || (major == 20 && minor < 3) {
		return Legacy, nil
	}
	return Modern, nil
}

func parseVersion(v string) (major, minor int, err error) {
	parts := strings.SplitN(strings.TrimSpace(v), ".", 3)
	if len(parts) < 2 {
		return 0, 0, fmt.Errorf("cannot parse ClickHouse version %q: want MAJOR.MINOR[...]", v)
	}
	if major, err = strconv.Atoi(parts[0]); err != nil {
		return 0, 0, fmt.Errorf("cannot parse ClickHouse version %q: %w", v, err)
	}
	if minor, err = strconv.Atoi(parts[1]); err != nil {
		return 0, 0, fmt.Errorf("cannot parse ClickHouse version %q: %w", v, err)
	}
	return major, minor, nil
}
