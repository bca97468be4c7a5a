package opendata

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"encoding/json"
	"flag"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/polis-platform/polis/portal/progress"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

const testBase = "https://polis.example.it"

func newTestHandler(s *progress.Snapshot) *Handler {
	return New(Options{
		Snapshot: func() *progress.Snapshot { return s },
		BaseURL:  testBase + "/",
		Logger:   slog.New(slog.DiscardHandler),
	})
}

// get answers one request; hdr are header name and value pairs.
func get(t testing.TB, h http.Handler, method, target string, hdr ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func mustGet(t testing.TB, h http.Handler, target string) []byte {
	t.Helper()
	w := get(t, h, http.MethodGet, target)
	if w.Code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
	}
	return w.Body.Bytes()
}

// goldenPaths are the outputs with a golden file: every table as CSV and
// JSON, the index, the catalogue and the feed. (Parquet is compared with
// the JSON by TestParquetRoundTrip instead.)
func goldenPaths() map[string]string {
	out := map[string]string{
		IndexPath:   "index.json",
		CatalogPath: "catalogo.jsonld",
		FeedPath:    "feed.atom",
	}
	for _, t := range Tables() {
		for _, f := range []string{FormatCSV, FormatJSON} {
			out[Path(t.Name, f, Filter{})] = t.Name + "." + f
		}
	}
	out[Path("uffici", FormatCSV, Filter{Regione: "piemonte"})] = "uffici-piemonte.csv"
	out[Path("apparati", FormatJSON, Filter{Provincia: "to"})] = "apparati-to.json"
	return out
}

