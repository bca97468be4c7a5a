package registry

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/polis-platform/polis/credential"
)

// With ReproducibleSecrets the same seed gives the same fleet, secrets and
// salts included, byte for byte.
func TestGenerate_ReproducibleSecrets(t *testing.T) {
	cs := loadRealComuni(t)
	gen := func(seed uint64) ([]byte, []Credential) {
		t.Helper()
		r, creds, err := Generate(GenerateOptions{Sites: 300, Coworking: 20, Seed: seed, Comuni: cs, ReproducibleSecrets: true})
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		b, err := json.Marshal(r.Sites())
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		for i, c := range creds {
			if i%37 == 0 {
				if _, err := r.Authenticate(c.Username, []byte(c.Password)); err != nil {
					t.Fatalf("cannot authenticate %s: %v", c.Username, err)
				}
			}
		}
		return b, creds
	}
	reg1, creds1 := gen(42)
	reg2, creds2 := gen(42)
	if !bytes.Equal(reg1, reg2) {
		t.Errorf("same seed gave different registries")
	}
	if !equalCreds(creds1, creds2) {
		t.Errorf("same seed gave different credentials")
	}
	if creds1[0].Password != derivedSecret(42, creds1[0].Username) || creds1[0].Password != ReproducibleSecret(42, creds1[0].Username) {
		t.Errorf("reproducible secret of %s is not the documented derivation", creds1[0].Username)
	}
	reg3, creds3 := gen(43)
	if bytes.Equal(reg1, reg3) || equalCreds(creds1, creds3) {
		t.Errorf("different seeds gave the same fleet")
	}
}

// derivedSecret is the fixed-key derivation of ReproducibleSecrets, which
// anyone with the source can compute, written out here again.
func derivedSecret(seed uint64, user string) string {
	mac := hmac.New(sha256.New, reproducibleSecretKey(seed))
	return base64.RawURLEncoding.EncodeToString(keyed(mac, nil, "secret", user)[:18])
}

