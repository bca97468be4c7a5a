package api

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/polis-platform/polis/credential"
)

func TestLoadTokens(t *testing.T) {
	bc, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	sha := credential.Hash("other")
	f := func(name, yaml, wantErr string) {
		t.Helper()
		p := filepath.Join(t.TempDir(), "tokens.yaml")
		if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		ts, err := LoadTokens(p)
		if wantErr == "" {
			if err != nil || len(ts) != 2 || ts[0].Role != RoleOperator || ts[1].Role != RoleFacilityManager {
				t.Fatalf("%s: unexpected result %v, %v", name, ts, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Fatalf("%s: unexpected error; got %v; want one saying %q", name, err, wantErr)
		}
	}
	f("good", "tokens:\n  - name: ops\n    role: operator\n    hash: \""+string(bc)+"\"\n  - name: fm\n    role: facility_manager\n    hash: \""+sha+"\"\n", "")
	f("unknown key", "tokens:\n  - name: ops\n    role: operator\n    secret: x\n", "field secret not found")
	f("bad role", "tokens:\n  - name: ops\n    role: admin\n    hash: \""+sha+"\"\n", "role \"admin\"")
	f("bad hash", "tokens:\n  - name: ops\n    role: operator\n    hash: plaintext\n", "hash is not")
	f("no name", "tokens:\n  - role: operator\n    hash: \""+sha+"\"\n", "no name")
	f("twice", "tokens:\n  - {name: a, role: operator, hash: \""+sha+"\"}\n  - {name: a, role: operator, hash: \""+sha+"\"}\n", "listed twice")
	if _, err := LoadTokens(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("LoadTokens read a missing file")
	}
}

// TestAuth checks who may do what, with a bcrypt token as well as sha256 ones.
func TestAuth(t *testing.T) {
	e := newEnv(t)
	po := e.postOffice(t)
	lc := "/api/v1/sites/" + po.ID + "/assets/" + po.Assets[0].ID + "/lifecycle"
	desired := "/api/v1/sites/" + po.ID + "/assets/env-1/desired"
	tests := []struct {
		name, method, path, body string
		hdr                      []string
		status                   int
	}{
		{"no token", "POST", lc, `{"to":"decommissioned"}`, nil, http.StatusUnauthorized},
		{"bad token", "POST", lc, `{"to":"decommissioned"}`, bearer("op-secret-012345678"), http.StatusUnauthorized},
		{"empty bearer", "POST", lc, `{"to":"decommissioned"}`, []string{"Authorization", "Bearer "}, http.StatusUnauthorized},
		{"facility manager cannot transition", "POST", lc, `{"to":"decommissioned"}`, bearer(managerToken), http.StatusForbidden},
		{"facility manager sets desired", "PATCH", desired, `{"screen_on":true}`, append(bearer(managerToken), "If-Match", `"0"`), http.StatusOK},
		{"no token for desired", "PATCH", desired, `{"screen_on":true}`, []string{"If-Match", `"1"`}, http.StatusUnauthorized},
		{"operator transitions", "POST", lc, `{"to":"decommissioned","cause":"test"}`, bearer(operatorToken), http.StatusOK},
		{"cached token still checked for role", "POST", lc, `{"to":"decommissioned"}`, bearer(managerToken), http.StatusForbidden},
	}
	for _, tc := range tests {
		resp, b := e.do(t, tc.method, tc.path, tc.body, tc.hdr...)
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: unexpected status; got %d; want %d: %s", tc.name, resp.StatusCode, tc.status, b)
		}
		if tc.status == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Fatalf("%s: no WWW-Authenticate: Bearer", tc.name)
		}
	}
	if logs := e.logs.String(); strings.Contains(logs, operatorToken) || strings.Contains(logs, managerToken) || !strings.Contains(logs, "token=ops") {
		t.Fatalf("the log holds a token, or does not name who acted: %s", logs)
	}

	bc, err := bcrypt.GenerateFromPassword([]byte("bcrypt-token"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a := newAuthenticator([]Token{{Name: "b", Role: RoleOperator, Hash: string(bc)}})
	for range 2 { // the second time from the cache
		if tok, ok := a.lookup("bcrypt-token"); !ok || tok.Name != "b" {
			t.Fatalf("bcrypt token refused")
		}
	}
	if _, ok := a.lookup("bcrypt-tokeN"); ok {
		t.Fatal("a wrong token was accepted")
	}
}
