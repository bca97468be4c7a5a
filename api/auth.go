package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

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
	// RoleAnalyst may run read-only SQL (POST /api/v1/sql) and change
	// nothing.
	RoleAnalyst Role = "analyst"
)

// Roles lists every role.
var Roles = []Role{RoleOperator, RoleFacilityManager, RoleAnalyst}

func (r Role) valid() bool { return r == RoleOperator || r == RoleFacilityManager || r == RoleAnalyst }

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
	actSQL       action = "run SQL queries"
)

var allowedRoles = map[action][]Role{
	actDesired:   {RoleOperator, RoleFacilityManager},
	actLifecycle: {RoleOperator},
	actRegistry:  {RoleOperator},
	actAlerts:    {RoleOperator, RoleFacilityManager},
	actSQL:       {RoleOperator, RoleAnalyst},
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
			return fmt.Errorf("token %q: role %q, want %s", t.Name, t.Role, joinRoles(Roles))
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

// authenticator checks bearer tokens. The tokens file holds only hashes
// (bcrypt costs tens of milliseconds a check), so a token is checked the
// slow way once, against every hash; once accepted, the HMAC of its
// plaintext under a key made at start (never the plaintext itself) is
// kept for its entry, and later requests with it are checked by comparing
// that HMAC, in constant time, with every entry's: microseconds. A token
// that matches no entry is refused after the slow check, which is
// rate-limited per client address: beyond AuthFailuresPerMinute failures
// the client gets 429 before any hash is computed, and at most
// slowChecksAtOnce slow checks run at a time, so failed logins cannot take
// every core.
type authenticator struct {
	tokens []Token
	key    [32]byte

	mu   sync.Mutex
	fast [][sha256.Size]byte // per token: HMAC of its plaintext, once seen
	seen []bool

	fails      *failureLimiter // nil: no limit
	clientAddr func(*http.Request) string
	m          *metrics
	log        *slog.Logger
	slow       chan struct{} // a slot per slow check running
	slowChecks atomic.Int64  // hashes checked the slow way (for tests)
}

// slowChecksAtOnce bounds the slow checks running at once.
var slowChecksAtOnce = max(1, runtime.GOMAXPROCS(0)/2)

func newAuthenticator(ts []Token) *authenticator {
	a := &authenticator{tokens: ts, fast: make([][sha256.Size]byte, len(ts)), seen: make([]bool, len(ts)),
		slow: make(chan struct{}, slowChecksAtOnce), clientAddr: func(r *http.Request) string { return r.RemoteAddr }}
	if _, err := rand.Read(a.key[:]); err != nil {
		panic("BUG: crypto/rand failed: " + err.Error())
	}
	return a
}

// limit sets the limiter of failed checks (nil: none), how a request's
// client is named, the metrics and the log.
func (a *authenticator) limit(l *failureLimiter, clientAddr func(*http.Request) string, m *metrics, log *slog.Logger) {
	a.fails, a.clientAddr, a.m, a.log = l, clientAddr, m, log
}

// check returns the token a request carries, or writes a 401/403/429 and
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
	t, ok := a.lookupFast(secret)
	if !ok {
		client := a.clientAddr(r)
		if a.fails != nil {
			if ok, retry := a.fails.take(client); !ok {
				if a.m != nil {
					a.m.limited.WithLabelValues(limitAuthFailures).Inc()
				}
				tooMany(w, retry, fmt.Sprintf("too many requests with a token that is not valid came from your address; retry in %d s with a valid token", retrySeconds(retry)))
				return Token{}, false
			}
		}
		var err error
		t, ok, err = a.lookupSlow(r.Context(), secret)
		switch {
		case err != nil: // the client went away while waiting for a slot
			if a.fails != nil {
				a.fails.refund(client)
			}
			tooMany(w, time.Second, "too many token checks are running; retry")
			return Token{}, false
		case ok:
			if a.fails != nil {
				a.fails.refund(client)
			}
		default:
			if a.fails != nil && a.fails.exhausted(client) && a.log != nil {
				a.log.Warn("a client is over the limit of failed token checks: it gets 429 for a while", "client", client)
			}
			unauthorized(w, "the token is not valid: it is unknown, mistyped or revoked")
			return Token{}, false
		}
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

func (a *authenticator) mac(secret string) [sha256.Size]byte {
	h := hmac.New(sha256.New, a.key[:])
	h.Write([]byte(secret))
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}

// lookupFast finds a token accepted before, comparing with every entry
// so that the time taken does not say which.
func (a *authenticator) lookupFast(secret string) (Token, bool) {
	sum := a.mac(secret)
	found := -1
	a.mu.Lock()
	for i := range a.fast {
		if subtle.ConstantTimeCompare(sum[:], a.fast[i][:])&boolInt(a.seen[i]) == 1 {
			found = i
		}
	}
	a.mu.Unlock()
	if found < 0 {
		return Token{}, false
	}
	return a.tokens[found], true
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// lookupSlow checks secret against every hash, once a slot is free (or
// ctx ends: the error).
func (a *authenticator) lookupSlow(ctx context.Context, secret string) (Token, bool, error) {
	select {
	case a.slow <- struct{}{}:
	case <-ctx.Done():
		return Token{}, false, ctx.Err()
	}
	defer func() { <-a.slow }()
	for i, t := range a.tokens {
		a.slowChecks.Add(1)
		if credential.Check(t.Hash, []byte(secret)) {
			sum := a.mac(secret)
			a.mu.Lock()
			a.fast[i], a.seen[i] = sum, true
			a.mu.Unlock()
			return t, true, nil
		}
	}
	return Token{}, false, nil
}

// lookup checks secret, the fast way first, without any limit.
func (a *authenticator) lookup(secret string) (Token, bool) {
	if t, ok := a.lookupFast(secret); ok {
		return t, true
	}
	t, ok, _ := a.lookupSlow(context.Background(), secret)
	return t, ok
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
