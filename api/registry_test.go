package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/polis-platform/polis/twin/registry"
)

func readRegistryFixture(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../twin/registry/testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func csvAs(tok string) []string { return append(bearer(tok), "Content-Type", "text/csv") }

func decodeReport(t *testing.T, b []byte) importReport {
	t.Helper()
	var r importReport
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("cannot decode report %s: %v", b, err)
	}
	return r
}

func exportCSV(t *testing.T, reg *registry.Registry) string {
	t.Helper()
	var b bytes.Buffer
	if err := registry.ExportCSV(&b, reg); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestRegistryImport imports the registry package's good fixture: its sites
// replace the fleet's, rows without a secret get one, returned once.
func TestRegistryImport(t *testing.T) {
	e := newEnv(t)
	// Rows of the fixture with neither secret nor hash get a new secret
	// unless the registry already has the asset's hash.
	want := map[string]bool{}
	for _, u := range []string{"PO-001002-1/gw-1", "CW-TO-1/desk-1"} {
		site, asset, _ := strings.Cut(u, "/")
		if a, ok := e.reg.Asset(site, asset); !ok || a.SecretHash == "" {
			want[u] = true
		}
	}
	resp, b := e.do(t, "POST", "/api/v1/registry/import", readRegistryFixture(t, "import.good.csv"), csvAs(operatorToken)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("unexpected status %d: %s", resp.StatusCode, b)
	}
	rep := decodeReport(t, b)
	if rep.Sites != 3 || rep.Assets != 4 || len(rep.Refused) != 0 {
		t.Fatalf("unexpected report %+v", rep)
	}
	if len(rep.Credentials) != len(want) {
		t.Fatalf("unexpected credentials; got %+v; want %v", rep.Credentials, want)
	}
	for _, c := range rep.Credentials {
		if !want[c.Username] || c.Username != c.Site+"/"+c.Asset || c.Password == "" {
			t.Fatalf("unexpected credential %+v", c)
		}
		if _, err := e.reg.Authenticate(c.Username, []byte(c.Password)); err != nil {
			t.Fatalf("the returned credential does not log in: %v", err)
		}
	}
	if _, err := e.reg.Authenticate("PO-001002-1/atm-1", []byte("s3cret-atm-Xq7vR2mK9pLw")); err != nil {
		t.Fatalf("the row's own secret does not log in: %v", err)
	}
	for _, id := range []string{"PO-001002-1", "CW-TO-1", "PO-001003-1"} {
		resp, b := e.do(t, "GET", "/api/v1/sites/"+id, "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("site %s after import: %d %s", id, resp.StatusCode, b)
		}
	}
	if s, _ := e.reg.Site("PO-001002-1"); len(s.Assets) != 3 || s.Address != "Via Roma 1, Airasca" {
		t.Fatalf("site not replaced: %+v", s)
	}
}

// TestRegistryImportRefused lists bad rows by line; strict mode refuses
// the whole file.
func TestRegistryImportRefused(t *testing.T) {
	e := newEnv(t)
	bad := readRegistryFixture(t, "import.bad.csv")
	before := exportCSV(t, e.reg)

	resp, b := e.do(t, "POST", "/api/v1/registry/import?strict=true", bad, csvAs(operatorToken)...)
	if resp.StatusCode != http.StatusUnprocessableEntity {
		t.Fatalf("strict: unexpected status %d: %s", resp.StatusCode, b)
	}
	rep := decodeReport(t, b)
	if rep.Sites != 0 || len(rep.Refused) != 11 || len(rep.Credentials) != 0 {
		t.Fatalf("strict: unexpected report %+v", rep)
	}
	if after := exportCSV(t, e.reg); after != before {
		t.Fatal("strict import with refused rows changed the registry")
	}
	if _, ok := e.reg.Site("PO-001012-1"); ok {
		t.Fatal("strict import added a site")
	}

	resp, b = e.do(t, "POST", "/api/v1/registry/import?strict=false", bad, csvAs(operatorToken)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("unexpected status %d: %s", resp.StatusCode, b)
	}
	rep = decodeReport(t, b)
	if rep.Sites != 1 || rep.Assets != 1 || len(rep.Refused) != 11 || len(rep.Credentials) != 1 {
		t.Fatalf("unexpected report %+v", rep)
	}
	for i, w := range []struct {
		line int
		id   string
	}{{2, "PO-001002-1"}, {3, "PO-001002-1/atm-1"}, {4, "PO-001004-1/atm-1"}, {11, "PO-001010-1"}, {12, "PO-001011-1"}} {
		idx := map[int]int{0: 0, 1: 1, 2: 2, 3: 9, 4: 10}[i]
		if g := rep.Refused[idx]; g.Line != w.line || g.ID != w.id || g.Reason == "" {
			t.Errorf("refusal %d: got %+v; want line %d id %s", idx, g, w.line, w.id)
		}
	}
	if _, ok := e.reg.Site("PO-001012-1"); !ok {
		t.Fatal("the good row was not imported")
	}
	if c := rep.Credentials[0]; c.Username != "PO-001012-1/atm-1" || c.Site != "PO-001012-1" || c.Asset != "atm-1" {
		t.Fatalf("unexpected credential %+v", c)
	} else if _, err := e.reg.Authenticate(c.Username, []byte(c.Password)); err != nil {
		t.Fatalf("the generated credential does not log in: %v", err)
	}
	if _, ok := e.reg.Site("PO-001004-1"); ok {
		t.Fatal("a refused site was imported")
	}
}

// TestRegistryImportErrors: who may import, and what a bad request gets.
func TestRegistryImportErrors(t *testing.T) {
	small := newEnvLimits(t, Limits{MaxImportBytes: 200}, nil)
	e := newEnv(t)
	good := readRegistryFixture(t, "import.good.csv")
	tests := []struct {
		name, path, body string
		e                *env
		hdr              []string
		status           int
		contains         string
	}{
		{"no token", "/api/v1/registry/import", good, e, []string{"Content-Type", "text/csv"}, 401, "Bearer"},
		{"bad token", "/api/v1/registry/import", good, e, csvAs("nope"), 401, "not valid"},
		{"facility manager", "/api/v1/registry/import", good, e, csvAs(managerToken), 403, "operator"},
		{"json", "/api/v1/registry/import", good, e, bearer(operatorToken), 415, "text/csv"},
		{"no content type", "/api/v1/registry/import", good, e, append(bearer(operatorToken), "Content-Type", ""), 415, "text/csv"},
		{"csv with charset", "/api/v1/registry/import", good, e, append(bearer(operatorToken), "Content-Type", "text/csv; charset=utf-8"), 200, `"sites":3`},
		{"bad header", "/api/v1/registry/import", "site,kind\nPO-001002-1,post_office\n", e, csvAs(operatorToken), 400, `column`},
		{"empty", "/api/v1/registry/import", "", e, csvAs(operatorToken), 400, "empty file"},
		{"bad strict", "/api/v1/registry/import?strict=maybe", good, e, csvAs(operatorToken), 400, "true or false"},
		{"too large", "/api/v1/registry/import", good, small, csvAs(operatorToken), 413, "over 200 bytes"},
		{"export no token", "/api/v1/registry/export", "", e, nil, 401, "Bearer"},
		{"export facility manager", "/api/v1/registry/export", "", e, bearer(managerToken), 403, "operator"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := "POST"
			if strings.HasSuffix(tc.path, "/export") {
				method = "GET"
			}
			resp, b := tc.e.do(t, method, tc.path, tc.body, tc.hdr...)
			if resp.StatusCode != tc.status {
				t.Fatalf("unexpected status; got %d; want %d; body %s", resp.StatusCode, tc.status, b)
			}
			if !strings.Contains(string(b), tc.contains) {
				t.Fatalf("body does not say %q: %s", tc.contains, b)
			}
			if tc.status >= 400 {
				decodeError(t, b)
			}
		})
	}
	resp, b := e.do(t, "GET", "/api/v1/registry/import", "", bearer(operatorToken)...)
	if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "POST" {
		t.Fatalf("GET on import: %d %v %s", resp.StatusCode, resp.Header, b)
	}
}