// TestGolden compares every output for progress's fixture with its golden
// file. The fixture is made by the Builder's code: when progress changes
// it, review the diff and rewrite with -update.
func TestGolden(t *testing.T) {
	h := newTestHandler(fixture())
	for path, file := range goldenPaths() {
		t.Run(file, func(t *testing.T) {
			got := mustGet(t, h, path)
			golden := filepath.Join("testdata", "golden", file)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGolden -update to write it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("GET %s differs from %s (go test -run TestGolden -update rewrites it):\n%s", path, golden, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	gl, wl := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := range max(len(gl), len(wl)) {
		var g, w string
		if i < len(gl) {
			g = gl[i]
		}
		if i < len(wl) {
			w = wl[i]
		}
		if g != w {
			return "line " + strconv.Itoa(i+1) + ":\n got: " + g + "\nwant: " + w
		}
	}
	return "(same lines)"
}

// checker is an encoder that checks every row against the columns.
type checker struct {
	t    *testing.T
	tab  Table
	rows int
}

func (c *checker) header(t Table) error    { c.tab = t; return nil }
func (c *checker) finish() ([]byte, error) { return nil, nil }
func (c *checker) row(vals []value) error {
	c.rows++
	if len(vals) != len(c.tab.Columns) {
		c.t.Errorf("%s row %d: %d values for %d columns", c.tab.Name, c.rows, len(vals), len(c.tab.Columns))
		return nil
	}
	for i, v := range vals {
		if !v.k.fits(c.tab.Columns[i].Type) {
			c.t.Errorf("%s row %d column %s (%s): value of kind %d", c.tab.Name, c.rows, c.tab.Columns[i].Name, c.tab.Columns[i].Type, v.k)
		}
	}
	return nil
}

var (
	quotedField  = regexp.MustCompile(`"(?:[^"]|"")*"`)
	plainName    = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
	nationalName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)
)

// TestTablesDocumented checks that every column is named, typed and
// described, that names are unique and that every value fits its column.
func TestTablesDocumented(t *testing.T) {
	v := newView(testSnapshot())
	fx := newView(fixture())
	for _, a := range append(slices.Clone(fx.s.Regions), fx.s.Provinces...) {
		if !validSlug(a.Slug) {
			t.Errorf("the fixture's %s %q has a slug the filters refuse", a.Kind, a.Slug)
		}
	}
	seen := map[string]bool{}
	for _, s := range specs {
		tab := s.table()
		if seen[tab.Name] || !plainName.MatchString(tab.Name) || tab.Title == "" || tab.Description == "" {
			t.Errorf("table %q: duplicate, bad name or undocumented", tab.Name)
		}
		seen[tab.Name] = true
		if !tab.HasFormat(FormatCSV) || !tab.HasFormat(FormatJSON) || len(tab.Themes) == 0 || tab.Updates == "" {
			t.Errorf("table %s: formats %v themes %v updates %q", tab.Name, tab.Formats, tab.Themes, tab.Updates)
		}
		names := map[string]bool{}
		re := plainName
		if tab.CSV.BOM {
			re = nationalName
		}
		for _, c := range tab.Columns {
			if names[c.Name] || !re.MatchString(c.Name) || c.Description == "" {
				t.Errorf("table %s column %q: duplicate, bad name or no description", tab.Name, c.Name)
			}
			names[c.Name] = true
			if _, err := arrowType(c.Type); err != nil {
				t.Errorf("table %s column %s: %v", tab.Name, c.Name, err)
			}
		}
		for _, v := range []*view{v, fx} {
			c := &checker{t: t}
			c.header(tab)
			if err := s.write(v, Filter{}, c); err != nil {
				t.Fatal(err)
			}
			if c.rows == 0 {
				t.Errorf("table %s: a test snapshot gives it no row", tab.Name)
			}
		}
	}
	for _, want := range []string{"obiettivi", "dichiarazioni", "finanziamento", "regioni", "province", "comuni", "uffici", "coworking", "fornitori", "apparati", "andamento", "progetti"} {
		if !seen[want] {
			t.Errorf("table %s is missing", want)
		}
	}
	for _, big := range []string{"uffici", "apparati", "comuni", "andamento"} {
		if tab, _ := TableByName(big); !tab.HasFormat(FormatParquet) {
			t.Errorf("table %s has no Parquet", big)
		}
	}
	// Tables returns copies.
	a := Tables()
	a[0].Columns[0].Name = "changed"
	if Tables()[0].Columns[0].Name == "changed" {
		t.Error("Tables shares its slices with the package")
	}
}

// TestPlainCSV checks every plain CSV: no BOM, RFC 4180 (CRLF, quoting),
// the header is the documented columns, every record has every field.
func TestPlainCSV(t *testing.T) {
	h := newTestHandler(testSnapshot())
	for _, tab := range Tables() {
		if tab.CSV.BOM {
			continue
		}
		body := mustGet(t, h, Path(tab.Name, FormatCSV, Filter{}))
		if bytes.HasPrefix(body, []byte(utf8BOM)) {
			t.Errorf("%s.csv starts with a BOM", tab.Name)
		}
		unquoted := quotedField.ReplaceAll(body, nil) // a line break inside quotes is data
		if !bytes.HasSuffix(body, []byte("\r\n")) || bytes.Count(unquoted, []byte("\n")) != bytes.Count(unquoted, []byte("\r\n")) {
			t.Errorf("%s.csv: lines do not all end in CRLF", tab.Name)
		}
		r := csv.NewReader(bytes.NewReader(body))
		r.FieldsPerRecord = len(tab.Columns)
		recs, err := r.ReadAll()
		if err != nil {
			t.Fatalf("%s.csv does not parse: %v", tab.Name, err)
		}
		var names []string
		for _, c := range tab.Columns {
			names = append(names, c.Name)
		}
		if !slices.Equal(recs[0], names) {
			t.Errorf("%s.csv header %v, want %v", tab.Name, recs[0], names)
		}
	}
	// A ';' does not quote in the plain dialect, a quote and a line break do.
	body := string(mustGet(t, h, "/dati/uffici.csv?regione=campania"))
	if !strings.Contains(body, `,Sant'Angelo; test,`) || !strings.Contains(body, "\"Corso \"\"Umberto\"\"; I\nscala B\"") {
		t.Errorf("uffici.csv quoting:\n%s", body)
	}
	if !strings.Contains(body, ",40.9,15.1,") {
		t.Errorf("uffici.csv: decimals are not dots:\n%s", body)
	}
}

// TestProgettiBytes checks the national layout byte by byte.
func TestProgettiBytes(t *testing.T) {
	h := newTestHandler(testSnapshot())
	w := get(t, h, http.MethodGet, "/dati/progetti.csv")
	if w.Code != http.StatusOK {
		t.Fatalf("%d %s", w.Code, w.Body)
	}
	if got := w.Header().Get("Link"); got != `<https://creativecommons.org/licenses/by/4.0/>; rel="license"` {
		t.Errorf("Link %q", got)
	}
	if got := w.Header().Get("Content-Type"); got != "text/csv; charset=utf-8; header=present" {
		t.Errorf("Content-Type %q", got)
	}
	if got := w.Header().Get("Content-Disposition"); got != `attachment; filename="polis-progetti.csv"` {
		t.Errorf("Content-Disposition %q", got)
	}
	body := w.Body.Bytes()
	if !bytes.HasPrefix(body, []byte{0xEF, 0xBB, 0xBF}) {
		t.Fatalf("no UTF-8 BOM: % x", body[:8])
	}
	header, _, _ := strings.Cut(string(body[3:]), "\r\n")
	if !strings.HasPrefix(header, "COD_LOCALE_PROGETTO;CUP;CIG;TITOLO_PROGETTO;LINEA;COD_COMUNE;DEN_COMUNE;") || strings.ContainsAny(header, "#,\"") {
		t.Errorf("header %q", header)
	}
	for _, want := range []string{
		// dates dd/mm/yyyy, the day in Italy (23:00 of 31/01 is 31/01)
		";31/01/2026;20/02/2026;SI;",
		// decimal comma, no quoting needed with ';'
		";45,7015;9,9953;",
		// a ';' in a name is quoted, a quote is doubled
		`;"Sant'Angelo; test";`,
		`;"Polis - Casa dei servizi di cittadinanza digitale: ufficio postale di Sant'Angelo; test";`,
		`;"Fornitore ""Alfa"" S.p.A.";`,
		// ISTAT codes keep their leading zeros; province and region codes from the areas
		";016001;Adrara San Martino;016;BG;Bergamo;03;Lombardia;",
		// CIGs: the office's first, then its assets'
		";A0B1C2D3E4|Z9Y8X7W6V5;",
		";da avviare;", ";in corso;", ";concluso;",
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("progetti.csv lacks %q:\n%s", want, body)
		}
	}
	r := csv.NewReader(bytes.NewReader(body[3:]))
	r.Comma = ';'
	recs, err := r.ReadAll()
	if err != nil {
		t.Fatalf("progetti.csv does not parse as ';' CSV: %v", err)
	}
	tab, _ := TableByName("progetti")
	if len(recs) != 1+4 || len(recs[0]) != len(tab.Columns) {
		t.Fatalf("%d records of %d fields, want 5 of %d", len(recs), len(recs[0]), len(tab.Columns))
	}
	col := func(rec []string, name string) string {
		return rec[slices.IndexFunc(tab.Columns, func(c Column) bool { return c.Name == name })]
	}
	for _, rec := range recs[1:] {
		if col(rec, "IMPORTO_EUR") != "" {
			t.Errorf("IMPORTO_EUR %q: no source gives it", col(rec, "IMPORTO_EUR"))
		}
		if c := col(rec, "COD_COMUNE"); len(c) != 6 {
			t.Errorf("COD_COMUNE %q is not 6 digits", c)
		}
		if col(rec, "COD_LOCALE_PROGETTO") == "PO-014001-1" && (col(rec, "N_APPARATI") != "2" || col(rec, "N_LOCKER") != "0" || col(rec, "N_ATM") != "1") {
			t.Errorf("asset counts of PO-014001-1 (a locker decommissioned): %v", rec)
		}
		if col(rec, "COD_LOCALE_PROGETTO") == "CW-016001-1" && (col(rec, "N_DESK") != "12" || col(rec, "LINEA") != "Spazi per l'Italia") {
			t.Errorf("coworking row: %v", rec)
		}
	}
}

// TestJSONRows decodes every JSON table and checks each row against the
// columns: every column, in order, of its type.
func TestJSONRows(t *testing.T) {
	h := newTestHandler(testSnapshot())
	for _, tab := range Tables() {
		body := mustGet(t, h, Path(tab.Name, FormatJSON, Filter{}))
		var doc struct {
			Table    string                       `json:"table"`
			Licence  string                       `json:"licence"`
			Modified time.Time                    `json:"modified"`
			Columns  []Column                     `json:"columns"`
			Rows     []map[string]json.RawMessage `json:"rows"`
		}
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("%s.json: %v", tab.Name, err)
		}
		if doc.Table != tab.Name || doc.Licence != LicenceURL || !doc.Modified.Equal(testAt) || !slices.Equal(doc.Columns, tab.Columns) {
			t.Errorf("%s.json header: %s %s %s", tab.Name, doc.Table, doc.Licence, doc.Modified)
		}
		if len(doc.Rows) == 0 {
			t.Errorf("%s.json has no rows", tab.Name)
		}
		for i, row := range doc.Rows {
			if len(row) != len(tab.Columns) {
				t.Errorf("%s.json row %d: %d keys for %d columns", tab.Name, i, len(row), len(tab.Columns))
			}
			for _, c := range tab.Columns {
				raw, ok := row[c.Name]
				if !ok {
					t.Errorf("%s.json row %d lacks %s", tab.Name, i, c.Name)
					continue
				}
				if string(raw) == "null" {
					continue
				}
				var ok2 bool
				switch c.Type {
				case TypeString:
					ok2 = raw[0] == '"'
				case TypeInteger:
					var n int64
					ok2 = json.Unmarshal(raw, &n) == nil
				case TypeNumber:
					var f float64
					ok2 = json.Unmarshal(raw, &f) == nil
				case TypeBoolean:
					ok2 = string(raw) == "true" || string(raw) == "false"
				case TypeDate:
					var s string
					_ = json.Unmarshal(raw, &s)
					_, err := time.Parse(time.DateOnly, s)
					ok2 = err == nil
				}
				if !ok2 {
					t.Errorf("%s.json row %d %s (%s) = %s", tab.Name, i, c.Name, c.Type, raw)
				}
			}
		}
	}
}

func TestFilters(t *testing.T) {
	h := newTestHandler(testSnapshot())
	column := func(path, name string) []string {
		t.Helper()
		recs, err := csv.NewReader(bytes.NewReader(mustGet(t, h, path))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		i := slices.Index(recs[0], name)
		var out []string
		for _, r := range recs[1:] {
			out = append(out, r[i])
		}
		return out
	}
	for _, c := range []struct {
		path, col string
		want      []string
	}{
		{"/dati/uffici.csv", "sito", []string{"PO-014001-1", "PO-016001-1", "PO-064001-1"}},
		{"/dati/uffici.csv?regione=lombardia", "sito", []string{"PO-014001-1", "PO-016001-1"}},
		{"/dati/uffici.csv?provincia=bg", "sito", []string{"PO-016001-1"}},
		{"/dati/uffici.csv?provincia=BG", "sito", []string{"PO-016001-1"}},
		{"/dati/uffici.csv?regione=lombardia&provincia=so", "sito", []string{"PO-014001-1"}},
		{"/dati/uffici.csv?regione=campania", "sito", []string{"PO-064001-1"}},
		{"/dati/coworking.csv?regione=campania", "sito", nil},
		{"/dati/province.csv?regione=lombardia", "sigla", []string{"BG", "SO"}},
		{"/dati/province.csv?provincia=av", "sigla", []string{"AV"}},
		{"/dati/comuni.csv?regione=lombardia", "codice_istat", []string{"016001", "014001"}},
		{"/dati/comuni.csv?provincia=av", "nome", []string{"Sant'Angelo; test"}},
		{"/dati/apparati.csv?provincia=so", "apparato", []string{"atm-1", "totem-1", "locker-1"}},
		{"/dati/apparati.csv?regione=campania", "sito", []string{"PO-064001-1"}},
		{"/dati/andamento.csv?provincia=bg", "codice_area", []string{"016", "016", "016001", "016001"}},
		{"/dati/andamento.csv?regione=campania", "tipo_area", []string{"regione", "regione", "regione", "regione", "provincia", "provincia", "provincia", "comune"}},
		{"/dati/progetti.csv?regione=lombardia", "", nil}, // national: checked below
	} {
		if c.col == "" {
			continue
		}
		if got := column(c.path, c.col); !slices.Equal(got, c.want) {
			t.Errorf("%s: %s = %q, want %q", c.path, c.col, got, c.want)
		}
	}
	body := mustGet(t, h, "/dati/progetti.csv?regione=lombardia")
	if n := bytes.Count(body, []byte("\r\n")); n != 1+3 || bytes.Contains(body, []byte("PO-064001-1")) {
		t.Errorf("progetti.csv?regione=lombardia: %d lines:\n%s", n, body)
	}
	if got := get(t, h, http.MethodGet, "/dati/apparati.json?regione=campania").Header().Get("Content-Disposition"); got != `inline; filename="polis-apparati-campania.json"` {
		t.Errorf("Content-Disposition %q", got)
	}

	for _, c := range []struct {
		path   string
		status int
		says   string
	}{
		{"/dati/uffici.csv?regione=atlantide", 404, `"valid"`},
		{"/dati/uffici.csv?provincia=zz", 404, `"bg"`},
		{"/dati/uffici.csv?regione=campania&provincia=bg", 400, "non è nella regione"},
		{"/dati/uffici.csv?region=lombardia", 400, "sconosciuto"},
		{"/dati/uffici.csv?regione=lombardia&regione=campania", 400, "ripetuto"},
		{"/dati/uffici.csv?regione=", 400, "non è valido"},
		{"/dati/uffici.csv?regione=%zz", 400, "non leggibili"},
		{"/dati/uffici.csv?regione=Lomb%C3%A0rdia", 400, "non è valido"},
		{"/dati/obiettivi.csv?regione=lombardia", 400, "non si filtra"},
		{"/dati/regioni.json?provincia=bg", 400, "non si filtra"},
	} {
		w := get(t, h, http.MethodGet, c.path)
		if w.Code != c.status || !strings.Contains(w.Body.String(), c.says) || w.Header().Get("Content-Type") != ctypeJSON || w.Header().Get("Content-Disposition") != "" {
			t.Errorf("%s: %d %s %q, want %d saying %q", c.path, w.Code, w.Header(), w.Body, c.status, c.says)
		}
	}
}

func TestErrors(t *testing.T) {
	var snap atomic.Pointer[progress.Snapshot]
	h := New(Options{Snapshot: snap.Load, BaseURL: testBase, Logger: slog.New(slog.DiscardHandler)})

	w := get(t, h, http.MethodGet, "/dati/uffici.csv")
	if w.Code != http.StatusServiceUnavailable || w.Header().Get("Retry-After") == "" || w.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("before the first snapshot: %d %v", w.Code, w.Header())
	}
	snap.Store(testSnapshot())

	for _, c := range []struct {
		method, path string
		status       int
		says         []string
	}{
		{"GET", "/dati/ufici.csv", 404, []string{`"tables"`, `"/dati/uffici.csv"`, `"/dati/apparati.parquet"`}},
		{"GET", "/dati/uffici", 404, []string{`"tables"`}},
		{"GET", "/dati/uffici.csv/x", 404, []string{`"tables"`}},
		{"GET", "/dati/obiettivi.parquet", 404, []string{"unknown_format", `"/dati/obiettivi.csv"`}},
		{"GET", "/dati/uffici.xlsx", 404, []string{"csv, json, parquet"}},
		{"GET", "/altro", 404, []string{`"tables"`}},
		{"POST", "/dati/uffici.csv", 405, []string{"method_not_allowed", "GET"}},
		{"DELETE", "/feed.atom", 405, []string{"GET"}},
	} {
		w := get(t, h, c.method, c.path)
		if w.Code != c.status || w.Header().Get("Content-Type") != ctypeJSON {
			t.Errorf("%s %s: %d %v, want %d", c.method, c.path, w.Code, w.Header(), c.status)
		}
		var v map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &v); err != nil || v["message"] == "" {
			t.Errorf("%s %s: body %q is not an error a person can act on", c.method, c.path, w.Body)
		}
		for _, s := range c.says {
			if !strings.Contains(w.Body.String(), s) {
				t.Errorf("%s %s: body lacks %s:\n%s", c.method, c.path, s, w.Body)
			}
		}
		if c.status == 405 && w.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s %s: Allow %q", c.method, c.path, w.Header().Get("Allow"))
		}
	}
	if w := get(t, h, "GET", "/dati"); w.Code != http.StatusMovedPermanently || w.Header().Get("Location") != "/dati/" {
		t.Errorf("/dati: %d %v", w.Code, w.Header())
	}
}

