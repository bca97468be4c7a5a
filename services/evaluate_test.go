package services

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
)

const (
	testOffice    = "PO-001002-1"
	testCoworking = "CW-TO-1"
)

// testFleet is one post office with every channel (two chargers) and one
// coworking space, every asset operational unless lc says otherwise.
func testFleet(t testing.TB, lc map[string]lifecycle.State) *registry.Registry {
	t.Helper()
	asset := func(id string) *registry.Asset {
		st := lifecycle.Operational
		if s, ok := lc[id]; ok {
			st = s
		}
		return &registry.Asset{ID: id, Type: registry.AssetTypeOf(id), Lifecycle: st}
	}
	po := &registry.Site{ID: testOffice, Kind: registry.KindPostOffice, Comune: "001002", Name: "Airasca", Province: "TO",
		Region: "Piemonte", Lat: 44.917, Lon: 7.485, OpeningHours: registry.MustParseOpeningHours(registry.PostOfficeHours)}
	for _, id := range []string{"totem-1", "atm-1", "locker-1", "evc-1", "evc-2", "env-1", "gw-1"} {
		po.Assets = append(po.Assets, asset(id))
	}
	cw := &registry.Site{ID: testCoworking, Kind: registry.KindCoworking, Comune: "001272", Name: "Torino", Province: "TO",
		Region: "Piemonte", Lat: 45.07, Lon: 7.686, OpeningHours: registry.MustParseOpeningHours(registry.CoworkingHours)}
	for _, id := range []string{"desk-1", "desk-2", "room-1", "env-1"} {
		cw.Assets = append(cw.Assets, asset(id))
	}
	reg := registry.New()
	if err := reg.Add(po, cw); err != nil {
		t.Fatal(err)
	}
	return reg
}

