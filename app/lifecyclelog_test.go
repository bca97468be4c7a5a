package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/kafka"
	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

// lifecycleLog reads every event of polis.lifecycle.v1.
func lifecycleLog(t *testing.T, brokers []string) []lifecycle.Event {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(kafka.TopicLifecycle),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, kafka.TopicLifecycle)
	if err != nil {
		t.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	var evs []lifecycle.Event
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading %s: %v", kafka.TopicLifecycle, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var ev lifecycle.Event
			if err := json.Unmarshal(r.Value, &ev); err != nil {
				t.Fatalf("undecodable lifecycle event %s: %v", r.Value, err)
			}
			evs = append(evs, ev)
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return evs
}

func milestonesOf(t *testing.T, p *app.Platform) string {
	t.Helper()
	var m struct{ Items json.RawMessage }
	if code := getJSON(t, "http://"+p.HTTP.Addr()+"/api/v1/milestones", &m); code != 200 {
		t.Fatalf("milestones: status %d", code)
	}
	return string(m.Items)
}

// Lifecycle is log first: an operator's move is in polis.lifecycle.v1 when
// the API answers, an evidence move is written once, by the site's owner;
// every instance folds the log, so two instances serve the same states and
// milestones; ClickHouse is fed from the log once per event; a restarted
// instance gets its lifecycle back from the log alone.
func TestLifecycle_LogFirstAcrossInstances(t *testing.T) {
	e := newEnv(t)
	ext, err := kafka.StartEmbedded(kafka.EmbeddedOptions{Addr: "127.0.0.1:0", Partitions: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer ext.Close()
	e.cfg.KafkaBrokers = ext.Addrs()
	e.cfg.MilestonesPath = "../rules/milestones/polis.yaml"
	token := e.operatorToken(t)
	a := e.start(t)
	cfgB := e.cfg
	cfgB.DataDir = t.TempDir()
	b, err := app.Start(context.Background(), cfgB)
	if err != nil {
		t.Fatal(err)
	}
	defer stop(t, b)
	eventually(t, 60*time.Second, func() bool {
		return len(a.Twin.Owned()) > 0 && len(b.Twin.Owned()) > 0 && len(a.Twin.Owned())+len(b.Twin.Owned()) == 4
	})
	owns := func(p *app.Platform, site string) bool {
		return slices.Contains(p.Twin.Owned(), p.Live.PartitionOf(site))
	}

	// An operator decommissions an installed device of a site a owns.
	var site, asset string
	for _, s := range a.Registry.Sites() {
		if !owns(a, s.ID) {
			continue
		}
		for _, as := range s.Assets {
			st, _ := a.Live.Lifecycle(s.ID, as.ID)
			if st == lifecycle.Installed || st == lifecycle.Commissioned || st == lifecycle.Operational || st == lifecycle.Faulty {
				site, asset = s.ID, as.ID
			}
		}
	}
	if site == "" {
		t.Fatal("a owns no site with an installed asset")
	}
	r, _ := http.NewRequest("POST", fmt.Sprintf("http://%s/api/v1/sites/%s/assets/%s/lifecycle", a.HTTP.Addr(), site, asset),
		bytes.NewBufferString(`{"to":"decommissioned","cause":"replaced"}`))
	r.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(r)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("lifecycle move on a: status %d", resp.StatusCode)
	}
	// Answered after Kafka had it and a's tracker folded it.
	if st, _ := a.Live.Lifecycle(site, asset); st != lifecycle.Decommissioned {
		t.Fatalf("a's tracker after the answer: %s", st)
	}
	if evs := lifecycleLog(t, ext.Addrs()); !slices.ContainsFunc(evs, func(ev lifecycle.Event) bool {
		return ev.Site == site && ev.Asset == asset && ev.To == lifecycle.Decommissioned && ev.Actor == "ops" && ev.Cause == "replaced"
	}) {
		t.Fatalf("the move is not in %s: %+v", kafka.TopicLifecycle, evs)
	}
	eventually(t, 20*time.Second, func() bool {
		st, _ := b.Live.Lifecycle(site, asset)
		return st == lifecycle.Decommissioned
	})

	// Evidence: a planned device of a site b owns reports through a's
	// broker; b, the owner, writes planned → installed, once.
	var dev registry.Credential
	for _, c := range e.creds {
		if st, _ := b.Live.Lifecycle(c.Site, c.Asset); st == lifecycle.Planned && owns(b, c.Site) {
			dev = c
			break
		}
	}
	if dev.Site == "" {
		t.Fatal("b owns no site with a planned device")
	}
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + a.Broker.Addr()).SetClientID(dev.Username).
		SetUsername(dev.Username).SetPassword(dev.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	for i := range 3 {
		tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", dev.Site, dev.Asset), 1, false, fmt.Sprintf(`{"m":{"temp_c":%d}}`, 20+i))
		if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatal(tok.Error())
		}
	}
	cl.Disconnect(50)
	for _, p := range []*app.Platform{a, b} {
		eventually(t, 30*time.Second, func() bool {
			st, _ := p.Live.Lifecycle(dev.Site, dev.Asset)
			return st == lifecycle.Installed
		})
	}

	// Both serve the same milestones, computed from the same lifecycle.
	if ma, mb := milestonesOf(t, a), milestonesOf(t, b); ma != mb {
		t.Fatalf("the instances serve different milestones:\na %s\nb %s", ma, mb)
	}
	// ClickHouse gets each event once, from the log.
	moved := fmt.Sprintf("SELECT count() FROM %%s.lifecycle_events FINAL WHERE site = '%s' AND asset = '%s' AND to_state = 'decommissioned'", site, asset)
	installed := fmt.Sprintf("SELECT count() FROM %%s.lifecycle_events FINAL WHERE site = '%s' AND asset = '%s' AND to_state = 'installed' AND actor = 'system'", dev.Site, dev.Asset)
	eventually(t, 20*time.Second, func() bool { return e.count(t, moved) == 1 && e.count(t, installed) == 1 })
	time.Sleep(time.Second) // any late duplicate would land by now
	evs := lifecycleLog(t, ext.Addrs())
	n := 0
	for _, ev := range evs {
		if ev.Site == dev.Site && ev.Asset == dev.Asset {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d evidence events for %s/%s in the log; want 1 (written by its owner only)", n, dev.Site, dev.Asset)
	}
	if got := e.count(t, "SELECT count() FROM %s.lifecycle_events"); got != uint64(len(evs)) {
		t.Fatalf("%d rows in lifecycle_events for %d events in the log", got, len(evs))
	}

	// A restart restores the tracker from the log: ClickHouse is emptied
	// first, so it could not come from there.
	stop(t, a)
	if err := e.conn.Exec(context.Background(), fmt.Sprintf("TRUNCATE TABLE %s.lifecycle_events", e.cfg.Database)); err != nil {
		t.Fatal(err)
	}
	a2 := e.start(t)
	defer stop(t, a2)
	if st, _ := a2.Live.Lifecycle(site, asset); st != lifecycle.Decommissioned {
		t.Fatalf("after a restart the decommissioned asset is %s", st)
	}
	if st, _ := a2.Live.Lifecycle(dev.Site, dev.Asset); st != lifecycle.Installed {
		t.Fatalf("after a restart the installed asset is %s", st)
	}
	if !maps.Equal(a2.Live.Tracker().Counts(), b.Live.Tracker().Counts()) {
		t.Fatal("after a restart the instances' lifecycle counts differ")
	}
	if ma, mb := milestonesOf(t, a2), milestonesOf(t, b); ma != mb {
		t.Fatalf("after a restart the instances serve different milestones:\na %s\nb %s", ma, mb)
	}
}

// An installation that kept the lifecycle in ClickHouse only, before the
// log existed, keeps its states: the first start on an empty log writes
// them to it (once), and they are not stored in ClickHouse a second time.
func TestLifecycle_EmptyLogSeededFromClickHouse(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := schema.Apply(ctx, e.conn, e.cfg.Database); err != nil {
		t.Fatal(err)
	}
	c := e.creds[0]
	at := time.Now().Add(-time.Hour).UTC().Truncate(time.Second)
	var version string
	if err := e.conn.QueryRow(ctx, "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	flavor, err := schema.FlavorFor(version)
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.InsertLifecycle(ctx, e.conn, e.cfg.Database, flavor, []lifecycle.Event{{Site: c.Site, Asset: c.Asset,
		From: lifecycle.Planned, To: lifecycle.Decommissioned, At: at, Actor: "ops", Cause: lifecycle.CauseAPI}}); err != nil {
		t.Fatal(err)
	}
	p := e.start(t)
	if st, _ := p.Live.Lifecycle(c.Site, c.Asset); st != lifecycle.Decommissioned {
		t.Fatalf("the state stored in ClickHouse was lost: %s", st)
	}
	evs := lifecycleLog(t, p.Brokers)
	if len(evs) != 1 || evs[0].Cause != lifecycle.CauseMigrated || evs[0].To != lifecycle.Decommissioned {
		t.Fatalf("the log after the first start: %+v; want the one migrated state", evs)
	}
	// A move made now reaches ClickHouse; the migrated state does not
	// come back a second time.
	c2 := e.creds[1]
	if _, err := p.Live.Transition(c2.Site, c2.Asset, lifecycle.Decommissioned, "ops", "", time.Now()); err != nil {
		t.Fatal(err)
	}
	rows := func(c registry.Credential) uint64 {
		return e.count(t, fmt.Sprintf("SELECT count() FROM %%s.lifecycle_events WHERE site = '%s' AND asset = '%s'", c.Site, c.Asset))
	}
	eventually(t, 20*time.Second, func() bool { return rows(c2) == 1 })
	if got := rows(c); got != 1 {
		t.Fatalf("%d rows for %s/%s; want the 1 from before", got, c.Site, c.Asset)
	}
	stop(t, p)
	// The next start finds the log: nothing is seeded again.
	p = e.start(t)
	defer stop(t, p)
	if st, _ := p.Live.Lifecycle(c.Site, c.Asset); st != lifecycle.Decommissioned {
		t.Fatalf("after a restart: %s", st)
	}
	if n := len(lifecycleLog(t, p.Brokers)); n != 2 {
		t.Fatalf("%d events in the log after a restart; want 2", n)
	}
}
