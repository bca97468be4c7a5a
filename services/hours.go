package services

import (
	"sync"
	"time"
	_ "time/tzdata" // Europe/Rome must resolve on hosts without a zoneinfo database

	"github.com/polis-platform/polis/twin/registry"
)

var rome = sync.OnceValue(func() *time.Location {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic("BUG: time/tzdata is linked but Europe/Rome is missing: " + err.Error())
	}
	return loc
})

// Easter returns the date of Easter Sunday of year y in the Gregorian
// calendar (the anonymous algorithm of Meeus, Jones and Butcher), as a
// month and day.
func Easter(y int) (time.Month, int) {
	a := y % 19
	b, c := y/100, y%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Month(month), day
}

// Holiday returns the name of the national public holiday on the given
// date (law 260/1949 and its amendments), or "". Patron saints' days,
// which differ by comune, are not in it.
func Holiday(y int, m time.Month, d int) string {
	switch {
	case m == time.January && d == 1:
		return "Capodanno"
	case m == time.January && d == 6:
		return "Epifania"
	case m == time.April && d == 25:
		return "Festa della Liberazione"
	case m == time.May && d == 1:
		return "Festa del Lavoro"
	case m == time.June && d == 2:
		return "Festa della Repubblica"
	case m == time.August && d == 15:
		return "Ferragosto"
	case m == time.November && d == 1:
		return "Ognissanti"
	case m == time.December && d == 8:
		return "Immacolata Concezione"
	case m == time.December && d == 25:
		return "Natale"
	case m == time.December && d == 26:
		return "Santo Stefano"
	}
	em, ed := Easter(y)
	easter := time.Date(y, em, ed, 12, 0, 0, 0, time.UTC)
	switch day := time.Date(y, m, d, 12, 0, 0, 0, time.UTC); {
	case day.Equal(easter):
		return "Pasqua"
	case day.Equal(easter.AddDate(0, 0, 1)):
		return "Lunedì dell'Angelo"
	}
	return ""
}

// HolidayAt is the holiday of t's day in Rome, or "".
func HolidayAt(t time.Time) string {
	y, m, d := t.In(rome()).Date()
	return Holiday(y, m, d)
}

// nextOpeningHorizon bounds the search for the next opening: two weeks
// covers every weekly timetable and the longest run of holidays (24-26
// December with a weekend).
const nextOpeningHorizon = 14

// NextOpening is the first time after now at which a site with hours h
// opens, skipping public holidays; zero if it does not open within two
// weeks.
func NextOpening(h *registry.OpeningHours, now time.Time) time.Time {
	if h == nil {
		return time.Time{}
	}
	loc := rome()
	lt := now.In(loc)
	y, m, d := lt.Date()
	for i := 0; i <= nextOpeningHorizon; i++ {
		day := time.Date(y, m, d+i, 12, 0, 0, 0, loc)
		dy, dm, dd := day.Date()
		if Holiday(dy, dm, dd) != "" {
			continue
		}
		for _, iv := range h.Days[day.Weekday()] {
			// time.Date normalises a wall time that a DST change skips.
			open := time.Date(dy, dm, dd, iv.Open/60, iv.Open%60, 0, 0, loc)
			if open.After(now) {
				return open
			}
		}
	}
	return time.Time{}
}

// HoursState is whether a site is open now, and if not why and until when.
type HoursState struct {
	Open bool
	// Reason is "" when open, else ReasonOfficeClosed, ReasonHoliday or
	// ReasonHoursUnknown.
	Reason      string
	Holiday     string    // the holiday's name, with ReasonHoliday
	NextOpening time.Time // when closed and known
}

// Hours says whether the site is open at now: its opening hours in Rome
// time, closed on national public holidays.
func Hours(s *registry.Site, now time.Time) HoursState {
	if s.OpeningHours == nil {
		return HoursState{Reason: ReasonHoursUnknown}
	}
	if name := HolidayAt(now); name != "" {
		return HoursState{Reason: ReasonHoliday, Holiday: name, NextOpening: NextOpening(s.OpeningHours, now)}
	}
	if s.OpeningHours.OpenAt(now) {
		return HoursState{Open: true}
	}
	return HoursState{Reason: ReasonOfficeClosed, NextOpening: NextOpening(s.OpeningHours, now)}
}
