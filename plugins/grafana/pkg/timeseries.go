package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

// TimeSeriesQuery is the JSON model of a "timeseries" query: the metrics of
// some assets of some sites, one series (frame) per site, asset and metric,
// aggregated into buckets of the panel's interval. An empty list matches
// every value.
type TimeSeriesQuery struct {
	QueryType   string   `json:"queryType"` // "timeseries"
	Sites       []string `json:"sites"`
	Assets      []string `json:"assets"`
	Metrics     []string `json:"metrics"`
	Aggregation string   `json:"aggregation"` // avg (default), min, max, last, count, sum
	// AdhocFilters are Grafana's ad hoc filters: keys site, asset and
	// metric (operators =, !=, =~, !~; =~ is a re2 match of the whole
	// value) on ClickHouse, and region (= or !=) through the API's site
	// list.
	AdhocFilters []AdhocFilter `json:"adhocFilters,omitempty"`
}

// AdhocFilter is one of Grafana's ad hoc filters.
type AdhocFilter struct {
	Key       string `json:"key"`
	Operator  string `json:"operator"`
	Value     string `json:"value"`
	Condition string `json:"condition,omitempty"` // Grafana sends it; only AND is supported
}

// adhocWhere turns the ad hoc filters on site, asset and metric into SQL
// conditions; regionSites are the site lists the region filters resolved
// to (in order), each with its operator.
func adhocWhere(fs []AdhocFilter, regionSites map[int][]string) ([]string, []any, error) {
	var where []string
	var args []any
	for i, f := range fs {
		if f.Condition != "" && !strings.EqualFold(f.Condition, "AND") {
			return nil, nil, badQuery("ad hoc filter %s: only AND conditions", f.Key)
		}
		switch f.Key {
		case "site", "asset", "metric":
			switch f.Operator {
			case "=", "":
				where, args = append(where, f.Key+" = ?"), append(args, f.Value)
			case "!=":
				where, args = append(where, f.Key+" != ?"), append(args, f.Value)
			case "=~", "!~":
				c := "match(" + f.Key + ", ?)"
				if f.Operator == "!~" {
					c = "NOT " + c
				}
				where, args = append(where, c), append(args, "^(?:"+f.Value+")$")
			default:
				return nil, nil, badQuery("ad hoc filter %s: operator %q, want =, !=, =~ or !~", f.Key, f.Operator)
			}
		case "region":
			sites := regionSites[i]
			not := f.Operator == "!="
			if len(sites) == 0 {
				if !not {
					where = append(where, "0")
				}
				continue
			}
			c := "site IN (" + strings.TrimSuffix(strings.Repeat("?, ", len(sites)), ", ") + ")"
			if not {
				c = "NOT " + c
			}
			where = append(where, c)
			for _, s := range sites {
				args = append(args, s)
			}
		default:
			return nil, nil, badQuery("ad hoc filter on %q: keys are site, asset, metric and region", f.Key)
		}
	}
	return where, args, nil
}

// regionSites resolves the region ad hoc filters into their sites (API).
func (d *Datasource) regionSites(ctx context.Context, fs []AdhocFilter) (map[int][]string, error) {
	out := map[int][]string{}
	for i, f := range fs {
		if f.Key != "region" {
			continue
		}
		if f.Operator != "=" && f.Operator != "!=" && f.Operator != "" {
			return nil, badQuery("ad hoc filter region: operator %q, want = or !=", f.Operator)
		}
		sites, _, err := d.listSites(ctx, SiteFilter{Region: f.Value}, maxPickSites)
		if err != nil {
			return nil, err
		}
		for _, s := range sites {
			out[i] = append(out[i], s.ID)
		}
	}
	return out, nil
}

// Aggregations a TimeSeriesQuery may ask for.
var Aggregations = []string{"avg", "min", "max", "last", "count", "sum"}

// maxListValues bounds each of a query's lists (one placeholder each).
const maxListValues = 500

// maxSeriesPoints bounds the rows of one timeseries query.
const maxSeriesPoints = 500000

