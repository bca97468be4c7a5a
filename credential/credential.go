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
	"strings"

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

// Hash returns "sha256$<salt>$<hash>" for secret.
func Hash(secret string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return HashWithSalt(salt, []byte(secret))
}

// HashWithSalt hashes secret with a given salt (a reproducible fleet needs it).
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
