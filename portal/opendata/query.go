package opendata

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// maxSlug bounds a filter's value: the longest region slug is some 30
// characters.
const maxSlug = 64

// filterError is a filter that names no known area (404, with the valid
// values) or a bad query (400).
type filterError struct {
	status int
	msg    string
	valid  []string
}

func (e *filterError) Error() string { return e.msg }

func badQuery(format string, args ...any) error {
	return &filterError{status: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// parseFilter reads a table's query string: regione and provincia, each
// at most once, each a known slug (case does not matter), the province in
// the region when both are given. Any other parameter is refused rather
// than ignored, so that a mistyped filter does not silently download the
// whole of Italy.
func parseFilter(raw string, t Table, v *view) (Filter, error) {
	var f Filter
	if raw == "" {
		return f, nil
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return f, badQuery("parametri non leggibili (%v): usare ?regione={slug} e/o ?provincia={sigla}", err)
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the same error for the same query
	for _, k := range keys {
		vals := q[k]
		if k != FilterRegione && k != FilterProvincia {
			return f, badQuery("parametro %q sconosciuto: la tabella %s accetta %s", k, t.Name, acceptedFilters(t))
		}
		if !t.HasFilter(k) {
			return f, badQuery("la tabella %s non si filtra per %s: accetta %s", t.Name, k, acceptedFilters(t))
		}
		if len(vals) != 1 {
			return f, badQuery("il parametro %s è ripetuto: indicarne uno solo", k)
		}
		s := strings.ToLower(strings.TrimSpace(vals[0]))
		if !validSlug(s) {
			return f, badQuery("%s=%q non è valido: si indica lo slug (minuscole, cifre e trattini, es. emilia-romagna) o la sigla della provincia (es. bz)", k, vals[0])
		}
		switch k {
		case FilterRegione:
			if v.regions[s] == nil {
				return f, &filterError{http.StatusNotFound, fmt.Sprintf("la regione %q non è nei dati: regioni valide in \"valid\"", s), keysOf(v.regions)}
			}
			f.Regione = s
		case FilterProvincia:
			if v.provinces[s] == nil {
				return f, &filterError{http.StatusNotFound, fmt.Sprintf("la provincia %q non è nei dati: sigle valide in \"valid\"", s), keysOf(v.provinces)}
			}
			f.Provincia = s
		}
	}
	if f.Regione != "" && f.Provincia != "" && v.provinceRegion[f.Provincia] != f.Regione {
		return f, badQuery("la provincia %s non è nella regione %s ma in %s", f.Provincia, f.Regione, v.provinceRegion[f.Provincia])
	}
	return f, nil
}

func acceptedFilters(t Table) string {
	if len(t.Filters) == 0 {
		return "nessun parametro"
	}
	parts := make([]string, len(t.Filters))
	for i, f := range t.Filters {
		parts[i] = "?" + f + "="
	}
	return strings.Join(parts, " e ")
}

func validSlug(s string) bool {
	if s == "" || len(s) > maxSlug {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func keysOf[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
