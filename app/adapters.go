package app

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/polis-platform/polis/api"
	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin"
	"github.com/polis-platform/polis/twin/registry"
)

// The API declares what it reads; these adapters connect it to the
// components that own the data, and hold no logic of their own.

// live is the twin as the API sees it (api.Live).
type live struct {
	*twin.Live
	reg *registry.Registry
}

// Subscribe converts the twin's updates to the API's, with the asset type
// and region the stream filters on.
func (l live) Subscribe(buffer int) (<-chan api.Update, func()) {
	in, cancel := l.Service().Subscribe(buffer)
	out := make(chan api.Update, buffer)
	go func() {
		defer close(out)
		for u := range in {
			au := api.Update{Site: u.Site, Asset: u.Asset, Kind: u.Kind, Status: u.Status, Metrics: u.Metrics, At: u.At}
			if a, ok := l.reg.Asset(u.Site, u.Asset); ok {
				au.AssetType = a.Type
			}
			if s, ok := l.reg.Site(u.Site); ok {
				au.Region = s.Region
			}
			select {
			case out <- au:
			default: // the API reader is slow: drop, like the hub does
			}
		}
	}()
	return out, cancel
}

// fleet is the registry (api.Fleet).
type fleet struct{ reg *registry.Registry }

func (f fleet) Sites() []*registry.Site               { return f.reg.Sites() }
func (f fleet) Site(id string) (*registry.Site, bool) { return f.reg.Site(id) }

// history reads ClickHouse (api.History).
type history struct {
	conn   driver.Conn
	db     string
	flavor schema.Flavor
}

func (h history) History(ctx context.Context, q api.HistoryQuery) (api.HistoryResult, error) {
	return storage.History(ctx, h.conn, h.db, h.flavor, q)
}

// scanner replays ClickHouse history for rule backtests.
func scanner(conn driver.Conn, db string, f schema.Flavor) rules.Scanner {
	return func(ctx context.Context, q storage.ScanQuery, fn func(storage.Point) error) (int, error) {
		return storage.Scan(ctx, conn, db, f, q, fn)
	}
}