func TestContentTypes(t *testing.T) {
	h := newTestHandler(testSnapshot())
	for _, c := range []struct{ path, ctype, disposition string }{
		{"/dati/", "application/json", ""},
		{"/dati/uffici.csv", "text/csv; charset=utf-8; header=present", `attachment; filename="polis-uffici.csv"`},
		{"/dati/uffici.json", "application/json", `inline; filename="polis-uffici.json"`},
		{"/dati/uffici.parquet", "application/vnd.apache.parquet", `attachment; filename="polis-uffici.parquet"`},
		{"/dati/catalogo.jsonld", "application/ld+json", ""},
		{"/feed.atom", "application/atom+xml; charset=utf-8", ""},
	} {
		w := get(t, h, http.MethodGet, c.path)
		hd := w.Header()
		if w.Code != 200 || hd.Get("Content-Type") != c.ctype || hd.Get("Content-Disposition") != c.disposition ||
			hd.Get("Cache-Control") != "public, max-age=60" || hd.Get("Last-Modified") != testAt.Format(http.TimeFormat) ||
			!strings.HasPrefix(hd.Get("ETag"), `"`) || hd.Get("Link") == "" || hd.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: %d %v", c.path, w.Code, hd)
		}
	}
}

// TestCaching is the ETag and Last-Modified table.
func TestCaching(t *testing.T) {
	h := newTestHandler(testSnapshot())
	first := get(t, h, http.MethodGet, "/dati/apparati.csv")
	etag := first.Header().Get("ETag")
	if !regexp.MustCompile(`^"[0-9a-f]{32}"$`).MatchString(etag) {
		t.Fatalf("ETag %q is not a strong hash", etag)
	}
	lm := testAt.Format(http.TimeFormat)
	for _, c := range []struct {
		name   string
		method string
		hdr    []string
		status int
		body   bool
	}{
		{"plain", "GET", nil, 200, true},
		{"same etag", "GET", []string{"If-None-Match", etag}, 304, false},
		{"weak form of the etag", "GET", []string{"If-None-Match", "W/" + etag}, 304, false},
		{"list with the etag", "GET", []string{"If-None-Match", `"nope", ` + etag}, 304, false},
		{"star", "GET", []string{"If-None-Match", "*"}, 304, false},
		{"other etag", "GET", []string{"If-None-Match", `"0123"`}, 200, true},
		{"not modified since", "GET", []string{"If-Modified-Since", lm}, 304, false},
		{"modified since", "GET", []string{"If-Modified-Since", testAt.Add(-time.Hour).Format(http.TimeFormat)}, 200, true},
		{"etag wins over date", "GET", []string{"If-None-Match", `"0123"`, "If-Modified-Since", lm}, 200, true},
		{"head", "HEAD", nil, 200, false},
		{"head not modified", "HEAD", []string{"If-None-Match", etag}, 304, false},
		{"range", "GET", []string{"Range", "bytes=0-9"}, 206, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := get(t, h, c.method, "/dati/apparati.csv", c.hdr...)
			if w.Code != c.status {
				t.Fatalf("status %d, want %d", w.Code, c.status)
			}
			if got := w.Header().Get("ETag"); got != etag {
				t.Errorf("ETag %q, want %q", got, etag)
			}
			if got := w.Header().Get("Cache-Control"); got != CacheControl {
				t.Errorf("Cache-Control %q", got)
			}
			if (w.Body.Len() > 0) != c.body {
				t.Errorf("body of %d bytes, want body %v", w.Body.Len(), c.body)
			}
			if c.method == "HEAD" && c.status == 200 && w.Header().Get("Content-Length") != strconv.Itoa(first.Body.Len()) {
				t.Errorf("HEAD Content-Length %q, want %d", w.Header().Get("Content-Length"), first.Body.Len())
			}
		})
	}
}

