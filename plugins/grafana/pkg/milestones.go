package polisds

import (
	"context"
	"encoding/json"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
)

// MilestonesQuery is the JSON model of a "milestones" query: the
// programme's milestones from the platform API (GET /api/v1/milestones),
// one row each, for stat and bar-gauge panels. Lines, when set, keeps the
// milestones of those lines (programma, sportello_unico,
// spazi_per_italia); IDs keeps those milestones.
type MilestonesQuery struct {
	QueryType string   `json:"queryType"` // "milestones"
	Lines     []string `json:"lines,omitempty"`
	IDs       []string `json:"ids,omitempty"`
}

type apiMilestone struct {
	ID       string  `json:"id"`
	Title    string  `json:"title"`
	Line     string  `json:"line"`
	Count    string  `json:"count"`
	Target   int64   `json:"target"`
	Current  int64   `json:"current"`
	Expected int64   `json:"expected"`
	Percent  float64 `json:"percent"`
	Start    string  `json:"start"`
	Deadline string  `json:"deadline"`
	Status   string  `json:"status"`
}

func (d *Datasource) milestones(ctx context.Context, dq backend.DataQuery) (backend.DataResponse, error) {
	var q MilestonesQuery
	if err := json.Unmarshal(dq.JSON, &q); err != nil {
		return backend.DataResponse{}, badQuery("cannot read the milestones query: %v", err)
	}
	var list struct {
		At    time.Time      `json:"at"`
		Items []apiMilestone `json:"items"`
	}
	if err := d.apiGet(ctx, "/api/v1/milestones", &list); err != nil {
		return backend.DataResponse{}, err
	}
	keep := func(v string, set []string) bool {
		if len(set) == 0 {
			return true
		}
		for _, s := range set {
			if s == v {
				return true
			}
		}
		return false
	}
	fr := data.NewFrame("milestones",
		data.NewField("id", nil, []string{}),
		data.NewField("title", nil, []string{}),
		data.NewField("line", nil, []string{}),
		data.NewField("current", nil, []int64{}),
		data.NewField("target", nil, []int64{}),
		data.NewField("expected", nil, []int64{}),
		data.NewField("percent", nil, []float64{}),
		data.NewField("status", nil, []string{}),
		data.NewField("deadline", nil, []string{}),
	)
	fr.Fields[6].Config = &data.FieldConfig{Unit: "percent"}
	for _, m := range list.Items {
		if !keep(m.Line, q.Lines) || !keep(m.ID, q.IDs) {
			continue
		}
		fr.AppendRow(m.ID, m.Title, m.Line, m.Current, m.Target, m.Expected, m.Percent, m.Status, m.Deadline)
	}
	fr.Meta = &data.FrameMeta{Type: data.FrameTypeTable, ExecutedQueryString: "GET /api/v1/milestones"}
	if !list.At.IsZero() {
		fr.AppendNotices(data.Notice{Severity: data.NoticeSeverityInfo, Text: "computed at " + list.At.UTC().Format(time.RFC3339)})
	}
	return backend.DataResponse{Frames: data.Frames{fr}}, nil
}
