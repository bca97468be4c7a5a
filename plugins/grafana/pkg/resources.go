package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/polis-platform/polis/storage/schema"
)

// Resource limits: a picker lists at most this many values.
const (
	maxPickSites  = 10000 // the demo fleet has some 5,000 sites
	maxPickValues = 1000
)

// CallResource serves the query editor's pickers, each a JSON array of
// strings, sorted, from the 1-hour rollup (every series that ever had a
// point, and much smaller than the raw table):
//
//	GET sites[?prefix=PO-00]        the sites
//	GET assets?site=S               the assets of site S (every site's without it)
//	GET metrics?site=S&asset=A      the metrics of S/A (either may be left out)
func (d *Datasource) CallResource(ctx context.Context, req *backend.CallResourceRequest, sender backend.CallResourceResponseSender) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	reply := func(status int, body any) error {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		return sender.Send(&backend.CallResourceResponse{Status: status,
			Headers: map[string][]string{"Content-Type": {"application/json"}}, Body: b})
	}
	u, err := url.Parse(req.URL)
	if err != nil {
		return reply(http.StatusBadRequest, map[string]string{"error": err.Error()})
	}
	if req.Method != "" && req.Method != http.MethodGet {
		return reply(http.StatusMethodNotAllowed, map[string]string{"error": "only GET"})
	}
	path := strings.Trim(req.Path, "/")
	if path == "" {
		path = strings.Trim(u.Path, "/")
	}
	qv := u.Query()
	var col string
	var where []string
	var args []any
	limit := maxPickValues
	switch path {
	case "sites":
		col, limit = "site", maxPickSites
	case "assets":
		col = "asset"
		if s := qv.Get("site"); s != "" {
			where, args = append(where, "site = ?"), append(args, s)
		}
	case "metrics":
		col = "metric"
		if s := qv.Get("site"); s != "" {
			where, args = append(where, "site = ?"), append(args, s)
		}
		if a := qv.Get("asset"); a != "" {
			where, args = append(where, "asset = ?"), append(args, a)
		}
	default:
		return reply(http.StatusNotFound, map[string]string{"error": "no resource " + path + ": sites, assets, metrics"})
	}
	if p := qv.Get("prefix"); p != "" {
		esc := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(p)
		where, args = append(where, col+" LIKE ?"), append(args, esc+"%")
	}
	sql := fmt.Sprintf("SELECT DISTINCT %s FROM %s.%s", col, d.cfg.Database, schema.TableTelemetry1h)
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += fmt.Sprintf(" ORDER BY %s LIMIT %d", col, limit)
	rows, err := d.conn.Query(ctx, sql, args...)
	if err != nil {
		return reply(http.StatusBadGateway, map[string]string{"error": err.Error()})
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return reply(http.StatusBadGateway, map[string]string{"error": err.Error()})
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return reply(http.StatusBadGateway, map[string]string{"error": err.Error()})
	}
	return reply(http.StatusOK, out)
}
