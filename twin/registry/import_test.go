package registry

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/twin/lifecycle"
)

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestImportCSV_Success(t *testing.T) {
	reg := New()
	rep, err := ImportCSV(reg, bytes.NewReader(readFixture(t, "import.good.csv")), ImportOptions{Strict: true})
	if err != nil {
		t.Fatalf("unexpected error: %v (%+v)", err, rep)
	}
	if rep.Sites != 3 || rep.Assets != 4 || len(rep.Refused) != 0 {
		t.Fatalf("unexpected report %+v", rep)
	}
	s, ok := reg.Site("PO-001002-1")
	if !ok || s.Name != "Airasca" || s.ProvinceName != "Torino" || s.Population != 3700 || s.Lat != 44.921764 ||
		s.CUP != "J51B21005310006" || s.CIG != "ZA12B3C4D5" || s.Address != "Via Roma 1, Airasca" ||
		s.OpeningHours.String() != PostOfficeHours || len(s.Assets) != 3 {
		t.Fatalf("unexpected site %+v", s)
	}
	atm := s.Assets[0]
	if atm.Type != TypeATM || atm.Supplier != "ACME Spa" || atm.CIG != "8765432ABC" || atm.Lifecycle != lifecycle.Operational ||
		atm.InstalledAt.Format("2006-01-02") != "2024-05-02" {
		t.Fatalf("unexpected asset %+v", atm)
	}
	if _, err := reg.Authenticate("PO-001002-1/atm-1", []byte("s3cret-atm-Xq7vR2mK9pLw")); err != nil {
		t.Fatalf("plaintext secret was not hashed on import: %v", err)
	}
	if strings.Contains(atm.SecretHash, "s3cret") {
		t.Fatalf("plaintext stored")
	}
	if evc, _ := reg.Asset("PO-001002-1", "evc-1"); !strings.HasPrefix(evc.SecretHash, "sha256$0011") || evc.InstalledAt.Hour() != 8 {
		t.Fatalf("given hash not kept or time not in UTC: %+v", evc)
	}
	// gw-1 and desk-1 came without a secret: fresh ones are in the report.
	if len(rep.Credentials) != 2 || rep.Credentials[0].Username != "PO-001002-1/gw-1" || rep.Credentials[1].Username != "CW-TO-1/desk-1" {
		t.Fatalf("unexpected credentials %+v", rep.Credentials)
	}
	for _, c := range rep.Credentials {
		if _, err := reg.Authenticate(c.Username, []byte(c.Password)); err != nil {
			t.Fatalf("generated secret of %s does not verify: %v", c.Username, err)
		}
	}
	if cw, _ := reg.Site("CW-TO-1"); cw.Kind != KindCoworking || *cw.Coworking != (Coworking{20, 2, 1}) {
		t.Fatalf("unexpected coworking %+v", cw)
	}
	if po, _ := reg.Site("PO-001003-1"); po.Kind != KindPostOffice || len(po.Assets) != 0 {
		t.Fatalf("unexpected site-only row result %+v", po)
	}

	// Importing again without secrets keeps the hashes already held.
	gw, _ := reg.Asset("PO-001002-1", "gw-1")
	rep, err = ImportCSV(reg, bytes.NewReader(readFixture(t, "import.good.csv")), ImportOptions{})
	if err != nil || len(rep.Credentials) != 0 {
		t.Fatalf("re-import: %v, %+v", err, rep.Credentials)
	}
	if gw2, _ := reg.Asset("PO-001002-1", "gw-1"); gw2.SecretHash != gw.SecretHash {
		t.Fatalf("re-import rotated an existing secret")
	}
}

