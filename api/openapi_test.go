package api

import (
	"context"
	"encoding/json"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/polis-platform/polis/rules"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/services"
	"github.com/polis-platform/polis/storage"
)

// TestOpenAPIDocument loads the document as served and checks that it is
// valid OpenAPI 3 and lists exactly the routes the API mounts.
func TestOpenAPIDocument(t *testing.T) {
	e := newEnv(t)
	resp, b := e.do(t, "GET", "/api/v1/openapi.json", "")
	if resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("unexpected Content-Type %q", resp.Header.Get("Content-Type"))
	}
	doc, err := openapi3.NewLoader().LoadFromData(b)
	if err != nil {
		t.Fatalf("the served document does not load: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	var documented []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			documented = append(documented, method+" "+path)
		}
	}
	var mounted []string
	// Every optional route mounted, as with all dependencies given.
	for _, rt := range (&v1{o: V1Options{Registrar: &fakeRegistrar{}, Alerts: engine.New(engine.Options{}),
		Rules: (*rules.Service)(nil), Milestones: milestoneFunc(nil), SQL: (*storage.SQLExecutor)(nil), Services: (*services.Finder)(nil)}}).routes(nil) {
		mounted = append(mounted, rt.method+" "+strings.TrimSuffix(rt.path, "{$}"))
	}
	sort.Strings(documented)
	sort.Strings(mounted)
	if !slices.Equal(documented, mounted) {
		t.Fatalf("the document and the routes differ;\ndocumented %v\nmounted    %v", documented, mounted)
	}
	for _, op := range []string{"PATCH /api/v1/sites/{site}/assets/{asset}/desired", "POST /api/v1/sites/{site}/assets/{asset}/lifecycle",
		"POST /api/v1/registry/import", "GET /api/v1/registry/export",
		"POST /api/v1/alerts/{fingerprint}/ack", "POST /api/v1/alerts/{fingerprint}/assign",
		"POST /api/v1/silences", "DELETE /api/v1/silences/{id}",
		"PUT /api/v1/rules/{id}", "DELETE /api/v1/rules/{id}", "POST /api/v1/rules/backtest", "POST /api/v1/sql",
		"POST /api/v1/lifecycle/import"} {
		method, path, _ := strings.Cut(op, " ")
		if o := doc.Paths.Value(path).GetOperation(method); o.Security == nil || len(*o.Security) == 0 {
			t.Fatalf("%s has no bearer security", op)
		}
	}
	var raw map[string]any
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
}
