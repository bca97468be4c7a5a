package api

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// TestErrorCatalogue checks the table itself: one entry per code, each
// with an error status and a default message.
func TestErrorCatalogue(t *testing.T) {
	codeRe := regexp.MustCompile(`^[a-z][a-z_]*[a-z]$`)
	seen := map[ErrorCode]bool{}
	for _, e := range errorCatalogue {
		if seen[e.Code] {
			t.Errorf("code %q is in the catalogue twice", e.Code)
		}
		seen[e.Code] = true
		if !codeRe.MatchString(string(e.Code)) {
			t.Errorf("code %q: want snake_case", e.Code)
		}
		if e.Status < 300 || e.Status > 599 || http.StatusText(e.Status) == "" {
			t.Errorf("code %q: status %d is not a redirect or an error", e.Code, e.Status)
		}
		if e.Message == "" {
			t.Errorf("code %q: no default message", e.Code)
		}
		if got := e.Code.Status(); got != e.Status {
			t.Errorf("code %q: Status() = %d, want %d", e.Code, got, e.Status)
		}
	}
	if got := ErrorCode("no_such_code").Status(); got != http.StatusInternalServerError {
		t.Errorf("a code missing from the catalogue: status %d, want 500", got)
	}
}

// TestErrorCodesDocumented checks that openapi.yaml lists exactly the
// catalogue's codes (the enum of Error's code) with their statuses (its
// description), and that RuleRefused's codes are in the catalogue.
func TestErrorCodesDocumented(t *testing.T) {
	doc, err := contract()
	if err != nil {
		t.Fatal(err)
	}
	code := doc.Components.Schemas["Error"].Value.Properties["code"].Value
	var documented []string
	for _, v := range code.Enum {
		documented = append(documented, v.(string))
	}
	var catalogued []string
	for _, e := range errorCatalogue {
		catalogued = append(catalogued, string(e.Code))
	}
	slices.Sort(documented)
	slices.Sort(catalogued)
	if !slices.Equal(documented, catalogued) {
		t.Errorf("the Error schema's code enum and the catalogue differ;\ndocumented %v\ncatalogue  %v", documented, catalogued)
	}

	// The description: "<status> code, code; <status> code; ...".
	described := map[ErrorCode]int{}
	lines := strings.Split(strings.TrimSpace(code.Description), "\n")
	status := 0
	for _, f := range strings.FieldsFunc(strings.Join(lines[1:], " "), func(r rune) bool {
		return r == ' ' || r == ',' || r == ';' || r == '.'
	}) {
		if n, err := strconv.Atoi(f); err == nil {
			status = n
			continue
		}
		if _, dup := described[ErrorCode(f)]; dup {
			t.Errorf("the description of Error's code lists %q twice", f)
		}
		described[ErrorCode(f)] = status
	}
	for _, e := range errorCatalogue {
		if got, ok := described[e.Code]; !ok {
			t.Errorf("the description of Error's code does not list %q (status %d)", e.Code, e.Status)
		} else if got != e.Status {
			t.Errorf("the description of Error's code lists %q under %d, the catalogue under %d", e.Code, got, e.Status)
		}
		delete(described, e.Code)
	}
	for c := range described {
		t.Errorf("the description of Error's code lists %q, which is not in the catalogue", c)
	}

	for _, v := range doc.Components.Schemas["RuleRefused"].Value.Properties["code"].Value.Enum {
		if _, ok := errorSpecs[ErrorCode(v.(string))]; !ok {
			t.Errorf("RuleRefused's code %q is not in the catalogue", v)
		}
	}
}

