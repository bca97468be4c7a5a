package api

import (
	"encoding/json"
	"time"

	"github.com/polis-platform/polis/twin/registry"
	"github.com/polis-platform/polis/twin/state"
)

// Response bodies. They are written out field by field so that nothing the
// public must not see (device secret hashes) can reach a response, and so
// that openapi.yaml describes exactly these. Change both together: the
// tests validate every response against the document.

type siteSummary struct {
	ID         string   `json:"id"`
	Kind       string   `json:"kind"`
	Name       string   `json:"name,omitempty"`
	Comune     string   `json:"comune,omitempty"`
	Province   string   `json:"province,omitempty"`
	Region     string   `json:"region,omitempty"`
	Population int      `json:"population,omitempty"`
	Lat        float64  `json:"lat,omitempty"`
	Lon        float64  `json:"lon,omitempty"`
	AssetCount int      `json:"asset_count"`
	AssetTypes []string `json:"asset_types"`
}

func summary(s *registry.Site) siteSummary {
	out := siteSummary{ID: s.ID, Kind: string(s.Kind), Name: s.Name, Comune: s.Comune, Province: s.Province,
		Region: s.Region, Population: s.Population, Lat: s.Lat, Lon: s.Lon, AssetCount: len(s.Assets), AssetTypes: []string{}}
	seen := map[string]bool{}
	for _, a := range s.Assets {
		if !seen[a.Type] {
			seen[a.Type] = true
			out.AssetTypes = append(out.AssetTypes, a.Type)
		}
	}
	return out
}

// siteListItem is a site in the list, with its status counts when this
// instance holds its live state.
type siteListItem struct {
	siteSummary
	Status map[string]int `json:"status,omitempty"`
	Remote bool           `json:"remote,omitempty"` // another instance holds the live state
}

type siteList struct {
	Total  int            `json:"total"`
	Limit  int            `json:"limit"`
	Offset int            `json:"offset"`
	Items  []siteListItem `json:"items"`
	Next   string         `json:"next,omitempty"`
	Notes  []string       `json:"notes,omitempty"`
}

type coworkingDTO struct {
	Workstations int `json:"workstations"`
	MeetingRooms int `json:"meeting_rooms"`
	EventAreas   int `json:"event_areas"`
}

type assetSummary struct {
	ID          string    `json:"id"`
	Type        string    `json:"type"`
	Supplier    string    `json:"supplier,omitempty"`
	CIG         string    `json:"cig,omitempty"`
	Lifecycle   string    `json:"lifecycle"`
	InstalledAt time.Time `json:"installed_at,omitzero"`
	Status      string    `json:"status"`
	LastSeen    time.Time `json:"last_seen,omitzero"`
}

type siteDetail struct {
	siteSummary
	ProvinceName string         `json:"province_name,omitempty"`
	InnerArea    string         `json:"inner_area,omitempty"`
	Address      string         `json:"address,omitempty"`
	OpeningHours string         `json:"opening_hours,omitempty"`
	OpenNow      *bool          `json:"open_now,omitempty"`
	CUP          string         `json:"cup,omitempty"`
	CIG          string         `json:"cig,omitempty"`
	Coworking    *coworkingDTO  `json:"coworking,omitempty"`
	Assets       []assetSummary `json:"assets"`
	Live         liveDTO        `json:"live"`
}

// liveDTO is state.SiteView in the API's words.
type liveDTO struct {
	Assets           int            `json:"assets"`
	Status           map[string]int `json:"status"`
	Chargers         int            `json:"chargers"`
	ChargersFree     int            `json:"chargers_free"`
	Lockers          int            `json:"lockers"`
	LockerFree       float64        `json:"locker_free"`
	Totems           int            `json:"totems"`
	TotemsUp         int            `json:"totems_up"`
	ATMs             int            `json:"atms"`
	ATMsUp           int            `json:"atms_up"`
	PVs              int            `json:"pvs"`
	PVPowerKW        float64        `json:"pv_power_kw"`
	PVEnergyTodayKWh float64        `json:"pv_energy_today_kwh"`
	TempC            *float64       `json:"temp_c,omitempty"`
	HumidityPct      *float64       `json:"humidity_pct,omitempty"`
	CO2ppm           *float64       `json:"co2_ppm,omitempty"`
	Desks            int            `json:"desks"`
	DesksOccupied    int            `json:"desks_occupied"`
	Rooms            int            `json:"rooms"`
	RoomsOccupied    int            `json:"rooms_occupied"`
}