// TimeSeriesMeta is the Custom meta of a timeseries frame.
type TimeSeriesMeta struct {
	Resolution string `json:"resolution"` // raw, 1m or 1h (storage.ChooseResolution)
	Table      string `json:"table"`
	BucketSecs int64  `json:"bucketSeconds"`
}

// Unit is the Grafana unit of a metric, from its name's suffix; "" when
// the suffix names none.
func Unit(metric string) string {
	for _, u := range []struct{ suffix, unit string }{
		{"_kwh", "kwatth"}, {"_kw", "kwatt"}, {"_c", "celsius"}, {"_pct", "percent"}, {"_ppm", "ppm"},
	} {
		if strings.HasSuffix(metric, u.suffix) {
			return u.unit
		}
	}
	return ""
}

// seriesPlan is how a timeseries query reads: the table, the bucket width
// and the SQL.
type seriesPlan struct {
	resolution, table string
	bucket            int64 // seconds
	sql               string
	args              []any
}

// planTimeSeries picks the table with storage.ChooseResolution from the
// panel's range and interval, and builds the query: buckets of the
// interval rounded up to whole table buckets (raw: whole seconds), exact
// over the rollups (avg = sum of sums / sum of counts, last = the newest
// sample's value).
func planTimeSeries(db string, f schema.Flavor, q TimeSeriesQuery, regions map[int][]string, from, to time.Time, interval time.Duration) (seriesPlan, error) {
	p := seriesPlan{resolution: storage.ChooseResolution(from, to, interval)}
	var width int64
	switch p.resolution {
	case storage.ResolutionRaw:
		p.table, width = schema.TableTelemetry, 1
	case storage.ResolutionMinute:
		p.table, width = schema.TableTelemetry1m, 60
	default:
		p.table, width = schema.TableTelemetry1h, 3600
	}
	step := int64(interval / time.Second)
	p.bucket = max(width, (step+width-1)/width*width)

	var agg, timeCol string
	if p.table == schema.TableTelemetry {
		timeCol = "ts"
		lastKey := "ts"
		if f != schema.Modern {
			lastKey = "toUInt64(toUInt32(ts)) * 1000 + ts_ms"
		}
		agg = map[string]string{
			"avg": "avg(value)", "min": "min(value)", "max": "max(value)", "sum": "sum(value)",
			"count": "toFloat64(count())", "last": "argMax(value, " + lastKey + ")",
		}[q.Aggregation]
	} else {
		timeCol = "bucket"
		agg = map[string]string{
			"avg": "if(sum(count) = 0, nan, sum(sum) / sum(count))", "min": "min(min)", "max": "max(max)",
			"sum": "sum(sum)", "count": "toFloat64(sum(count))", "last": "argMax(last, last_ts)",
		}[q.Aggregation]
	}
	var where []string
	var args []any
	for _, l := range []struct {
		col  string
		vals []string
	}{{"site", q.Sites}, {"asset", q.Assets}, {"metric", q.Metrics}} {
		if len(l.vals) == 0 {
			continue
		}
		if len(l.vals) > maxListValues {
			return p, badQuery("at most %d %ss per query", maxListValues, l.col)
		}
		// One placeholder per value: 18.16 refuses a slice bound to IN (?).
		where = append(where, l.col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(l.vals)), ", ")+")")
		for _, v := range l.vals {
			args = append(args, v)
		}
	}
	ahWhere, ahArgs, err := adhocWhere(q.AdhocFilters, regions)
	if err != nil {
		return p, err
	}
	where, args = append(where, ahWhere...), append(args, ahArgs...)
	lo, hi := from.Unix(), to.Unix()
	if to.After(time.Unix(hi, 0)) {
		hi++ // [from, to) in whole seconds, to rounded up
	}
	where = append(where, timeCol+" >= toDateTime(?)", timeCol+" < toDateTime(?)")
	args = append(args, lo, hi)
	p.sql = fmt.Sprintf(`SELECT site, asset, metric, toDateTime(intDiv(toUInt32(%[1]s), %[2]d) * %[2]d) AS t, toFloat64(%[3]s) AS v
FROM %[4]s.%[5]s FINAL
WHERE %[6]s
GROUP BY site, asset, metric, t
ORDER BY site, asset, metric, t
LIMIT %[7]d`, timeCol, p.bucket, agg, db, p.table, strings.Join(where, " AND "), maxSeriesPoints+1)
	p.args = args
	return p, nil
}