func equalCreds(a, b []Credential) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// withoutHashes is the fleet's layout: the registry with every secret hash
// left out.
func withoutHashes(t *testing.T, r *Registry) []byte {
	t.Helper()
	sites := r.Sites()
	out := make([]Site, len(sites))
	for i, s := range sites {
		out[i] = *s
		out[i].Assets = make([]*Asset, len(s.Assets))
		for j, a := range s.Assets {
			cp := *a
			cp.SecretHash = ""
			out[i].Assets[j] = &cp
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// By default the seed fixes the layout only: every run draws new secrets
// and salts from crypto/rand, none of which is the fixed-key derivation.
func TestGenerate_RandomSecretsByDefault(t *testing.T) {
	opts := GenerateOptions{Sites: 40, Coworking: 2, Seed: 1}
	r1, a, err := Generate(opts)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	r2, b, err := Generate(opts)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if !bytes.Equal(withoutHashes(t, r1), withoutHashes(t, r2)) {
		t.Fatalf("same seed gave different layouts")
	}
	if len(a) != len(b) || len(a) == 0 {
		t.Fatalf("same seed gave different fleets: %d and %d devices", len(a), len(b))
	}
	_, fixed, err := Generate(GenerateOptions{Sites: 40, Coworking: 2, Seed: 1, ReproducibleSecrets: true})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	seen := map[string]bool{}
	for i := range a {
		if a[i].Username != b[i].Username || a[i].Username != fixed[i].Username {
			t.Fatalf("same seed gave different ids: %s, %s, %s", a[i].Username, b[i].Username, fixed[i].Username)
		}
		if a[i].Password == b[i].Password {
			t.Fatalf("two runs gave %s the same password", a[i].Username)
		}
		for _, p := range []string{a[i].Password, b[i].Password} {
			if p == fixed[i].Password || p == derivedSecret(1, a[i].Username) || p == derivedSecret(0, a[i].Username) {
				t.Fatalf("default secret of %s is the fixed-key derivation", a[i].Username)
			}
			if seen[p] {
				t.Fatalf("a password was given twice")
			}
			seen[p] = true
			if err := credential.CheckStrength(p); err != nil {
				t.Fatalf("generated secret of %s is weak: %v", a[i].Username, err)
			}
		}
		s1, _ := r1.Asset(a[i].Site, a[i].Asset)
		s2, _ := r2.Asset(b[i].Site, b[i].Asset)
		if s1.SecretHash == s2.SecretHash || credential.Check(s1.SecretHash, []byte(fixed[i].Password)) {
			t.Fatalf("hash of %s is not fresh or accepts the fixed-key secret", a[i].Username)
		}
		if _, err := r1.Authenticate(a[i].Username, []byte(a[i].Password)); err != nil {
			t.Fatalf("cannot authenticate %s: %v", a[i].Username, err)
		}
		if _, err := r1.Authenticate(b[i].Username, []byte(b[i].Password)); err == nil {
			t.Fatalf("the first fleet accepts the second's password of %s", b[i].Username)
		}
	}
}

// TestGenerate_Fleet checks the docs/design.md fleet (4,800 offices, 250
// coworking spaces) against the real comuni.
func TestGenerate_Fleet(t *testing.T) {
	cs := loadRealComuni(t)
	byCode := map[string]Comune{}
	smallByRegion := map[string]int{}
	for _, c := range cs {
		byCode[c.Code] = c
		if c.Population < SmallComuneLimit {
			smallByRegion[c.Region]++
		}
	}
	r, creds, err := Generate(GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1, Comuni: cs})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	types := map[string]int{}
	officesByRegion := map[string]int{}
	offices, coworking, desks := 0, 0, 0
	usedComune := map[string]bool{}
	for _, s := range r.Sites() {
		if !ValidSiteID(s.ID) {
			t.Fatalf("invalid site id %q", s.ID)
		}
		c, ok := byCode[s.Comune]
		if !ok {
			t.Fatalf("site %s in unknown comune %q", s.ID, s.Comune)
		}
		switch s.Kind {
		case KindPostOffice:
			offices++
			officesByRegion[s.Region]++
			if c.Population >= SmallComuneLimit || !strings.HasPrefix(s.ID, "PO-"+c.Code+"-") {
				t.Fatalf("office %s in comune %s of %d people", s.ID, c.Code, c.Population)
			}
			if usedComune[c.Code] {
				t.Fatalf("comune %s got two offices although there are enough comuni", c.Code)
			}
			usedComune[c.Code] = true
		case KindCoworking:
			coworking++
			if !c.Capital || !strings.HasPrefix(s.ID, "CW-"+c.ProvinceCode+"-") {
				t.Fatalf("coworking %s in %s, not a provincial capital of its province", s.ID, c.Name)
			}
		}
		for _, a := range s.Assets {
			if !ValidAssetID(a.ID) || AssetTypeOf(a.ID) != a.Type {
				t.Fatalf("asset %s/%s: bad id or type %q", s.ID, a.ID, a.Type)
			}
			types[a.Type]++
			if a.Type == TypeDesk {
				desks++
			}
		}
		if s.Kind == KindCoworking && !r.Known(s.ID, "room-1") {
			t.Fatalf("coworking %s has no meeting room", s.ID)
		}
	}
	if offices != 4800 || coworking != 250 {
		t.Fatalf("unexpected site counts; got %d offices and %d coworking; want 4800 and 250", offices, coworking)
	}
	for typ, want := range map[string]int{
		TypeATM: 3000, TypeEVC: 5000, TypePV: 1000, TypeOutdoor: 1000, TypeTotem: 4800,
		TypeLocker: 4800, TypeShowcase: 4800, TypeEnv: 5050, TypeMeter: 5050, GatewayType: 5050,
	} {
		if types[typ] != want {
			t.Errorf("unexpected %s count; got %d; want %d", typ, types[typ], want)
		}
	}
	if desks < 5000 || desks > 10000 {
		t.Errorf("unexpected desk count %d; want 5,000-10,000 (docs/design.md)", desks)
	}

	// Region shares follow the real counts of small comuni (chi-square).
	chi2 := 0.0
	for reg, n := range smallByRegion {
		want := 4800 * float64(n) / 7169
		d := float64(officesByRegion[reg]) - want
		chi2 += d * d / want
		if math.Abs(d) > 1 {
			t.Errorf("region %s: got %d offices; want %.1f", reg, officesByRegion[reg], want)
		}
	}
	if chi2 > 1 {
		t.Errorf("regional distribution too far from the data: chi2 = %.2f over %d regions", chi2, len(smallByRegion))
	}

	if len(creds) != 4800*7+3000+200+1000+1000+250*3+types[TypeDesk]+types[TypeRoom] {
		t.Errorf("unexpected credential count %d", len(creds))
	}
	for i, c := range creds {
		a, ok := r.Asset(c.Site, c.Asset)
		if !ok || c.Username != Username(c.Site, c.Asset) {
			t.Fatalf("credential %+v does not match the registry", c)
		}
		if i%97 == 0 && !credential.Check(a.SecretHash, []byte(c.Password)) {
			t.Fatalf("secret of %s does not verify", c.Username)
		}
		if credential.Check(a.SecretHash, []byte(c.Password+"x")) || strings.Contains(a.SecretHash, c.Password) {
			t.Fatalf("hash of %s accepts a wrong secret or holds the plaintext", c.Username)
		}
	}
}

func TestGenerate_Sizes(t *testing.T) {
	cs := loadRealComuni(t)
	f := func(opts GenerateOptions, wantSites int, wantID string) {
		t.Helper()
		r, creds, err := Generate(opts)
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		if n, _ := r.Len(); n != wantSites {
			t.Errorf("unexpected site count; got %d; want %d", n, wantSites)
		}
		for i, c := range creds {
			if !ValidSiteID(c.Site) || !ValidAssetID(c.Asset) {
				t.Fatalf("invalid ids %s", c.Username)
			}
			if i%50 == 0 {
				if _, err := r.Authenticate(c.Username, []byte(c.Password)); err != nil {
					t.Fatalf("cannot authenticate %s: %v", c.Username, err)
				}
			}
		}
		if wantID != "" {
			if _, ok := r.Site(wantID); !ok {
				t.Errorf("site %s missing", wantID)
			}
		}
	}
	f(GenerateOptions{}, 0, "")
	f(GenerateOptions{Sites: 6933, Comuni: cs}, 6933, "")          // Poste 2022 results
	f(GenerateOptions{Sites: 7169 + 10, Comuni: cs}, 7179, "")     // more offices than small comuni: wrap to -2
	f(GenerateOptions{Coworking: 250, Comuni: cs}, 250, "CW-RM-2") // 109 capitals, Rome gets at least two
	f(GenerateOptions{Sites: 40, Coworking: 5, Seed: 3}, 45, "")   // synthetic
	r, _, err := Generate(GenerateOptions{Sites: 7169 + 10, Comuni: cs})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	second := 0
	for _, s := range r.Sites() {
		if strings.HasSuffix(s.ID, "-2") {
			second++
		}
	}
	if second != 10 {
		t.Errorf("unexpected number of second offices; got %d; want 10", second)
	}
}

func TestGenerate_Failure(t *testing.T) {
	big := []Comune{{Code: "058091", Name: "Roma", Region: "Lazio", ProvinceCode: "RM", Population: 2_700_000, Capital: true}}
	small := []Comune{{Code: "001001", Name: "Agliè", Region: "Piemonte", ProvinceCode: "TO", Population: 2545}}
	f := func(opts GenerateOptions, wantErr string) {
		t.Helper()
		_, _, err := Generate(opts)
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("unexpected error; got %v; want one containing %q", err, wantErr)
		}
	}
	f(GenerateOptions{Sites: -1}, "negative size")
	f(GenerateOptions{Sites: 1, Comuni: big}, "no comune under 15000")
	f(GenerateOptions{Coworking: 1, Comuni: small}, "no provincial capital")
}

func TestAssetTypeOf(t *testing.T) {
	f := func(id, want string) {
		t.Helper()
		if got := AssetTypeOf(id); got != want {
			t.Errorf("unexpected type of %q; got %q; want %q", id, got, want)
		}
	}
	f("gw-1", GatewayType)
	f("evc-2", TypeEVC)
	f("desk-14", TypeDesk)
	f("env-1", TypeEnv)
	f("weird", "weird")
}

func TestLargestRemainder(t *testing.T) {
	f := func(total int, weights, want []int) {
		t.Helper()
		got := largestRemainder(total, weights)
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("largestRemainder(%d, %v); got %v; want %v", total, weights, got, want)
			}
		}
	}
	f(10, []int{1, 1, 1}, []int{1, 1, 1})
	f(3, []int{1, 1, 1}, []int{1, 1, 1})
	f(2, []int{1, 1, 1}, []int{1, 1, 0})
	f(7, []int{50, 30, 20}, []int{4, 2, 1})
	f(0, []int{5, 5}, []int{0, 0})
	f(5, []int{0, 0}, []int{0, 0})
}

