package portal

import (
	"net/url"
	"strings"
	"testing"
	"unicode"

	"github.com/polis-platform/polis/portal/progress"
)

func TestFold(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Agliè", "aglie"},
		{"FORLÌ", "forli"},
		{"Sant'Angelo a Fasanella", "sant angelo a fasanella"},
		{"Sant’Angelo  d’Alife", "sant angelo d alife"},
		{"Reggio nell'Emilia", "reggio nell emilia"},
		{"Bolzano/Bozen", "bolzano bozen"},
		{"Šmarje", "smarje"},
		{"Großkarl", "grosskarl"},
		{"  -- ", ""},
		{"Castel San Pietro Terme", "castel san pietro terme"},
	} {
		if got := fold(c.in); got != c.want {
			t.Errorf("fold(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// searchFixture is a few comuni whose names try the ranking.
func searchFixture() *searchIndex {
	var cs []*progress.Area
	for i, n := range []string{"Sant'Angelo a Fasanella", "Santa Fiora", "Villa San Pietro", "San Felice Circeo", "Ussana", "Forlì del Sannio", "San", "Casalbordino"} {
		cs = append(cs, &progress.Area{Kind: progress.AreaComune, Name: n, Code: string(rune('A' + i))})
	}
	return newSearchIndex(&progress.Snapshot{Comuni: cs})
}

func names(as []*progress.Area) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.Name)
	}
	return out
}

func TestSearchRanking(t *testing.T) {
	ix := searchFixture()
	for _, c := range []struct {
		q     string
		want  []string
		limit int
		total int
	}{
		// The name itself, then names that start with it, then a word
		// that starts with it, then anywhere; by name within each.
		{q: "san", want: []string{"San", "San Felice Circeo", "Sant'Angelo a Fasanella", "Santa Fiora", "Forlì del Sannio", "Villa San Pietro", "Ussana"}, limit: 50, total: 7},
		{q: "SANT ANGELO", want: []string{"Sant'Angelo a Fasanella"}, limit: 50, total: 1},
		{q: "sant'angelo", want: []string{"Sant'Angelo a Fasanella"}, limit: 50, total: 1},
		{q: "forli", want: []string{"Forlì del Sannio"}, limit: 50, total: 1},
		{q: "FORLÌ", want: []string{"Forlì del Sannio"}, limit: 50, total: 1},
		{q: "san", want: []string{"San", "San Felice Circeo"}, limit: 2, total: 7},
		{q: "xyz", want: nil, limit: 50, total: 0},
		{q: "  ", want: nil, limit: 50, total: 0},
		{q: "'", want: nil, limit: 50, total: 0},
	} {
		got, total := ix.search(c.q, c.limit)
		if strings.Join(names(got), "|") != strings.Join(c.want, "|") || total != c.total {
			t.Errorf("search(%q) = %q (%d in all), want %q (%d)", c.q, names(got), total, c.want, c.total)
		}
	}
}

// FuzzSearch: any query, however long or malformed, answers within its
// bounds, and every hit contains the folded query.
func FuzzSearch(f *testing.F) {
	for _, s := range []string{"san", "Agliè", "sant'", "\xff\xfe", strings.Repeat("a", 300), "é", "ß", "  x  "} {
		f.Add(s)
	}
	ix := searchFixture()
	f.Fuzz(func(t *testing.T, q string) {
		got, total := ix.search(q, 3)
		if len(got) > 3 || total < len(got) || total > len(ix.comuni) {
			t.Fatalf("search(%q): %d hits of %d", q, len(got), total)
		}
		fq := fold(q)
		if len(q) > maxQuery {
			fq = fold(q[:maxQuery])
		}
		for _, a := range got {
			if !strings.Contains(fold(a.Name), fq) {
				t.Fatalf("search(%q) found %q, which does not contain %q", q, a.Name, fq)
			}
		}
	})
}

// FuzzFold: fold gives lower-case letters and digits separated by single
// spaces, and folding again changes nothing.
func FuzzFold(f *testing.F) {
	for _, s := range []string{"Agliè", "Sant’Angelo", "Bolzano/Bozen", "\x00\xff", "ǅ", "İstanbul", "ﬁ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := fold(s)
		if fold(got) != got {
			t.Fatalf("fold(%q) = %q, folded again %q", s, got, fold(got))
		}
		if strings.HasPrefix(got, " ") || strings.HasSuffix(got, " ") || strings.Contains(got, "  ") {
			t.Fatalf("fold(%q) = %q: stray spaces", s, got)
		}
		for _, r := range got {
			if r != ' ' && !unicode.IsLetter(r) && !unicode.IsDigit(r) {
				t.Fatalf("fold(%q) = %q: has %q", s, got, r)
			}
		}
	})
}

// FuzzItalianHours: whatever the registry holds, the office page gets
// lines to show, never a panic.
func FuzzItalianHours(f *testing.F) {
	for _, s := range []string{"Mon-Fri 08:20-13:45; Sat 08:20-12:45", "lun-ven 08:20-13:45", "Sun-Mon 00:00-24:00", "Mon 25:00-26:00", "mar", ";;;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := italianHours(s)
		if strings.TrimSpace(s) != "" && len(got) == 0 {
			t.Fatalf("italianHours(%q) gave nothing", s)
		}
	})
}

func TestSearchPage(t *testing.T) {
	h, _ := testPortal(t)
	for _, c := range []struct {
		q    string
		want []string
		not  []string
	}{
		{"agli", []string{`href="/comuni/001001"`, "Un comune trovato"}, nil},
		{"AGLIÈ", []string{`href="/comuni/001001"`}, nil},
		{"roma", []string{"2 comuni trovati", `href="/comuni/058091"`, `href="/comuni/058015"`}, nil},
		{"zzz", []string{"Nessun comune trovato", "meno di 15.000 abitanti"}, []string{"<table"}},
		{"<script>alert(1)</script>", []string{"&lt;script&gt;"}, []string{"<script>"}},
	} {
		w := get(t, h, "/cerca?q="+urlQuery(c.q))
		body := w.Body.String()
		for _, s := range c.want {
			if !strings.Contains(body, s) {
				t.Errorf("q=%q: the page lacks %q", c.q, s)
			}
		}
		for _, s := range c.not {
			if strings.Contains(body, s) {
				t.Errorf("q=%q: the page has %q", c.q, s)
			}
		}
	}
	// Roma (prefix) comes before Campagnano di Roma (a word inside).
	body := get(t, h, "/cerca?q=roma").Body.String()
	if strings.Index(body, `href="/comuni/058091"`) > strings.Index(body, `href="/comuni/058015"`) {
		t.Errorf("Roma is not listed before Campagnano di Roma")
	}
}

func urlQuery(s string) string { return url.QueryEscape(s) }