func TestImportCSV_Failure(t *testing.T) {
	reg := New()
	if err := reg.Add(&Site{ID: "PO-001008-1", Kind: KindPostOffice, Assets: []*Asset{{ID: "atm-1", Type: TypeATM}}}); err != nil {
		t.Fatal(err)
	}
	rep, err := ImportCSV(reg, bytes.NewReader(readFixture(t, "import.bad.csv")), ImportOptions{})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	want := []struct {
		line   int
		id     string
		reason string
	}{
		{2, "PO-001002-1", "because line 3 of it was refused"},
		{3, "PO-001002-1/atm-1", "asset listed twice, first on line 2"},
		{4, "PO-001004-1/atm-1", `column population: "abc" is not a non-negative integer`},
		{5, "PO-001005-1/atm-1", "column opening_hours: cannot parse opening hours: 1:5:"},
		{6, "PO-001006-1/atm-1", `cup: "J51" is not 15`},
		{7, "PO-001007-1/atm-1", "both secret and secret_hash"},
		{8, "PO-001008-1", "because line 9 of it was refused"},
		{9, "PO-001008-1/atm-1", "site columns differ from line 8"},
		{10, "PO-1-1/atm-1", `id: "PO-1-1" must look like`},
		{11, "PO-001010-1", "5 fields, want 26"},
		{12, "PO-001011-1", "column supplier set on a row without an asset"},
	}
	if len(rep.Refused) != len(want) {
		t.Fatalf("unexpected refusals; got %d; want %d: %+v", len(rep.Refused), len(want), rep.Refused)
	}
	for i, w := range want {
		g := rep.Refused[i]
		if g.Line != w.line || g.ID != w.id || !strings.Contains(g.Reason, w.reason) {
			t.Errorf("refusal %d: got %+v; want line %d id %s reason containing %q", i, g, w.line, w.id, w.reason)
		}
	}
	if !strings.Contains(rep.Refused[4].Reason, "lifecycle") {
		t.Errorf("validation should list every problem: %q", rep.Refused[4].Reason)
	}
	if rep.Sites != 1 || rep.Assets != 1 || len(rep.Credentials) != 1 || !reg.Known("PO-001012-1", "atm-1") {
		t.Fatalf("good row not imported: %+v", rep)
	}
	// The refused site kept what the registry had.
	if !reg.Known("PO-001008-1", "atm-1") {
		t.Fatalf("a refused site replaced the registry's")
	}

	// Strict: nothing is imported.
	reg = New()
	rep, err = ImportCSV(reg, bytes.NewReader(readFixture(t, "import.bad.csv")), ImportOptions{Strict: true})
	if !errors.Is(err, ErrRefused) || len(rep.Refused) != len(want) {
		t.Fatalf("strict: unexpected %v, %+v", err, rep)
	}
	if n, _ := reg.Len(); n != 0 || len(rep.Credentials) != 0 {
		t.Fatalf("strict import added %d sites", n)
	}

	for _, in := range []string{
		"",
		"site,kind\n",
		ImportHeader + ",extra\n",
		strings.Replace(ImportHeader, "cup", "site", 1) + "\n",
	} {
		if _, err := ImportCSV(New(), strings.NewReader(in), ImportOptions{}); err == nil {
			t.Errorf("header %q: want an error", in)
		}
	}
}

