// Package registry holds the static fleet: sites, their assets and the
// credentials devices use to connect. The twin grows on top of it.
package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"sync"
	"time"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/twin/lifecycle"
)

// SiteKind tells a post office from a coworking space.
type SiteKind string

const (
	KindPostOffice SiteKind = "post_office"
	KindCoworking  SiteKind = "coworking"
)

// GatewayType is the asset type of a site gateway, which may speak for
// every asset of its site.
const GatewayType = "gateway"

// Where the commands keep the registry and the device credentials unless
// told otherwise (relative to the working directory, under var/).
const (
	DefaultPath            = "var/registry.json"
	DefaultCredentialsPath = "var/credentials.csv"
)

// Site is one post office or coworking space.
type Site struct {
	ID         string   `json:"id"`
	Kind       SiteKind `json:"kind"`
	Comune     string   `json:"comune,omitempty"` // ISTAT code, 6 digits
	Name       string   `json:"name,omitempty"`
	Province   string   `json:"province,omitempty"`
	Region     string   `json:"region,omitempty"`
	Population int      `json:"population,omitempty"`
	InnerArea  string   `json:"inner_area,omitempty"` // SNAI class A..F
	Lat        float64  `json:"lat,omitempty"`
	Lon        float64  `json:"lon,omitempty"`
	Assets     []*Asset `json:"assets"`

	// Fields below are described in site.go.
	ProvinceName string        `json:"province_name,omitempty"` // PROVINCIA_CM, for sites made from the ISTAT list
	Address      string        `json:"address,omitempty"`
	OpeningHours *OpeningHours `json:"opening_hours,omitempty"`
	CUP          string        `json:"cup,omitempty"` // project code (Codice Unico di Progetto)
	CIG          string        `json:"cig,omitempty"` // supply contract code (Codice Identificativo Gara)
	Coworking    *Coworking    `json:"coworking,omitempty"`
	// Labels are free key/values for rule scopes (site_labels) and
	// site.labels in rules, e.g. {tier: pilot}.
	Labels map[string]string `json:"labels,omitempty"`
}

// Asset is one device of a site.
type Asset struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// SecretHash is the device secret, hashed (see credential.Hash).
	SecretHash string `json:"secret_hash,omitempty"`

	Supplier    string          `json:"supplier,omitempty"`
	CIG         string          `json:"cig,omitempty"`       // the asset's own supply contract, when not the site's
	Lifecycle   lifecycle.State `json:"lifecycle,omitempty"` // empty in registries written before lifecycles
	InstalledAt time.Time       `json:"installed_at,omitzero"`
}

// Username is the MQTT username of an asset.
func Username(site, asset string) string { return site + "/" + asset }

var (
	siteRe  = regexp.MustCompile(`^(PO-[0-9]{6}-[0-9]+|CW-[A-Z]{2}-[0-9]+)$`)
	assetRe = regexp.MustCompile(`^[a-z][a-z0-9]*-[0-9]+$`)
)

// ValidSiteID reports whether id has the docs/design.md form PO-<istat>-<n> or CW-<prov>-<n>.
func ValidSiteID(id string) bool { return siteRe.MatchString(id) }

// ValidAssetID reports whether id has the form <type>-<n>.
func ValidAssetID(id string) bool { return assetRe.MatchString(id) }

// Registry is the in-memory, concurrency-safe fleet.
type Registry struct {
	mu     sync.RWMutex
	sites  map[string]*Site
	assets map[string]*Asset // key: site/asset
}

// New returns an empty registry.
func New() *Registry {
	return &Registry{sites: map[string]*Site{}, assets: map[string]*Asset{}}
}

// Add inserts or replaces sites after validating their ids.
func (r *Registry) Add(sites ...*Site) error {
	for _, s := range sites {
		if !ValidSiteID(s.ID) {
			return fmt.Errorf("cannot add site %q: id must look like PO-<ISTAT code>-<n> or CW-<province>-<n>", s.ID)
		}
		seen := map[string]bool{}
		for _, a := range s.Assets {
			if !ValidAssetID(a.ID) {
				return fmt.Errorf("cannot add asset %q of site %s: id must look like <type>-<n>", a.ID, s.ID)
			}
			if seen[a.ID] {
				return fmt.Errorf("cannot add site %s: asset %s listed twice", s.ID, a.ID)
			}
			seen[a.ID] = true
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range sites {
		if old, ok := r.sites[s.ID]; ok {
			for _, a := range old.Assets {
				delete(r.assets, Username(s.ID, a.ID))
			}
		}
		r.sites[s.ID] = s
		for _, a := range s.Assets {
			r.assets[Username(s.ID, a.ID)] = a
		}
	}
	return nil
}

// Site returns the site with the given id.
func (r *Registry) Site(id string) (*Site, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s, ok := r.sites[id]
	return s, ok
}

// Asset returns an asset by site and asset id.
func (r *Registry) Asset(site, asset string) (*Asset, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	a, ok := r.assets[Username(site, asset)]
	return a, ok
}

// Known reports whether the asset is registered.
func (r *Registry) Known(site, asset string) bool {
	_, ok := r.Asset(site, asset)
	return ok
}

// Sites returns all sites ordered by id.
func (r *Registry) Sites() []*Site {
	r.mu.RLock()
	out := make([]*Site, 0, len(r.sites))
	for _, s := range r.sites {
		out = append(out, s)
	}
	r.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Len returns the number of sites and assets.
func (r *Registry) Len() (sites, assets int) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return len(r.sites), len(r.assets)
}

// ErrBadCredentials is returned for an unknown user or a wrong secret; the two
// are not told apart so that a prober learns nothing.
var ErrBadCredentials = errors.New("bad username or secret")

// Authenticate checks a device's MQTT username (SITE/ASSET) and secret.
func (r *Registry) Authenticate(username string, secret []byte) (*Asset, error) {
	r.mu.RLock()
	a, ok := r.assets[username]
	r.mu.RUnlock()
	if !ok || a.SecretHash == "" || !credential.Check(a.SecretHash, secret) {
		return nil, ErrBadCredentials
	}
	return a, nil
}

type file struct {
	Version int     `json:"version"`
	Sites   []*Site `json:"sites"`
}

// Load reads a registry file written by Save.
func Load(path string) (*Registry, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read registry: %w", err)
	}
	var f file
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("cannot parse registry %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("cannot load registry %s: version %d, want 1", path, f.Version)
	}
	r := New()
	if err := r.Add(f.Sites...); err != nil {
		return nil, fmt.Errorf("cannot load registry %s: %w", path, err)
	}
	return r, nil
}

// Save writes the registry atomically.
func (r *Registry) Save(path string) error {
	b, err := json.MarshalIndent(file{Version: 1, Sites: r.Sites()}, "", " ")
	if err != nil {
		return fmt.Errorf("cannot encode registry: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("cannot create registry directory: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("cannot write registry: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("cannot write registry: %w", err)
	}
	return nil
}
