package storage

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/polis-platform/polis/storage/schema"
)

var createRE = regexp.MustCompile(`(?s)^CREATE TABLE IF NOT EXISTS db\.(\w+)\n\((.*?)\n\)`)

// The writer's INSERT column lists must match the DDL of both flavors; only
// Legacy can be checked against a real server here.
func TestInsertColumns_MatchSchema(t *testing.T) {
	for _, f := range []schema.Flavor{schema.Legacy, schema.Modern} {
		ddl := map[string][]string{}
		for _, m := range schema.Migrations(f, "db", schema.Options{}) {
			for _, s := range m.Statements {
				g := createRE.FindStringSubmatch(s)
				if g == nil {
					continue
				}
				for _, line := range strings.Split(strings.TrimSpace(g[2]), "\n") {
					ddl[g[1]] = append(ddl[g[1]], strings.Fields(line)[0])
				}
			}
		}
		for _, tb := range newBatch(f).tables {
			if !slices.Equal(tb.columns(), ddl[tb.name()]) {
				t.Fatalf("%s %s: writer columns %v; DDL columns %v", f, tb.name(), tb.columns(), ddl[tb.name()])
			}
			if len(tb.values()) != len(tb.columns()) {
				t.Fatalf("%s %s: %d value slices for %d columns", f, tb.name(), len(tb.values()), len(tb.columns()))
			}
		}
	}
}

func TestSplitMillis(t *testing.T) {
	f := func(ms int64, wantSec int64, wantMS uint16) {
		t.Helper()
		ts, sub := splitMillis(ms)
		if ts.Unix() != wantSec || sub != wantMS {
			t.Fatalf("unexpected split of %d; got %d, %d; want %d, %d", ms, ts.Unix(), sub, wantSec, wantMS)
		}
	}
	f(0, 0, 0)
	f(1_700_000_000_123, 1_700_000_000, 123)
	f(1_700_000_000_999, 1_700_000_000, 999)
	f(-1, -1, 999)
}
