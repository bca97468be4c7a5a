package polisds

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"

	"github.com/polis-platform/polis/storage/schema"
)

// AlertsQuery is the JSON model of an "alerts" query: the alert history
// (polis.alerts) of some sites and assets in the panel's range. Format
// "table" (default) is every change as a row; "annotations" is one region
// per alert occurrence, from fired to resolved (a still-firing alert ends
// at the range's end or now, whichever is first, and is tagged "firing").
type AlertsQuery struct {
	QueryType  string   `json:"queryType"` // "alerts"
	Sites      []string `json:"sites"`
	Assets     []string `json:"assets"`
	Rules      []string `json:"rules"`      // rule ids
	Severities []string `json:"severities"` // e.g. critical, warning
	Format     string   `json:"format"`     // table (default) or annotations
}

// Alert query formats.
const (
	FormatTable       = "table"
	FormatAnnotations = "annotations"
)

// maxAlertRows bounds the rows an alerts query reads.
const maxAlertRows = 100000

// annotationLookback is how long before the range's start a fired change
// is looked for, so an alert fired before the range and resolved in it
// (or still firing) still shows as a region.
const annotationLookback = 30 * 24 * time.Hour

// alertRow is one change of the alert history.
type alertRow struct {
	ts                                                    time.Time
	kind, state, severity, fingerprint, rule, site, asset string
	summary                                               string
	value                                                 float64
	fired, resolved                                       time.Time
	occurrence                                            uint32
}

// millis is column col with its milliseconds, in Unix milliseconds, for
// flavor f (Legacy keeps them in col_ms).
func millis(f schema.Flavor, col string) string {
	if f == schema.Modern {
		return "toUInt64(toUnixTimestamp64Milli(" + col + "))"
	}
	return "toUInt64(toUInt32(" + col + ")) * 1000 + " + col + "_ms"
}

func alertsSQL(db string, f schema.Flavor, q AlertsQuery, from, to time.Time, kinds []string) (string, []any, error) {
	var where []string
	var args []any
	for _, l := range []struct {
		col  string
		vals []string
	}{{"site", q.Sites}, {"asset", q.Assets}, {"rule_id", q.Rules}, {"severity", q.Severities}, {"kind", kinds}} {
		if len(l.vals) == 0 {
			continue
		}
		if len(l.vals) > maxListValues {
			return "", nil, badQuery("at most %d values of %s per query", maxListValues, l.col)
		}
		where = append(where, l.col+" IN ("+strings.TrimSuffix(strings.Repeat("?, ", len(l.vals)), ", ")+")")
		for _, v := range l.vals {
			args = append(args, v)
		}
	}
	hi := to.Unix()
	if to.After(time.Unix(hi, 0)) {
		hi++
	}
	where = append(where, "ts >= toDateTime(?)", "ts < toDateTime(?)")
	args = append(args, from.Unix(), hi)
	sql := fmt.Sprintf(`SELECT %s AS t, kind, state, severity, fingerprint, rule_id, site, asset, summary, value,
    toUInt32(fired_at) AS fired, toUInt32(resolved_at) AS resolved, occurrence
FROM %s.%s FINAL
WHERE %s
ORDER BY t, fingerprint
LIMIT %d`, millis(f, "ts"), db, schema.TableAlerts, strings.Join(where, " AND "), maxAlertRows)
	return sql, args, nil
}

func (d *Datasource) alertRows(ctx context.Context, q AlertsQuery, from, to time.Time, kinds []string) ([]alertRow, string, error) {
	f, err := d.Flavor(ctx)
	if err != nil {
		return nil, "", err
	}
	sql, args, err := alertsSQL(d.cfg.Database, f, q, from, to, kinds)
	if err != nil {
		return nil, "", err
	}
	rows, err := d.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, sql, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, schema.TableAlerts, err)
	}
	defer rows.Close()
	var out []alertRow
	for rows.Next() {
		var r alertRow
		var t uint64
		var fired, resolved uint32
		if err := rows.Scan(&t, &r.kind, &r.state, &r.severity, &r.fingerprint, &r.rule, &r.site, &r.asset,
			&r.summary, &r.value, &fired, &resolved, &r.occurrence); err != nil {
			return nil, sql, fmt.Errorf("cannot read %s.%s: %w", d.cfg.Database, schema.TableAlerts, err)
		}
		r.ts = time.UnixMilli(int64(t)).UTC()
		if fired > 0 {
			r.fired = time.Unix(int64(fired), 0).UTC()
		}
		if resolved > 0 {
			r.resolved = time.Unix(int64(resolved), 0).UTC()
		}
		out = append(out, r)
	}
	return out, sql, rows.Err()
}

