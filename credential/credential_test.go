package credential

import (
	"strings"
	"testing"
)

func TestCheckStrength(t *testing.T) {
	f := func(secret, wantErr string) {
		t.Helper()
		err := CheckStrength(secret)
		if wantErr == "" {
			if err != nil {
				t.Errorf("CheckStrength(%q): unexpected error %v", secret, err)
			}
			return
		}
		if err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("CheckStrength(%q): got %v; want an error containing %q", secret, err, wantErr)
			return
		}
		if secret != "" && strings.Contains(err.Error(), secret) {
			t.Errorf("CheckStrength(%q): the error quotes the secret: %v", secret, err)
		}
	}
	f("", "too short: 0 characters")
	f("s3cret-atm", "too short: 10 characters, want at least 16")
	f("Abcdefgh1234567", "too short: 15")
	f("àèìòùàèìòùàèìòù", "too short: 15") // runes, not bytes
	f("abcdefghijklmnopqrst", "one class")
	f("ABCDEFGHIJKLMNOPQRST", "one class")
	f("12345678901234567890", "one class")
	f("aaaaaaaaaaaaaaa1", "2 different characters")
	f("abababababababab1A", "4 different characters")
	f("correct horse battery 9", "whitespace")
	f("Abcdefgh12345678\t", "whitespace")
	f("Abcdefgh12345678\x00", "control")
	f("Abcdefgh1234567\xff", "UTF-8")
	f("Abcdefgh12345678", "")
	f("s3cret-atm-Xq7vR2mK9pLw", "")
	f("passwordpassword-", "") // two classes, 8 different: passes (the rule is a floor, not a guarantee)
	for i := 0; i < 10000; i++ {
		if s := New(); CheckStrength(s) != nil {
			t.Fatalf("New made %q, which CheckStrength refuses: %v", s, CheckStrength(s))
		}
	}
}

func TestNew(t *testing.T) {
	a, b := New(), New()
	if len(a) != 24 || a == b {
		t.Fatalf("unexpected secrets %q, %q", a, b)
	}
	h := Hash(a)
	if !Check(h, []byte(a)) || Check(h, []byte(b)) || Hash(a) == h {
		t.Fatalf("hash %q: check or salting wrong", h)
	}
}