func BenchmarkGenerate(b *testing.B) {
	cs := loadRealComuni(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := Generate(GenerateOptions{Sites: 4800, Coworking: 250, Seed: 1, Comuni: cs}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestDemoCUP(t *testing.T) {
	for _, tc := range []struct {
		kind SiteKind
		n    int
		want string
	}{
		{KindPostOffice, 42, "Z99D22000420008"},
		{KindPostOffice, 1, "Z99D22000010003"},
		{KindCoworking, 250, "Z99D23002500000"},
	} {
		if got := DemoCUP(tc.kind, tc.n); got != tc.want || !ValidCUP(got) {
			t.Errorf("DemoCUP(%s, %d) = %q; want %q, a valid CUP", tc.kind, tc.n, got, tc.want)
		}
	}
}

// Every site has a CUP and a works contract, every asset a made-up
// supplier and the CIG of its contract; one supplier and one CIG per
// category of supply and lot, lots by region.
func TestGenerate_Contracts(t *testing.T) {
	r, _, err := Generate(GenerateOptions{Sites: 600, Coworking: 30, Seed: 11, Comuni: loadRealComuni(t)})
	if err != nil {
		t.Fatal(err)
	}
	cups := map[string]string{}
	contract := map[string]string{} // supplier -> CIG
	suppliers := map[string]map[string]bool{}
	for _, s := range r.Sites() {
		if !ValidCUP(s.CUP) || !strings.HasPrefix(s.CUP, "Z99D") || !ValidCIG(s.CIG) || !strings.HasPrefix(s.CIG, "DEMO") {
			t.Fatalf("site %s: CUP %q, CIG %q; want the demo forms", s.ID, s.CUP, s.CIG)
		}
		if other, dup := cups[s.CUP]; dup {
			t.Fatalf("sites %s and %s share CUP %s", other, s.ID, s.CUP)
		}
		cups[s.CUP] = s.ID
		if suppliers[s.Region] == nil {
			suppliers[s.Region] = map[string]bool{}
		}
		for _, a := range s.Assets {
			if !strings.HasPrefix(a.Supplier, "Fornitore Demo ") || !ValidCIG(a.CIG) || !strings.HasPrefix(a.CIG, "DEMO") || a.CIG == s.CIG {
				t.Fatalf("asset %s/%s: supplier %q, CIG %q", s.ID, a.ID, a.Supplier, a.CIG)
			}
			if c, ok := contract[a.Supplier]; ok && c != a.CIG {
				t.Fatalf("supplier %q holds two CIGs, %s and %s", a.Supplier, c, a.CIG)
			}
			contract[a.Supplier] = a.CIG
			suppliers[s.Region][a.Supplier] = true
		}
	}
	cigs := map[string]bool{}
	for _, c := range contract {
		cigs[c] = true
	}
	// 6 categories in 3 lots, distinct contracts.
	if len(contract) != 18 || len(cigs) != 18 {
		t.Fatalf("%d suppliers with %d CIGs; want 18 and 18: %v", len(contract), len(cigs), contract)
	}
	if !suppliers["Lombardia"]["Fornitore Demo ATM Nord S.r.l."] || suppliers["Sicilia"]["Fornitore Demo ATM Nord S.r.l."] {
		t.Fatalf("lots do not follow regions: %v / %v", suppliers["Lombardia"], suppliers["Sicilia"])
	}
	// Contracts depend on the seed, not on the fleet's size.
	small, _, err := Generate(GenerateOptions{Sites: 10, Seed: 11})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range small.Sites() {
		for _, a := range s.Assets {
			if c, ok := contract[a.Supplier]; ok && c != a.CIG {
				t.Fatalf("supplier %q: CIG %s in a small fleet, %s in a large one", a.Supplier, a.CIG, c)
			}
		}
	}
}

// Opening hours follow the size of the comune: alternate days are common
// under 1,000 people, afternoons only above 5,000.
func TestGenerate_OpeningHours(t *testing.T) {
	r, _, err := Generate(GenerateOptions{Sites: 3000, Seed: 2, Comuni: loadRealComuni(t)})
	if err != nil {
		t.Fatal(err)
	}
	type tally struct{ n, alternate, fullDay int }
	var tiny, mid, large tally
	full := MustParseOpeningHours(hoursFullDay).String()
	for _, s := range r.Sites() {
		h := s.OpeningHours
		alternate := len(h.Days[time.Monday]) == 0 || len(h.Days[time.Tuesday]) == 0
		fullDay := h.String() == full
		c := &mid
		switch {
		case s.Population < 1000:
			c = &tiny
		case s.Population >= 5000:
			c = &large
		}
		c.n++
		if alternate {
			c.alternate++
		}
		if fullDay {
			c.fullDay++
		}
	}
	share := func(k, n int) float64 { return float64(k) / float64(max(n, 1)) }
	if tiny.n < 100 || mid.n < 100 || large.n < 100 {
		t.Fatalf("too few offices per size to judge: %+v %+v %+v", tiny, mid, large)
	}
	if s := share(tiny.alternate, tiny.n); s < 0.5 || s > 0.7 {
		t.Errorf("%.2f of offices under 1,000 people open on alternate days; want about 0.6", s)
	}
	if mid.alternate+large.alternate+tiny.fullDay+mid.fullDay > 0 {
		t.Errorf("alternate days above 1,000 people or afternoons below 5,000: %+v %+v %+v", tiny, mid, large)
	}
	if s := share(large.fullDay, large.n); s < 0.3 || s > 0.5 {
		t.Errorf("%.2f of offices above 5,000 people open afternoons; want about 0.4", s)
	}
}
