package opendata

import (
	"errors"
	"net/http"
	"net/url"
	"testing"
)

// FuzzParseFilter: any query string is either refused with a 400 or 404
// that says why, or read as a Filter of known areas that the table takes,
// whose own query string reads back as the same Filter.
func FuzzParseFilter(f *testing.F) {
	for _, s := range []string{
		"", "regione=lombardia", "provincia=BG", "regione=lombardia&provincia=so", "regione=campania&provincia=bg",
		"regione=", "regione", "region=x", "regione=a&regione=b", "%zz", "regione=%00", "provincia=b%67", ";;&&==",
		"regione=lombardia;provincia=bg", "regione=" + string(make([]byte, 100)),
	} {
		f.Add(s, "uffici")
		f.Add(s, "obiettivi")
	}
	v := newView(testSnapshot())
	f.Fuzz(func(t *testing.T, raw, table string) {
		s := specByName(table)
		if s == nil {
			s = specByName("uffici")
		}
		tab := s.table()
		flt, err := parseFilter(raw, tab, v)
		if err != nil {
			var fe *filterError
			if !errors.As(err, &fe) || (fe.status != http.StatusBadRequest && fe.status != http.StatusNotFound) || fe.msg == "" {
				t.Fatalf("parseFilter(%q): %v is not a 400 or 404 with a message", raw, err)
			}
			return
		}
		if flt.Regione != "" && (v.regions[flt.Regione] == nil || !tab.HasFilter(FilterRegione)) {
			t.Fatalf("parseFilter(%q) = %+v: unknown region or a table without the filter", raw, flt)
		}
		if flt.Provincia != "" && (v.provinces[flt.Provincia] == nil || !tab.HasFilter(FilterProvincia)) {
			t.Fatalf("parseFilter(%q) = %+v: unknown province or a table without the filter", raw, flt)
		}
		q := flt.query()
		if q != "" {
			q = q[1:]
		}
		if _, err := url.ParseQuery(q); err != nil {
			t.Fatalf("Filter %+v makes a bad query %q", flt, q)
		}
		back, err := parseFilter(q, tab, v)
		if err != nil || back != flt {
			t.Fatalf("Filter %+v -> %q -> %+v, %v", flt, q, back, err)
		}
	})
}
