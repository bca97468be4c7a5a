package opendata

import (
	"fmt"
	"time"

	"github.com/polis-platform/polis/portal/progress"
	"github.com/polis-platform/polis/twin/lifecycle"
)

func progressState(s string) lifecycle.State { return lifecycle.State(s) }

// The package's own small snapshot: every table has rows, and the rows
// hold the cases the encoders must get right (a ';' and quotes in names,
// unknown values, a faulty and a decommissioned asset, disagreeing
// targets, a published figure without a twin measure).

// day is the end of a day in Italy, as progress dates its points.
func day(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 23, 59, 59, 0, rome) }

// on is an instant during a day in Italy.
func on(y int, m time.Month, d, h int) time.Time { return time.Date(y, m, d, h, 0, 0, 0, rome) }

var testAt = time.Date(2026, 3, 15, 9, 30, 0, 0, time.UTC)

func counts(p, i, c, o, f, w int) progress.Counts {
	return progress.Counts{Planned: p, Installed: i, Commissioned: c, Operational: o, Faulty: f, WorkingNow: w}
}

func trend(vals ...float64) progress.Series {
	s := progress.Series{Name: "uffici conclusi"}
	months := []time.Time{day(2025, 12, 31), day(2026, 1, 31), day(2026, 2, 28), day(2026, 3, 15)}
	for i, v := range vals {
		s.Points = append(s.Points, progress.Point{Date: months[i], Value: v})
	}
	return s
}

func area(kind progress.AreaKind, code, name, slug, parent string, offices, done, cw int, byType map[string]progress.Counts, tr progress.Series) *progress.Area {
	return &progress.Area{Kind: kind, Code: code, Name: name, Slug: slug, Parent: parent,
		Offices: offices, OfficesCompleted: done, Coworking: cw, ByType: byType, Trend: tr}
}