// TestBodiesBuiltOncePerSnapshot checks that repeated downloads reuse the
// body, and that a new snapshot (new pointer or new time) gets new bodies.
func TestBodiesBuiltOncePerSnapshot(t *testing.T) {
	var cur atomic.Pointer[progress.Snapshot]
	s1 := testSnapshot()
	cur.Store(s1)
	h := New(Options{Snapshot: cur.Load, BaseURL: testBase, Logger: slog.New(slog.DiscardHandler)})

	mustGet(t, h, "/dati/apparati.csv")
	st := h.cur.Load()
	b1 := st.bodies["table apparati.csv"]
	mustGet(t, h, "/dati/apparati.csv")
	if h.cur.Load() != st || st.bodies["table apparati.csv"] != b1 || b1 == nil {
		t.Fatal("the second download did not reuse the body")
	}
	etag1 := get(t, h, "GET", "/dati/apparati.csv").Header().Get("ETag")

	// The same snapshot, changed in place with a new time: rebuilt.
	s1.At = testAt.Add(time.Minute)
	s1.Offices[0].Assets[0].WorkingNow = true
	w := get(t, h, "GET", "/dati/apparati.csv", "If-None-Match", etag1)
	if w.Code != 200 || w.Header().Get("ETag") == etag1 || h.cur.Load() == st {
		t.Errorf("after the snapshot changed: %d, ETag %q (was %q)", w.Code, w.Header().Get("ETag"), etag1)
	}

	// A new snapshot with the same content: the same bytes, the same ETag.
	s2 := testSnapshot()
	s2.At = s1.At
	s2.Offices[0].Assets[0].WorkingNow = true
	cur.Store(s2)
	etag2 := w.Header().Get("ETag")
	if w := get(t, h, "GET", "/dati/apparati.csv", "If-None-Match", etag2); w.Code != http.StatusNotModified {
		t.Errorf("same content in a new snapshot: %d, want 304", w.Code)
	}
}

