package registry

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

func TestCredentialsCSV_RoundTrip(t *testing.T) {
	_, creds, err := Generate(GenerateOptions{Sites: 3, Coworking: 1, Seed: 7})
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	creds = append(creds, Credential{Site: "PO-001001-1", Asset: "atm-9", Username: "PO-001001-1/atm-9", Password: `p,"q"`})
	var buf bytes.Buffer
	if err := WriteCredentialsCSV(&buf, creds); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if first, _, _ := strings.Cut(buf.String(), "\n"); first != "site,asset,username,password" {
		t.Fatalf("unexpected header; got %q; want %q", first, "site,asset,username,password")
	}
	got, err := ReadCredentialsCSV(&buf)
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	if !slices.Equal(got, creds) {
		t.Fatalf("round trip changed the credentials; got %d rows; want %d", len(got), len(creds))
	}
}

func TestReadCredentialsCSV_Failure(t *testing.T) {
	const h = "site,asset,username,password\n"
	f := func(in, wantErr string) {
		t.Helper()
		_, err := ReadCredentialsCSV(strings.NewReader(in))
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("unexpected error; got %v; want one containing %q", err, wantErr)
		}
	}
	f("", "empty file")
	f("site,asset,user,password\n", `line 1: header "site,asset,user,password"`)
	f(h+"PO-001001-1,atm-1,PO-001001-1/atm-1\n", "wrong number of fields")
	f(h+"PO-1-1,atm-1,PO-1-1/atm-1,x\n", `line 2: site "PO-1-1"`)
	f(h+"PO-001001-1,ATM,PO-001001-1/ATM,x\n", `line 2: asset "ATM"`)
	f(h+"PO-001001-1,atm-1,PO-001001-1/atm-2,x\n", `line 2: username "PO-001001-1/atm-2"`)
	f(h+"PO-001001-1,atm-1,PO-001001-1/atm-1,\n", "line 2: empty password")
	f(h+"PO-001001-1,atm-1,PO-001001-1/atm-1,x\nPO-001001-1,atm-1,PO-001001-1/atm-1,y\n", "line 3: PO-001001-1/atm-1 already listed on line 2")
}

func FuzzReadCredentialsCSV(f *testing.F) {
	f.Add("site,asset,username,password\nPO-001001-1,atm-1,PO-001001-1/atm-1,secret\n")
	f.Add("site,asset,username,password\nCW-RM-1,desk-3,CW-RM-1/desk-3,\"a,b\"\n")
	f.Fuzz(func(t *testing.T, in string) {
		creds, err := ReadCredentialsCSV(strings.NewReader(in))
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := WriteCredentialsCSV(&buf, creds); err != nil {
			t.Fatalf("cannot write back: %v", err)
		}
		again, err := ReadCredentialsCSV(&buf)
		if err != nil || !slices.Equal(again, creds) {
			t.Fatalf("round trip differs: %v", err)
		}
	})
}
