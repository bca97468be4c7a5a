package registry

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/twin/lifecycle"
)

func TestParseOpeningHours_Success(t *testing.T) {
	f := func(in, canonical string) {
		t.Helper()
		h, err := ParseOpeningHours(in)
		if err != nil {
			t.Fatalf("unexpected error for %q: %v", in, err)
		}
		if got := h.String(); got != canonical {
			t.Fatalf("unexpected String() for %q; got %q; want %q", in, got, canonical)
		}
		h2, err := ParseOpeningHours(h.String())
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip of %q changed the hours: %v", in, err)
		}
	}
	f(PostOfficeHours, PostOfficeHours)
	f(CoworkingHours, CoworkingHours)
	f("mon-fri 08:20-13:45;sat 08:20-12:45;", PostOfficeHours)
	f("Mon,Tue,Wed,Thu,Fri 08:20-13:45\nSat 08:20-12:45", PostOfficeHours)
	f("Mon 14:30-17:00, 08:00-12:00; Wed 08:00-12:00,14:30-17:00", "Mon 08:00-12:00,14:30-17:00; Wed 08:00-12:00,14:30-17:00")
	f("Sat-Sun 00:00-24:00", "Sat-Sun 00:00-24:00")
	f("Mon-Sun 09:00-10:00; Wed 11:00-12:00", "Mon-Tue 09:00-10:00; Wed 09:00-10:00,11:00-12:00; Thu-Sun 09:00-10:00")
	f("  Fri\t08:00-09:00  ", "Fri 08:00-09:00")
}

func TestParseOpeningHours_Failure(t *testing.T) {
	f := func(in string, line, col int, want string) {
		t.Helper()
		_, err := ParseOpeningHours(in)
		var se *HoursSyntaxError
		if !errors.As(err, &se) {
			t.Fatalf("%q: want a HoursSyntaxError; got %v", in, err)
		}
		if se.Line != line || se.Col != col || !strings.Contains(se.Msg, want) {
			t.Fatalf("%q: unexpected error; got %d:%d %q; want %d:%d containing %q", in, se.Line, se.Col, se.Msg, line, col, want)
		}
		if !strings.HasPrefix(err.Error(), "cannot parse opening hours: ") {
			t.Fatalf("unexpected error form %q", err)
		}
	}
	f("", 1, 1, "no opening hours")
	f(" ; ;", 1, 1, "no opening hours")
	f("Mon-Fri", 1, 1, "want days then hours")
	f("Mox 08:00-09:00", 1, 1, `unknown day "Mox"`)
	f("Mon-Fro 08:00-09:00", 1, 5, `unknown day "Fro"`)
	f("Fri-Mon 08:00-09:00", 1, 1, "goes backwards")
	f("Mon,Mon 08:00-09:00", 1, 5, "named twice")
	f("Mon 8:00-09:00", 1, 5, "want HH:MM-HH:MM")
	f("Mon 08:00-09:60", 1, 11, `time "09:60"`)
	f("Mon 24:00-24:00", 1, 5, `time "24:00"`)
	f("Mon 09:00-08:00", 1, 5, "closes before it opens")
	f("Mon 08:00-09:00,", 1, 16, "interval expected")
	f("Mon 08:00-12:00; Sat 08:00-12:00\nMon 11:00-13:00", 2, 5, "overlaps 08:00-12:00 on Mon")
	f("Mon 08:00-12:00\nTue 08:00-12:00\n  Wèd 08:00-12:00", 3, 3, `unknown day "Wèd"`)
	f("Mon 08:00-09:00; Mòn 08:00-09:00", 1, 18, `unknown day "Mòn"`)
	f("Mon 08:00-09:00; Tue 08:00 09:00", 1, 22, "want HH:MM-HH:MM")
}

func TestOpeningHours_OpenAt(t *testing.T) {
	h := MustParseOpeningHours(PostOfficeHours)
	rome, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		t.Fatal(err)
	}
	f := func(at time.Time, want bool) {
		t.Helper()
		if got := h.OpenAt(at); got != want {
			t.Fatalf("OpenAt(%v) = %v; want %v", at, got, want)
		}
	}
	f(time.Date(2026, 3, 2, 8, 20, 0, 0, rome), true)   // Monday opening
	f(time.Date(2026, 3, 2, 8, 19, 59, 0, rome), false) // a second before
	f(time.Date(2026, 3, 2, 13, 45, 0, 0, rome), false) // closing is exclusive
	f(time.Date(2026, 3, 7, 12, 0, 0, 0, rome), true)   // Saturday
	f(time.Date(2026, 3, 7, 13, 0, 0, 0, rome), false)
	f(time.Date(2026, 3, 8, 10, 0, 0, 0, rome), false) // Sunday
	// UTC instants are read in Rome time: 07:30 UTC is 08:30 in winter (CET)
	// and 09:30 in summer (CEST); 07:00 UTC is 08:00 (closed) in winter only.
	f(time.Date(2026, 1, 12, 7, 0, 0, 0, time.UTC), false)
	f(time.Date(2026, 7, 13, 7, 0, 0, 0, time.UTC), true)
	f(time.Date(2026, 7, 13, 12, 0, 0, 0, time.UTC), false) // 14:00 CEST
}