// TestRegistryExport: the export is the registry's CSV, and importing it
// rebuilds the same registry.
func TestRegistryExport(t *testing.T) {
	e := newEnv(t)
	resp, b := e.do(t, "GET", "/api/v1/registry/export", "", bearer(operatorToken)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("unexpected status %d: %s", resp.StatusCode, b)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/csv") {
		t.Fatalf("unexpected Content-Type %q", ct)
	}
	if cd := resp.Header.Get("Content-Disposition"); cd != `attachment; filename="polis-registry.csv"` {
		t.Fatalf("unexpected Content-Disposition %q", cd)
	}
	if string(b) != exportCSV(t, e.reg) {
		t.Fatal("the export is not registry.ExportCSV's")
	}
	if !strings.HasPrefix(string(b), registry.ExportHeader+"\n") {
		t.Fatalf("the export does not start with the import header: %.200s", b)
	}

	// Into an empty registry: the same registry.
	fresh := registry.New()
	rep, err := registry.ImportCSV(fresh, bytes.NewReader(b), registry.ImportOptions{Strict: true})
	if err != nil {
		t.Fatal(err)
	}
	sites, assets := e.reg.Len()
	if rep.Sites != sites || rep.Assets != assets || len(rep.Credentials) != 0 {
		t.Fatalf("re-import: %+v; want %d sites, %d assets, no new credentials", rep, sites, assets)
	}
	if exportCSV(t, fresh) != string(b) {
		t.Fatal("the re-imported registry differs")
	}

	// Through the API, onto itself: nothing changes.
	resp, rb := e.do(t, "POST", "/api/v1/registry/import?strict=true", string(b), csvAs(operatorToken)...)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("re-import: %d %s", resp.StatusCode, rb)
	}
	if r := decodeReport(t, rb); r.Sites != sites || r.Assets != assets || len(r.Credentials) != 0 || len(r.Refused) != 0 {
		t.Fatalf("re-import: unexpected report %+v", r)
	}
	if exportCSV(t, e.reg) != string(b) {
		t.Fatal("re-importing the export changed the registry")
	}
}