func testSnapshot() *progress.Snapshot {
	src16 := progress.SourceRef{Fact: "F16", URL: "https://tgposte.poste.it/2023/02/01/tutti-i-numeri-del-progetto-polis/", Publisher: "Poste Italiane (TG Poste)", Date: day(2023, 2, 1)}
	srcA := progress.SourceRef{Fact: "FA", URL: "https://example.org/articolo-a", Publisher: "articolo A", Date: day(2022, 11, 30)}
	src30 := progress.SourceRef{Fact: "F30", URL: "https://tgposte.poste.it/2024/12/10/uffici-postali-servizi-spazi-polis", Publisher: "Poste Italiane (TG Poste)", Date: day(2024, 11, 30)}
	src01 := progress.SourceRef{Fact: "F01", URL: "https://areaclienti-mailexpress.it/articolo/2082", Publisher: "relazione Corte dei conti (ripresa)", Date: day(2021, 5, 6)}

	italyTypes := map[string]progress.Counts{
		"atm": counts(3, 2, 1, 1, 1, 1), "totem": counts(3, 3, 2, 2, 0, 1), "pv": counts(1, 1, 1, 1, 0, 1),
		"desk": counts(12, 12, 12, 12, 0, 11), "room": counts(2, 2, 2, 2, 0, 2),
	}
	s := &progress.Snapshot{
		At:        testAt,
		HistoryAt: testAt.Add(-time.Minute),
		EnergyAt:  testAt.Add(-2 * time.Minute),
		Deadline:  day(2026, 12, 31),
		Italy:     area(progress.AreaItaly, "IT", "Italia", "italia", "", 3, 1, 1, italyTypes, trend(0, 0, 1, 1)),
		Regions: []*progress.Area{
			area(progress.AreaRegion, "15", "Campania", "campania", "", 1, 0, 0, map[string]progress.Counts{"atm": counts(1, 1, 0, 0, 0, 0)}, trend(0, 0, 0, 0)),
			area(progress.AreaRegion, "03", "Lombardia", "lombardia", "", 2, 1, 1, map[string]progress.Counts{"atm": counts(2, 1, 1, 1, 1, 1)}, trend(0, 0, 1, 1)),
		},
		Provinces: []*progress.Area{
			area(progress.AreaProvince, "064", "Avellino", "av", "campania", 1, 0, 0, nil, trend(0, 0, 0)),
			area(progress.AreaProvince, "016", "Bergamo", "bg", "lombardia", 1, 1, 1, nil, trend(0, 1)),
			area(progress.AreaProvince, "014", "Sondrio", "so", "lombardia", 1, 0, 0, nil, progress.Series{}),
		},
		Comuni: []*progress.Area{
			area(progress.AreaComune, "016001", "Adrara San Martino", "adrara-san-martino", "bg", 1, 1, 1, nil, trend(0, 1)),
			area(progress.AreaComune, "014001", "Albaredo per San Marco", "albaredo-per-san-marco", "so", 1, 0, 0, nil, progress.Series{}),
			area(progress.AreaComune, "064001", "Sant'Angelo; test", "sant-angelo-test", "av", 1, 0, 0, nil, trend(0)),
		},
		Targets: []progress.Target{
			{ID: "atm-3000", Title: "ATM evoluti installati (articolo A)", Line: "sportello_unico", Measure: "atm_installed", Target: 3000,
				Deadline: day(2026, 7, 31), Source: srcA, Current: 2, Percent: 0.1, Status: "at_risk", ReachedOn: day(2026, 2, 10),
				Pace: 0.011, Projected: day(2780, 1, 1), Trend: trend(0, 1, 2), Disagrees: []string{"atm-7000"}, Method: "atm-installati"},
			{ID: "atm-7000", Title: "ATM Postamat da installare", Line: "sportello_unico", Measure: "atm_installed", Target: 7000,
				Deadline: day(2026, 12, 31), Source: src16, Current: 2, Percent: 0, Status: "late", ReachedOn: day(2026, 2, 10),
				Trend: trend(0, 1, 2), Disagrees: []string{"atm-3000"}, Method: "atm-installati"},
			{ID: "coworking-250", Title: "Spazi di coworking", Line: "spazi_per_italia", Measure: "coworking_completed", Target: 1,
				Deadline: day(2026, 12, 31), Source: src16, Current: 1, Percent: 100, Status: "achieved", ReachedOn: day(2026, 1, 20),
				AchievedOn: day(2026, 1, 20), Trend: trend(0, 1), Method: "coworking"},
		},
		Published: []progress.Published{
			{Fact: "F30", Date: day(2024, 11, 30), Metric: "interventi conclusi", Measure: "offices_completed", Value: 2548, Unit: "interventi", Source: src30, Twin: 1},
			{Fact: "F38", Date: day(2024, 11, 30), Metric: "servizi PA erogati", Value: 28809, Unit: "servizi", Source: src30, Twin: -1, Note: "nessuna misura nel gemello"},
		},
		Funding: []progress.Funding{
			{Fact: "F01", Date: day(2021, 5, 6), Line: "programma", What: "stanziamento PNC per Polis (DL 59/2021)", Amount: 800000000, Source: src01, Note: "titolare MISE poi MIMIT"},
			{Fact: "F07", Date: day(2023, 2, 1), Line: "programma", What: "quota a carico di Poste Italiane (circa)", Amount: 400000000.5, Source: src16},
		},
		Suppliers: []progress.Supplier{
			{Name: "Fornitore \"Alfa\" S.p.A.", Types: []string{"atm", "totem"}, Assets: 5, Sites: 3, CIGs: []string{"A0B1C2D3E4", "Z9Y8X7W6V5"}, ByType: map[string]int{"atm": 3, "totem": 2}},
			{Name: "Beta Energia, S.r.l.", Types: []string{"pv"}, Assets: 1, Sites: 1, ByType: map[string]int{"pv": 1}},
		},
		Feed: []progress.FeedEntry{
			{ID: "office/PO-016001-1", Title: "Adrara San Martino: ufficio operativo", Summary: "Tutti gli apparati dell'ufficio sono operativi.", Link: "/uffici/PO-016001-1", At: on(2026, 2, 20, 11)},
			{ID: "target/coworking-250", Title: "Obiettivo raggiunto: spazi di coworking", Summary: "1 di 1 <secondo la fonte F16> & altro", Link: "/obiettivi#coworking-250", At: on(2026, 1, 20, 9)},
			{ID: "office/PO-014001-1", Title: "Albaredo per San Marco: ufficio operativo", Summary: "Ufficio operativo.", Link: "/uffici/PO-014001-1", At: on(2025, 12, 1, 15)},
		},
		Offices: []*progress.Office{
			{Site: "PO-014001-1", Kind: "post_office", Comune: "014001", ComuneName: "Albaredo per San Marco", Province: "SO", ProvinceName: "Sondrio",
				Region: "Lombardia", RegionSlug: "lombardia", Population: 310, InnerArea: "E", Lat: 46.1, Lon: 9.58,
				Address: "Via Roma, 1", OpeningHours: "lun-ven 8:20-13:45", CUP: "J11B21005550001", CIG: "A0B1C2D3E4",
				PVkWhMonth: -1, EVCkWhMonth: -1,
				Assets: []progress.Asset{
					{ID: "atm-1", Type: "atm", TypeName: "ATM evoluto", Lifecycle: "faulty", InstalledOn: on(2025, 10, 3, 10), Online: true, WorkingNow: false, Supplier: "Fornitore \"Alfa\" S.p.A.", CIG: "A0B1C2D3E4"},
					{ID: "totem-1", Type: "totem", TypeName: "totem", Lifecycle: "installed", InstalledOn: on(2025, 10, 4, 10), Online: true, Supplier: "Fornitore \"Alfa\" S.p.A.", CIG: "Z9Y8X7W6V5"},
					{ID: "locker-1", Type: "locker", TypeName: "locker", Lifecycle: "decommissioned"},
				}},
			{Site: "PO-016001-1", Kind: "post_office", Comune: "016001", ComuneName: "Adrara San Martino", Province: "BG", ProvinceName: "Bergamo",
				Region: "Lombardia", RegionSlug: "lombardia", Population: 2190, InnerArea: "D", Lat: 45.7015, Lon: 9.9953,
				Address: "Piazza \"Alpini\" 3", CUP: "J11B21005550002", Completed: true, CompletedOn: on(2026, 2, 20, 11), Operational: true,
				PVkWhMonth: 412.25, EVCkWhMonth: 0,
				Assets: []progress.Asset{
					{ID: "atm-1", Type: "atm", TypeName: "ATM evoluto", Lifecycle: "operational", InstalledOn: on(2026, 1, 31, 23), Online: true, WorkingNow: true, Supplier: "Fornitore \"Alfa\" S.p.A.", CIG: "A0B1C2D3E4"},
					{ID: "pv-1", Type: "pv", TypeName: "impianto fotovoltaico", Lifecycle: "operational", InstalledOn: on(2026, 2, 1, 0), Online: true, WorkingNow: true, Supplier: "Beta Energia, S.r.l."},
				}},
			{Site: "PO-064001-1", Kind: "post_office", Comune: "064001", ComuneName: "Sant'Angelo; test", Province: "AV", ProvinceName: "Avellino",
				Region: "Campania", RegionSlug: "campania", Lat: 40.9, Lon: 15.1,
				Address: "Corso \"Umberto\"; I\nscala B", PVkWhMonth: -1, EVCkWhMonth: -1,
				Assets: []progress.Asset{
					{ID: "atm-1", Type: "atm", TypeName: "ATM evoluto", Lifecycle: "planned"},
				}},
		},
		Coworking: []*progress.Office{
			{Site: "CW-016001-1", Kind: "coworking", Comune: "016001", ComuneName: "Adrara San Martino", Province: "BG", ProvinceName: "Bergamo",
				Region: "Lombardia", RegionSlug: "lombardia", Lat: 45.7, Lon: 9.99, CUP: "J11B21005550003", Completed: true,
				CompletedOn: on(2026, 1, 20, 9), Operational: true, Workstations: 12, MeetingRooms: 2, FreeWorkstations: 5, FreeRooms: 1,
				PVkWhMonth: -1, EVCkWhMonth: -1,
				Assets: deskAssets(12, 2)},
		},
	}
	return s
}

