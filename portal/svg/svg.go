// Package svg draws the portal's charts and map as accessible inline SVG on
// the server: no script, no external service. Every drawing has role="img",
// a <title> and a <desc> that says in words what it shows.
//
// Output is deterministic (the same input gives the same bytes), every
// label is escaped, numbers and dates are written the Italian way
// (1.234,5; 30/06/2026; feb 2023) and colours come from Bootstrap Italia's
// palette with WCAG 2.1 AA contrast on white. Values that cannot be drawn
// (NaN, infinities, dates outside years 1000-9999) are left out and
// counted in the description; Render never panics.
//
// The element ids of a drawing (its <title> and <desc>) derive from a hash
// of its kind, title and description; set ID when two drawings on one page
// could share those.
package svg

import (
	"html/template"
	"time"
)

// Point is one value of a line at a date.
type Point struct {
	At    time.Time
	Value float64
}

// Line is one series of a LineChart.
type Line struct {
	Name   string // legend label (Italian)
	Points []Point
	Dashed bool // e.g. a projection
}

// Mark is a published figure drawn as a labelled dot at its date.
type Mark struct {
	At    time.Time
	Value float64
	Label string // e.g. "F16: 2.548 interventi conclusi (Poste, 30/11/2024)"
}

// LineChart is a dated chart: lines, an optional target level and
// deadline, and published figures as marks.
type LineChart struct {
	Title, Desc   string
	Width, Height int // viewBox size; 0: 720x320
	Lines         []Line
	Target        float64 // 0: none
	TargetLabel   string
	Deadline      time.Time // zero: none
	Marks         []Mark
	Unit          string // shown on the y axis, e.g. "uffici"
	// ID, if set, prefixes the chart's element ids ([A-Za-z0-9_-] kept);
	// empty: derived from a hash of Title and Desc.
	ID string
}

// Render returns the chart as an <svg> element: a time x axis with month
// or year ticks, a y axis from 0 with round ticks, each line with its own
// colour and dash pattern, the target as a dashed horizontal line, the
// deadline as a vertical line ("scadenza dd/mm/yyyy"), marks as circles
// with a tooltip, and a legend. The x axis spans every point, mark and the
// deadline; the y axis every value, mark and the target. Lines are drawn
// in date order whatever the order of their points; a Dashed line is
// never solid.
func (c LineChart) Render() template.HTML { return c.render() }

// Bar is one bar of a BarChart: Value out of Max (Max 0: no scale bar).
type Bar struct {
	Label string
	Value float64
	Max   float64
	Note  string // shown after the value, e.g. "di 7.000 (fonte F3)"
}

// BarChart is a horizontal bar chart.
type BarChart struct {
	Title, Desc string
	Bars        []Bar
	Unit        string
	Width       int    // viewBox width; 0: 720 (the height follows the bars)
	ID          string // as LineChart.ID
}

// Render returns the chart as an <svg> element: one row per bar with its
// label, the bar and below it the value and note. A bar with Max > 0 is
// drawn on a track that stands for Max, with the percentage at the right;
// bars without Max share one scale, the largest of their values.
func (c BarChart) Render() template.HTML { return c.render() }

// Tile is one region of a TileMap.
type Tile struct {
	Region string  // region slug, as progress.Area.Slug ("valle-d-aosta", "emilia-romagna", ...)
	Label  string  // shown on the tile, e.g. "ER"
	Value  float64 // 0..1: colours the tile
	Text   string  // accessible text, e.g. "Emilia-Romagna: 61% degli uffici completati"
	Href   string  // link of the tile ("" : none)
}

// TileMap is a tile map of Italy's 20 regions, each a square at a fixed
// grid position approximating its place on the map.
type TileMap struct {
	Title, Desc string
	Tiles       []Tile
	Legend      string
	ID          string // as LineChart.ID
}

// Render returns the map as an <svg> element. All 20 regions are drawn,
// those without a tile (or with a NaN value) as dashed outlines marked
// "n.d.". Values are clamped to 0..1 and coloured in five classes. Region
// accepts the slugs listed in regions and the variants "valle-daosta" and
// "trentino-alto-adigesudtirol" (see RegionIndex); tiles for unknown
// regions, and second tiles for one region, are ignored and counted in
// the description. A tile with a safe Href (relative, http, https or
// mailto) is wrapped in a focusable <a> whose aria-label is Text.
func (m TileMap) Render() template.HTML { return m.render() }
