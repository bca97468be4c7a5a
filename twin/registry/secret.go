package registry

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
// given as bcrypt hashes instead; CheckSecret accepts both.

// NewSecret returns a fresh random device secret.
func NewSecret() string {
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// HashSecret returns "sha256$<salt>$<hash>" for secret.
func HashSecret(secret string) string {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return hashWithSalt(salt, []byte(secret))
}

func hashWithSalt(salt, secret []byte) string {
	h := sha256.New()
	h.Write(salt)
	h.Write(secret)
	return "sha256$" + hex.EncodeToString(salt) + "$" + hex.EncodeToString(h.Sum(nil))
}

// CheckSecret compares secret with a hash made by HashSecret or bcrypt.
func CheckSecret(hash string, secret []byte) bool {
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
	return subtle.ConstantTimeCompare([]byte(hashWithSalt(salt, secret)), []byte(hash)) == 1
}