// TestErrorCodesUsed reads the package's source: every error written names
// a code of the catalogue by its constant (WriteError's code, the Code of an
// Error or of a body that embeds it), codes are made only in errors.go, and
// error bodies are written only through writeCoded, which takes the status
// from the catalogue. Together with checkContract, which compares every
// error a test receives with the catalogue, this keeps literal codes and
// ad-hoc statuses out of the handlers.
func TestErrorCodesUsed(t *testing.T) {
	fset := token.NewFileSet()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	// The constants of type ErrorCode, by name.
	consts := map[string]ErrorCode{}
	parsed := map[string]*ast.File{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		parsed[name] = f
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.CONST {
				continue
			}
			for _, sp := range gd.Specs {
				vs := sp.(*ast.ValueSpec)
				if id, ok := vs.Type.(*ast.Ident); !ok || id.Name != "ErrorCode" {
					continue
				}
				if name != "errors.go" {
					t.Errorf("%s: error codes %v are declared outside errors.go", fset.Position(vs.Pos()), vs.Names)
				}
				for i, n := range vs.Names {
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						t.Fatalf("%s: code %s is not a string literal", fset.Position(vs.Pos()), n.Name)
					}
					v, _ := strconv.Unquote(lit.Value)
					consts[n.Name] = ErrorCode(v)
				}
			}
		}
	}
	if len(consts) == 0 {
		t.Fatal("found no ErrorCode constants in errors.go")
	}
	for n, c := range consts {
		if _, ok := errorSpecs[c]; !ok {
			t.Errorf("constant %s = %q is not in the catalogue", n, c)
		}
	}
	named := map[ErrorCode]bool{}
	for _, c := range consts {
		named[c] = true
	}
	for _, e := range errorCatalogue {
		if !named[e.Code] {
			t.Errorf("code %q of the catalogue has no constant", e.Code)
		}
	}

	// isCode says whether e names a catalogued code by its constant.
	isCode := func(e ast.Expr) bool {
		id, ok := e.(*ast.Ident)
		return ok && consts[id.Name] != ""
	}
	// errorBodies are the types whose Code is an error code.
	errorBodies := map[string]bool{"Error": true, "ruleRefused": true}
	used := 0
	for name, f := range parsed {
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				switch fn := n.Fun.(type) {
				case *ast.Ident:
					switch fn.Name {
					case "WriteError":
						if len(n.Args) != 3 || !isCode(n.Args[1]) {
							t.Errorf("%s: WriteError's code is not a constant of the catalogue", fset.Position(n.Pos()))
						}
						used++
					case "ErrorCode":
						if name != "errors.go" {
							t.Errorf("%s: a code converted from a string; add it to the catalogue instead", fset.Position(n.Pos()))
						}
					case "writeJSON":
						if len(n.Args) == 3 && isErrorBody(n.Args[2], errorBodies) && name != "errors.go" {
							t.Errorf("%s: an error written with writeJSON; use WriteError or writeCoded, which take the status from the catalogue", fset.Position(n.Pos()))
						}
					}
				}
			case *ast.CompositeLit:
				id, ok := n.Type.(*ast.Ident)
				if !ok || !errorBodies[id.Name] {
					return true
				}
				for _, el := range n.Elts {
					kv, ok := el.(*ast.KeyValueExpr)
					if !ok {
						continue
					}
					if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
						if !isCode(kv.Value) && name != "errors.go" {
							t.Errorf("%s: %s's Code is not a constant of the catalogue", fset.Position(kv.Pos()), id.Name)
						}
						used++
					}
				}
			}
			return true
		})
	}
	if used < 10 {
		t.Fatalf("found only %d errors written; is the test still reading the handlers?", used)
	}
}

// isErrorBody says whether e is a literal of an error body type (or its
// address).
func isErrorBody(e ast.Expr, types map[string]bool) bool {
	if u, ok := e.(*ast.UnaryExpr); ok && u.Op == token.AND {
		e = u.X
	}
	cl, ok := e.(*ast.CompositeLit)
	if !ok {
		return false
	}
	id, ok := cl.Type.(*ast.Ident)
	return ok && types[id.Name]
}

// TestErrorBody checks the JSON of an error: the catalogue's status, the
// default message when none is given, allowed only when set, and the
// rule errors' extra field.
func TestErrorBody(t *testing.T) {
	tests := []struct {
		name   string
		write  func(w http.ResponseWriter)
		status int
		body   string
	}{
		{"message", func(w http.ResponseWriter) { WriteError(w, CodeUnknownSite, "no site \"x\"") },
			404, `{"code":"unknown_site","message":"no site \"x\""}`},
		{"default message", func(w http.ResponseWriter) { WriteError(w, CodeTooLarge, "") },
			413, `{"code":"too_large","message":"the body is too large"}`},
		{"allowed", func(w http.ResponseWriter) {
			writeCoded(w, &Error{Code: CodeTransitionNotAllowed, Message: "no", Allowed: []string{"operational"}})
		}, 409, `{"code":"transition_not_allowed","message":"no","allowed":["operational"]}`},
		{"rule refused", func(w http.ResponseWriter) {
			writeCoded(w, &ruleRefused{Error: Error{Code: CodeBadRule, Message: "refused"}, Errors: []ruleErrorDTO{{Line: 1, Column: 2, Message: "m"}}})
		}, 400, `{"code":"bad_rule","message":"refused","errors":[{"line":1,"column":2,"message":"m"}]}`},
	}
	for _, tc := range tests {
		rec := httptest.NewRecorder()
		tc.write(rec)
		if ct := rec.Header().Get("Content-Type"); rec.Code != tc.status || strings.TrimSpace(rec.Body.String()) != tc.body || ct != "application/json" {
			t.Errorf("%s: got %d %s %s; want %d %s", tc.name, rec.Code, ct, rec.Body.String(), tc.status, tc.body)
		}
	}
}