func (d *Datasource) timeSeries(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q TimeSeriesQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the timeseries query: %v", err)
	}
	q.Sites, q.Assets, q.Metrics = allOrList(q.Sites), allOrList(q.Assets), allOrList(q.Metrics)
	if q.Aggregation == "" {
		q.Aggregation = "avg"
	}
	known := false
	for _, a := range Aggregations {
		known = known || a == q.Aggregation
	}
	if !known {
		return backend.DataResponse{}, badQuery("unknown aggregation %q: want one of %s", q.Aggregation, strings.Join(Aggregations, ", "))
	}
	if !dq.TimeRange.To.After(dq.TimeRange.From) {
		return backend.DataResponse{}, badQuery("empty time range %s to %s", dq.TimeRange.From, dq.TimeRange.To)
	}
	f, err := d.Flavor(ctx)
	if err != nil {
		return backend.DataResponse{}, err
	}
	regions, err := d.regionSites(ctx, q.AdhocFilters)
	if err != nil {
		return backend.DataResponse{}, err
	}
	p, err := planTimeSeries(d.cfg.Database, f, q, regions, dq.TimeRange.From.UTC(), dq.TimeRange.To.UTC(), dq.Interval)
	if err != nil {
		return backend.DataResponse{}, err
	}
	rows, err := d.conn.Query(ctx, p.sql, p.args...)
	if err != nil {
		return backend.DataResponse{}, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, p.table, err)
	}
	defer rows.Close()
	meta := &data.FrameMeta{
		Type:                data.FrameTypeTimeSeriesMulti,
		TypeVersion:         data.FrameTypeVersion{0, 1},
		ExecutedQueryString: p.sql,
		Custom:              TimeSeriesMeta{Resolution: p.resolution, Table: p.table, BucketSecs: p.bucket},
	}
	var (
		resp  backend.DataResponse
		cur   *data.Frame
		key   [3]string
		n     int
		site  string
		asset string
		m     string
		t     time.Time
		v     float64
	)
	for rows.Next() {
		if err := rows.Scan(&site, &asset, &m, &t, &v); err != nil {
			return backend.DataResponse{}, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, p.table, err)
		}
		if n++; n > maxSeriesPoints {
			meta.Notices = append(meta.Notices, data.Notice{Severity: data.NoticeSeverityWarning,
				Text: fmt.Sprintf("cut at %d points: choose fewer series or a larger interval", maxSeriesPoints)})
			break
		}
		if cur == nil || key != [3]string{site, asset, m} {
			key = [3]string{site, asset, m}
			value := data.NewField("value", data.Labels{"site": site, "asset": asset, "metric": m}, []float64{})
			value.Config = &data.FieldConfig{Unit: Unit(m)}
			cur = data.NewFrame(site+"/"+asset+"/"+m, data.NewField("time", nil, []time.Time{}), value)
			cur.Meta = meta
			resp.Frames = append(resp.Frames, cur)
		}
		cur.AppendRow(t.UTC(), v)
	}
	if err := rows.Err(); err != nil {
		return backend.DataResponse{}, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, p.table, err)
	}
	if len(resp.Frames) == 0 {
		// An empty frame keeps the meta (resolution, query) visible.
		fr := data.NewFrame("", data.NewField("time", nil, []time.Time{}), data.NewField("value", nil, []float64{}))
		fr.Meta = meta
		resp.Frames = append(resp.Frames, fr)
	}
	return resp, nil
}

// allOrList is vals, or nil (every value) when one of them is Grafana's
// All ("$__all", "All", "*") or all are empty.
func allOrList(vals []string) []string {
	var out []string
	for _, v := range vals {
		if strings.TrimSpace(v) == "" {
			continue
		}
		if unset(v) {
			return nil
		}
		out = append(out, v)
	}
	return out
}
