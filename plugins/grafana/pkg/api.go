package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxAPIBody bounds one answer of the platform API.
const maxAPIBody = 32 << 20

// apiGet GETs path (with its query) from the platform API and decodes the
// JSON answer into out. path starts with "/".
func (d *Datasource) apiGet(ctx context.Context, path string, out any) error {
	if d.cfg.APIURL == "" {
		return badQuery("this query reads the platform API: set apiUrl in the datasource settings")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.cfg.APIURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if d.sec.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+d.sec.APIToken)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return fmt.Errorf("the platform API: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAPIBody))
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		msg := strings.TrimSpace(string(body))
		var e struct {
			Error   string `json:"error"`
			Message string `json:"message"`
		}
		if json.Unmarshal(body, &e) == nil && (e.Message != "" || e.Error != "") {
			msg = strings.TrimSpace(e.Error + " " + e.Message)
		}
		if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
			return badQuery("GET %s answered %s: %s", path, resp.Status, clip(msg, 300))
		}
		return fmt.Errorf("GET %s answered %s: %s", path, resp.Status, clip(msg, 300))
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("GET %s: cannot read the answer: %w", path, err)
	}
	return nil
}

// StatusCounts is the API's assets by derived status.
type StatusCounts struct {
	Unknown int `json:"unknown"`
	Online  int `json:"online"`
	Offline int `json:"offline"`
	Stale   int `json:"stale"`
	Fault   int `json:"fault"`
}

// Worst is the site's status in one word: fault, offline, stale, online,
// or unknown (no asset with a known status).
func (s StatusCounts) Worst() string {
	switch {
	case s.Fault > 0:
		return "fault"
	case s.Offline > 0:
		return "offline"
	case s.Stale > 0:
		return "stale"
	case s.Online > 0:
		return "online"
	}
	return "unknown"
}

// apiSite is an item of GET /api/v1/sites (SiteListItem), and the summary
// part of GET /api/v1/sites/{site}.
type apiSite struct {
	ID         string        `json:"id"`
	Kind       string        `json:"kind"`
	Name       string        `json:"name"`
	Comune     string        `json:"comune"`
	Province   string        `json:"province"`
	Region     string        `json:"region"`
	Population int           `json:"population"`
	Lat        *float64      `json:"lat"`
	Lon        *float64      `json:"lon"`
	AssetCount int           `json:"asset_count"`
	AssetTypes []string      `json:"asset_types"`
	Status     *StatusCounts `json:"status"`
	Remote     bool          `json:"remote"`
}

type apiSiteList struct {
	Total int       `json:"total"`
	Items []apiSite `json:"items"`
	Next  string    `json:"next"`
	Notes []string  `json:"notes"`
}

// apiSiteDetail is GET /api/v1/sites/{site} (SiteDetail), the parts the
// plugin shows.
type apiSiteDetail struct {
	apiSite
	Address string `json:"address"`
	OpenNow *bool  `json:"open_now"`
	Assets  []struct {
		ID        string `json:"id"`
		Type      string `json:"type"`
		Supplier  string `json:"supplier"`
		Lifecycle string `json:"lifecycle"`
		Status    string `json:"status"`
		LastSeen  string `json:"last_seen"`
	} `json:"assets"`
	Live apiLive `json:"live"`
}

type apiLive struct {
	Assets           int          `json:"assets"`
	Status           StatusCounts `json:"status"`
	Chargers         int          `json:"chargers"`
	ChargersFree     int          `json:"chargers_free"`
	Lockers          int          `json:"lockers"`
	LockerFree       float64      `json:"locker_free"`
	Totems           int          `json:"totems"`
	TotemsUp         int          `json:"totems_up"`
	ATMs             int          `json:"atms"`
	ATMsUp           int          `json:"atms_up"`
	PVs              int          `json:"pvs"`
	PVPowerKW        float64      `json:"pv_power_kw"`
	PVEnergyTodayKWh float64      `json:"pv_energy_today_kwh"`
	TempC            *float64     `json:"temp_c"`
	HumidityPct      *float64     `json:"humidity_pct"`
	CO2ppm           *float64     `json:"co2_ppm"`
	Desks            int          `json:"desks"`
	DesksOccupied    int          `json:"desks_occupied"`
	Rooms            int          `json:"rooms"`
	RoomsOccupied    int          `json:"rooms_occupied"`
}

// SiteFilter is the filters of GET /api/v1/sites the plugin passes on.
type SiteFilter struct {
	Region    string `json:"region,omitempty"`
	Province  string `json:"province,omitempty"`
	Kind      string `json:"kind,omitempty"`
	Status    string `json:"status,omitempty"`
	AssetType string `json:"assetType,omitempty"`
}

// apiPageSize is the page the plugin asks the API for (its maximum).
const apiPageSize = 1000

// listSites reads the sites matching f, following the next links, at most
// limit of them.
func (d *Datasource) listSites(ctx context.Context, f SiteFilter, limit int) ([]apiSite, []string, error) {
	v := url.Values{}
	for k, s := range map[string]string{"region": f.Region, "province": f.Province, "kind": f.Kind,
		"status": f.Status, "asset_type": f.AssetType} {
		if s = strings.TrimSpace(s); s != "" && s != "All" && s != "$__all" {
			v.Set(k, s)
		}
	}
	v.Set("limit", fmt.Sprint(min(limit, apiPageSize)))
	path := "/api/v1/sites?" + v.Encode()
	var out []apiSite
	var notes []string
	for path != "" && len(out) < limit {
		var page apiSiteList
		if err := d.apiGet(ctx, path, &page); err != nil {
			return nil, nil, err
		}
		out = append(out, page.Items...)
		notes = append(notes, page.Notes...)
		if len(page.Items) == 0 {
			break
		}
		path = page.Next
		if u, err := url.Parse(path); err == nil && u.IsAbs() {
			path = u.RequestURI() // the API's own host: keep ours
		}
	}
	if len(out) > limit {
		out = out[:limit]
	}
	return out, notes, nil
}
