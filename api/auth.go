package api

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/credential"
)

// Role says what a token may change. Reads of the public subset (sites,
// twins without secrets, history, the stream) need no token.
type Role string

const (
	// RoleOperator may change desired state, asset lifecycles and the registry.
	RoleOperator Role = "operator"
	// RoleFacilityManager may change desired state only.
	RoleFacilityManager Role = "facility_manager"
)

// Roles lists every role.
var Roles = []Role{RoleOperator, RoleFacilityManager}

func (r Role) valid() bool { return r == RoleOperator || r == RoleFacilityManager }

// Token is one API token as configured: the plaintext is never stored, only
// its hash (registry.HashSecret's "sha256$<salt>$<hash>", or bcrypt, as made
// by `polis registry hash`).
type Token struct {
	Name string `yaml:"name"`
	Role Role   `yaml:"role"`
	Hash string `yaml:"hash"`
}

// action is what a write call does; allowedRoles says who may do it.
type action string

const (
	actDesired   action = "change desired state"
	actLifecycle action = "change an asset's lifecycle"
	actRegistry  action = "change the registry"
	actAlerts    action = "acknowledge, assign or silence alerts"
)

var allowedRoles = map[action][]Role{
	actDesired:   {RoleOperator, RoleFacilityManager},
	actLifecycle: {RoleOperator},
	actRegistry:  {RoleOperator},
	actAlerts:    {RoleOperator, RoleFacilityManager},
}

// LoadTokens reads API tokens from a YAML file:
//
//	tokens:
//	  - name: ops-team
//	    role: operator
//	    hash: "sha256$...$..."   # or a bcrypt hash
//
// Unknown keys, duplicate names, unknown roles and malformed hashes are errors.
func LoadTokens(path string) ([]Token, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read tokens: %w", err)
	}
	var f struct {
		Tokens []Token `yaml:"tokens"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("cannot parse tokens file %s: %w", path, err)
	}
	if err := checkTokens(f.Tokens); err != nil {
		return nil, fmt.Errorf("cannot load tokens file %s: %w", path, err)
	}
	return f.Tokens, nil
}

func checkTokens(ts []Token) error {
	seen := map[string]bool{}
	for i, t := range ts {
		switch {
		case t.Name == "":
			return fmt.Errorf("token %d: no name", i+1)
		case seen[t.Name]:
			return fmt.Errorf("token %q: listed twice", t.Name)
		case !t.Role.valid():
			return fmt.Errorf("token %q: role %q, want %s or %s", t.Name, t.Role, RoleOperator, RoleFacilityManager)
		case !validHash(t.Hash):
			return fmt.Errorf("token %q: hash is not sha256$<salt>$<hash> or bcrypt (make one with `polis registry hash`)", t.Name)
		}
		seen[t.Name] = true
	}
	return nil
}

func validHash(h string) bool {
	if strings.HasPrefix(h, "$2") {
		return len(h) == 60
	}
	p := strings.Split(h, "$")
	return len(p) == 3 && p[0] == "sha256" && len(p[1]) > 0 && len(p[2]) == 64
}

// authenticator checks bearer tokens. bcrypt costs tens of milliseconds,
// so accepted tokens are remembered by the SHA-256 of their plaintext
// (never the plaintext itself); refused ones are not, so that a rotated
// token stops working at once.
type authenticator struct {
	tokens []Token
	mu     sync.Mutex
	known  map[[sha256.Size]byte]int // index into tokens
}

const maxKnownTokens = 1024

func newAuthenticator(ts []Token) *authenticator {
	return &authenticator{tokens: ts, known: map[[sha256.Size]byte]int{}}
}

// check returns the token a request carries, or writes a 401/403 and
// returns false. It never logs or echoes the token.
func (a *authenticator) check(w http.ResponseWriter, r *http.Request, act action) (Token, bool) {
	h := r.Header.Get("Authorization")
	scheme, secret, _ := strings.Cut(h, " ")
	secret = strings.TrimSpace(secret)
	roles := allowedRoles[act]
	if h == "" {
		unauthorized(w, fmt.Sprintf("to %s, send a token as \"Authorization: Bearer <token>\" (role %s)", act, joinRoles(roles)))
		return Token{}, false
	}
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		unauthorized(w, "the Authorization header must be \"Bearer <token>\"")
		return Token{}, false
	}
	t, ok := a.lookup(secret)
	if !ok {
		unauthorized(w, "the token is not valid: it is unknown, mistyped or revoked")
		return Token{}, false
	}
	for _, r := range roles {
		if t.Role == r {
			return t, true
		}
	}
	WriteError(w, CodeForbidden,
		fmt.Sprintf("token %q has role %s; to %s you need role %s", t.Name, t.Role, act, joinRoles(roles)))
	return Token{}, false
}

func (a *authenticator) lookup(secret string) (Token, bool) {
	sum := sha256.Sum256([]byte(secret))
	a.mu.Lock()
	i, ok := a.known[sum]
	a.mu.Unlock()
	if ok {
		return a.tokens[i], true
	}
	for i, t := range a.tokens {
		if credential.Check(t.Hash, []byte(secret)) {
			a.mu.Lock()
			if len(a.known) >= maxKnownTokens {
				clear(a.known)
			}
			a.known[sum] = i
			a.mu.Unlock()
			return t, true
		}
	}
	return Token{}, false
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="polis"`)
	WriteError(w, CodeUnauthenticated, msg)
}

func joinRoles(rs []Role) string {
	s := make([]string, len(rs))
	for i, r := range rs {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}
