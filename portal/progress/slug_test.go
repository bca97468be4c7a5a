package progress

import (
	"regexp"
	"testing"
)

func TestSlug(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"Emilia-Romagna", "emilia-romagna"},
		{"Valle d'Aosta/Vallée d'Aoste", "valle-d-aosta"},
		{"Trentino-Alto Adige/Südtirol", "trentino-alto-adige"},
		{"Friuli-Venezia Giulia", "friuli-venezia-giulia"},
		{"Bolzano/Bozen", "bolzano"},
		{"Forlì-Cesena", "forli-cesena"},
		{"Reggio nell'Emilia", "reggio-nell-emilia"},
		{"Agliè", "aglie"},
		{"Borgocarbonara  ", "borgocarbonara"},
		{"  San  Felice   Circeo ", "san-felice-circeo"},
		{"Città di Castello", "citta-di-castello"},
		{"L'Aquila", "l-aquila"},
		{"Sant’Angelo", "sant-angelo"}, // typographic apostrophe
		{"Monteu da Po -- (TO)", "monteu-da-po-to"},
		{"Großglockner Straße", "grossglockner-strasse"},
		{"Æbeltoft Øst", "aebeltoft-ost"},
		{"TO", "to"},
		{"PO-001001-1", "po-001001-1"},
		{"", ""},
		{"/Bozen", ""},
		{"'''", ""},
		{"日本", ""},
	} {
		if got := Slug(c.in); got != c.want {
			t.Errorf("Slug(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

var slugRe = regexp.MustCompile(`^([a-z0-9]+(-[a-z0-9]+)*)?$`)

// Every real region and province name makes a distinct, well-formed slug.
func TestSlug_RealNames(t *testing.T) {
	regions, provinces := map[string]string{}, map[string]string{}
	for _, c := range realComuni(t) {
		for _, p := range []struct {
			m    map[string]string
			name string
		}{{regions, c.Region}, {provinces, c.Province}} {
			s := Slug(p.name)
			if s == "" || !slugRe.MatchString(s) {
				t.Fatalf("Slug(%q) = %q", p.name, s)
			}
			if other, ok := p.m[s]; ok && other != p.name {
				t.Fatalf("%q and %q share the slug %q", other, p.name, s)
			}
			p.m[s] = p.name
		}
	}
	if len(regions) != 20 || len(regionCodes) != 20 {
		t.Fatalf("%d regions, %d region codes; want 20", len(regions), len(regionCodes))
	}
	for _, name := range regions {
		if RegionCode(name) == "" {
			t.Errorf("region %q has no ISTAT code", name)
		}
	}
}

func FuzzSlug(f *testing.F) {
	for _, s := range []string{"Valle d'Aosta/Vallée d'Aoste", "Forlì-Cesena", "ß", "a--b", "-", "\xff\xfe", "İstanbul"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := Slug(s)
		if !slugRe.MatchString(got) {
			t.Fatalf("Slug(%q) = %q: not lower-case ASCII words joined by dashes", s, got)
		}
		if again := Slug(got); again != got {
			t.Fatalf("Slug(Slug(%q)) = %q, want %q", s, again, got)
		}
	})
}
