package registry

import (
	"bytes"
	"os"
	"path/filepath"
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

// AppendCredentialsFile creates the file with its header and mode 0600,
// then only appends: the bytes already there stay as they were.
func TestAppendCredentialsFile(t *testing.T) {
	_, creds, err := Generate(GenerateOptions{Sites: 2, Coworking: 1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	first, second := creds[:5], creds[5:]
	path := filepath.Join(t.TempDir(), "creds.csv")
	if err := AppendCredentialsFile(path, first); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Fatalf("unexpected mode %v; want 0600", st.Mode().Perm())
	}
	if err := AppendCredentialsFile(path, second); err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(after, before) || len(after) == len(before) || bytes.Count(after, []byte("site,asset,username,password")) != 1 {
		t.Fatalf("append rewrote the file or repeated the header:\n%s", after)
	}
	got, err := ReadCredentialsCSV(bytes.NewReader(after))
	if err != nil || !slices.Equal(got, creds) {
		t.Fatalf("unexpected file (%v): %d rows; want %d", err, len(got), len(creds))
	}

	// Nothing is written to a file that is not a credentials file or that
	// already lists a device.
	unchanged := func(path string, want []byte) {
		t.Helper()
		if b, _ := os.ReadFile(path); !bytes.Equal(b, want) {
			t.Fatalf("%s changed:\n%s", path, b)
		}
	}
	err = AppendCredentialsFile(path, creds[:1])
	if err == nil || !strings.Contains(err.Error(), "already lists "+creds[0].Username) {
		t.Fatalf("unexpected error for a listed device: %v", err)
	}
	unchanged(path, after)
	other := filepath.Join(t.TempDir(), "sites.csv")
	sites := []byte(ImportHeader + "\nPO-001002-1,,,,,,,,,,,,,,,,,,,,,,,,,\n")
	if err := os.WriteFile(other, sites, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := AppendCredentialsFile(other, creds); err == nil || !strings.Contains(err.Error(), "not a credentials file") {
		t.Fatalf("unexpected error for another CSV: %v", err)
	}
	unchanged(other, sites)

	// An empty file gets the header; a last line without its newline is ended.
	empty := filepath.Join(t.TempDir(), "empty.csv")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AppendCredentialsFile(empty, first); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(empty); !bytes.Equal(b, before) {
		t.Fatalf("empty file: got\n%s\nwant\n%s", b, before)
	}
	cut := filepath.Join(t.TempDir(), "cut.csv")
	if err := os.WriteFile(cut, bytes.TrimSuffix(before, []byte("\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := AppendCredentialsFile(cut, second); err != nil {
		t.Fatal(err)
	}
	unchanged(cut, after)
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
