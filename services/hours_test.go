package services

import (
	"testing"
	"time"

	"github.com/polis-platform/polis/twin/registry"
)

func romeTime(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.ParseInLocation("2006-01-02 15:04", s, rome())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestHoliday(t *testing.T) {
	for _, tc := range []struct {
		date, want string
	}{
		{"2026-01-01", "Capodanno"}, {"2026-01-06", "Epifania"}, {"2026-04-05", "Pasqua"},
		{"2026-04-06", "Lunedì dell'Angelo"}, {"2025-04-21", "Lunedì dell'Angelo"}, {"2026-04-25", "Festa della Liberazione"},
		{"2026-05-01", "Festa del Lavoro"}, {"2026-06-02", "Festa della Repubblica"}, {"2026-08-15", "Ferragosto"},
		{"2026-11-01", "Ognissanti"}, {"2026-12-08", "Immacolata Concezione"}, {"2026-12-25", "Natale"},
		{"2026-12-26", "Santo Stefano"}, {"2026-10-04", "San Francesco d'Assisi"}, // law 151/2025, as the rules' holiday()
		{"2026-04-07", ""}, {"2026-03-10", ""}, {"2026-12-24", ""}, {"2026-12-31", ""}, {"2026-06-29", ""},
	} {
		d, err := time.Parse("2006-01-02", tc.date)
		if err != nil {
			t.Fatal(err)
		}
		if got := Holiday(d.Year(), d.Month(), d.Day()); got != tc.want {
			t.Errorf("%s: got %q; want %q", tc.date, got, tc.want)
		}
	}
	// The day is Rome's: 23:30 UTC on 24 December is Christmas in Rome.
	if got := HolidayAt(time.Date(2026, 12, 24, 23, 30, 0, 0, time.UTC)); got != "Natale" {
		t.Fatalf("HolidayAt: got %q", got)
	}
}

func TestNextOpeningAndHours(t *testing.T) {
	po := registry.MustParseOpeningHours(registry.PostOfficeHours) // Mon-Fri 08:20-13:45; Sat 08:20-12:45
	split := registry.MustParseOpeningHours("Mon-Fri 08:30-12:30,15:00-18:00")
	tests := []struct {
		name    string
		hours   *registry.OpeningHours
		now     string // Rome time
		open    bool
		reason  string
		holiday string
		next    string // Rome time, "" for none
	}{
		{"open on a Tuesday", po, "2026-03-10 10:00", true, "", "", ""},
		{"opens at 08:20 sharp", po, "2026-03-10 08:20", true, "", "", ""},
		{"closes at 13:45 sharp", po, "2026-03-10 13:45", false, ReasonOfficeClosed, "", "2026-03-11 08:20"},
		{"before opening", po, "2026-03-10 07:00", false, ReasonOfficeClosed, "", "2026-03-10 08:20"},
		{"Friday afternoon", po, "2026-03-13 15:00", false, ReasonOfficeClosed, "", "2026-03-14 08:20"},
		{"Saturday afternoon", po, "2026-03-14 13:00", false, ReasonOfficeClosed, "", "2026-03-16 08:20"},
		{"Sunday", po, "2026-03-15 10:00", false, ReasonOfficeClosed, "", "2026-03-16 08:20"},
		{"lunch break", split, "2026-03-10 13:00", false, ReasonOfficeClosed, "", "2026-03-10 15:00"},
		{"Easter Monday", po, "2026-04-06 10:00", false, ReasonHoliday, "Lunedì dell'Angelo", "2026-04-07 08:20"},
		{"Saturday before Easter", po, "2026-04-04 13:00", false, ReasonOfficeClosed, "", "2026-04-07 08:20"},
		{"Christmas Eve evening", po, "2026-12-24 18:00", false, ReasonOfficeClosed, "", "2026-12-28 08:20"},
		{"Christmas", po, "2026-12-25 10:00", false, ReasonHoliday, "Natale", "2026-12-28 08:20"},
		{"Republic Day on a Tuesday", po, "2026-06-02 09:00", false, ReasonHoliday, "Festa della Repubblica", "2026-06-03 08:20"},
		{"across the spring DST change", po, "2026-03-28 13:00", false, ReasonOfficeClosed, "", "2026-03-30 08:20"},
		{"across the autumn DST change", po, "2026-10-24 13:00", false, ReasonOfficeClosed, "", "2026-10-26 08:20"},
		{"no hours", nil, "2026-03-10 10:00", false, ReasonHoursUnknown, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			now := romeTime(t, tc.now)
			h := Hours(&registry.Site{OpeningHours: tc.hours}, now)
			if h.Open != tc.open || h.Reason != tc.reason || h.Holiday != tc.holiday {
				t.Fatalf("got %+v; want open %v, reason %q, holiday %q", h, tc.open, tc.reason, tc.holiday)
			}
			var want time.Time
			if tc.next != "" {
				want = romeTime(t, tc.next)
			}
			if !h.NextOpening.Equal(want) {
				t.Fatalf("next opening %v; want %v", h.NextOpening.In(rome()), want)
			}
		})
	}
	// A timetable that never opens within the horizon has no next opening.
	sunday := registry.MustParseOpeningHours("Sun 10:00-11:00")
	if got := NextOpening(sunday, romeTime(t, "2026-03-15 12:00")); !got.Equal(romeTime(t, "2026-03-22 10:00")) {
		t.Fatalf("weekly: %v", got)
	}
	if got := NextOpening(nil, romeTime(t, "2026-03-15 12:00")); !got.IsZero() {
		t.Fatalf("nil hours: %v", got)
	}
}

func TestQuando(t *testing.T) {
	if got := quando(romeTime(t, "2026-03-16 08:20")); got != "lunedì 16 marzo alle 08:20" {
		t.Fatalf("got %q", got)
	}
	if got := reasonMessage(ReasonHoliday, "Natale", romeTime(t, "2026-12-28 08:20")); got != "La sede è chiusa per festività (Natale); riapre lunedì 28 dicembre alle 08:20" {
		t.Fatalf("got %q", got)
	}
}
