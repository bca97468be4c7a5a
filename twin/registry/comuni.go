package registry

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Comune is one Italian municipality as listed in ISTAT's "Mappa Aree Interne
// 2020" (shared/data/comuni_mappa_ai_2020.csv).
type Comune struct {
	Code         string // ISTAT code, 6 digits with leading zeros (PROCOM_T)
	Name         string
	Region       string
	Province     string // province or città metropolitana name
	ProvinceCode string // SIGLA_AUTOM, 2 letters
	Population   int    // 2020 census
	Capital      bool   // provincial capital
	InnerArea    string // SNAI class A..F
	Lat, Lon     float64
}

// LatLon is a WGS84 point.
type LatLon struct {
	Lat, Lon float64
}

// SmallComuneLimit is the population below which a comune is in the
// programme's scope ("comuni under 15,000 inhabitants").
const SmallComuneLimit = 15000

var comuniColumns = []string{
	"PROCOM_T", "REGIONE", "SIGLA_AUTOM", "PROVINCIA_CM", "COMUNE_30sett20",
	"FLAG_CAPOLUOGO", "POP_RES_CENS_2020", "COD_AI_2020",
}

// LoadComuni reads comuni_mappa_ai_2020.csv. Columns are found by header name,
// so reordered or extra columns are fine; values are trimmed because the
// source keeps trailing spaces in some names.
func LoadComuni(path string) ([]Comune, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open comuni file: %w", err)
	}
	defer f.Close()
	cs, err := readComuni(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read comuni %s: %w", path, err)
	}
	return cs, nil
}

func readComuni(r io.Reader) ([]Comune, error) {
	cr, col, err := openTable(r, comuniColumns)
	if err != nil {
		return nil, err
	}
	var out []Comune
	seen := map[string]int{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err // csv.ParseError carries the line
		}
		line, _ := cr.FieldPos(0)
		get := func(name string) string { return strings.TrimSpace(rec[col[name]]) }
		bad := func(name, why string) error {
			return fmt.Errorf("line %d: column %s: %q %s", line, name, get(name), why)
		}
		c := Comune{
			Code:         get("PROCOM_T"),
			Name:         get("COMUNE_30sett20"),
			Region:       get("REGIONE"),
			Province:     get("PROVINCIA_CM"),
			ProvinceCode: get("SIGLA_AUTOM"),
			InnerArea:    get("COD_AI_2020"),
		}
		if !isDigits(c.Code, 6) {
			return nil, bad("PROCOM_T", "is not a 6-digit ISTAT code")
		}
		if prev, ok := seen[c.Code]; ok {
			return nil, fmt.Errorf("line %d: comune %s already listed on line %d", line, c.Code, prev)
		}
		seen[c.Code] = line
		if !isUpper(c.ProvinceCode, 2) {
			return nil, bad("SIGLA_AUTOM", "is not a 2-letter province code")
		}
		for _, name := range []string{"COMUNE_30sett20", "REGIONE", "PROVINCIA_CM"} {
			if !cleanText(get(name)) {
				return nil, bad(name, "is empty or holds invalid UTF-8 or control characters")
			}
		}
		if c.Population, err = strconv.Atoi(get("POP_RES_CENS_2020")); err != nil || c.Population < 0 {
			return nil, bad("POP_RES_CENS_2020", "is not a non-negative integer")
		}
		switch get("FLAG_CAPOLUOGO") {
		case "0":
		case "1":
			c.Capital = true
		default:
			return nil, bad("FLAG_CAPOLUOGO", "is not 0 or 1")
		}
		if len(c.InnerArea) != 1 || c.InnerArea[0] < 'A' || c.InnerArea[0] > 'F' {
			return nil, bad("COD_AI_2020", "is not a class A..F")
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		return nil, errors.New("no comuni after the header")
	}
	return out, nil
}

// LoadCentroids reads comuni_centroidi_openpolis_2023.csv into a map keyed by
// ISTAT code (pro_com_t). Only code, lat and lon are read: the names in that
// file have known encoding damage and file 1 is the authority for names.
func LoadCentroids(path string) (map[string]LatLon, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open centroids file: %w", err)
	}
	defer f.Close()
	m, err := readCentroids(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read centroids %s: %w", path, err)
	}
	return m, nil
}

func readCentroids(r io.Reader) (map[string]LatLon, error) {
	cr, col, err := openTable(r, []string{"pro_com_t", "lat", "lon"})
	if err != nil {
		return nil, err
	}
	out := map[string]LatLon{}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		code := strings.TrimSpace(rec[col["pro_com_t"]])
		if !isDigits(code, 6) {
			return nil, fmt.Errorf("line %d: column pro_com_t: %q is not a 6-digit ISTAT code", line, code)
		}
		if _, ok := out[code]; ok {
			return nil, fmt.Errorf("line %d: comune %s listed twice", line, code)
		}
		var p LatLon
		// Italy, with margin: anything outside is a swapped or broken value.
		if p.Lat, err = parseCoord(rec[col["lat"]], 35, 48); err != nil {
			return nil, fmt.Errorf("line %d: column lat: %w", line, err)
		}
		if p.Lon, err = parseCoord(rec[col["lon"]], 6, 19); err != nil {
			return nil, fmt.Errorf("line %d: column lon: %w", line, err)
		}
		out[code] = p
	}
	if len(out) == 0 {
		return nil, errors.New("no centroids after the header")
	}
	return out, nil
}

// JoinCentroids sets Lat/Lon of each comune from centroids and returns the
// codes that have no centroid (comuni merged away after 2020), in input order.
func JoinCentroids(comuni []Comune, centroids map[string]LatLon) (missing []string) {
	for i := range comuni {
		p, ok := centroids[comuni[i].Code]
		if !ok {
			missing = append(missing, comuni[i].Code)
			continue
		}
		comuni[i].Lat, comuni[i].Lon = p.Lat, p.Lon
	}
	return missing
}

// openTable reads the header and maps each wanted column to its index.
func openTable(r io.Reader, want []string) (*csv.Reader, map[string]int, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, nil, errors.New("empty file, header expected")
	}
	if err != nil {
		return nil, nil, err
	}
	col := make(map[string]int, len(header))
	for i, h := range header {
		h = strings.TrimSpace(strings.TrimPrefix(h, "\ufeff"))
		if _, dup := col[h]; dup {
			return nil, nil, fmt.Errorf("line 1: column %q appears twice", h)
		}
		col[h] = i
	}
	for _, w := range want {
		if _, ok := col[w]; !ok {
			return nil, nil, fmt.Errorf("line 1: column %q missing from header", w)
		}
	}
	return cr, col, nil
}

func parseCoord(s string, lo, hi float64) (float64, error) {
	s = strings.TrimSpace(s)
	v, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", s)
	}
	if v < lo || v > hi {
		return 0, fmt.Errorf("%q is outside %g..%g", s, lo, hi)
	}
	return v, nil
}

func isDigits(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isUpper(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 'A' || s[i] > 'Z' {
			return false
		}
	}
	return true
}

func cleanText(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
