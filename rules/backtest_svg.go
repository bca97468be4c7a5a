package rules

import (
	"fmt"
	"html"
	"io"
	"slices"
	"time"
)

// maxSVGRows bounds the timeline; the rest are counted in a last line.
const maxSVGRows = 40

// BacktestSVG draws a backtest's occurrences as a timeline: a row per rule
// and asset, a bar from firing to resolution (to the end of the range when
// still open), red for critical, amber for warning, blue for info.
func BacktestSVG(w io.Writer, res BacktestResult) {
	type row struct {
		key  string
		bars []BacktestAlert
	}
	var rows []*row
	index := map[string]*row{}
	for _, a := range res.Alerts {
		k := a.Rule + "  " + a.Site + "/" + a.Asset
		r := index[k]
		if r == nil {
			r = &row{key: k}
			index[k] = r
			rows = append(rows, r)
		}
		r.bars = append(r.bars, a)
	}
	slices.SortStableFunc(rows, func(a, b *row) int {
		switch {
		case a.key < b.key:
			return -1
		case a.key > b.key:
			return 1
		}
		return 0
	})
	hidden := 0
	if len(rows) > maxSVGRows {
		hidden = len(rows) - maxSVGRows
		rows = rows[:maxSVGRows]
	}
	const left, width, rowH, top = 300, 700, 18, 40
	height := top + rowH*len(rows) + 40
	span := res.To.Sub(res.From)
	x := func(t time.Time) float64 {
		if span <= 0 {
			return left
		}
		return left + float64(width)*float64(t.Sub(res.From))/float64(span)
	}
	fmt.Fprintf(w, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="11">`+"\n", left+width+20, height)
	fmt.Fprintf(w, `<text x="10" y="18" font-size="13">Backtest %s .. %s: %d points, %d occurrences</text>`+"\n",
		res.From.Format(time.RFC3339), res.To.Format(time.RFC3339), res.Points, len(res.Alerts))
	// Ticks: five, labelled with their time.
	for i := 0; i <= 4; i++ {
		t := res.From.Add(span * time.Duration(i) / 4)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x(t), top-6, x(t), top+rowH*len(rows))
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle" fill="#666">%s</text>`+"\n", x(t), top-10, t.UTC().Format("01-02 15:04"))
	}
	colour := map[string]string{"critical": "#d62728", "warning": "#ff9f1c", "info": "#1f77b4"}
	for i, r := range rows {
		y := top + i*rowH
		fmt.Fprintf(w, `<text x="10" y="%d">%s</text>`+"\n", y+12, html.EscapeString(r.key))
		for _, a := range r.bars {
			end := a.ResolvedAt
			if end.IsZero() {
				end = res.To
			}
			x0, x1 := x(a.FiredAt), x(end)
			c := colour[a.Severity]
			if c == "" {
				c = "#888"
			}
			fmt.Fprintf(w, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s</title></rect>`+"\n",
				x0, y+3, max(x1-x0, 1.5), rowH-6, c, html.EscapeString(a.FiredAt.Format(time.RFC3339)+" "+a.Summary))
		}
	}
	if hidden > 0 {
		fmt.Fprintf(w, `<text x="10" y="%d" fill="#666">and %d more rows</text>`+"\n", top+rowH*len(rows)+16, hidden)
	}
	fmt.Fprintln(w, "</svg>")
}
