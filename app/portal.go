package app

import (
	"context"
	"fmt"

	"github.com/polis-platform/polis/portal"
	"github.com/polis-platform/polis/portal/opendata"
	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin"
)

// startPortal runs the public portal's figures (portal/progress: rebuilt
// from memory every few seconds, ClickHouse read in the background) and
// serves the portal at / and its open data under /dati/ on the API's
// address. The portal is public: it shows only progress's public types.
func (p *Platform) startPortal(ctx context.Context, lv *twin.Live, flavor schema.Flavor) error {
	cfg := p.cfg
	if cfg.NoPortal {
		return nil
	}
	var ms []*milestone.Milestone
	if cfg.MilestonesPath != "" {
		var err error
		if ms, err = milestone.LoadFile(cfg.MilestonesPath); err != nil {
			return fmt.Errorf("cannot load milestones for the portal: %w", err)
		}
	}
	var facts []milestone.Fact
	if cfg.FactsPath != "" {
		var err error
		if facts, err = milestone.LoadFactsFile(cfg.FactsPath); err != nil {
			return fmt.Errorf("cannot load the public facts for the portal: %w", err)
		}
	}
	store, err := progress.NewClickHouseStore(p.ch, cfg.Database, flavor)
	if err != nil {
		return err
	}
	b, err := progress.NewBuilder(progress.Options{Registry: p.Registry, Lifecycle: lv.Tracker().State,
		Live: progress.LiveOf(lv), Milestones: ms, Facts: facts, Store: store, Logger: cfg.Logger})
	if err != nil {
		return err
	}
	if err := p.group.start(ctx, "portal figures", b); err != nil {
		return err
	}
	od := opendata.New(opendata.Options{Snapshot: b.Snapshot, BaseURL: cfg.PortalURL, Logger: cfg.Logger})
	o := portal.Options{Snapshot: b.Snapshot, OpenData: od, BaseURL: cfg.PortalURL, Contact: cfg.PortalContact,
		Logger: cfg.Logger}
	if p.services != nil {
		o.Services = p.services
	}
	h, err := portal.New(o)
	if err != nil {
		return err
	}
	p.HTTP.SetSite(h)
	p.log.Info("portal serving", "url", "http://"+p.HTTP.Addr()+"/", "milestones", len(ms), "facts", len(facts))
	return nil
}
