// Package credential makes, hashes and checks the secrets devices and
// service accounts prove themselves with. It sits below the registry and
// the broker, which both check secrets.
package credential

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Device secrets are 128-bit random strings made by the platform, so a salted
// SHA-256 is as strong as a slow hash and keeps thousands of reconnects after
// a broker restart cheap. Human-chosen secrets (service accounts) may be
// given as bcrypt hashes instead; Check accepts both.

// New returns a fresh random device secret.
func New() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// The strength rule for device secrets made outside the platform (a
// plaintext secret in an imported CSV). A salted SHA-256 is only as good as
// the secret it hashes, so a secret a person chose must be at least:
//
//   - MinSecretLength (16) characters long;
//   - free of whitespace and control characters (a spreadsheet trims them,
//     a terminal hides them);
//   - made of at least two of four classes: lowercase letters, uppercase
//     letters, digits, other characters;
//   - made of at least MinSecretDistinct (8) different characters, so that
//     "aaaaaaaaaaaaaaa1" or "abababababababab" do not pass.
//
// Every secret New makes (24 base64url characters) passes, bar odds below
// one in a billion.
const (
	MinSecretLength   = 16
	MinSecretDistinct = 8
)

// CheckStrength returns why secret is too weak to be a device secret, or
// nil. The error never quotes the secret.
func CheckStrength(secret string) error {
	if !utf8.ValidString(secret) {
		return errors.New("secret is not valid UTF-8")
	}
	if n := utf8.RuneCountInString(secret); n < MinSecretLength {
		return fmt.Errorf("secret too short: %d characters, want at least %d", n, MinSecretLength)
	}
	var lower, upper, digit, other bool
	distinct := map[rune]bool{}
	for _, r := range secret {
		switch {
		case unicode.IsSpace(r) || unicode.IsControl(r):
			return errors.New("secret holds whitespace or a control character")
		case unicode.IsLower(r):
			lower = true
		case unicode.IsUpper(r):
			upper = true
		case unicode.IsDigit(r):
			digit = true
		default:
			other = true
		}
		distinct[r] = true
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	if classes < 2 {
		return errors.New("secret uses one class of characters only: mix at least two of lowercase, uppercase, digits and others")
	}
	if len(distinct) < MinSecretDistinct {
		return fmt.Errorf("secret uses %d different characters, want at least %d", len(distinct), MinSecretDistinct)
	}
	return nil
}

// Hash returns "sha256$<salt>$<hash>" for secret.
func Hash(secret string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return HashWithSalt(salt, []byte(secret))
}

// HashWithSalt hashes secret with a given salt (a reproducible test fleet
// needs it; anything else uses Hash).
func HashWithSalt(salt, secret []byte) string {
	h := sha256.New()
	h.Write(salt)
	h.Write(secret)
	return "sha256$" + hex.EncodeToString(salt) + "$" + hex.EncodeToString(h.Sum(nil))
}

// Check compares secret with a hash made by Hash or bcrypt.
func Check(hash string, secret []byte) bool {
	if strings.HasPrefix(hash, "$2") {
		return bcrypt.CompareHashAndPassword([]byte(hash), secret) == nil
	}
	parts := strings.Split(hash, "$")
	if len(parts) != 3 || parts[0] != "sha256" {
		return false
	}
	salt, err := hex.DecodeString(parts[1])
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(HashWithSalt(salt, secret)), []byte(hash)) == 1
}