func statusCounts(v state.SiteView) map[string]int {
	out := make(map[string]int, len(v.ByStatus))
	for i, n := range v.ByStatus {
		out[state.Status(i).String()] = n
	}
	return out
}

func liveOf(v state.SiteView) liveDTO {
	d := liveDTO{
		Assets: v.Assets, Status: statusCounts(v), Chargers: v.Chargers, ChargersFree: v.ChargersFree,
		Lockers: v.Lockers, LockerFree: v.LockerFree, Totems: v.Totems, TotemsUp: v.TotemsUp,
		ATMs: v.ATMs, ATMsUp: v.ATMsUp, PVs: v.PVs, PVPowerKW: v.PVPowerKW, PVEnergyTodayKWh: v.PVEnergyTodayKWh,
		Desks: v.Desks, DesksOccupied: v.DesksOccupied, Rooms: v.Rooms, RoomsOccupied: v.RoomsOccupied,
	}
	if v.TempN > 0 {
		d.TempC = &v.TempC
	}
	if v.HumidityN > 0 {
		d.HumidityPct = &v.HumidityPct
	}
	if v.CO2N > 0 {
		d.CO2ppm = &v.CO2ppm
	}
	return d
}

type metricDTO struct {
	Value   float64   `json:"value"`
	TS      time.Time `json:"ts"`
	Arrival time.Time `json:"arrival,omitzero"`
}

type propDTO struct {
	Value   json.RawMessage `json:"value"`
	TS      time.Time       `json:"ts,omitzero"`
	Version uint64          `json:"version"`
}

type assetDTO struct {
	Site           string                     `json:"site"`
	ID             string                     `json:"id"`
	Type           string                     `json:"type"`
	Supplier       string                     `json:"supplier,omitempty"`
	CIG            string                     `json:"cig,omitempty"`
	Lifecycle      string                     `json:"lifecycle"`
	InstalledAt    time.Time                  `json:"installed_at,omitzero"`
	Status         string                     `json:"status"`
	Connection     string                     `json:"connection,omitempty"`
	StatusTS       time.Time                  `json:"status_ts,omitzero"`
	LastSeen       time.Time                  `json:"last_seen,omitzero"`
	Version        uint64                     `json:"version"`
	Metrics        map[string]metricDTO       `json:"metrics"`
	Reported       map[string]propDTO         `json:"reported"`
	Desired        map[string]propDTO         `json:"desired"`
	DesiredVersion uint64                     `json:"desired_version"`
	Delta          map[string]json.RawMessage `json:"delta"`
	LastEvent      string                     `json:"last_event,omitempty"`
	LastEventTS    time.Time                  `json:"last_event_ts,omitzero"`
}

type desiredResult struct {
	Site           string                     `json:"site"`
	Asset          string                     `json:"asset"`
	DesiredVersion uint64                     `json:"desired_version"`
	Desired        map[string]propDTO         `json:"desired"`
	Delta          map[string]json.RawMessage `json:"delta"`
}

type historyDTO struct {
	Site       string         `json:"site"`
	Asset      string         `json:"asset"`
	Metric     string         `json:"metric"`
	From       time.Time      `json:"from"`
	To         time.Time      `json:"to"`
	Step       string         `json:"step,omitempty"`
	Resolution string         `json:"resolution"`
	Points     []historyPoint `json:"points"`
}

type historyPoint struct {
	TS    time.Time `json:"ts"`
	Value float64   `json:"value"`
	Min   float64   `json:"min"`
	Max   float64   `json:"max"`
	Count uint64    `json:"count"`
}
