package polisds

import (
	"context"
	"encoding/json"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// TwinQuery is the JSON model of a "twin" query: the digital twin's sites
// (format "sites", default: one row per site, with lat/lon for a geomap,
// its asset counts by status and its worst status; with live, the site's
// aggregates now from its detail) or their assets (format "assets": one
// row per asset with its type, lifecycle and status), from the platform
// API. The filters are those of GET /api/v1/sites; site, when set, is the
// only site.
type TwinQuery struct {
	QueryType string `json:"queryType"` // "twin"
	SiteFilter
	Site   string `json:"site,omitempty"`
	Format string `json:"format,omitempty"` // sites (default) or assets
	Live   bool   `json:"live,omitempty"`   // sites: add the live aggregates (one API call per site)
	Limit  int    `json:"limit,omitempty"`  // sites, default 1000, at most maxPickSites
}

// Twin query formats.
const (
	FormatSites  = "sites"
	FormatAssets = "assets"
)

// maxTwinDetails bounds the per-site detail calls of one twin query.
const maxTwinDetails = 200

// twinConcurrency is how many detail calls run at once.
const twinConcurrency = 8

func (d *Datasource) twin(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q TwinQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the twin query: %v", err)
	}
	if q.Format == "" {
		q.Format = FormatSites
	}
	if q.Format != FormatSites && q.Format != FormatAssets {
		return backend.DataResponse{}, badQuery("unknown format %q: want sites or assets", q.Format)
	}
	if q.Limit <= 0 {
		q.Limit = apiPageSize
	}
	q.Limit = min(q.Limit, maxPickSites)
	var sites []apiSite
	var notes []string
	if s := strings.TrimSpace(q.Site); s != "" && s != "All" && s != "$__all" {
		sites = []apiSite{{ID: s}}
	} else {
		var err error
		if sites, notes, err = d.listSites(ctx, q.SiteFilter, q.Limit); err != nil {
			return backend.DataResponse{}, err
		}
	}
	var details []*apiSiteDetail
	needDetail := q.Format == FormatAssets || q.Live || q.Site != ""
	if needDetail {
		if len(sites) > maxTwinDetails {
			return backend.DataResponse{}, badQuery("%d sites match: the assets and live aggregates are read per site, at most %d; filter by region, province or site",
				len(sites), maxTwinDetails)
		}
		var err error
		if details, err = d.siteDetails(ctx, sites); err != nil {
			return backend.DataResponse{}, err
		}
	}
	var fr *data.Frame
	if q.Format == FormatAssets {
		fr = assetTable(details)
	} else {
		for i, dt := range details {
			sites[i] = dt.apiSite
		}
		fr = siteTable(sites, details)
	}
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeTable, ExecutedQueryString: "GET /api/v1/sites"}
	for _, n := range notes {
		fr.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: n})
	}
	return backend.DataResponse{Frames: data.Frames{fr}}, nil
}

// siteDetails reads GET /api/v1/sites/{site} of each site, a few at once.
func (d *Datasource) siteDetails(ctx context.Context, sites []apiSite) ([]*apiSiteDetail, error) {
	out := make([]*apiSiteDetail, len(sites))
	errs := make([]error, len(sites))
	sem := make(chan struct{}, twinConcurrency)
	var wg sync.WaitGroup
	for i, s := range sites {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			var dt apiSiteDetail
			errs[i] = d.apiGet(ctx, "/api/v1/sites/"+url.PathEscape(s.ID), &dt)
			out[i] = &dt
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

func siteTable(sites []apiSite, details []*apiSiteDetail) *data.Frame {
	fr := data.NewFrame("sites",
		data.NewField("site", nil, []string{}),
		data.NewField("name", nil, []string{}),
		data.NewField("kind", nil, []string{}),
		data.NewField("region", nil, []string{}),
		data.NewField("province", nil, []string{}),
		data.NewField("latitude", nil, []*float64{}),
		data.NewField("longitude", nil, []*float64{}),
		data.NewField("status", nil, []string{}),
		data.NewField("assets", nil, []int64{}),
		data.NewField("online", nil, []int64{}),
		data.NewField("offline", nil, []int64{}),
		data.NewField("stale", nil, []int64{}),
		data.NewField("fault", nil, []int64{}),
		data.NewField("unknown", nil, []int64{}),
		data.NewField("asset_types", nil, []string{}),
	)
	if details != nil {
		fr.Fields = append(fr.Fields, []*data.Field{
			data.NewField("pv_power_kw", nil, []float64{}),
			data.NewField("pv_energy_today_kwh", nil, []float64{}),
			data.NewField("chargers", nil, []int64{}),
			data.NewField("chargers_free", nil, []int64{}),
			data.NewField("atms", nil, []int64{}),
			data.NewField("atms_up", nil, []int64{}),
			data.NewField("temp_c", nil, []*float64{}),
			data.NewField("humidity_pct", nil, []*float64{}),
			data.NewField("co2_ppm", nil, []*float64{}),
			data.NewField("desks_occupied", nil, []int64{}),
			data.NewField("open_now", nil, []*bool{}),
		}...)
	}
	for i, s := range sites {
		st := "remote"
		var c StatusCounts
		if s.Status != nil {
			c, st = *s.Status, s.Status.Worst()
		}
		row := []any{s.ID, s.Name, s.Kind, s.Region, s.Province, s.Lat, s.Lon, st, int64(s.AssetCount),
			int64(c.Online), int64(c.Offline), int64(c.Stale), int64(c.Fault), int64(c.Unknown), strings.Join(s.AssetTypes, ",")}
		if details != nil {
			l := details[i].Live
			row = append(row, l.PVPowerKW, l.PVEnergyTodayKWh, int64(l.Chargers), int64(l.ChargersFree), int64(l.ATMs),
				int64(l.ATMsUp), l.TempC, l.HumidityPct, l.CO2ppm, int64(l.DesksOccupied), details[i].OpenNow)
		}
		fr.AppendRow(row...)
	}
	return fr
}

func assetTable(details []*apiSiteDetail) *data.Frame {
	fr := data.NewFrame("assets",
		data.NewField("site", nil, []string{}),
		data.NewField("region", nil, []string{}),
		data.NewField("asset", nil, []string{}),
		data.NewField("type", nil, []string{}),
		data.NewField("supplier", nil, []string{}),
		data.NewField("lifecycle", nil, []string{}),
		data.NewField("status", nil, []string{}),
		data.NewField("last_seen", nil, []string{}),
	)
	for _, dt := range details {
		as := dt.Assets
		sort.SliceStable(as, func(i, j int) bool { return as[i].ID < as[j].ID })
		for _, a := range as {
			fr.AppendRow(dt.ID, dt.Region, a.ID, a.Type, a.Supplier, a.Lifecycle, a.Status, a.LastSeen)
		}
	}
	return fr
}
