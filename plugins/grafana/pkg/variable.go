package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/polis-platform/polis/storage/schema"
)

// VariableQuery is the JSON model of a "variable" query, for template
// variables: one frame with one string field, "value", sorted.
//
//	variable: regions                        the fleet's regions (API)
//	variable: provinces  [region]            the provinces of a region (API)
//	variable: sites      [region, province]  the sites of a region or province (API), or every site with telemetry (ClickHouse) without either
//	variable: assets     [site]              the assets of a site (ClickHouse, the 1-hour rollup)
//	variable: metrics    [site, asset]       the metrics of an asset (ClickHouse)
type VariableQuery struct {
	QueryType string `json:"queryType"` // "variable"
	Variable  string `json:"variable"`
	Region    string `json:"region,omitempty"`
	Province  string `json:"province,omitempty"`
	Site      string `json:"site,omitempty"`
	Asset     string `json:"asset,omitempty"`
}

// Variables a VariableQuery may list.
var Variables = []string{"regions", "provinces", "sites", "assets", "metrics"}

// unset is a variable's value that means "any": empty, or Grafana's All.
func unset(s string) bool {
	s = strings.TrimSpace(s)
	return s == "" || s == "All" || s == "$__all" || s == "*"
}

func (d *Datasource) variable(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q VariableQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the variable query: %v", err)
	}
	var vals []string
	var src string
	var err error
	switch q.Variable {
	case "regions", "provinces":
		f := SiteFilter{}
		if q.Variable == "provinces" && !unset(q.Region) {
			f.Region = q.Region
		}
		var sites []apiSite
		if sites, _, err = d.listSites(ctx, f, maxPickSites); err != nil {
			return backend.DataResponse{}, err
		}
		seen := map[string]bool{}
		for _, s := range sites {
			v := s.Region
			if q.Variable == "provinces" {
				v = s.Province
			}
			if v != "" && !seen[v] {
				seen[v] = true
				vals = append(vals, v)
			}
		}
		sort.Strings(vals)
		src = "GET /api/v1/sites"
	case "sites":
		if unset(q.Region) && unset(q.Province) {
			vals, src, err = d.distinct(ctx, "site", nil, nil, maxPickSites)
			break
		}
		f := SiteFilter{}
		if !unset(q.Region) {
			f.Region = q.Region
		}
		if !unset(q.Province) {
			f.Province = q.Province
		}
		var sites []apiSite
		if sites, _, err = d.listSites(ctx, f, maxPickSites); err != nil {
			return backend.DataResponse{}, err
		}
		for _, s := range sites {
			vals = append(vals, s.ID)
		}
		sort.Strings(vals)
		src = "GET /api/v1/sites"
	case "assets", "metrics":
		var where []string
		var args []any
		if !unset(q.Site) {
			where, args = append(where, "site = ?"), append(args, q.Site)
		}
		if q.Variable == "metrics" && !unset(q.Asset) {
			where, args = append(where, "asset = ?"), append(args, q.Asset)
		}
		vals, src, err = d.distinct(ctx, strings.TrimSuffix(q.Variable, "s"), where, args, maxPickValues)
	default:
		return backend.DataResponse{}, badQuery("unknown variable %q: want one of %s", q.Variable, strings.Join(Variables, ", "))
	}
	if err != nil {
		return backend.DataResponse{}, err
	}
	if vals == nil {
		vals = []string{}
	}
	fr := data.NewFrame(q.Variable, data.NewField("value", nil, vals))
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeTable, ExecutedQueryString: src}
	return backend.DataResponse{Frames: data.Frames{fr}}, nil
}

// distinct lists the values of col in the 1-hour rollup (every series that
// ever had a point), sorted, at most limit.
func (d *Datasource) distinct(ctx context.Context, col string, where []string, args []any, limit int) ([]string, string, error) {
	sql := fmt.Sprintf("SELECT DISTINCT %s FROM %s.%s", col, d.cfg.Database, schema.TableTelemetry1h)
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", col, limit)
	rows, err := d.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, sql, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, schema.TableTelemetry1h, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, sql, err
		}
		out = append(out, s)
	}
	return out, sql, rows.Err()
}