// TestRegistryRoutesOptional: without a Registrar the routes are not there.
func TestRegistryRoutesOptional(t *testing.T) {
	a := &v1{}
	for _, rt := range a.routes(nil) {
		if strings.HasPrefix(rt.path, "/api/v1/registry/") {
			t.Fatalf("%s %s mounted without a Registrar", rt.method, rt.path)
		}
	}
}

// brokenRegistrar imports into its registry, then fails to save it.
type brokenRegistrar struct{ fakeRegistrar }

func (b *brokenRegistrar) Import(r io.Reader, strict bool) (*registry.ImportReport, error) {
	rep, err := b.fakeRegistrar.Import(r, strict)
	if err != nil {
		return rep, err
	}
	return rep, errors.New("cannot save registry: disk full")
}

func (b *brokenRegistrar) Export(io.Writer) error {
	return errors.New("cannot export registry: disk on fire")
}

// TestRegistryFailures: the Registrar's own failures are 500s, never a
// truncated file, and say that generated secrets were lost.
func TestRegistryFailures(t *testing.T) {
	e := newEnvWith(t, func(o *V1Options) { o.Registrar = &brokenRegistrar{fakeRegistrar{reg: registry.New()}} })
	resp, b := e.do(t, "POST", "/api/v1/registry/import", readRegistryFixture(t, "import.good.csv"), csvAs(operatorToken)...)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(decodeError(t, b).Message, "2 generated device secrets") {
		t.Fatalf("unexpected answer %d %s", resp.StatusCode, b)
	}
	resp, b = e.do(t, "GET", "/api/v1/registry/export", "", bearer(operatorToken)...)
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(decodeError(t, b).Message, "disk on fire") {
		t.Fatalf("unexpected answer %d %s", resp.StatusCode, b)
	}

	// Without a Registrar the routes are not there.
	e = newEnvWith(t, func(o *V1Options) { o.Registrar = nil })
	assertNotMounted(t, e, "GET /api/v1/registry/export", "POST /api/v1/registry/import")
}
