// Package schema is the ClickHouse schema of Polis: versioned, idempotent
// migrations whose DDL is chosen by the server's version (Legacy for
// Debian's 18.16, Modern for current ClickHouse).
package schema

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ValidDatabase rejects names that would need quoting in DDL.
func ValidDatabase(db string) error {
	if !identRE.MatchString(db) {
		return fmt.Errorf("cannot use database name %q: want letters, digits and _", db)
	}
	return nil
}

// ServerVersion returns the server's version string.
func ServerVersion(ctx context.Context, conn driver.Conn) (string, error) {
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		return "", fmt.Errorf("cannot query ClickHouse version: %w", err)
	}
	return v, nil
}

// Detect returns the flavor of the server behind conn.
func Detect(ctx context.Context, conn driver.Conn) (Flavor, error) {
	v, err := ServerVersion(ctx, conn)
	if err != nil {
		return 0, err
	}
	return FlavorFor(v)
}

// Apply brings database db up to date with default Options. See ApplyWith.
func Apply(ctx context.Context, conn driver.Conn, db string) (applied []int, err error) {
	return ApplyWith(ctx, conn, db, Options{})
}

// ApplyWith detects the flavor, creates db and its migrations ledger, and
// applies the missing migrations in order, recording each one. Running it
// again is a no-op. Versions recorded by a newer binary are left alone.
func ApplyWith(ctx context.Context, conn driver.Conn, db string, o Options) (applied []int, err error) {
	if err := ValidDatabase(db); err != nil {
		return nil, err
	}
	f, err := Detect(ctx, conn)
	if err != nil {
		return nil, err
	}
	for _, s := range bootstrap(db) {
		if err := conn.Exec(ctx, s); err != nil {
			return nil, fmt.Errorf("cannot create migrations table in %s: %w", db, err)
		}
	}
	done, err := appliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	for _, m := range Migrations(f, db, o) {
		if done[m.Version] {
			continue
		}
		for _, s := range m.Statements {
			if err := conn.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("cannot apply migration %d (%s) to %s: %w", m.Version, m.Name, db, err)
			}
		}
		if m.Upgrade != nil {
			if err := m.Upgrade(ctx, conn, dialect{f: f, db: db, o: o.withDefaults()}); err != nil {
				return applied, fmt.Errorf("cannot apply migration %d (%s) to %s: %w", m.Version, m.Name, db, err)
			}
		}
		if err := record(ctx, conn, db, m); err != nil {
			return applied, err
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// AppliedVersions lists the versions recorded in db's ledger, ascending.
func AppliedVersions(ctx context.Context, conn driver.Conn, db string) ([]int, error) {
	if err := ValidDatabase(db); err != nil {
		return nil, err
	}
	var rows []struct {
		Version uint32 `ch:"version"`
	}
	if err := conn.Select(ctx, &rows, AppliedVersionsSQL(db)); err != nil {
		return nil, fmt.Errorf("cannot read applied migrations of %s: %w", db, err)
	}
	out := make([]int, len(rows))
	for i, r := range rows {
		out[i] = int(r.Version)
	}
	return out, nil
}

// AppliedVersionsSQL is the query AppliedVersions runs.
func AppliedVersionsSQL(db string) string {
	return "SELECT DISTINCT version FROM " + db + "." + TableMigrations + " ORDER BY version"
}

// RecordSQL is the INSERT that records an applied migration, with the
// columns version (UInt32), name and applied_at, in that order.
func RecordSQL(db string) string {
	return "INSERT INTO " + db + "." + TableMigrations + " (version, name, applied_at)"
}

func appliedVersions(ctx context.Context, conn driver.Conn, db string) (map[int]bool, error) {
	vs, err := AppliedVersions(ctx, conn, db)
	if err != nil {
		return nil, err
	}
	m := make(map[int]bool, len(vs))
	for _, v := range vs {
		m[v] = true
	}
	return m, nil
}

// record writes one ledger row. A batch, not INSERT ... VALUES through Exec:
// 18.16 waits for data blocks after such an INSERT and the call hangs.
func record(ctx context.Context, conn driver.Conn, db string, m Migration) error {
	b, err := conn.PrepareBatch(ctx, RecordSQL(db))
	if err != nil {
		return fmt.Errorf("cannot record migration %d: %w", m.Version, err)
	}
	defer b.Close()
	if err := b.Append(uint32(m.Version), m.Name, time.Now()); err != nil {
		return fmt.Errorf("cannot record migration %d: %w", m.Version, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot record migration %d: %w", m.Version, err)
	}
	return nil
}
