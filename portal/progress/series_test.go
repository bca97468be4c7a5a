package progress

import (
	"math"
	"testing"
	"time"
)

func ms(s string) int64 {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t.UnixMilli()
}

func TestSeries(t *testing.T) {
	s := newSeries([]delta{
		{ms("2023-03-01T10:00:00Z"), 2},
		{beforeRecords, 1},
		{ms("2023-01-01T10:00:00Z"), 1},
		{ms("2023-03-01T10:00:00Z"), 1}, // same instant: one change of 3
		{ms("2023-05-01T10:00:00Z"), -1},
		{ms("2023-06-01T10:00:00Z"), 0}, // no change
	})
	for _, c := range []struct {
		at   string
		want int64
	}{
		{"2022-01-01T00:00:00Z", 1}, // counted since before records
		{"2023-01-01T09:59:59Z", 1},
		{"2023-01-01T10:00:00Z", 2}, // changes at t included
		{"2023-03-01T10:00:00Z", 5},
		{"2023-04-30T00:00:00Z", 5},
		{"2023-05-01T10:00:00Z", 4},
		{"2030-01-01T00:00:00Z", 4},
	} {
		if got := s.value(ms(c.at)); got != c.want {
			t.Errorf("value at %s = %d, want %d", c.at, got, c.want)
		}
	}
	if s.current() != 4 {
		t.Errorf("current = %d", s.current())
	}
	if got := s.reachedOn(); !got.Equal(time.UnixMilli(ms("2023-05-01T10:00:00Z"))) {
		t.Errorf("reachedOn = %v, want the decrease of 2023-05-01", got)
	}
	if got := s.firstReach(5); !got.Equal(time.UnixMilli(ms("2023-03-01T10:00:00Z"))) {
		t.Errorf("firstReach(5) = %v", got)
	}
	if got := s.firstReach(1); !got.IsZero() {
		t.Errorf("firstReach(1) = %v, want zero: it was reached before records", got)
	}
	if got := s.firstReach(6); !got.IsZero() {
		t.Errorf("firstReach(6) = %v, want zero: never reached", got)
	}
	if got := newSeries(nil).reachedOn(); !got.IsZero() {
		t.Errorf("empty series: reachedOn %v", got)
	}
	if got := newSeries([]delta{{beforeRecords, 3}}).reachedOn(); !got.IsZero() {
		t.Errorf("a count held since before records: reachedOn %v, want zero", got)
	}
}

func TestPaceAndProjection(t *testing.T) {
	now := time.Date(2025, 7, 1, 12, 0, 0, 0, time.UTC)
	day := func(d int) int64 { return now.AddDate(0, 0, d).UnixMilli() }
	for _, c := range []struct {
		name     string
		ds       []delta
		target   int
		pace     float64
		projWant string // YYYY-MM-DD, "" for zero
	}{
		// 180 over the last 180 days: 1 a day; 500 to go.
		{"steady", []delta{{beforeRecords, 20}, {day(-400), 300}, {day(-90), 180}}, 1000, 1, "2026-11-13"},
		{"zero pace", []delta{{day(-400), 300}}, 1000, 0, ""},
		{"achieved", []delta{{day(-100), 1200}}, 1000, 1200.0 / 100, ""},
		// Works started 10 days ago: the pace is over those 10 days.
		{"recent start", []delta{{day(-10), 50}}, 100, 5, "2025-07-11"},
		// The projection is past the deadline: it is still given.
		{"past deadline", []delta{{day(-180), 18}}, 10000, 0.1, "2298-10-18"},
		{"only before records", []delta{{beforeRecords, 30}}, 100, 0, ""},
		{"shrinking", []delta{{day(-300), 100}, {day(-30), -90}}, 1000, -0.5, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := newSeries(c.ds)
			p := s.pace(now)
			if math.Abs(p-c.pace) > 1e-9 {
				t.Errorf("pace = %v, want %v", p, c.pace)
			}
			got := projected(int(s.current()), c.target, p, now)
			switch {
			case c.projWant == "" && !got.IsZero():
				t.Errorf("projected = %v, want none", got)
			case c.projWant != "" && got.Format(time.DateOnly) != c.projWant:
				t.Errorf("projected = %v, want %s", got, c.projWant)
			}
		})
	}
}

func TestMonthEnds(t *testing.T) {
	now := time.Date(2022, 3, 15, 9, 0, 0, 0, time.UTC)
	got := monthEnds(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), now)
	want := []string{"2022-01-31T23:59:59.999+01:00", "2022-02-28T23:59:59.999+01:00", "2022-03-15T09:00:00Z"}
	if len(got) != len(want) {
		t.Fatalf("monthEnds = %v", got)
	}
	for i := range want {
		if got[i].Format("2006-01-02T15:04:05.999Z07:00") != want[i] {
			t.Errorf("point %d at %v, want %s", i, got[i].Format(time.RFC3339Nano), want[i])
		}
	}
	// now on the first day of a month: the previous month ends before it.
	if got := monthEnds(time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2022, 1, 1, 1, 0, 0, 0, time.UTC)); len(got) != 1 {
		t.Errorf("monthEnds within the first month = %v, want just now", got)
	}
	// The end of a day is the end of that calendar day in Rome.
	if e := endOfDay(time.Date(2024, 11, 30, 0, 0, 0, 0, time.UTC)); e.In(rome).Format(time.DateTime) != "2024-11-30 23:59:59" {
		t.Errorf("endOfDay = %v", e.In(rome))
	}
}
