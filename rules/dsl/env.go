package dsl

import (
	"math"
	"time"

	"github.com/polis-platform/polis/italy"
)

// Rome is the time zone of hour(), weekday(), holiday().
var Rome = italy.Rome

// Env is the typed environment a rule reads. The engine fills one per
// evaluation (reusing it is cheap: the functions are bound once per *Env).
// Names in the language are the expr tags.
type Env struct {
	Metric string    `expr:"metric"` // the incoming point's metric; "" on a timer evaluation
	Value  float64   `expr:"value"`
	TS     time.Time `expr:"ts"` // event time: the clock of every function
	Asset  AssetEnv  `expr:"asset"`
	Site   SiteEnv   `expr:"site"`
	// History holds the asset's recent points; nil makes the history
	// functions return NaN (so comparisons are false) and silent_for +Inf.
	History History `expr:"-"`

	Funcs // the language's functions, promoted so that rules call avg(...)

	bound *Env // the Env the Funcs closures read; differs after a copy
}

// AssetEnv is the asset twin (from state.AssetView).
type AssetEnv struct {
	ID     string         `expr:"id"`
	Type   string         `expr:"type"`
	Status string         `expr:"status"` // unknown, online, offline, stale, fault
	Props  map[string]any `expr:"props"`  // reported properties
	// Metrics are the latest values. A missing key reads as 0 here (expr
	// returns the zero value); last("x") reads NaN instead, which is what
	// a rule wants for a metric the asset has not sent yet.
	Metrics map[string]float64 `expr:"metrics"`
}

// SiteEnv is the site twin (from registry.Site and state.SiteView).
type SiteEnv struct {
	ID       string            `expr:"id"`
	Region   string            `expr:"region"`
	Province string            `expr:"province"`
	Kind     string            `expr:"kind"` // post_office or coworking
	OpenNow  bool              `expr:"open_now"`
	Labels   map[string]string `expr:"labels"`

	Assets           int     `expr:"assets"`
	Chargers         int     `expr:"chargers"`
	ChargersFree     int     `expr:"chargers_free"`
	Lockers          int     `expr:"lockers"`
	LockerFree       float64 `expr:"locker_free"`
	Totems           int     `expr:"totems"`
	TotemsUp         int     `expr:"totems_up"`
	ATMs             int     `expr:"atms"`
	ATMsUp           int     `expr:"atms_up"`
	PVs              int     `expr:"pvs"`
	PVPowerKW        float64 `expr:"pv_power_kw"`
	PVEnergyTodayKWh float64 `expr:"pv_energy_today_kwh"`
	TempC            float64 `expr:"temp_c"`
	HumidityPct      float64 `expr:"humidity_pct"`
	CO2ppm           float64 `expr:"co2_ppm"`
	Desks            int     `expr:"desks"`
	DesksOccupied    int     `expr:"desks_occupied"`
	Rooms            int     `expr:"rooms"`
	RoomsOccupied    int     `expr:"rooms_occupied"`

	// ProvinceAvg is, per metric, the mean over the assets of the same type
	// in the site's province at this hour (the engine computes it across
	// sites); province_avg(metric) reads it, NaN when absent.
	ProvinceAvg map[string]float64 `expr:"-"`
}

// Funcs are the functions of the language as typed fields, so that expr
// type-checks their calls. They are bound to their Env by Program.Eval.
type Funcs struct {
	Avg         func(metric, window string) float64 `expr:"avg"`
	Min         func(metric, window string) float64 `expr:"min"`
	Max         func(metric, window string) float64 `expr:"max"`
	Delta       func(metric, window string) float64 `expr:"delta"`
	Rate        func(metric, window string) float64 `expr:"rate"`
	CountOver   func(metric, window string) int     `expr:"count_over"`
	SilentFor   func() float64                      `expr:"silent_for"`
	Hour        func() int                          `expr:"hour"`
	Weekday     func() int                          `expr:"weekday"`
	Holiday     func() bool                         `expr:"holiday"`
	OpenNow     func() bool                         `expr:"open_now"`
	ProvinceAvg func(metric string) float64         `expr:"province_avg"`
	Last        func(metric string) float64         `expr:"last"`
}

// funcNames are the language's function names, for did-you-mean and the
// window check.
var funcNames = []string{"avg", "min", "max", "delta", "rate", "count_over",
	"silent_for", "hour", "weekday", "holiday", "open_now", "province_avg", "last"}

// windowFuncs take (metric, window).
var windowFuncs = map[string]bool{"avg": true, "min": true, "max": true,
	"delta": true, "rate": true, "count_over": true}

// bind points the functions at e. Closures allocate, so this runs once per
// Env, not per evaluation.
func (e *Env) bind() {
	if e.bound == e {
		return
	}
	e.bound = e
	win := func(f func(History, string, time.Duration, time.Time) (float64, bool)) func(string, string) float64 {
		return func(metric, window string) float64 {
			d, err := parseWindow(window)
			if err != nil || e.History == nil {
				return math.NaN()
			}
			v, ok := f(e.History, metric, d, e.TS)
			if !ok {
				return math.NaN()
			}
			return v
		}
	}
	e.Funcs = Funcs{
		Avg:   win(History.Avg),
		Min:   win(History.Min),
		Max:   win(History.Max),
		Delta: win(History.Delta),
		Rate:  win(History.Rate),
		CountOver: func(metric, window string) int {
			d, err := parseWindow(window)
			if err != nil || e.History == nil {
				return 0
			}
			return e.History.CountOver(metric, d, e.TS)
		},
		SilentFor: func() float64 {
			if e.History == nil {
				return math.Inf(1)
			}
			d := e.History.SilentFor(e.TS)
			if d == time.Duration(math.MaxInt64) {
				// Never reported (a device that connected first): not silent
				// for a measurable time, so comparisons are false.
				return math.NaN()
			}
			return d.Minutes()
		},
		Hour:    func() int { return e.TS.In(Rome).Hour() },
		Weekday: func() int { return isoWeekday(e.TS.In(Rome).Weekday()) },
		Holiday: func() bool { return Holiday(e.TS) },
		OpenNow: func() bool { return e.Site.OpenNow },
		Last: func(metric string) float64 {
			if v, ok := e.Asset.Metrics[metric]; ok {
				return v
			}
			return math.NaN()
		},
		ProvinceAvg: func(metric string) float64 {
			if v, ok := e.Site.ProvinceAvg[metric]; ok {
				return v
			}
			return math.NaN()
		},
	}
}

// isoWeekday maps Sunday=0 to 7, so that weekday() <= 5 means Mon-Fri.
func isoWeekday(d time.Weekday) int {
	if d == time.Sunday {
		return 7
	}
	return int(d)
}

// parseWindow parses a Prometheus or Go duration ("10m", "1h30m", "1d").
func parseWindow(s string) (time.Duration, error) {
	return ParseDuration(s)
}

// Holiday reports whether t falls, in Rome, on an Italian national holiday
// (italy.Holiday: the fixed ones, Easter and Easter Monday, 4 October from
// 2026).
func Holiday(t time.Time) bool { return italy.HolidayAt(t) != "" }
