package e2e

import (
	"fmt"
	"html"
	"math"
	"slices"
	"strconv"
	"strings"
)

// plotLine is one series of a panel: x in seconds from the run's first
// sample.
type plotLine struct {
	name string
	x, y []float64
}

type plotPanel struct {
	title, unit string
	lines       []plotLine
}

// Colours of the lines, in order (distinct for colour-blind readers:
// Okabe–Ito).
var plotColours = []string{"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9"}

const (
	plotW      = 960
	plotPanelH = 150
	plotLeft   = 90
	plotRight  = 20
	plotGap    = 46
	plotTop    = 70
)

// SVG draws the scenario's time series: throughput, connections, CPU and
// memory by component and Kafka lag, one panel each, with the phases of
// the run as vertical lines.
func (r *ScenarioResult) SVG() []byte {
	if len(r.Series) == 0 {
		return renderPlot("Polis fleet load test: "+r.Scenario.Name(), "no samples", nil, nil, 0)
	}
	t0 := r.Series[0].At
	xs := func(s Sample) float64 { return s.At.Sub(t0).Seconds() }
	rate := func(get func(Sample) float64) plotLine {
		var l plotLine
		for i := 1; i < len(r.Series); i++ {
			a, b := r.Series[i-1], r.Series[i]
			dt := b.At.Sub(a.At).Seconds()
			if dt <= 0 {
				continue
			}
			l.x = append(l.x, xs(b))
			l.y = append(l.y, max(0, get(b)-get(a))/dt)
		}
		return l
	}
	gauge := func(get func(Sample) float64) plotLine {
		var l plotLine
		for _, s := range r.Series {
			l.x = append(l.x, xs(s))
			l.y = append(l.y, get(s))
		}
		return l
	}
	comps := componentsOf(r.Series)
	var cpu, mem []plotLine
	for _, c := range comps {
		l := rate(func(s Sample) float64 { return s.CPU[c].Seconds() })
		l.name = c
		cpu = append(cpu, l)
		m := gauge(func(s Sample) float64 { return float64(s.RSS[c]) / (1 << 20) })
		m.name = c
		mem = append(mem, m)
	}
	acc := rate(func(s Sample) float64 { return s.Ingested })
	acc.name = "accepted msgs/s (acknowledged: Kafka has them)"
	rows := rate(func(s Sample) float64 { return s.Rows })
	rows.name = "rows/s into ClickHouse"
	conns := gauge(func(s Sample) float64 { return s.Connected })
	conns.name = "MQTT connections held"
	lag := gauge(func(s Sample) float64 { return s.Lag })
	lag.name = "storage writers' lag (records)"
	panels := []plotPanel{
		{title: "Throughput", unit: "per second", lines: []plotLine{acc, rows}},
		{title: "Connections", unit: "connections", lines: []plotLine{conns}},
		{title: "CPU by component", unit: "cores", lines: cpu},
		{title: "Resident memory by component", unit: "MiB", lines: mem},
		{title: "Kafka lag", unit: "records", lines: []plotLine{lag}},
	}
	var marks []plotMark
	for _, e := range r.Events {
		marks = append(marks, plotMark{x: e.At.Sub(t0).Seconds(), name: e.Name})
	}
	sub := fmt.Sprintf("platform processes: %d; connections held: %s; devices: %s", r.Processes, num(r.Held), num(r.Devices))
	if p := r.Probe; p != nil && len(p.SeenLat) > 0 {
		sub += fmt.Sprintf("; publish → queryable p50 %s, p99 %s, max %s (%d probes)",
			ms(percentile(p.SeenLat, 0.5)), ms(percentile(p.SeenLat, 0.99)), ms(p.SeenLat[len(p.SeenLat)-1]), len(p.SeenLat))
	}
	return renderPlot("Polis fleet load test: "+r.Scenario.Name(), sub, panels, marks, xs(r.Series[len(r.Series)-1]))
}

func componentsOf(ss []Sample) []string {
	seen := map[string]bool{}
	for _, s := range ss {
		for c := range s.CPU {
			seen[c] = true
		}
	}
	order := []string{compPlatform, compSimulator, compClickHouse, compKafka, compMosquitto}
	var out []string
	for _, c := range order {
		if seen[c] {
			out = append(out, c)
			delete(seen, c)
		}
	}
	rest := make([]string, 0, len(seen))
	for c := range seen {
		rest = append(rest, c)
	}
	slices.Sort(rest)
	return append(out, rest...)
}

type plotMark struct {
	x    float64
	name string
}