func newTestFinder(t testing.TB, reg *registry.Registry, w Twin) *Finder {
	t.Helper()
	f, err := NewFinder(FinderOptions{Fleet: reg, Twin: w})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// availabilityOf is one service's answer at a site.
func availabilityOf(t *testing.T, f *Finder, site, service string, now time.Time) Availability {
	t.Helper()
	all, ok := f.Office(site, now)
	if !ok {
		t.Fatalf("site %s unknown", site)
	}
	for _, a := range all {
		if a.Service == service {
			return a
		}
	}
	t.Fatalf("site %s does not list %s", site, service)
	return Availability{}
}

func TestAvailability(t *testing.T) {
	open := romeTime(t, "2026-03-10 10:00")   // Tuesday
	closed := romeTime(t, "2026-03-15 10:00") // Sunday
	monday := romeTime(t, "2026-03-16 08:20")
	easterMonday := romeTime(t, "2026-04-06 10:00")
	at := open.Add(-time.Minute) // when the devices reported

	tests := []struct {
		name      string
		lc        map[string]lifecycle.State
		setup     func(w *storeTwin)
		site      string
		service   string
		now       time.Time
		available bool
		channel   Channel
		reason    string
		expected  time.Time
		message   string // contained in the message
	}{
		{name: "nothing heard, office open: the counter serves", service: "civil_certificate", now: open,
			available: true, channel: ChannelCounter},
		{name: "nothing heard, office closed", service: "civil_certificate", now: closed,
			channel: ChannelTotem, reason: ReasonTwinUnknown, expected: monday, message: "allo sportello da lunedì 16 marzo alle 08:20"},
		{name: "totem up with paper, office closed", service: "civil_certificate", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 1, "paper_pct", 50)
			},
			channel: ChannelTotem, available: true},
		{name: "totem reports online=0", service: "judicial_certificate", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 0, "paper_pct", 50)
			},
			channel: ChannelTotem, reason: ReasonTotemOffline, expected: monday, message: "non è raggiungibile"},
		{name: "totem disconnected", service: "judicial_certificate", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-2*time.Minute), "online", 1, "paper_pct", 50)
				w.status(testOffice, "totem-1", "offline", closed.Add(-time.Minute))
			},
			channel: ChannelTotem, reason: ReasonTotemOffline, expected: monday},
		{name: "totem silent for an hour (stale)", service: "judicial_certificate", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Hour), "online", 1, "paper_pct", 50)
			},
			channel: ChannelTotem, reason: ReasonTotemOffline, expected: monday},
		{name: "totem out of paper", service: "isee", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 1, "paper_pct", 0)
			},
			channel: ChannelTotem, reason: ReasonTotemNoPaper, expected: monday, message: "esaurito la carta"},
		{name: "totem out of paper, office open: the counter serves", service: "isee", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "totem-1", at, "online", 1, "paper_pct", 0.5) },
			channel: ChannelCounter, available: true},
		{name: "totem reports a fault", service: "isee", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 1, "fault", 1)
			},
			channel: ChannelTotem, reason: ReasonTotemFaulty, expected: monday},
		{name: "totem faulty until an operator confirms the repair", service: "isee", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 1, "paper_pct", 80)
				w.move(t, testOffice, "totem-1", lifecycle.Faulty)
			},
			channel: ChannelTotem, reason: ReasonTotemFaulty, expected: monday},
		{name: "totem in acceptance", service: "isee", now: closed, lc: map[string]lifecycle.State{"totem-1": lifecycle.Commissioned},
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", closed.Add(-time.Minute), "online", 1, "paper_pct", 80)
			},
			channel: ChannelTotem, reason: ReasonTotemNotInService, expected: monday, message: "non è ancora in servizio"},
		{name: "totem decommissioned", service: "isee", now: closed, lc: map[string]lifecycle.State{"totem-1": lifecycle.Decommissioned},
			channel: ChannelTotem, reason: ReasonNoTotem, expected: monday},
		{name: "holiday: the counter says so, the totem first", service: "isee", now: easterMonday,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "totem-1", easterMonday.Add(-time.Minute), "online", 0, "paper_pct", 80)
			},
			channel: ChannelTotem, reason: ReasonTotemOffline, expected: romeTime(t, "2026-04-07 08:20"), message: "allo sportello da martedì 7 aprile alle 08:20"},
		{name: "counter only, closed on a holiday", service: "passport", now: easterMonday,
			channel: ChannelCounter, reason: ReasonHoliday, expected: romeTime(t, "2026-04-07 08:20"), message: "(Lunedì dell'Angelo)"},
		{name: "counter only, open", service: "passport", now: open, channel: ChannelCounter, available: true},

		{name: "ATM with cash", service: "cash_withdrawal", now: closed,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "atm-1", closed.Add(-time.Minute), "available", 1, "cash_eur", 52000)
			},
			channel: ChannelATM, available: true},
		{name: "ATM low on cash", service: "cash_withdrawal", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "atm-1", at, "available", 1, "cash_eur", MinCashEUR-10) },
			channel: ChannelATM, reason: ReasonATMNoCash, message: "contante"},
		{name: "ATM empty reports available=0", service: "cash_withdrawal", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "atm-1", at, "available", 0, "cash_eur", 0) },
			channel: ChannelATM, reason: ReasonATMNoCash},
		{name: "ATM out of service with cash", service: "cash_withdrawal", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "atm-1", at, "available", 0, "cash_eur", 30000) },
			channel: ChannelATM, reason: ReasonATMOutOfService},
		{name: "ATM disconnected", service: "cash_withdrawal", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "atm-1", at.Add(-time.Minute), "available", 1, "cash_eur", 30000)
				w.status(testOffice, "atm-1", "offline", at)
			},
			channel: ChannelATM, reason: ReasonATMOffline},
		{name: "ATM planned", service: "cash_withdrawal", now: open, lc: map[string]lifecycle.State{"atm-1": lifecycle.Planned},
			channel: ChannelATM, reason: ReasonATMNotInService},

		{name: "locker pickup, locker full", service: "locker_pickup", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "locker-1", at, "free_count", 0, "occupied_count", 24) },
			channel: ChannelLocker, available: true},
		{name: "drop-off, locker full", service: "parcel_dropoff", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "locker-1", at, "free_count", 0, "occupied_count", 24) },
			channel: ChannelLocker, reason: ReasonLockerFull},
		{name: "drop-off, a compartment free", service: "parcel_dropoff", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "locker-1", at, "free_count", 3, "occupied_count", 21) },
			channel: ChannelLocker, available: true},
		{name: "locker offline", service: "locker_pickup", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "locker-1", at.Add(-time.Minute), "free_count", 3)
				w.status(testOffice, "locker-1", "offline", at)
			},
			channel: ChannelLocker, reason: ReasonLockerOffline},

		{name: "one charger busy, one faulted: busy", service: "ev_charging", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "evc-1", at, "connector_state", 1)
				w.telemetry(testOffice, "evc-2", at, "connector_state", 3)
			},
			channel: ChannelCharger, reason: ReasonChargerBusy, message: "occupati"},
		{name: "both chargers faulted", service: "ev_charging", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "evc-1", at, "connector_state", 3)
				w.telemetry(testOffice, "evc-2", at, "connector_state", 3)
			},
			channel: ChannelCharger, reason: ReasonChargerFaulty},
		{name: "a connector free", service: "ev_charging", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testOffice, "evc-1", at, "connector_state", 2)
				w.telemetry(testOffice, "evc-2", at, "connector_state", 0)
			},
			channel: ChannelCharger, available: true},
		{name: "a charger not reporting its connector", service: "ev_charging", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testOffice, "evc-1", at, "power_kw", 0) },
			channel: ChannelCharger, reason: ReasonTwinUnknown},

		{name: "desks all taken", site: testCoworking, service: "coworking_desk", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testCoworking, "desk-1", at, "occupied", 1)
				w.telemetry(testCoworking, "desk-2", at, "occupied", 1)
			},
			channel: ChannelCoworking, reason: ReasonNoFreeDesk},
		{name: "a desk free", site: testCoworking, service: "coworking_desk", now: open,
			setup: func(w *storeTwin) {
				w.telemetry(testCoworking, "desk-1", at, "occupied", 1)
				w.telemetry(testCoworking, "desk-2", at, "occupied", 0)
			},
			channel: ChannelCoworking, available: true},
		{name: "a desk free, space closed", site: testCoworking, service: "coworking_desk", now: closed,
			setup:   func(w *storeTwin) { w.telemetry(testCoworking, "desk-2", closed.Add(-time.Minute), "occupied", 0) },
			channel: ChannelCoworking, reason: ReasonOfficeClosed, expected: romeTime(t, "2026-03-16 08:00")},
		{name: "room in use", site: testCoworking, service: "meeting_room", now: open,
			setup:   func(w *storeTwin) { w.telemetry(testCoworking, "room-1", at, "occupied", 1, "occupancy_count", 4) },
			channel: ChannelCoworking, reason: ReasonNoFreeRoom},

		{name: "another instance holds the site: assets unknown", service: "cash_withdrawal", now: open,
			setup:   func(w *storeTwin) { w.setRemote(testOffice) },
			channel: ChannelATM, reason: ReasonElsewhere},
		{name: "another instance holds the site: the counter still answers", service: "civil_certificate", now: open,
			setup:   func(w *storeTwin) { w.setRemote(testOffice) },
			channel: ChannelCounter, available: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reg := testFleet(t, tc.lc)
			w := newStoreTwin(t, reg)
			if tc.setup != nil {
				tc.setup(w)
			}
			site := tc.site
			if site == "" {
				site = testOffice
			}
			got := availabilityOf(t, newTestFinder(t, reg, w), site, tc.service, tc.now)
			if got.Available != tc.available || got.Channel != tc.channel || got.Reason != tc.reason {
				t.Fatalf("got available %v via %s, reason %q (%s); want %v via %s, reason %q",
					got.Available, got.Channel, got.Reason, got.Message, tc.available, tc.channel, tc.reason)
			}
			if !got.ExpectedAt.Equal(tc.expected) {
				t.Fatalf("expected at %v; want %v", got.ExpectedAt, tc.expected)
			}
			if !strings.Contains(got.Message, tc.message) {
				t.Fatalf("message %q does not say %q", got.Message, tc.message)
			}
			if got.Available != (got.Message == "") {
				t.Fatalf("available %v with message %q", got.Available, got.Message)
			}
			svc, _ := DefaultCatalogue().Service(tc.service)
			if len(got.Channels) != len(svc.Channels) {
				t.Fatalf("%d channel answers for %d channels", len(got.Channels), len(svc.Channels))
			}
			for i, c := range got.Channels {
				if c.Channel != svc.Channels[i] || c.Available != (c.Reason == "") || c.Available != (c.Message == "") {
					t.Fatalf("channel answer %d: %+v", i, c)
				}
				if _, ok := reasonMessages[c.Reason]; !ok && c.Reason != "" {
					t.Fatalf("reason %q is not in Reasons", c.Reason)
				}
			}
		})
	}
}

