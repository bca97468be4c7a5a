package progress

import (
	"fmt"
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Fixture returns a small, complete snapshot for the tests of other
// packages (pages, open data), the same for the same now: 3 regions
// (Piemonte, Lazio, Sardegna), 7 provinces, 11 sites in real comuni (9 post
// offices, 2 coworking spaces) with a rollout history from November 2022,
// targets that disagree (6,933, 4,764 and 4,800 offices; 7,000 and 3,000
// ATMs; 10,000 and 5,000 workstations), intermediate targets, published
// figures, funding (400 and 320 M EUR for Poste's share), suppliers, a
// feed and trends. It is computed by the Builder's own code from a fixed
// registry, history and live status, so its figures agree with each other.
// now should be after 2025-12-01 (the last change of the history is in
// November 2025).
func Fixture(now time.Time) *Snapshot {
	pack, err := milestone.Load("fixture.yaml", []byte(fixturePack))
	if err != nil {
		panic("BUG: fixture pack: " + err.Error())
	}
	c, err := newComputer(pack, fixtureFacts, SupplementaryTargets, SupplementaryFunding, nil, date(2026, 12, 31))
	if err != nil {
		panic("BUG: fixture: " + err.Error())
	}
	sites, changes := fixtureFleet()
	hist := fold(NewHistory(changes), sites, c.set, now.Add(-30*time.Second), nil)
	final := map[assetKey]lifecycle.State{}
	for _, ch := range changes {
		final[assetKey{ch.Site, ch.Asset}] = ch.To // changes are in time order per asset
	}
	energy := map[string]SiteEnergy{}
	for i, s := range sites {
		var e SiteEnergy
		for _, a := range s.Assets {
			switch a.Type {
			case registry.TypePV:
				e.PVkWh += float64(180 + 37*i)
			case registry.TypeEVC:
				e.EVCkWh += float64(95 + 23*i)
			}
		}
		energy[s.ID] = e
	}
	return c.build(buildInput{
		now: now, sites: sites, hist: hist, energy: energy, energyAt: now.Add(-2 * time.Minute),
		state: func(site, asset string) (lifecycle.State, bool) {
			st, ok := final[assetKey{site, asset}]
			return st, ok
		},
		live: fixtureLive{},
	})
}

// fixtureLive: every asset online, but one ATM offline and one totem
// reporting a fault; coworking desks a third occupied.
type fixtureLive struct{}

func (fixtureLive) AssetStatus(site, asset string, _ time.Time) (state.Status, bool) {
	switch site + "/" + asset {
	case "PO-057027-1/atm-1":
		return state.StatusOffline, true
	case "PO-058015-1/totem-1":
		return state.StatusFault, true
	case "PO-111027-1/totem-1":
		return state.StatusUnknown, true
	}
	return state.StatusOnline, true
}

func (fixtureLive) SiteView(site string, _ time.Time) (state.SiteView, bool) {
	switch site {
	case "CW-TO-1":
		return state.SiteView{ID: site, Desks: 6, DesksOccupied: 2, Rooms: 1, RoomsOccupied: 1}, true
	case "CW-RM-1":
		return state.SiteView{ID: site, Desks: 4, DesksOccupied: 0, Rooms: 1}, true
	}
	return state.SiteView{}, false
}

// fixtureSite is one site of the fixture and how its rollout went: every
// asset installed 40 days before done, commissioned on done, operational
// the day after, unless final says otherwise.
type fixtureSite struct {
	id, comune, name, prov, provName, region string
	pop                                      int
	area                                     string
	lat, lon                                 float64
	extra                                    []string // optional assets (atm-1, pv-1, outdoor-1, evc-2)
	done                                     time.Time
	final                                    map[string]lifecycle.State // per asset; default operational
}

var fixtureSites = []fixtureSite{
	{"PO-001001-1", "001001", "Agliè", "TO", "Torino", "Piemonte", 2545, "C", 45.3659, 7.7760,
		[]string{"atm-1", "pv-1"}, date(2023, 1, 20), nil},
	{"PO-001002-1", "001002", "Airasca", "TO", "Torino", "Piemonte", 3633, "C", 44.9218, 7.4835,
		[]string{"atm-1", "outdoor-1"}, date(2023, 9, 14), map[string]lifecycle.State{"atm-1": lifecycle.Faulty}},
	{"PO-004013-1", "004013", "Barolo", "CN", "Cuneo", "Piemonte", 682, "C", 44.6107, 7.9426,
		[]string{"pv-1"}, date(2025, 10, 15), map[string]lifecycle.State{
			"totem-1": lifecycle.Installed, "showcase-1": lifecycle.Decommissioned, "locker-1": lifecycle.Installed,
			"env-1": lifecycle.Installed, "meter-1": lifecycle.Commissioned, "gw-1": lifecycle.Commissioned,
			"evc-1": lifecycle.Installed, "pv-1": lifecycle.Planned}},
	{"PO-057027-1", "057027", "Fara in Sabina", "RI", "Rieti", "Lazio", 13738, "D", 42.1863, 12.6973,
		[]string{"atm-1", "evc-2"}, date(2022, 11, 25), nil},
	{"PO-058015-1", "058015", "Campagnano di Roma", "RM", "Roma", "Lazio", 10990, "D", 42.1400, 12.3800,
		[]string{"outdoor-1"}, date(2022, 11, 28), nil},
	{"PO-059025-1", "059025", "San Felice Circeo", "LT", "Latina", "Lazio", 10129, "D", 41.2533, 13.0851,
		[]string{"atm-1", "pv-1"}, date(2023, 2, 10), nil},
	{"PO-111093-1", "111093", "Ussana", "SU", "Sud Sardegna", "Sardegna", 4017, "C", 39.3950, 9.0750,
		nil, date(2025, 9, 20), nil},
	{"PO-092099-1", "092099", "Villa San Pietro", "CA", "Cagliari", "Sardegna", 2148, "D", 39.0350, 8.9980,
		[]string{"pv-1"}, date(2023, 6, 22), map[string]lifecycle.State{"env-1": lifecycle.Faulty}},
	{"PO-111027-1", "111027", "Gesturi", "SU", "Sud Sardegna", "Sardegna", 1175, "D", 39.7330, 9.0200,
		nil, date(2025, 11, 20), map[string]lifecycle.State{
			"totem-1": lifecycle.Installed, "showcase-1": lifecycle.Planned, "locker-1": lifecycle.Planned,
			"env-1": lifecycle.Planned, "meter-1": lifecycle.Planned, "gw-1": lifecycle.Planned, "evc-1": lifecycle.Planned}},
	{"CW-TO-1", "001272", "Torino", "TO", "Torino", "Piemonte", 858205, "A", 45.0716, 7.6779,
		nil, date(2024, 5, 10), nil},
	{"CW-RM-1", "058091", "Roma", "RM", "Roma", "Lazio", 2770226, "A", 41.8836, 12.4623,
		nil, date(2024, 11, 29), map[string]lifecycle.State{
			"desk-1": lifecycle.Installed, "desk-2": lifecycle.Installed, "desk-3": lifecycle.Installed,
			"desk-4": lifecycle.Installed, "room-1": lifecycle.Installed, "env-1": lifecycle.Commissioned,
			"meter-1": lifecycle.Commissioned, "gw-1": lifecycle.Commissioned}},
}

// fixtureFleet makes the fixture's registry sites and lifecycle changes.
func fixtureFleet() ([]*registry.Site, []Change) {
	var sites []*registry.Site
	var changes []Change
	for n, f := range fixtureSites {
		s := &registry.Site{ID: f.id, Comune: f.comune, Name: f.name, Province: f.prov, ProvinceName: f.provName,
			Region: f.region, Population: f.pop, InnerArea: f.area, Lat: f.lat, Lon: f.lon,
			CUP: fmt.Sprintf("J%02dB22000%06d", n+11, 120+n), CIG: fmt.Sprintf("9A%02dF3C%03d", n+1, 410+n)}
		var ids []string
		if f.id[:2] == "CW" {
			s.Kind = registry.KindCoworking
			s.OpeningHours = registry.MustParseOpeningHours(registry.CoworkingHours)
			desks := 6
			if f.id == "CW-RM-1" {
				desks = 4
			}
			for i := 1; i <= desks; i++ {
				ids = append(ids, fmt.Sprintf("desk-%d", i))
			}
			ids = append(ids, "room-1", "env-1", "meter-1", "gw-1")
			s.Coworking = &registry.Coworking{Workstations: desks, MeetingRooms: 1, EventAreas: 1}
		} else {
			s.Kind = registry.KindPostOffice
			s.OpeningHours = registry.MustParseOpeningHours(registry.PostOfficeHours)
			ids = append([]string{"totem-1", "showcase-1", "locker-1", "env-1", "meter-1", "gw-1", "evc-1"}, f.extra...)
		}
		s.Address = fmt.Sprintf("Piazza del Municipio %d, %s", 1+n, f.name)
		for k, id := range ids {
			typ := registry.AssetTypeOf(id)
			a := &registry.Asset{ID: id, Type: typ, Supplier: fixtureSupplier(typ)}
			if typ == registry.TypeATM {
				a.CIG = "8F1ATM0" + fmt.Sprintf("%03d", 100+n)
			}
			s.Assets = append(s.Assets, a)
			final, ok := f.final[id]
			if !ok {
				final = lifecycle.Operational
			}
			if fixtureFaulty(f.id, id) {
				final = lifecycle.Faulty
			}
			// Assets come in one by one over the weeks before done.
			inst := f.done.AddDate(0, 0, -40+2*k).Add(9 * time.Hour)
			path := []struct {
				to lifecycle.State
				at time.Time
			}{
				{lifecycle.Installed, inst},
				{lifecycle.Commissioned, f.done.Add(time.Duration(10+k%6) * time.Hour)},
				{lifecycle.Operational, f.done.AddDate(0, 0, 1).Add(8 * time.Hour)},
				{lifecycle.Faulty, f.done.AddDate(0, 0, 200).Add(15 * time.Hour)},
			}
			from := lifecycle.Planned
			for _, p := range path {
				if final == lifecycle.Planned {
					break
				}
				if final == lifecycle.Decommissioned && p.to != lifecycle.Installed {
					changes = append(changes, Change{Site: f.id, Asset: id, From: from, To: lifecycle.Decommissioned,
						At: inst.AddDate(0, 0, 5)})
					break
				}
				changes = append(changes, Change{Site: f.id, Asset: id, From: from, To: p.to, At: p.at})
				from = p.to
				if p.to == final {
					break
				}
			}
		}
		sites = append(sites, s)
	}
	return sites, changes
}

func fixtureFaulty(site, asset string) bool {
	return site == "PO-001002-1" && asset == "atm-1" || site == "PO-092099-1" && asset == "env-1"
}

func fixtureSupplier(typ string) string {
	switch typ {
	case registry.TypeATM:
		return "Fornitore ATM Esempio S.p.A."
	case registry.TypeTotem, registry.TypeShowcase:
		return "Chioschi Digitali Esempio S.r.l."
	case registry.TypeEVC, registry.TypePV, registry.TypeMeter:
		return "Energia Esempio S.p.A."
	case registry.TypeDesk, registry.TypeRoom, registry.TypeOutdoor:
		return "Arredi Esempio S.r.l."
	}
	return "Impianti Esempio S.r.l."
}

// fixturePack is a few milestones of rules/milestones/polis.yaml, with
// their sources.
const fixturePack = `milestones:
  - id: offices_completed_6933
    title: "Post offices completed (official 2026 target)"
    title_it: "Uffici postali con intervento concluso (obiettivo ufficiale 2026)"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && all_assets_in("commissioned", "operational", "faulty")
    target: 6933
    deadline: 2026-12-31
    source: {fact: F28, url: "https://tgposte.poste.it/2024/12/10/uffici-postali-servizi-spazi-polis"}
  - id: offices_completed_4764
    title: "Post offices completed (Il Sole 24 Ore figure, 2022)"
    title_it: "Uffici postali con intervento concluso (cifra del Sole 24 Ore, 2022)"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && all_assets_in("commissioned", "operational", "faulty")
    target: 4764
    deadline: 2026-12-31
    source: {fact: F13, url: "https://ntplusentilocaliedilizia.ilsole24ore.com/art/AECucgWB"}
  - id: offices_completed_1500_2023
    title: "1,500 offices completed by the end of 2023"
    title_it: "1.500 uffici con intervento concluso entro fine 2023"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && all_assets_in("commissioned", "operational", "faulty")
    target: 1500
    deadline: 2023-12-31
    source: {fact: F15, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
  - id: offices_sardegna_2_2023
    title: "Two offices in Sardinia by the end of 2023 (fixture)"
    title_it: "Due uffici in Sardegna entro fine 2023 (esempio)"
    line: sportello_unico
    count: sites
    where: site.kind == "post_office" && site.region == "Sardegna" && all_assets_in("commissioned", "operational", "faulty")
    target: 2
    deadline: 2023-12-31
    source: {fact: F25, url: "https://www.rainews.it/tgr/sardegna/"}
  - id: atm_installed_7000
    title: "Advanced ATMs installed"
    title_it: "ATM evoluti installati"
    line: sportello_unico
    count: assets
    where: asset.type == "atm" && asset.lifecycle in ["installed", "commissioned", "operational", "faulty"]
    target: 7000
    deadline: 2026-12-31
    source: {fact: F16, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
  - id: coworking_completed_250
    title: "Coworking spaces completed"
    title_it: "Spazi di coworking completati"
    line: spazi_per_italia
    count: sites
    where: site.kind == "coworking" && all_assets_in("commissioned", "operational", "faulty")
    target: 250
    deadline: 2026-12-31
    source: {fact: F23, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
  - id: coworking_desks_10000
    title: "Coworking workstations in service"
    title_it: "Postazioni di coworking in servizio"
    line: spazi_per_italia
    count: assets
    where: asset.type == "desk" && site.kind == "coworking" && asset.lifecycle in ["operational", "faulty"]
    target: 10000
    deadline: 2026-12-31
    source: {fact: F23, url: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"}
`

// fixtureFacts are a few rows of the public facts table, as published.
var fixtureFacts = func() []milestone.Fact {
	tg23 := "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/"
	tg24 := "https://tgposte.poste.it/2024/12/10/uffici-postali-servizi-spazi-polis"
	sc := "https://www.statocitta.it/home/approfondimenti/tematiche-di-interesse/anpr-modalita-di-accesso-ai-servizi-digitali/le-case-dei-servizi-di-cittadinanza-digitale-progetto-polis"
	f := func(id string, d time.Time, line milestone.Line, typ, metric string, v float64, unit, url, kind, note string) milestone.Fact {
		return milestone.Fact{ID: id, Date: d, Line: line, Type: typ, Metric: metric, Value: v, HasValue: true,
			Text: fmt.Sprint(v), Unit: unit, SourceURL: url, SourceKind: kind, Note: note}
	}
	P, S, C := milestone.LineProgramma, milestone.LineSportelloUnico, milestone.LineSpaziPerItalia
	return []milestone.Fact{
		f("F01", date(2021, 5, 6), P, milestone.FactFunding, "stanziamento PNC per Polis (DL 59/2021 conv. L. 101/2021)", 800000000, "EUR",
			"https://areaclienti-mailexpress.it/articolo/2082/corte-dei-conti-bilancio-poste-2021---13-segue-il-progetto-polis",
			"relazione Corte dei conti (ripresa)", "titolare MISE poi MIMIT; soggetto attuatore Poste Italiane"),
		f("F02", date(2022, 12, 31), P, milestone.FactFunding, "quota annua PNC 2022", 125000000, "EUR", sc, "ministero Interno (statocitta)", ""),
		f("F03", date(2023, 12, 31), P, milestone.FactFunding, "quota annua PNC 2023", 145000000, "EUR", sc, "ministero Interno (statocitta)", ""),
		f("F07", date(2023, 2, 1), P, milestone.FactFunding, "quota a carico di Poste Italiane (circa)", 400000000, "EUR", tg23,
			"Poste Italiane (TG Poste)", "\"Poste investe 1 euro ogni 2 euro finanziati\""),
		f("F12", date(2022, 11, 30), S, milestone.FactProgress, "primi prototipi in completamento (Fara in Sabina; Campagnano di Roma; San Felice Circeo)", 3, "uffici",
			"https://www.dagospia.com/rubrica-4/business/controlla-posta-arrivato-pnrr-ndash-poste-italiane-331017.htm",
			"stampa (Il Sole 24 Ore ripreso)", "data approssimata al mese"),
		f("F13", date(2022, 11, 30), S, milestone.FactTarget, "comuni e uffici coinvolti (cifra citata in un articolo del Sole 24 Ore)", 4764, "comuni",
			"https://ntplusentilocaliedilizia.ilsole24ore.com/art/AECucgWB", "stampa", "stesso articolo: 4.800 uffici postali e 19 servizi"),
		f("F15", date(2023, 2, 1), S, milestone.FactProgress, "uffici con lavori completati", 40, "uffici", tg23, "Poste Italiane (TG Poste)",
			"230 cantieri avviati; obiettivo 1500 entro fine 2023"),
		f("F16", date(2023, 2, 1), S, milestone.FactTarget, "ATM Postamat da installare", 7000, "unita", tg23, "Poste Italiane (TG Poste)", ""),
		f("F23", date(2023, 2, 1), C, milestone.FactTarget, "spazi di coworking Spazi per l'Italia", 250, "spazi", tg23, "Poste Italiane (TG Poste)",
			"80 in comuni sotto 15000 abitanti; primi 37 entro fine 2023; oltre 10000 postazioni"),
		f("F24", date(2023, 4, 6), S, milestone.FactProgress, "primi uffici con servizi del Ministero della Giustizia", 5, "uffici",
			"https://www.ansa.it/sito/notizie/economia/2023/04/06/poste-da-oggi-primi-5-uffici-polis-per-i-piccoli-comuni_60fd3b31-d16c-4757-9572-c2ee231ce85d.html",
			"stampa (ANSA)", ""),
		f("F25", date(2023, 6, 30), S, milestone.FactProgress, "primi uffici in Sardegna (Ussana; Villa San Pietro; Gesturi)", 3, "uffici",
			"https://www.rainews.it/tgr/sardegna/", "stampa (RAI TGR)", "data approssimata al mese"),
		f("F28", date(2024, 11, 30), S, milestone.FactTarget, "target 2026 interventi conclusi Sportello Unico", 6933, "interventi", tg24,
			"Poste Italiane (TG Poste)", "6933 uffici in 6933 comuni sotto 15000 abitanti"),
		f("F30", date(2024, 11, 30), S, milestone.FactProgress, "interventi conclusi", 2548, "interventi", tg24, "Poste Italiane (TG Poste)",
			"avanzamento complessivo dichiarato 36.8%"),
		f("F32", date(2024, 11, 30), S, milestone.FactProgress, "ATM evoluti installati", 733, "unita", tg24, "Poste Italiane (TG Poste)", ""),
		f("F41", date(2024, 11, 30), C, milestone.FactProgress, "interventi conclusi", 48, "interventi", tg24, "Poste Italiane (TG Poste)",
			"avanzamento dichiarato 18.8%"),
	}
}()