// renderPlot draws stacked panels sharing an x axis of seconds. The output
// depends only on its input.
func renderPlot(title, sub string, panels []plotPanel, marks []plotMark, xmax float64) []byte {
	h := plotTop + len(panels)*(plotPanelH+plotGap) + 30
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="t d" font-family="sans-serif" font-size="12">`+"\n",
		plotW, h, plotW, h)
	fmt.Fprintf(&b, `<title id="t">%s</title><desc id="d">%s</desc>`+"\n", html.EscapeString(title), html.EscapeString(describe(panels, sub)))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#fff"/>`+"\n", plotW, h)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="17" font-weight="bold">%s</text>`+"\n", plotLeft, html.EscapeString(title))
	fmt.Fprintf(&b, `<text x="%d" y="44" fill="#333">%s</text>`+"\n", plotLeft, html.EscapeString(sub))
	xmax = max(xmax, 1)
	x0, x1 := float64(plotLeft), float64(plotW-plotRight)
	sx := func(x float64) float64 { return x0 + (x1-x0)*x/xmax }
	for i, p := range panels {
		top := float64(plotTop + i*(plotPanelH+plotGap))
		bot := top + plotPanelH
		ymax := 0.0
		for _, l := range p.lines {
			for _, v := range l.y {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					ymax = max(ymax, v)
				}
			}
		}
		step, hi := axisStep(ymax)
		sy := func(v float64) float64 { return bot - (bot-top)*v/hi }
		fmt.Fprintf(&b, `<g><text x="%d" y="%s" font-weight="bold">%s</text>`, plotLeft, f1(top-8), html.EscapeString(p.title+" ("+p.unit+")"))
		for k := 0; float64(k)*step <= hi*1.0001; k++ {
			v := float64(k) * step
			y := sy(v)
			fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="#ddd"/><text x="%s" y="%s" text-anchor="end" fill="#333">%s</text>`,
				f1(x0), f1(x1), f1(y), f1(y), f1(x0-6), f1(y+4), html.EscapeString(shortNum(v)))
		}
		for _, m := range marks {
			x := sx(m.x)
			fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="#888" stroke-dasharray="3 3"/>`, f1(x), f1(x), f1(top), f1(bot))
			if i == 0 {
				// Near the right edge the label goes left of its line.
				tx, anchor := x+2, "start"
				if x > x1-80 {
					tx, anchor = x-2, "end"
				}
				fmt.Fprintf(&b, `<text x="%s" y="%s" fill="#555" font-size="10" text-anchor="%s">%s</text>`, f1(tx), f1(top+10), anchor, html.EscapeString(m.name))
			}
		}
		lx := x0 + max(260, 7.5*float64(len(p.title)+len(p.unit))+30)
		for j, l := range p.lines {
			col := plotColours[j%len(plotColours)]
			var pts []string
			for k := range l.x {
				if math.IsNaN(l.y[k]) || math.IsInf(l.y[k], 0) {
					continue
				}
				pts = append(pts, f1(sx(l.x[k]))+","+f1(sy(l.y[k])))
			}
			if len(pts) > 0 {
				fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.6" points="%s"/>`, col, strings.Join(pts, " "))
			}
			fmt.Fprintf(&b, `<rect x="%s" y="%s" width="12" height="4" fill="%s"/><text x="%s" y="%s">%s</text>`,
				f1(lx), f1(top-13), col, f1(lx+16), f1(top-8), html.EscapeString(l.name))
			lx += 24 + 6.5*float64(len(l.name))
		}
		fmt.Fprintf(&b, `<line x1="%s" x2="%s" y1="%s" y2="%s" stroke="#333"/>`, f1(x0), f1(x1), f1(bot), f1(bot))
		xstep, _ := axisStep(xmax)
		for k := 0; float64(k)*xstep <= xmax+1e-9; k++ {
			v := float64(k) * xstep
			x := sx(v)
			fmt.Fprintf(&b, `<text x="%s" y="%s" text-anchor="middle" fill="#333">%s</text>`, f1(x), f1(bot+14), shortNum(v)+" s")
		}
		b.WriteString("</g>\n")
	}
	b.WriteString("</svg>\n")
	return []byte(b.String())
}

// describe says in words what the plot shows: each line's peak.
func describe(panels []plotPanel, sub string) string {
	parts := []string{sub}
	for _, p := range panels {
		for _, l := range p.lines {
			peak := 0.0
			for _, v := range l.y {
				if !math.IsNaN(v) && !math.IsInf(v, 0) {
					peak = max(peak, v)
				}
			}
			parts = append(parts, fmt.Sprintf("%s: %s peak %s %s", p.title, l.name, shortNum(peak), p.unit))
		}
	}
	return strings.Join(parts, ". ")
}

// axisStep picks a round step (1, 2 or 5 × 10^n) giving at most 5 ticks
// up to at least v, and the top of the axis.
func axisStep(v float64) (step, top float64) {
	if !(v > 0) || math.IsInf(v, 0) {
		return 1, 1
	}
	raw := v / 4
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if step = m * mag; step >= raw {
			break
		}
	}
	return step, math.Ceil(v/step) * step
}

func f1(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// shortNum writes 12500 as 12.5k and 3200000 as 3.2M.
func shortNum(v float64) string {
	switch a := math.Abs(v); {
	case a >= 1e6:
		return strconv.FormatFloat(math.Round(v/1e4)/100, 'f', -1, 64) + "M"
	case a >= 1e4:
		return strconv.FormatFloat(math.Round(v/10)/100, 'f', -1, 64) + "k"
	default:
		return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64)
	}
}