func (d *Datasource) alerts(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q AlertsQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the alerts query: %v", err)
	}
	q.Sites, q.Assets = allOrList(q.Sites), allOrList(q.Assets)
	from, to := dq.TimeRange.From.UTC(), dq.TimeRange.To.UTC()
	switch q.Format {
	case "", FormatTable:
		rs, sql, err := d.alertRows(ctx, q, from, to, nil)
		if err != nil {
			return backend.DataResponse{}, err
		}
		return backend.DataResponse{Frames: data.Frames{alertTable(rs, sql)}}, nil
	case FormatAnnotations:
		rs, sql, err := d.alertRows(ctx, q, from.Add(-annotationLookback), to, []string{"fired", "resolved"})
		if err != nil {
			return backend.DataResponse{}, err
		}
		return backend.DataResponse{Frames: data.Frames{alertAnnotations(rs, from, to, time.Now(), sql)}}, nil
	}
	return backend.DataResponse{}, badQuery("unknown format %q: want table or annotations", q.Format)
}

// alertTable is the history as a table frame, oldest change first.
func alertTable(rs []alertRow, sql string) *data.Frame {
	fr := data.NewFrame("alerts",
		data.NewField("time", nil, []time.Time{}),
		data.NewField("kind", nil, []string{}),
		data.NewField("state", nil, []string{}),
		data.NewField("severity", nil, []string{}),
		data.NewField("rule", nil, []string{}),
		data.NewField("site", nil, []string{}),
		data.NewField("asset", nil, []string{}),
		data.NewField("summary", nil, []string{}),
		data.NewField("value", nil, []float64{}),
		data.NewField("fingerprint", nil, []string{}),
		data.NewField("occurrence", nil, []uint32{}),
		data.NewField("fired", nil, []*time.Time{}),
		data.NewField("resolved", nil, []*time.Time{}),
	)
	opt := func(t time.Time) *time.Time {
		if t.IsZero() {
			return nil
		}
		return &t
	}
	for _, r := range rs {
		fr.AppendRow(r.ts, r.kind, r.state, r.severity, r.rule, r.site, r.asset, r.summary, r.value,
			r.fingerprint, r.occurrence, opt(r.fired), opt(r.resolved))
	}
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeTable, ExecutedQueryString: sql}
	return fr
}

// alertAnnotations turns fired and resolved changes into one region per
// occurrence (fingerprint, occurrence) that overlaps [from, to).
func alertAnnotations(rs []alertRow, from, to, now time.Time, sql string) *data.Frame {
	type region struct {
		start, end time.Time
		open       bool
		r          alertRow
	}
	type key struct {
		fp  string
		occ uint32
	}
	regions := map[key]*region{}
	var order []key
	for _, r := range rs {
		k := key{r.fingerprint, r.occurrence}
		g, ok := regions[k]
		if !ok {
			g = &region{r: r}
			regions[k] = g
			order = append(order, k)
		}
		switch r.kind {
		case "fired":
			g.start, g.open, g.r = r.ts, g.end.IsZero(), r
		case "resolved":
			g.end, g.open = r.ts, false
			if g.start.IsZero() {
				g.start = r.fired // its fired change is before the lookback
			}
			if g.r.kind != "fired" {
				g.r = r
			}
		}
	}
	end := to
	if now.Before(end) {
		end = now
	}
	fr := data.NewFrame("alerts",
		data.NewField("time", nil, []time.Time{}),
		data.NewField("timeEnd", nil, []time.Time{}),
		data.NewField("text", nil, []string{}),
		data.NewField("tags", nil, []string{}),
	)
	var out []*region
	for _, k := range order {
		g := regions[k]
		if g.start.IsZero() {
			continue
		}
		if g.open {
			g.end = end
			if g.end.Before(g.start) {
				g.end = g.start
			}
		}
		if g.end.Before(from) || !g.start.Before(to) {
			continue
		}
		out = append(out, g)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].start.Before(out[j].start) })
	for _, g := range out {
		text := g.r.summary
		if text == "" {
			text = g.r.rule
		}
		text = fmt.Sprintf("%s (%s/%s)", text, g.r.site, g.r.asset)
		tags := []string{g.r.rule, g.r.severity, g.r.site, g.r.asset}
		if g.open {
			tags = append(tags, "firing")
		} else {
			tags = append(tags, "resolved")
		}
		fr.AppendRow(g.start, g.end, text, strings.Join(nonEmpty(tags), ","))
	}
	fr.Meta = &data.FrameMeta{ExecutedQueryString: sql}
	return fr
}

func nonEmpty(ss []string) []string {
	out := ss[:0]
	for _, s := range ss {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