func TestConcurrentRequestsBuildOnce(t *testing.T) {
	st := &state{view: newView(testSnapshot()), limit: 1 << 20, bodies: map[string]*entry{}}
	var builds atomic.Int32
	release := make(chan struct{})
	var wg sync.WaitGroup
	bodies := make([]*body, 8)
	for i := range bodies {
		wg.Add(1)
		go func() {
			defer wg.Done()
			b, err := st.get(t.Context(), "k", func() ([]byte, error) {
				builds.Add(1)
				<-release // hold the build until every request has asked
				return []byte("body"), nil
			})
			if err != nil {
				t.Error(err)
			}
			bodies[i] = b
		}()
	}
	// Wait (bounded) until the first build started, then let it finish.
	for i := 0; builds.Load() == 0 && i < 1000; i++ {
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	if builds.Load() != 1 {
		t.Errorf("%d builds, want 1", builds.Load())
	}
	for _, b := range bodies {
		if b != bodies[0] || string(b.data) != "body" {
			t.Errorf("requests got different bodies")
		}
	}

	// A failed build is not kept; a body past the budget is served, not kept.
	if _, err := st.get(t.Context(), "bad", func() ([]byte, error) { return nil, io.ErrUnexpectedEOF }); err == nil {
		t.Error("the build's error was lost")
	}
	if _, ok := st.bodies["bad"]; ok {
		t.Error("a failed build was kept")
	}
	big := make([]byte, 2<<20)
	if b, err := st.get(t.Context(), "big", func() ([]byte, error) { return big, nil }); err != nil || len(b.data) != len(big) {
		t.Errorf("big body: %v", err)
	}
	if _, ok := st.bodies["big"]; ok {
		t.Error("a body past the budget was kept")
	}
}

func TestGzip(t *testing.T) {
	h := newTestHandler(testSnapshot())
	plain := get(t, h, "GET", "/dati/apparati.json")
	w := get(t, h, "GET", "/dati/apparati.json", "Accept-Encoding", "br;q=1, gzip;q=0.8")
	if w.Header().Get("Content-Encoding") != "gzip" || !strings.Contains(w.Header().Get("Vary"), "Accept-Encoding") {
		t.Fatalf("no gzip: %v", w.Header())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, plain.Body.Bytes()) {
		t.Fatalf("gunzipped body differs: %v", err)
	}
	gzTag := w.Header().Get("ETag")
	if gzTag == plain.Header().Get("ETag") {
		t.Error("the gzip encoding has the identity's ETag")
	}
	if w := get(t, h, "GET", "/dati/apparati.json", "Accept-Encoding", "gzip", "If-None-Match", gzTag); w.Code != 304 {
		t.Errorf("revalidating the gzip body: %d", w.Code)
	}
	if w := get(t, h, "GET", "/dati/apparati.json", "Accept-Encoding", "gzip;q=0"); w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip sent though refused")
	}
	if w := get(t, h, "GET", "/dati/apparati.parquet", "Accept-Encoding", "gzip"); w.Header().Get("Content-Encoding") != "" || w.Header().Get("Vary") != "" {
		t.Errorf("Parquet gzipped: %v", w.Header())
	}
}

func TestAcceptsGzip(t *testing.T) {
	for h, want := range map[string]bool{
		"": false, "gzip": true, "GZIP": true, "x-gzip": true, "br, gzip": true, "gzip;q=0": false, "gzip; q=0.000": false,
		"gzip;q=0.001": true, "*": true, "*;q=0": false, "*, gzip;q=0": false, "identity": false, "deflate, br": false, "gzip;q=1.0": true,
	} {
		if got := acceptsGzip(h); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", h, got, want)
		}
	}
}

func FuzzAcceptsGzip(f *testing.F) {
	for _, s := range []string{"gzip", "gzip;q=0", "*;q=0.5, br", ";;,,=q", "gzip;q=0;q=1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, h string) {
		got := acceptsGzip(h)
		if !strings.Contains(strings.ToLower(h), "gzip") && !strings.Contains(h, "*") && got {
			t.Errorf("acceptsGzip(%q) = true without gzip or *", h)
		}
	})
}