// A plaintext secret weaker than credential.CheckStrength, or holding its
// site id, is refused with its line and the reason, never with the secret.
func TestImportCSV_WeakSecret(t *testing.T) {
	var in bytes.Buffer
	in.WriteString(ImportHeader + "\n")
	cw := csv.NewWriter(&in)
	rows := []struct {
		site, secret, reason string // reason "": imported
	}{
		{"PO-001020-1", "s3cret-atm", "secret too short: 10 characters, want at least 16"},
		{"PO-001021-1", "abcdefghijklmnopqrstuvwxyz", "one class of characters"},
		{"PO-001022-1", "aaaaaaaaaaaaaaaaaaaa1", "2 different characters"},
		{"PO-001023-1", "correct horse battery staple 9", "whitespace"},
		{"PO-001024-1", "po-001024-1/ATM-1-password", "contains the site id PO-001024-1"},
		{"PO-001025-1", "Qh7-vR2m_K9pLwZ3", ""},
	}
	for _, r := range rows {
		rec := make([]string, len(importColumns))
		rec[0], rec[2], rec[6], rec[18], rec[24] = r.site, r.site[3:9], "Piemonte", "atm-1", r.secret
		if err := cw.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	cw.Flush()
	reg := New()
	rep, err := ImportCSV(reg, bytes.NewReader(in.Bytes()), ImportOptions{})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if rep.Sites != 1 || len(rep.Refused) != len(rows)-1 || len(rep.Credentials) != 0 {
		t.Fatalf("unexpected report %+v", rep)
	}
	for i, r := range rows[:len(rows)-1] {
		g := rep.Refused[i]
		if g.Line != i+2 || g.ID != r.site+"/atm-1" || !strings.Contains(g.Reason, r.reason) {
			t.Errorf("refusal %d: got %+v; want line %d, %s/atm-1, reason containing %q", i, g, i+2, r.site, r.reason)
		}
		if !strings.HasPrefix(g.Reason, "column secret: ") || strings.Contains(g.Reason, r.secret) {
			t.Errorf("refusal %d: reason %q does not name the column or quotes the secret", i, g.Reason)
		}
		if _, ok := reg.Site(r.site); ok {
			t.Errorf("site %s with a weak secret was imported", r.site)
		}
	}
	if _, err := reg.Authenticate("PO-001025-1/atm-1", []byte("Qh7-vR2m_K9pLwZ3")); err != nil {
		t.Fatalf("the strong secret was not imported: %v", err)
	}

	// Strict: one weak secret refuses the file.
	rep, err = ImportCSV(New(), bytes.NewReader(in.Bytes()), ImportOptions{Strict: true})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "line 2: column secret: secret too short") {
		t.Fatalf("strict: unexpected %v, %+v", err, rep)
	}
}

// TestImportCSV_Bulk provisions a generated fleet of thousands of sites
// through the CSV in one call.
func TestImportCSV_Bulk(t *testing.T) {
	src, _, err := Generate(GenerateOptions{Sites: 4800, Coworking: 250, Seed: 9})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ExportCSV(&buf, src); err != nil {
		t.Fatal(err)
	}
	// Strip the hashes (the column before labels, which are empty here):
	// every device gets a fresh secret.
	var in bytes.Buffer
	for i, l := range strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n") {
		if i > 0 {
			l = strings.TrimSuffix(l, ",")
			l = l[:strings.LastIndexByte(l, ',')+1] + ","
		}
		in.WriteString(l + "\n")
	}
	reg := New()
	rep, err := ImportCSV(reg, &in, ImportOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	ns, na := src.Len()
	if rep.Sites != ns || rep.Assets != na || len(rep.Credentials) != na || len(rep.Refused) != 0 {
		t.Fatalf("unexpected report: %d sites %d assets %d credentials; want %d %d %d", rep.Sites, rep.Assets, len(rep.Credentials), ns, na, na)
	}
	c := rep.Credentials[na/2]
	if _, err := reg.Authenticate(c.Username, []byte(c.Password)); err != nil {
		t.Fatal(err)
	}
}

