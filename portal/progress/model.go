// Package progress computes what the public portal shows: the programme's
// targets with their sources, and the progress the live twin gives against
// them (counts by lifecycle state nationally, by region, province and
// comune; the dates each count was reached, trends and projections; what is
// working right now), and the public, non-secret view of every office.
//
// A Builder (builder.go) computes Snapshots from its Options: the registry,
// the lifecycle tracker, the live twin, the milestones and facts, and the
// history and energy it reads from ClickHouse (cached, with the freshness
// stated in Snapshot.HistoryAt and EnergyAt). Pages render a Snapshot from
// memory and never wait for ClickHouse. Every figure says how it was
// computed (Methods, by anchor) so that the "come calcoliamo" page and the
// open data can cite it.
//
// Dates and instants: calendar dates (deadlines, facts, Projected, Point
// dates' days) are meant in Europe/Rome; deadlines and fact dates are
// midnight UTC of their day, as package milestone reads them, so that
// formatting them in UTC or in Europe/Rome gives the same day. Instants
// (ReachedOn, CompletedOn, feed times) are real times: format them in
// Europe/Rome.
package progress

import (
	"time"

	"github.com/polis-platform/polis/rules/milestone"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// Level is a cumulative lifecycle level: an asset is counted at a level
// when its state is that level or later (faulty counts as commissioned,
// since a faulty device was installed and accepted; decommissioned assets
// count nowhere).
type Level string

const (
	LevelPlanned      Level = "planned"      // in the plan (every asset not decommissioned)
	LevelInstalled    Level = "installed"    // installed, commissioned, operational or faulty
	LevelCommissioned Level = "commissioned" // commissioned, operational or faulty
	LevelOperational  Level = "operational"  // operational now
)

// Levels in order.
var Levels = []Level{LevelPlanned, LevelInstalled, LevelCommissioned, LevelOperational}

// AreaKind is the kind of an Area.
type AreaKind string

const (
	AreaItaly    AreaKind = "italia"
	AreaRegion   AreaKind = "regione"
	AreaProvince AreaKind = "provincia"
	AreaComune   AreaKind = "comune"
)

// Counts are the assets of one type at each level, and how many of them
// are working right now: operational, and online in the live twin
// (twin/state.StatusOnline: connected, fresh and not reporting a fault).
type Counts struct {
	Planned      int `json:"planned"`
	Installed    int `json:"installed"`
	Commissioned int `json:"commissioned"`
	Operational  int `json:"operational"`
	Faulty       int `json:"faulty"`
	WorkingNow   int `json:"working_now"`
}

// Point is one value of a series at a date (the end of a day, Europe/Rome).
type Point struct {
	Date  time.Time `json:"date"`
	Value float64   `json:"value"`
}

// Series is a dated series, e.g. offices completed per month.
type Series struct {
	Name   string  `json:"name"` // Italian label
	Points []Point `json:"points"`
}

// Area is Italy, a region, a province or a comune with its progress.
type Area struct {
	Kind   AreaKind `json:"kind"`
	Code   string   `json:"code"`             // ISTAT code: region 2 digits, province 3, comune 6; "IT" for Italy
	Name   string   `json:"name"`             // as in the registry (Italian)
	Slug   string   `json:"slug"`             // URL segment: lower case, ASCII, dashes ("emilia-romagna"); province: its sigla in lower case
	Parent string   `json:"parent,omitempty"` // slug of the region (province) or province (comune)

	Offices            int `json:"offices"`             // post offices in the programme here
	OfficesCompleted   int `json:"offices_completed"`   // every asset commissioned or later ("intervento concluso")
	OfficesOperational int `json:"offices_operational"` // every asset operational now
	Coworking          int `json:"coworking"`
	CoworkingCompleted int `json:"coworking_completed"` // every asset commissioned or later
	// ByType maps an asset type (atm, totem, locker, showcase, evc, pv,
	// env, meter, outdoor, desk, room, gateway) to its counts here; types
	// absent here have none.
	ByType map[string]Counts `json:"by_type"`
	// Trend is the cumulative number of post offices completed at the end
	// of each month from the start of works (January 2022) to now, the
	// last point being now (from lifecycle_events; empty until the history
	// was read).
	Trend Series `json:"trend"`
}

// Target is one of the programme's targets with its source, and where the
// twin says the programme stands against it. Several targets may measure
// the same thing with different figures (Measure is the same): the portal
// shows each with its source and says that they disagree.
type Target struct {
	ID       string         `json:"id"`    // the milestone's id
	Title    string         `json:"title"` // Italian
	Line     milestone.Line `json:"line"`
	Measure  string         `json:"measure"` // what is counted, e.g. "atm_installed", "offices_completed"
	Target   int            `json:"target"`
	Deadline time.Time      `json:"deadline"`
	Source   SourceRef      `json:"source"`
	Current  int            `json:"current"`
	// Expected is the count a linear pace from the start of works to the
	// deadline asks for now (milestone.Progress.Expected).
	Expected int     `json:"expected"`
	Percent  float64 `json:"percent"`
	Status   string  `json:"status"` // milestone.Status*
	// ReachedOn is when the count took its current value: its last change
	// (from lifecycle_events, or the build that first saw a change not
	// stored yet); zero when unknown (no history read, or unchanged since
	// before records).
	ReachedOn time.Time `json:"reached_on,omitzero"`
	// AchievedOn is when the count first reached Target; zero if it is not
	// at Target now.
	AchievedOn time.Time `json:"achieved_on,omitzero"`
	// Pace is the count's growth per day over the last PaceWindow (or
	// since the first recorded change, if more recent); Projected is the
	// day Target is reached at that pace (midnight UTC of that day in
	// Europe/Rome; zero if achieved, or the pace is not positive). It may
	// be after Deadline: the portal says so.
	Pace      float64   `json:"pace_per_day"`
	Projected time.Time `json:"projected,omitzero"`
	// Trend is the cumulative count at the end of each month, the last
	// point being now; empty until the history was read.
	Trend Series `json:"trend"`
	// Disagrees lists the ids of the other final targets (due in the year
	// of the programme's deadline) of the same Measure with another figure:
	// sources that state the programme's goal differently. Intermediate
	// targets (a count due by an earlier date) never disagree.
	Disagrees []string `json:"disagrees,omitempty"`
	Method    string   `json:"method"` // anchor of the method page that explains this figure
	// Note says what the reader should know about the figure or its
	// source, in Italian (e.g. a source whose address is not recorded).
	Note string `json:"note,omitempty"`
}

// PaceWindow is the period the pace of a target is measured over.
const PaceWindow = 180 * 24 * time.Hour

// SourceRef is where a figure comes from: a row of the public facts table.
// Fact and URL are empty for a figure whose source has no public address
// on record (Target.Note says so).
type SourceRef struct {
	Fact      string    `json:"fact"` // F16
	URL       string    `json:"url"`
	Publisher string    `json:"publisher"` // tipo_fonte, e.g. "Poste Italiane (TG Poste)"
	Date      time.Time `json:"date"`
}

// Published is a progress figure a public source stated at a date (facts
// of type avanzamento), set beside what the twin counted at that date.
type Published struct {
	Fact    string    `json:"fact"`
	Date    time.Time `json:"date"`
	Metric  string    `json:"metric"`            // Italian, as published
	Measure string    `json:"measure,omitempty"` // the twin's measure it compares with, if any
	Value   float64   `json:"value"`
	Unit    string    `json:"unit"`
	Source  SourceRef `json:"source"`
	Note    string    `json:"note,omitempty"`
	// Twin is the twin's count of Measure at the end of Date (Europe/Rome);
	// -1 when no measure of the twin counts the same thing, or the history
	// was not read yet.
	Twin int `json:"twin"`
}

// Funding is one funding fact (finanziamento), or a funding figure with
// no row in the facts table (Supplementary).
type Funding struct {
	ID     string         `json:"id"`   // the fact's id (F07), or the supplementary figure's
	Fact   string         `json:"fact"` // the fact's id; "" when the figure has no row
	Date   time.Time      `json:"date"`
	Line   milestone.Line `json:"line"`
	What   string         `json:"what"`
	Amount float64        `json:"amount_eur"`
	Source SourceRef      `json:"source"`
	Note   string         `json:"note,omitempty"`
	// Measure names what the amount is (pnc_total, pnc_year, poste_share,
	// spazi_investment); Disagrees lists the facts of the same Measure
	// and year span with another amount (Poste's share: 320 or 400 M EUR).
	Measure   string   `json:"measure"`
	Disagrees []string `json:"disagrees,omitempty"`
}

// Asset is the public view of one device: no secret, no credential.
type Asset struct {
	ID          string          `json:"id"` // the public asset id (atm-1)
	Type        string          `json:"type"`
	TypeName    string          `json:"type_name"` // Italian
	Lifecycle   lifecycle.State `json:"lifecycle"`
	InstalledOn time.Time       `json:"installed_on,omitzero"`
	// Status is the live status (twin/state.Status: unknown, online,
	// offline, stale, fault); "" when the live twin is not available.
	Status     string `json:"status,omitempty"`
	Online     bool   `json:"online"`
	WorkingNow bool   `json:"working_now"`
	Supplier   string `json:"supplier,omitempty"`
	CIG        string `json:"cig,omitempty"`
}

// Office is the public view of a post office or coworking space.
type Office struct {
	Site         string    `json:"site"`
	Kind         string    `json:"kind"`   // post_office or coworking
	Comune       string    `json:"comune"` // ISTAT code
	ComuneName   string    `json:"comune_name"`
	Province     string    `json:"province"` // sigla
	ProvinceName string    `json:"province_name,omitempty"`
	Region       string    `json:"region"`
	RegionSlug   string    `json:"region_slug"`
	Population   int       `json:"population,omitempty"`
	InnerArea    string    `json:"inner_area,omitempty"`
	Lat          float64   `json:"lat"`
	Lon          float64   `json:"lon"`
	Address      string    `json:"address,omitempty"`
	OpeningHours string    `json:"opening_hours,omitempty"`
	CUP          string    `json:"cup,omitempty"`
	CIG          string    `json:"cig,omitempty"`
	Completed    bool      `json:"completed"`
	CompletedOn  time.Time `json:"completed_on,omitzero"` // when it was last completed; zero if unknown
	Operational  bool      `json:"operational"`           // every asset operational now
	Assets       []Asset   `json:"assets"`
	// Workstations and MeetingRooms of a coworking space; Free* are free now.
	Workstations     int `json:"workstations,omitempty"`
	MeetingRooms     int `json:"meeting_rooms,omitempty"`
	FreeWorkstations int `json:"free_workstations,omitempty"`
	FreeRooms        int `json:"free_rooms,omitempty"`
	// Energy this calendar month (Europe/Rome), from ClickHouse, as of
	// Snapshot.EnergyAt: what the PV plant produced and the chargers
	// delivered. -1 when unknown (ClickHouse not reachable yet).
	PVkWhMonth  float64 `json:"pv_kwh_month"`
	EVCkWhMonth float64 `json:"evc_kwh_month"`
}

// Supplier is a supplier engaged, from the registry.
type Supplier struct {
	Name   string         `json:"name"`
	Types  []string       `json:"types"`  // asset types supplied
	Assets int            `json:"assets"` // assets supplied
	Sites  int            `json:"sites"`
	CIGs   []string       `json:"cigs,omitempty"`
	ByType map[string]int `json:"by_type"`
}

// FeedEntry is one item of the Atom feed: a target achieved or an office
// becoming operational.
type FeedEntry struct {
	ID      string    `json:"id"` // stable: "target/<id>" or "office/<site>" (coworking spaces too)
	Title   string    `json:"title"`
	Summary string    `json:"summary"`
	Link    string    `json:"link"` // path on the portal: /obiettivi#<id> or /uffici/<site>
	At      time.Time `json:"at"`
}

// Snapshot is everything the portal shows, computed at At.
type Snapshot struct {
	At        time.Time `json:"at"`
	HistoryAt time.Time `json:"history_at"` // when lifecycle_events was last read (zero: never)
	EnergyAt  time.Time `json:"energy_at"`  // when the month's energy was last read
	Deadline  time.Time `json:"deadline"`   // the programme's deadline (2026-12-31 unless configured)

	Italy     *Area   `json:"italy"`
	Regions   []*Area `json:"regions"`   // by name
	Provinces []*Area `json:"provinces"` // by name
	Comuni    []*Area `json:"comuni"`    // by name; only comuni with a site

	Targets   []Target    `json:"targets"`
	Published []Published `json:"published"`
	Funding   []Funding   `json:"funding"`
	Suppliers []Supplier  `json:"suppliers"`
	Feed      []FeedEntry `json:"feed"` // newest first

	Offices   []*Office `json:"offices"`   // post offices, by site id
	Coworking []*Office `json:"coworking"` // coworking spaces, by site id

	idx index `json:"-"` // lookups (index.go), built with the snapshot
}
