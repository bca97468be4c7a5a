package twin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/twin/registry"
)

// PublishSites writes sites to the compacted registry topic, where every
// instance follows them (NewRegistryFollower).
func PublishSites(ctx context.Context, prod *kgo.Client, sites []*registry.Site) error {
	for _, s := range sites {
		b, err := json.Marshal(s)
		if err != nil {
			return fmt.Errorf("cannot encode site %s: %w", s.ID, err)
		}
		prod.Produce(ctx, &kgo.Record{Topic: kafka.TopicRegistry, Key: []byte(s.ID), Value: b}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		return fmt.Errorf("cannot publish registry changes: %w", err)
	}
	return nil
}

// NewRegistryFollower replays and follows the registry topic, calling
// apply for every site. opts (kafka.ClientOptions.Opts: SASL, TLS) go to
// its client.
func NewRegistryFollower(brokers []string, log *slog.Logger, apply func(*registry.Site), opts ...kgo.Opt) *kafka.Follower {
	return kafka.NewFollower(brokers, kafka.TopicRegistry, log, func(r *kgo.Record) {
		var s registry.Site
		if err := json.Unmarshal(r.Value, &s); err == nil && s.ID != "" {
			apply(&s)
		}
	}, opts...)
}

// Importer is the registry's bulk import and export: an import changes
// the registry (so the broker accepts the new devices at once), the stores
// this instance owns and the lifecycle tracker, rewrites the registry file,
// and publishes the changed sites to every other instance.
type Importer struct {
	live *Live
	prod *kgo.Client
	path string // registry file, rewritten after an import; "" none
	mu   sync.Mutex
}

// NewImporter returns the registry importer of l.
func NewImporter(l *Live, prod *kgo.Client, path string) *Importer {
	return &Importer{live: l, prod: prod, path: path}
}

// Import reads the provisioning CSV (registry.ImportCSV).
func (g *Importer) Import(r io.Reader, strict bool) (*registry.ImportReport, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.live
	before := map[string]*registry.Site{}
	for _, s := range l.reg.Sites() {
		before[s.ID] = s
	}
	rep, err := registry.ImportCSV(l.reg, r, registry.ImportOptions{Strict: strict})
	if err != nil {
		return rep, err
	}
	// ImportCSV replaces the sites it imports: a new pointer is a change.
	var changed []*registry.Site
	for _, s := range l.reg.Sites() {
		if before[s.ID] != s {
			changed = append(changed, s)
			if err := l.SiteAdded(s); err != nil {
				return rep, err
			}
		}
	}
	if g.path != "" {
		if err := l.reg.Save(g.path); err != nil {
			return rep, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := PublishSites(ctx, g.prod, changed); err != nil {
		return rep, err
	}
	return rep, nil
}

// Export writes the registry as provisioning CSV.
func (g *Importer) Export(w io.Writer) error { return registry.ExportCSV(w, g.live.reg) }