// Office lists the services of the site's kind in catalogue order, and
// reads each asset once however many services need it.
func TestOffice(t *testing.T) {
	reg := testFleet(t, nil)
	w := newStoreTwin(t, reg)
	f := newTestFinder(t, reg, w)
	now := romeTime(t, "2026-03-10 10:00")
	var poIDs, cwIDs []string
	for _, s := range DefaultCatalogue().Services {
		if slices.Contains(s.Sites, registry.KindPostOffice) {
			poIDs = append(poIDs, s.ID)
		}
		if slices.Contains(s.Sites, registry.KindCoworking) {
			cwIDs = append(cwIDs, s.ID)
		}
	}
	for site, want := range map[string][]string{testOffice: poIDs, testCoworking: cwIDs} {
		w.reads.Store(0)
		all, ok := f.Office(site, now)
		if !ok {
			t.Fatalf("%s unknown", site)
		}
		var got []string
		for _, a := range all {
			got = append(got, a.Service)
			if a.Name == "" {
				t.Fatalf("%s: no name", a.Service)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s lists %v; want %v", site, got, want)
		}
		if n, _ := reg.Site(site); w.reads.Load() > int64(len(n.Assets)) {
			t.Fatalf("%s: %d asset reads for %d assets", site, w.reads.Load(), len(n.Assets))
		}
	}
	if _, ok := f.Office("PO-999999-1", now); ok {
		t.Fatal("an unknown site was found")
	}
}

// A site with no totem still offers its certificates at the counter; a
// site with no ATM does not list cash at all in the finder, but its
// office page says why.
func TestAvailability_MissingAssets(t *testing.T) {
	po := &registry.Site{ID: "PO-001003-1", Kind: registry.KindPostOffice, Comune: "001003", Name: "Ala di Stura", Region: "Piemonte",
		Lat: 45.31, Lon: 7.30, OpeningHours: registry.MustParseOpeningHours(registry.PostOfficeHours),
		Assets: []*registry.Asset{{ID: "env-1", Type: "env", Lifecycle: lifecycle.Operational}}}
	reg := registry.New()
	if err := reg.Add(po); err != nil {
		t.Fatal(err)
	}
	f := newTestFinder(t, reg, newStoreTwin(t, reg))
	closed := romeTime(t, "2026-03-15 10:00")
	if a := availabilityOf(t, f, po.ID, "civil_certificate", closed); a.Reason != ReasonNoTotem || a.ExpectedAt.IsZero() {
		t.Fatalf("civil_certificate: %+v", a)
	}
	if a := availabilityOf(t, f, po.ID, "cash_withdrawal", closed); a.Reason != ReasonNoATM {
		t.Fatalf("cash_withdrawal: %+v", a)
	}
	page, err := f.Find(Query{Service: "cash_withdrawal", Comune: "001003"}, closed)
	if err != nil || page.Total != 0 {
		t.Fatalf("cash at an office without an ATM: %+v, %v", page, err)
	}
	page, err = f.Find(Query{Service: "civil_certificate", Comune: "001003"}, closed)
	if err != nil || page.Total != 1 {
		t.Fatalf("certificates at an office without a totem: %+v, %v", page, err)
	}
}

// Every reason code is unique, has a message and a rank or is a
// coworking code.
func TestReasons(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range Reasons {
		if seen[r.Code] || r.Message == "" {
			t.Fatalf("reason %q twice or without message", r.Code)
		}
		seen[r.Code] = true
	}
	for code := range reasonRank {
		if code != "" && !seen[code] {
			t.Fatalf("ranked reason %q is not in Reasons", code)
		}
	}
}
