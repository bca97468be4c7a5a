package opendata

import (
	"iter"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/polis-platform/polis/italy"
	"github.com/polis-platform/polis/portal/progress"
)

// ColumnType is the type of a column's values, the same in every format.
type ColumnType string

// The column types. How each is written in each format is in typeDocs.
const (
	TypeString  ColumnType = "string"
	TypeInteger ColumnType = "integer"
	TypeNumber  ColumnType = "number"
	TypeBoolean ColumnType = "boolean"
	TypeDate    ColumnType = "date"
)

// Column is one documented column of a table.
type Column struct {
	Name        string     `json:"name"`
	Type        ColumnType `json:"type"`
	Description string     `json:"description"` // Italian
}

// CSVDialect says how a table's CSV is written.
type CSVDialect struct {
	Separator string `json:"separator"`
	BOM       bool   `json:"bom"`
	Date      string `json:"date"`    // layout of dates, e.g. "AAAA-MM-GG"
	Decimal   string `json:"decimal"` // decimal separator
	Boolean   string `json:"boolean"` // how true and false are written
	LineEnd   string `json:"line_end"`
}

// The two CSV dialects: the plain one of every table, and the national
// layout of the project-level export (progetti.csv).
var (
	PlainCSV = CSVDialect{Separator: ",", BOM: false, Date: "AAAA-MM-GG", Decimal: ".", Boolean: "true/false", LineEnd: "CRLF"}
	// NationalCSV is the layout Italian public portals use for project
	// exports: it opens as is in a spreadsheet set to Italian.
	NationalCSV = CSVDialect{Separator: ";", BOM: true, Date: "GG/MM/AAAA", Decimal: ",", Boolean: "SI/NO", LineEnd: "CRLF"}
)

// Formats a table can be downloaded in.
const (
	FormatCSV     = "csv"
	FormatJSON    = "json"
	FormatParquet = "parquet"
)

// Filters a table may take as query parameters.
const (
	FilterRegione   = "regione"
	FilterProvincia = "provincia"
)

// Table is one downloadable table with its documented columns.
type Table struct {
	Name        string     `json:"name"`
	Title       string     `json:"title"`       // Italian
	Description string     `json:"description"` // Italian
	Columns     []Column   `json:"columns"`
	Formats     []string   `json:"formats"`           // csv, json and, for the big tables, parquet
	Filters     []string   `json:"filters,omitempty"` // query parameters it takes: regione, provincia
	CSV         CSVDialect `json:"csv"`
	// Themes are the EU data themes (GOVE, ECON, REGI, TECH, ENER) of the
	// catalogue; Updates is its accrual periodicity (EU frequency code).
	Themes  []string `json:"-"`
	Updates string   `json:"-"`
}

// HasFormat reports whether the table is served in format.
func (t Table) HasFormat(format string) bool { return slices.Contains(t.Formats, format) }

// HasFilter reports whether the table takes the filter (regione, provincia).
func (t Table) HasFilter(name string) bool { return slices.Contains(t.Filters, name) }

// Tables returns every table with its columns, in the order of the index.
// The slices are copies: the caller may keep and change them.
func Tables() []Table {
	out := make([]Table, len(specs))
	for i, s := range specs {
		out[i] = cloneTable(s.table())
	}
	return out
}

// TableByName returns the table with that name.
func TableByName(name string) (Table, bool) {
	s := specByName(name)
	if s == nil {
		return Table{}, false
	}
	return cloneTable(s.table()), true
}

func cloneTable(t Table) Table {
	t.Columns = slices.Clone(t.Columns)
	t.Formats = slices.Clone(t.Formats)
	t.Filters = slices.Clone(t.Filters)
	t.Themes = slices.Clone(t.Themes)
	return t
}

// Filter selects the rows of one region and/or province (by slug). The
// zero Filter selects every row.
type Filter struct {
	Regione   string // region slug, e.g. "emilia-romagna"
	Provincia string // province slug: its sigla in lower case, e.g. "bz"
}

// IsZero reports whether f selects every row.
func (f Filter) IsZero() bool { return f == Filter{} }

// query is f as a query string ("" or "?regione=...&provincia=...").
// Slugs are [a-z0-9-] (checked by parseFilter), so they need no escaping.
func (f Filter) query() string {
	var q []string
	if f.Regione != "" {
		q = append(q, FilterRegione+"="+f.Regione)
	}
	if f.Provincia != "" {
		q = append(q, FilterProvincia+"="+f.Provincia)
	}
	if len(q) == 0 {
		return ""
	}
	return "?" + strings.Join(q, "&")
}

// Path is the stable URL path of a table in a format, with its filter:
// Path("uffici", "csv", Filter{Regione: "molise"}) is
// "/dati/uffici.csv?regione=molise". It does not check that the table
// exists or takes the filter.
func Path(table, format string, f Filter) string {
	return IndexPath + table + "." + format + f.query()
}

// The stable paths besides the tables.
const (
	IndexPath   = "/dati/"
	CatalogPath = "/dati/catalogo.jsonld"
	FeedPath    = "/feed.atom"
)

// kind is the kind of a value.
type kind uint8

