// Package italy is the Italian civil calendar every part of the platform
// reads days in: the Europe/Rome zone and the national public holidays.
// One copy, so that the rules' holiday() and the citizen services' opening
// hours can never disagree on what a holiday is.
package italy

import (
	"time"
	_ "time/tzdata" // Europe/Rome must resolve on hosts without a zoneinfo database
)

// Rome is Europe/Rome, where the programme's days, months and opening
// hours fall whatever the server's zone.
var Rome = func() *time.Location {
	loc, err := time.LoadLocation("Europe/Rome")
	if err != nil {
		panic("BUG: time/tzdata is linked but Europe/Rome is missing: " + err.Error())
	}
	return loc
}()

// Easter returns the date of Easter Sunday of year y in the Gregorian
// calendar (the anonymous algorithm of Meeus, Jones and Butcher).
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

// Holiday returns the Italian name of the national public holiday on the
// given date, or "": law 260/1949 and its amendments, with 4 October (San
// Francesco d'Assisi) from 2026 (law 151/2025). Easter Sunday is included
// although it is a Sunday anyway. Patron saints' days, which differ by
// comune, are not.
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
	case m == time.October && d == 4 && y >= 2026:
		return "San Francesco d'Assisi"
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
	y, m, d := t.In(Rome).Date()
	return Holiday(y, m, d)
}
