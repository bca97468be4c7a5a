package registry

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sharedData returns the path of a file in the shared public data folder
// (../shared/data from the repo root). The data is not copied into the repo,
// so a missing file fails the test instead of skipping it.
func sharedData(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("shared data file missing: %v (the tests read the real data from ../shared/data relative to the repo root)", err)
	}
	return p
}

func loadRealComuni(tb testing.TB) []Comune {
	tb.Helper()
	cs, err := LoadComuni(sharedData(tb, "comuni_mappa_ai_2020.csv"))
	if err != nil {
		tb.Fatalf("unexpected error: %v", err)
	}
	return cs
}

// The expected figures are the "Key numbers" of shared/data/README.md.
func TestLoadComuni(t *testing.T) {
	cs := loadRealComuni(t)
	if len(cs) != 7903 {
		t.Fatalf("unexpected comuni count; got %d; want 7903", len(cs))
	}
	small, capitals, inner, innerSmall, smallPop := 0, 0, 0, 0, 0
	for _, c := range cs {
		if c.Population < SmallComuneLimit {
			small++
			smallPop += c.Population
		}
		if c.Capital {
			capitals++
			if c.Population < SmallComuneLimit {
				t.Errorf("capital %s %s is under %d", c.Code, c.Name, SmallComuneLimit)
			}
		}
		if strings.Contains("DEF", c.InnerArea) {
			inner++
			if c.Population < SmallComuneLimit {
				innerSmall++
			}
		}
		if c.Name != strings.TrimSpace(c.Name) || len(c.ProvinceCode) != 2 {
			t.Errorf("untrimmed name or bad province code: %+v", c)
		}
	}
	for _, x := range []struct {
		what      string
		got, want int
	}{
		{"comuni under 15,000", small, 7169},
		{"their inhabitants", smallPop, 23797282},
		{"provincial capitals", capitals, 109},
		{"aree interne (D+E+F)", inner, 3834},
		{"aree interne under 15,000", innerSmall, 3673},
	} {
		if x.got != x.want {
			t.Errorf("unexpected %s; got %d; want %d", x.what, x.got, x.want)
		}
	}
	i := slices.IndexFunc(cs, func(c Comune) bool { return c.Code == "020073" })
	if i < 0 || cs[i].Name != "Borgocarbonara" {
		t.Errorf("020073 should be Borgocarbonara without trailing spaces; got %+v", cs[i])
	}
	if c := cs[0]; c.Code != "001001" || c.Name != "Agliè" || c.Region != "Piemonte" || c.ProvinceCode != "TO" ||
		c.Province != "Torino" || c.Population != 2545 || c.InnerArea != "C" || c.Capital {
		t.Errorf("unexpected first comune %+v", c)
	}
}

func TestLoadCentroids(t *testing.T) {
	m, err := LoadCentroids(sharedData(t, "comuni_centroidi_openpolis_2023.csv"))
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if len(m) != 7899 {
		t.Fatalf("unexpected centroid count; got %d; want 7899", len(m))
	}
	if p := m["001001"]; p.Lat != 45.365909 || p.Lon != 7.775987 {
		t.Errorf("unexpected centroid of Agliè: %+v", p)
	}
	cs := loadRealComuni(t)
	missing := JoinCentroids(cs, m)
	want := []string{"005079", "005110", "012009", "012018", "012095", "041033", "041060"}
	if !slices.Equal(missing, want) {
		t.Errorf("unexpected comuni without centroid; got %v; want %v", missing, want)
	}
	for _, c := range cs {
		if !slices.Contains(want, c.Code) && (c.Lat == 0 || c.Lon == 0) {
			t.Fatalf("comune %s has no coordinates after the join", c.Code)
		}
	}
}

const comuniHeader = "PROCOM_T,COD_REG,REGIONE,COD_PROV,SIGLA_AUTOM,PROVINCIA_CM,COMUNE_30sett20,FLAG_CAPOLUOGO,SUPERFICIE_KMQ_2019,POP_RES_CENS_2020,COD_AI_2020\n"