const (
	kNull kind = iota
	kStr
	kInt
	kNum
	kBool
	kDate
)

// value is one cell. It is passed by value so that building a row
// allocates nothing; a date is its day in Italy packed as yyyymmdd in i,
// so that a value holds one pointer (s) and costs the collector little.
type value struct {
	k kind
	b bool
	i int64
	f float64
	s string
}

func null() value          { return value{} }
func str(s string) value   { return value{k: kStr, s: s} }
func integer(n int) value  { return value{k: kInt, i: int64(n)} }
func boolean(b bool) value { return value{k: kBool, b: b} }
func date(t time.Time) value { // the zero time is unknown: null
	if t.IsZero() {
		return value{}
	}
	y, m, d := civil(t)
	return value{k: kDate, i: int64(y)*10000 + int64(m)*100 + int64(d)}
}

// ymd unpacks a date value.
func (v value) ymd() (y int, m time.Month, d int) {
	return int(v.i / 10000), time.Month(v.i / 100 % 100), int(v.i % 100)
}

// optStr is s, or null when s is empty.
func optStr(s string) value {
	if s == "" {
		return value{}
	}
	return str(s)
}

// number is f, or null when it is not finite.
func number(f float64) value {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return value{}
	}
	return value{k: kNum, f: f}
}

// typeOf is the column type a value kind belongs to (null fits any).
func (k kind) fits(t ColumnType) bool {
	switch k {
	case kNull:
		return true
	case kStr:
		return t == TypeString
	case kInt:
		return t == TypeInteger
	case kNum:
		return t == TypeNumber
	case kBool:
		return t == TypeBoolean
	case kDate:
		return t == TypeDate
	}
	return false
}

// rome is the time zone of every date: a date is a day in Italy.
var rome = italy.Rome

// civil is t's calendar day in Italy.
func civil(t time.Time) (y int, m time.Month, d int) { return t.In(rome).Date() }

// field is a column and how to read its value from a row of type R.
type field[R any] struct {
	Column
	get func(R) value
}

// spec is a table: its description and how to write its rows.
type spec interface {
	table() Table
	write(v *view, f Filter, e encoder) error
}

// tableSpec is a table whose rows are of type R.
type tableSpec[R any] struct {
	meta   Table
	fields []field[R]
	rows   func(v *view, f Filter) iter.Seq[R]

	once sync.Once
	tab  Table // meta with its columns, made once
}

// table is the table's description. Its slices are shared: the package
// reads them, Tables hands out copies.
func (t *tableSpec[R]) table() Table {
	t.once.Do(func() {
		m := t.meta
		if m.CSV.Separator == "" {
			m.CSV = PlainCSV
		}
		m.Columns = make([]Column, len(t.fields))
		for i, f := range t.fields {
			m.Columns[i] = f.Column
		}
		t.tab = m
	})
	return t.tab
}

func (t *tableSpec[R]) write(v *view, f Filter, e encoder) error {
	row := make([]value, len(t.fields))
	for r := range t.rows(v, f) {
		for i, fd := range t.fields {
			row[i] = fd.get(r)
		}
		if err := e.row(row); err != nil {
			return err
		}
	}
	return nil
}

// view is a snapshot with the lookups the filters need, built once per
// snapshot (the Snapshot's own index may not be built for a snapshot made
// by hand, and must not be built concurrently with lookups).
type view struct {
	s              *progress.Snapshot
	regions        map[string]*progress.Area // by slug
	provinces      map[string]*progress.Area // by slug
	provinceRegion map[string]string         // province slug -> region slug
}

func newView(s *progress.Snapshot) *view {
	v := &view{
		s:              s,
		regions:        make(map[string]*progress.Area, len(s.Regions)),
		provinces:      make(map[string]*progress.Area, len(s.Provinces)),
		provinceRegion: make(map[string]string, len(s.Provinces)),
	}
	for _, a := range s.Regions {
		if a != nil {
			v.regions[a.Slug] = a
		}
	}
	for _, a := range s.Provinces {
		if a != nil {
			v.provinces[a.Slug] = a
			v.provinceRegion[a.Slug] = a.Parent
		}
	}
	return v
}

// provinceSlug is the slug of an office's province (its sigla in lower case).
func provinceSlug(sigla string) string { return strings.ToLower(sigla) }

// office reports whether an office is in f.
func (f Filter) office(o *progress.Office) bool {
	return (f.Regione == "" || o.RegionSlug == f.Regione) &&
		(f.Provincia == "" || provinceSlug(o.Province) == f.Provincia)
}

// area reports whether an area (a province or a comune) is in f.
func (v *view) area(f Filter, a *progress.Area) bool {
	var region, province string
	switch a.Kind {
	case progress.AreaRegion:
		region = a.Slug
	case progress.AreaProvince:
		region, province = a.Parent, a.Slug
	case progress.AreaComune:
		region, province = v.provinceRegion[a.Parent], a.Parent
	default: // Italy belongs to no filter but the empty one
		return f.IsZero()
	}
	return (f.Regione == "" || region == f.Regione) && (f.Provincia == "" || province == f.Provincia)
}
