package italy

import (
	"testing"
	"time"
)

func TestEaster(t *testing.T) {
	// Published dates of Easter Sunday, including the extremes 22 March
	// (1818, 2285) and 25 April (1943, 2038).
	for _, tc := range []struct {
		year  int
		month time.Month
		day   int
	}{
		{1818, time.March, 22}, {1943, time.April, 25}, {2024, time.March, 31}, {2025, time.April, 20},
		{2026, time.April, 5}, {2027, time.March, 28}, {2038, time.April, 25}, {2285, time.March, 22},
	} {
		if m, d := Easter(tc.year); m != tc.month || d != tc.day {
			t.Errorf("Easter %d: got %s %d, want %s %d", tc.year, m, d, tc.month, tc.day)
		}
	}
	for y := 1900; y <= 2200; y++ {
		m, d := Easter(y)
		if day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC); day.Weekday() != time.Sunday {
			t.Fatalf("Easter %d on a %s", y, day.Weekday())
		}
	}
}

func TestHoliday(t *testing.T) {
	for _, tc := range []struct {
		date, want string
	}{
		{"2026-01-01", "Capodanno"},
		{"2026-01-06", "Epifania"},
		{"2026-04-05", "Pasqua"},
		{"2026-04-06", "Lunedì dell'Angelo"},
		{"2026-04-07", ""},
		{"2026-04-25", "Festa della Liberazione"},
		{"2026-06-02", "Festa della Repubblica"},
		{"2026-08-15", "Ferragosto"},
		{"2025-10-04", ""}, // before law 151/2025
		{"2026-10-04", "San Francesco d'Assisi"},
		{"2026-12-08", "Immacolata Concezione"},
		{"2026-12-24", ""},
		{"2026-12-26", "Santo Stefano"},
		{"2027-03-29", "Lunedì dell'Angelo"},
	} {
		d, err := time.Parse(time.DateOnly, tc.date)
		if err != nil {
			t.Fatal(err)
		}
		if got := Holiday(d.Year(), d.Month(), d.Day()); got != tc.want {
			t.Errorf("Holiday(%s) = %q, want %q", tc.date, got, tc.want)
		}
	}
	// The day is Rome's: 24 December 23:30 UTC is Christmas in Rome.
	if got := HolidayAt(time.Date(2026, 12, 24, 23, 30, 0, 0, time.UTC)); got != "Natale" {
		t.Fatalf("HolidayAt: got %q, want Natale", got)
	}
}