func TestReadComuni_Success(t *testing.T) {
	// Reordered columns, a BOM, extra columns and padded values.
	in := "\ufeffCOMUNE_30sett20,POP_RES_CENS_2020,EXTRA,PROCOM_T,REGIONE,SIGLA_AUTOM,PROVINCIA_CM,FLAG_CAPOLUOGO,COD_AI_2020\n" +
		"\"Borgo, Alto  \", 1200 ,x,020073,Lombardia,MN,Mantova,0,D\n" +
		"Mantova,49000,,020030,Lombardia ,MN,Mantova,1,A\n"
	cs, err := readComuni(strings.NewReader(in))
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	want := []Comune{
		{Code: "020073", Name: "Borgo, Alto", Region: "Lombardia", Province: "Mantova", ProvinceCode: "MN", Population: 1200, InnerArea: "D"},
		{Code: "020030", Name: "Mantova", Region: "Lombardia", Province: "Mantova", ProvinceCode: "MN", Population: 49000, Capital: true, InnerArea: "A"},
	}
	if !slices.Equal(cs, want) {
		t.Errorf("unexpected comuni; got %+v; want %+v", cs, want)
	}
}

func TestReadComuni_Failure(t *testing.T) {
	good := "001001,1,Piemonte,201,TO,Torino,Agliè,0,13.1,2545,C\n"
	f := func(in, wantErr string) {
		t.Helper()
		_, err := readComuni(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("unexpected error; got %v; want one containing %q", err, wantErr)
		}
	}
	f("", "empty file")
	f(comuniHeader, "no comuni")
	f(strings.Replace(comuniHeader, "POP_RES_CENS_2020", "POP", 1)+good, `column "POP_RES_CENS_2020" missing`)
	f(strings.Replace(comuniHeader, "COD_REG", "REGIONE", 1)+good, `column "REGIONE" appears twice`)
	f(comuniHeader+good+"001002,1,Piemonte,201,TO,Torino,Airasca,0,15.7,many,C\n", "line 3: column POP_RES_CENS_2020: \"many\"")
	f(comuniHeader+good+"1002,1,Piemonte,201,TO,Torino,Airasca,0,15.7,3633,C\n", "line 3: column PROCOM_T")
	f(comuniHeader+good+good, "line 3: comune 001001 already listed on line 2")
	f(comuniHeader+"001001,1,Piemonte,201,T0,Torino,Agliè,0,13.1,2545,C\n", "column SIGLA_AUTOM")
	f(comuniHeader+"001001,1,Piemonte,201,TO,Torino,Agliè,2,13.1,2545,C\n", "column FLAG_CAPOLUOGO")
	f(comuniHeader+"001001,1,Piemonte,201,TO,Torino,Agliè,0,13.1,2545,G\n", "column COD_AI_2020")
	f(comuniHeader+"001001,1,Piemonte,201,TO,Torino,Agli\u008a,0,13.1,2545,C\n", "column COMUNE_30sett20")
	f(comuniHeader+"001001,1,Piemonte,201,TO,Torino,Agli\xe8,0,13.1,2545,C\n", "invalid UTF-8")
	f(comuniHeader+"001001,1,Piemonte\n", "wrong number of fields")
}

func TestReadCentroids_Failure(t *testing.T) {
	h := "pro_com_t,comune,lat,lon\n"
	f := func(in, wantErr string) {
		t.Helper()
		_, err := readCentroids(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("unexpected error; got %v; want one containing %q", err, wantErr)
		}
	}
	f("pro_com_t,comune,lat\n", `column "lon" missing`)
	f(h, "no centroids")
	f(h+"001001,A,7.77,45.36\n", "line 2: column lat: \"7.77\" is outside")
	f(h+"001001,A,45.36,x\n", "line 2: column lon: \"x\" is not a number")
	f(h+"001001,A,45.36,7.77\n001001,A,45.36,7.77\n", "line 3: comune 001001 listed twice")
}

func FuzzReadComuni(f *testing.F) {
	f.Add(comuniHeader + "001001,1,Piemonte,201,TO,Torino,Agliè,0,13.1,2545,C\n")
	f.Add(comuniHeader + "\"001001\",1,\"Pie\"\"monte\",201,TO,Torino,Agliè,1,13.1,2545,A\n")
	f.Fuzz(func(t *testing.T, in string) {
		cs, err := readComuni(strings.NewReader(in))
		if err == nil && len(cs) == 0 {
			t.Fatal("no error and no comuni")
		}
		for _, c := range cs {
			if !isDigits(c.Code, 6) || c.Population < 0 {
				t.Fatalf("invalid comune accepted: %+v", c)
			}
		}
	})
}