func TestImportComuni_Real(t *testing.T) {
	reg := New()
	rep, err := ImportComuniFiles(reg, sharedData(t, "comuni_mappa_ai_2020.csv"), sharedData(t, "comuni_centroidi_openpolis_2023.csv"), ComuniOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// README "Key numbers": 7,169 comuni under 15,000, 734 above; 7 codes of
	// 2020 are missing from the 2023 centroids.
	missing := []string{"005079", "005110", "012009", "012018", "012095", "041033", "041060"}
	if rep.Filtered != 7903-7169 || len(rep.Refused) != len(missing) || rep.Sites != 7169-len(missing) {
		t.Fatalf("unexpected report: %d sites, %d filtered, refused %+v", rep.Sites, rep.Filtered, rep.Refused)
	}
	for i, code := range missing {
		if rep.Refused[i].ID != code || !strings.Contains(rep.Refused[i].Reason, "no centroid") {
			t.Errorf("unexpected refusal %+v; want %s", rep.Refused[i], code)
		}
	}
	broken := []string{"031019", "031022", "032001"}
	if len(rep.Warnings) != len(broken) {
		t.Fatalf("unexpected warnings %+v", rep.Warnings)
	}
	for i, code := range broken {
		if rep.Warnings[i].ID != code {
			t.Errorf("unexpected warning %+v; want %s", rep.Warnings[i], code)
		}
	}
	// Borgocarbonara has trailing spaces in the source; Duino Aurisina's
	// name comes from the comuni list, not the damaged centroid name.
	s, ok := reg.Site("PO-020073-1")
	if !ok || s.Name != "Borgocarbonara" || s.Province != "MN" || s.ProvinceName != "Mantova" || s.Region != "Lombardia" ||
		s.InnerArea == "" || s.Population <= 0 || s.Lat < 44 || s.Lat > 46 || s.Lon < 10 || s.Lon > 12 {
		t.Fatalf("unexpected site %+v", s)
	}
	if d, ok := reg.Site("PO-032001-1"); !ok || !cleanText(d.Name) || d.Lat == 0 {
		t.Fatalf("unexpected site %+v", d)
	}
	for _, s := range reg.Sites() {
		if err := s.Validate(); err != nil || s.Population >= SmallComuneLimit {
			t.Fatalf("site %s: %v (population %d)", s.ID, err, s.Population)
		}
	}

	// Options: a filter, and keeping comuni without centroids.
	reg2 := New()
	rep, err = ImportComuniFiles(reg2, sharedData(t, "comuni_mappa_ai_2020.csv"), sharedData(t, "comuni_centroidi_openpolis_2023.csv"),
		ComuniOptions{AllowMissingCentroid: true, Filter: func(c Comune) bool { return c.InnerArea == "F" && c.Population < 15000 }})
	if err != nil || rep.Sites != 382 || len(rep.Refused) != 0 {
		t.Fatalf("class F under 15,000: %v, %d sites (want 382), refused %+v", err, rep.Sites, rep.Refused)
	}
}

func TestImportComuni_KeepsAssets(t *testing.T) {
	reg := New()
	_ = reg.Add(&Site{ID: "PO-001002-1", Kind: KindPostOffice, Comune: "001002", Address: "Via Roma 1",
		Assets: []*Asset{{ID: "atm-1", Type: TypeATM, SecretHash: credential.Hash("x")}}})
	comuni := "PROCOM_T,REGIONE,SIGLA_AUTOM,PROVINCIA_CM,COMUNE_30sett20,FLAG_CAPOLUOGO,POP_RES_CENS_2020,COD_AI_2020\n" +
		"001002,Piemonte,TO,Torino,Airasca,0,3700,C\n"
	cents := "pro_com_t,comune,lat,lon\n001002,Airasca,44.9,7.4\n"
	rep, err := ImportComuni(reg, strings.NewReader(comuni), strings.NewReader(cents), ComuniOptions{})
	if err != nil || rep.Sites != 1 || rep.Assets != 1 {
		t.Fatalf("unexpected %v, %+v", err, rep)
	}
	s, _ := reg.Site("PO-001002-1")
	if s.Name != "Airasca" || s.Address != "Via Roma 1" || !reg.Known("PO-001002-1", "atm-1") {
		t.Fatalf("unexpected site %+v", s)
	}
	for _, bad := range [][2]string{{"", cents}, {comuni, ""}, {comuni, "pro_com_t,lat,lon\n001002,44.9,7.4\n"}} {
		if _, err := ImportComuni(New(), strings.NewReader(bad[0]), strings.NewReader(bad[1]), ComuniOptions{}); err == nil {
			t.Errorf("want an error for %q / %q", bad[0], bad[1])
		}
	}
}

// FuzzImportCSV checks that no input panics, that every refusal names a
// line, and that whatever is imported validates.
func FuzzImportCSV(f *testing.F) {
	f.Add(readFixture(f, "import.good.csv"))
	f.Add(readFixture(f, "import.bad.csv"))
	f.Add([]byte(ImportHeader + "\n\"unterminated\n"))
	f.Add([]byte(fmt.Sprintf("%s\nPO-001001-1%s\n", ImportHeader, strings.Repeat(",", 25))))
	f.Fuzz(func(t *testing.T, b []byte) {
		reg := New()
		rep, err := ImportCSV(reg, bytes.NewReader(b), ImportOptions{})
		if err != nil {
			return
		}
		for _, r := range rep.Refused {
			if r.Line < 1 || r.Reason == "" {
				t.Fatalf("refusal without line or reason: %+v", r)
			}
		}
		sites, assets := reg.Len()
		if sites != rep.Sites || assets != rep.Assets {
			t.Fatalf("report says %d/%d, registry holds %d/%d", rep.Sites, rep.Assets, sites, assets)
		}
		for _, s := range reg.Sites() {
			if err := s.Validate(); err != nil {
				t.Fatalf("imported an invalid site: %v", err)
			}
		}
	})
}

// FuzzImportComuni fuzzes the centroid side (the comuni side is
// FuzzReadComuni): no input panics, and an accepted file yields valid sites.
func FuzzImportComuni(f *testing.F) {
	f.Add([]byte("pro_com_t,comune,lat,lon\n001002,Airasca,44.9,7.4\n"))
	f.Add([]byte("pro_com_t,comune,lat,lon\n001002,Sovodnje ob So?i,44.9,7.4\n"))
	f.Add([]byte("pro_com_t,comune,lat,lon\n001002,\"Duino\u009e\",44.9,7.4\n"))
	comuni := "PROCOM_T,REGIONE,SIGLA_AUTOM,PROVINCIA_CM,COMUNE_30sett20,FLAG_CAPOLUOGO,POP_RES_CENS_2020,COD_AI_2020\n" +
		"001002,Piemonte,TO,Torino,Airasca,0,3700,C\n001003,Piemonte,TO,Torino,X,0,37000,C\n"
	f.Fuzz(func(t *testing.T, cents []byte) {
		reg := New()
		rep, err := ImportComuni(reg, strings.NewReader(comuni), bytes.NewReader(cents), ComuniOptions{})
		if err != nil {
			return
		}
		if rep.Filtered != 1 || rep.Sites+len(rep.Refused) != 1 {
			t.Fatalf("unexpected report %+v", rep)
		}
		for _, s := range reg.Sites() {
			if err := s.Validate(); err != nil {
				t.Fatal(err)
			}
		}
	})
}

func BenchmarkImportCSV(b *testing.B) {
	src, _, err := Generate(GenerateOptions{Sites: 1000, Coworking: 50, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var buf bytes.Buffer
	if err := ExportCSV(&buf, src); err != nil {
		b.Fatal(err)
	}
	_, assets := src.Len()
	b.SetBytes(int64(buf.Len()))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ImportCSV(New(), bytes.NewReader(buf.Bytes()), ImportOptions{Strict: true}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(assets), "assets/op")
}

func TestParseLabels(t *testing.T) {
	for _, tc := range []struct {
		in, want, err string
	}{
		{"", "", ""},
		{"tier=pilot", "tier=pilot", ""},
		{" zone=alps ; tier=pilot", "tier=pilot;zone=alps", ""},
		{"tier=", "tier=", ""},
		{"tier", "", "name=value"},
		{"9x=1", "", "name=value"},
		{"a=1;a=2", "", "twice"},
	} {
		got, err := ParseLabels(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLabels(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || FormatLabels(got) != tc.want {
			t.Errorf("ParseLabels(%q) = %v, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
