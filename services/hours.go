package services

import (
	"time"

	"github.com/polis-platform/polis/italy"
	"github.com/polis-platform/polis/twin/registry"
)

// Holiday returns the Italian name of the national public holiday on the
// given date, or "" (italy.Holiday).
func Holiday(y int, m time.Month, d int) string { return italy.Holiday(y, m, d) }

// HolidayAt is the holiday of t's day in Rome, or "".
func HolidayAt(t time.Time) string { return italy.HolidayAt(t) }

func rome() *time.Location { return italy.Rome }

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