func deskAssets(desks, rooms int) []progress.Asset {
	var out []progress.Asset
	for i := 1; i <= desks; i++ {
		out = append(out, progress.Asset{ID: fmt.Sprintf("desk-%d", i), Type: "desk", TypeName: "postazione", Lifecycle: "operational",
			InstalledOn: on(2026, 1, 10, 9), Online: true, WorkingNow: i != 3})
	}
	for i := 1; i <= rooms; i++ {
		out = append(out, progress.Asset{ID: fmt.Sprintf("room-%d", i), Type: "room", TypeName: "sala riunioni", Lifecycle: "operational",
			InstalledOn: on(2026, 1, 10, 9), Online: true, WorkingNow: true})
	}
	return out
}

// bigSnapshot is a fleet the size of the programme: offices post offices
// with assetsPer assets each (4,800 x 9.6 = 46,080).
func bigSnapshot(offices int) *progress.Snapshot {
	s := testSnapshot()
	s.Offices = nil
	types := []string{"atm", "totem", "locker", "showcase", "evc", "pv", "env", "meter", "outdoor", "evc"}
	states := []string{"planned", "installed", "commissioned", "operational", "operational", "operational", "faulty"}
	for i := range offices {
		o := &progress.Office{Site: fmt.Sprintf("PO-%06d-1", i), Kind: "post_office", Comune: fmt.Sprintf("%06d", 1000+i),
			ComuneName: fmt.Sprintf("Comune %d", i), Province: "BG", ProvinceName: "Bergamo", Region: "Lombardia", RegionSlug: "lombardia",
			Lat: 45 + float64(i)/10000, Lon: 9 + float64(i)/10000, CUP: fmt.Sprintf("J11B2100%07d", i), PVkWhMonth: -1, EVCkWhMonth: -1}
		n := 9
		if i%5 < 3 {
			n = 10 // 9.6 assets per office on average
		}
		for j := range n {
			st := states[(i+j)%len(states)]
			a := progress.Asset{ID: fmt.Sprintf("%s-%d", types[j], j), Type: types[j], TypeName: types[j], Lifecycle: progressState(st),
				Supplier: "Fornitore \"Alfa\" S.p.A.", CIG: "A0B1C2D3E4"}
			if st != "planned" {
				a.InstalledOn = on(2023+(i%3), time.Month(1+j), 1+(i%28), 10)
				a.Online = true
				a.WorkingNow = st == "operational"
			}
			o.Assets = append(o.Assets, a)
		}
		s.Offices = append(s.Offices, o)
	}
	return s
}

// fixture is progress's own fixture at the test time: a snapshot made by
// the Builder's code from a registry, a history and live status.
func fixture() *progress.Snapshot { return progress.Fixture(testAt) }