func TestOpeningHours_JSON(t *testing.T) {
	s := &Site{ID: "PO-001001-1", Kind: KindPostOffice, Comune: "001001", OpeningHours: MustParseOpeningHours(PostOfficeHours)}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"opening_hours":"`+PostOfficeHours+`"`) {
		t.Fatalf("unexpected JSON %s", b)
	}
	var got Site
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got.OpeningHours, s.OpeningHours) {
		t.Fatalf("JSON round trip failed: %v", err)
	}
	if err := json.Unmarshal([]byte(`{"opening_hours":"Mon 9-10"}`), &got); err == nil {
		t.Fatalf("bad hours in JSON: want an error")
	}
	b, _ = json.Marshal(&Site{ID: "PO-001001-1", Assets: []*Asset{{ID: "atm-1"}}})
	for _, absent := range []string{"opening_hours", "installed_at", "lifecycle", "coworking", "cup"} {
		if strings.Contains(string(b), absent) {
			t.Fatalf("empty %s is written: %s", absent, b)
		}
	}
}

func TestPublicCodes(t *testing.T) {
	for _, c := range []struct {
		s        string
		cup, cig bool
	}{
		{"J51B21005310006", true, false},
		{"ZA12B3C4D5", false, true},
		{"j51b21005310006", false, false},
		{"J51B2100531000", false, false},
		{"J51B21005310006X", false, false},
		{"ZA12B3C4D-", false, false},
		{"", false, false},
	} {
		if ValidCUP(c.s) != c.cup || ValidCIG(c.s) != c.cig {
			t.Errorf("%q: unexpected ValidCUP %v ValidCIG %v", c.s, ValidCUP(c.s), ValidCIG(c.s))
		}
	}
}

func goodSite() *Site {
	return &Site{
		ID: "PO-001002-1", Kind: KindPostOffice, Comune: "001002", Name: "Airasca", Province: "TO",
		Region: "Piemonte", Population: 3700, InnerArea: "C", Lat: 44.92, Lon: 7.48,
		Address: "Via Roma 1, Airasca", OpeningHours: MustParseOpeningHours(PostOfficeHours),
		CUP: "J51B21005310006", CIG: "ZA12B3C4D5",
		Assets: []*Asset{
			{ID: "atm-1", Type: TypeATM, SecretHash: credential.Hash("x"), Supplier: "ACME", Lifecycle: lifecycle.Operational,
				InstalledAt: time.Date(2023, 5, 1, 0, 0, 0, 0, time.UTC)},
			{ID: "gw-1", Type: GatewayType, Lifecycle: lifecycle.Planned},
		},
	}
}

func TestSiteValidate_Success(t *testing.T) {
	if err := goodSite().Validate(); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	cw := &Site{ID: "CW-TO-1", Kind: KindCoworking, Province: "TO", Coworking: &Coworking{Workstations: 20, MeetingRooms: 2}}
	if err := cw.Validate(); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
}

func TestSiteValidate_Failure(t *testing.T) {
	s := goodSite()
	s.Comune = "001003"
	s.Province = "To"
	s.Name = "Air\x01asca"
	s.Population = -1
	s.InnerArea = "G"
	s.Lat = 60
	s.CUP = "J51B2100531000"
	s.CIG = "za12b3c4d5"
	s.Coworking = &Coworking{}
	s.OpeningHours = &OpeningHours{}
	s.OpeningHours.Days[1] = []Interval{{600, 500}}
	s.Assets[0].Type = "totem"
	s.Assets[0].Lifecycle = "broken"
	s.Assets[0].SecretHash = "plain"
	s.Assets[1].InstalledAt = time.Now()
	s.Assets = append(s.Assets, &Asset{ID: "atm-1", Type: TypeATM}, &Asset{ID: "ATM", Type: TypeATM})
	err := s.Validate()
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("want a ValidationError; got %v", err)
	}
	var fields []string
	for _, p := range ve.Problems {
		fields = append(fields, p.Field)
	}
	want := []string{"comune", "coworking", "province", "name", "population", "inner_area", "lat", "cup", "cig",
		"opening_hours", "assets[atm-1].type", "assets[atm-1].secret_hash", "assets[atm-1].lifecycle",
		"assets[gw-1].installed_at", "assets[atm-1].id", "assets[ATM].id"}
	if !reflect.DeepEqual(fields, want) {
		t.Fatalf("unexpected problems; got %q; want %q\n%v", fields, want, err)
	}
	for _, bad := range []*Site{
		{ID: "PO-1-1", Kind: KindPostOffice},
		{ID: "CW-TO-1", Kind: KindPostOffice, Comune: "001001"},
		{ID: "PO-001001-1", Kind: KindCoworking},
		{ID: "CW-TO-1", Kind: KindCoworking, Province: "MI"},
		{ID: "CW-TO-1", Kind: "shop"},
	} {
		if bad.Validate() == nil {
			t.Errorf("site %+v: want a validation error", bad)
		}
	}
}

func TestGenerate_Details(t *testing.T) {
	r, _, err := Generate(GenerateOptions{Sites: 2000, Coworking: 50, Seed: 3, Comuni: loadRealComuni(t)})
	if err != nil {
		t.Fatal(err)
	}
	states := map[lifecycle.State]int{}
	total := 0
	for _, s := range r.Sites() {
		if err := s.Validate(); err != nil {
			t.Fatalf("generated site is invalid: %v", err)
		}
		if s.Address == "" || s.OpeningHours == nil || !strings.Contains(s.Address, s.Name) {
			t.Fatalf("site %s lacks address or hours: %q", s.ID, s.Address)
		}
		want := []string{hoursMorning, hoursShortMorning, hoursFullDay, hoursAlternate[0], hoursAlternate[1]}
		if s.Kind == KindCoworking {
			want = []string{CoworkingHours}
			if s.Coworking == nil || s.Coworking.Workstations < minDesks || s.Coworking.MeetingRooms < 1 {
				t.Fatalf("coworking %s: unexpected details %+v", s.ID, s.Coworking)
			}
		}
		if !slices.ContainsFunc(want, func(h string) bool { return MustParseOpeningHours(h).String() == s.OpeningHours.String() }) {
			t.Fatalf("site %s: unexpected hours %q", s.ID, s.OpeningHours)
		}
		for _, a := range s.Assets {
			states[a.Lifecycle]++
			total++
			if a.Supplier == "" || (a.Lifecycle == lifecycle.Planned) != a.InstalledAt.IsZero() {
				t.Fatalf("asset %s/%s: supplier %q, state %s, installed %v", s.ID, a.ID, a.Supplier, a.Lifecycle, a.InstalledAt)
			}
		}
	}
	share := func(s lifecycle.State) float64 { return float64(states[s]) / float64(total) }
	if share(lifecycle.Operational) < 0.7 || share(lifecycle.Faulty) > 0.06 || share(lifecycle.Faulty) == 0 ||
		share(lifecycle.Planned) == 0 || share(lifecycle.Installed) == 0 || share(lifecycle.Commissioned) == 0 {
		t.Fatalf("implausible lifecycle spread %v over %d assets", states, total)
	}
}

func FuzzParseOpeningHours(f *testing.F) {
	for _, s := range []string{PostOfficeHours, CoworkingHours, "Mon 08:00-12:00,14:00-17:00\nSat-Sun 00:00-24:00", "Mon-", "Mon 08:00-09:00,", "Sàt 8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseOpeningHours(s)
		if err != nil {
			var se *HoursSyntaxError
			if !errors.As(err, &se) || se.Line < 1 || se.Col < 1 {
				t.Fatalf("error without a position: %v", err)
			}
			return
		}
		if msg := h.check(); msg != "" {
			t.Fatalf("parsed hours fail check: %s", msg)
		}
		h2, err := ParseOpeningHours(h.String())
		if err != nil || !reflect.DeepEqual(h, h2) {
			t.Fatalf("round trip of %q via %q failed: %v", s, h.String(), err)
		}
	})
}

func TestSeedTracker(t *testing.T) {
	reg, _, err := Generate(GenerateOptions{Sites: 50, Coworking: 2, Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	_ = reg.Add(&Site{ID: "PO-001003-1", Kind: KindPostOffice, Assets: []*Asset{{ID: "atm-1", Type: TypeATM}}})
	want := map[lifecycle.State]int{}
	for _, s := range reg.Sites() {
		for _, a := range s.Assets {
			st := a.Lifecycle
			if st == "" {
				st = lifecycle.Planned
			}
			want[st]++
		}
	}
	tr := lifecycle.NewTracker(lifecycle.Options{})
	if err := reg.SeedTracker(tr); err != nil {
		t.Fatal(err)
	}
	if got := tr.Counts(); !reflect.DeepEqual(got, want) {
		t.Fatalf("unexpected counts; got %v; want %v", got, want)
	}
	if st, _ := tr.State("PO-001003-1", "atm-1"); st != lifecycle.Planned {
		t.Fatalf("asset without a state seeded as %s; want planned", st)
	}
	if err := reg.SeedTracker(tr); err == nil {
		t.Fatalf("seeding twice: want an error")
	}
}
