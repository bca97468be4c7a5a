package services

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/twin/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files of testdata/")

// The service ids the simulator's totems report in their service_used
// events (loadtest/models_site.go, totemServices): the catalogue must
// know every one, so that usage joins to it.
var simulatorServices = []string{
	"passport", "cie", "tax_code", "driving_licence", "civil_certificate",
	"judicial_certificate", "pension_certificate", "cup_booking", "income_self_declaration",
	"tax_debt_statement", "cadastral_survey", "isee", "rai_exemption", "delegation",
}

func TestDefaultCatalogue(t *testing.T) {
	c := DefaultCatalogue()
	if c.Version == "" || len(c.Services) < 20 {
		t.Fatalf("catalogue %q with %d services", c.Version, len(c.Services))
	}
	for _, id := range append(slices.Clone(simulatorServices),
		"locker_pickup", "cash_withdrawal", "ev_charging", "coworking_desk", "meeting_room") {
		if _, ok := c.Service(id); !ok {
			t.Errorf("the catalogue has no service %q", id)
		}
	}
	if _, ok := c.Service("nope"); ok {
		t.Fatal("found a service that is not there")
	}
	for _, s := range c.Services {
		if len(s.Documents) == 0 {
			t.Errorf("%s: no documents to bring", s.ID)
		}
		if len(s.Description) < 40 {
			t.Errorf("%s: description %q is too short to help a citizen", s.ID, s.Description)
		}
		for _, d := range s.Documents {
			if strings.TrimSpace(d) != d || d == "" {
				t.Errorf("%s: document %q has stray spaces", s.ID, d)
			}
		}
	}
	// The identity documents come in their forms.
	for _, id := range []string{"passport", "cie", "tax_code"} {
		s, _ := c.Service(id)
		var vs []string
		for _, v := range s.Variants {
			vs = append(vs, v.ID)
		}
		if !slices.Equal(vs, []string{"request", "renewal", "duplicate"}) {
			t.Errorf("%s: variants %v; want request, renewal, duplicate", id, vs)
		}
	}
	if got := c.IDs(); len(got) != len(c.Services) || got[0] != c.Services[0].ID {
		t.Fatalf("IDs %v", got)
	}
}

// The catalogue on disk is the one embedded, and LoadCatalogue reads it
// the same way.
func TestLoadCatalogue(t *testing.T) {
	c, err := LoadCatalogue("catalogue.yaml")
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(DefaultCatalogue())
	if string(a) != string(b) {
		t.Fatal("LoadCatalogue and DefaultCatalogue differ")
	}
	if _, err := LoadCatalogue(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxCatalogueBytes+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCatalogue(big); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("oversized file: %v", err)
	}
}

// Every file in testdata/bad is refused, each problem with its line and
// column; the messages are golden (go test -run Refused -update).
func TestParseCatalogue_Refused(t *testing.T) {
	files, err := filepath.Glob("testdata/bad/*.yaml")
	if err != nil || len(files) < 10 {
		t.Fatalf("testdata: %v, %d files", err, len(files))
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			c, err := LoadCatalogue(path)
			if err == nil {
				t.Fatalf("accepted, with %d services", len(c.Services))
			}
			var ce *CatalogueError
			if !errors.As(err, &ce) || len(ce.Problems) == 0 {
				t.Fatalf("not a CatalogueError: %v", err)
			}
			for _, p := range ce.Problems {
				if p.Line < 1 || p.Col < 1 || p.Msg == "" {
					t.Fatalf("problem without position or message: %+v", p)
				}
			}
			golden := strings.TrimSuffix(path, ".yaml") + ".golden"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if got != string(want) {
				t.Fatalf("error differs from %s;\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// Each semantic check of one service, on an otherwise valid catalogue.
func TestParseCatalogue_Semantics(t *testing.T) {
	tests := []struct {
		name, service, want string
	}{
		{"valid", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [atm], needs: [atm]}", ""},
		{"counter needs nothing", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [counter]}", ""},
		{"channel without its asset", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [charger]}", `channel charger needs asset type "evc"`},
		{"asset without its channel", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [counter], needs: [totem]}", `no channel of a uses asset type "totem"`},
		{"unknown asset", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [counter], needs: [pv]}", `unknown asset type "pv"`},
		{"counter at coworking", "{id: a, name: A, description: d, category: coworking, sites: [coworking], channels: [counter]}", "only at post offices"},
		{"coworking at post office", "{id: a, name: A, description: d, category: coworking, sites: [post_office], channels: [coworking], needs: [desk]}", "only at coworking spaces"},
		{"coworking needs desk or room", "{id: a, name: A, description: d, category: coworking, sites: [coworking], channels: [coworking]}", "exactly one of desk or room"},
		{"free compartment without locker", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [atm], needs: [atm], needs_free_compartment: true}", "needs_free_compartment"},
		{"variant twice", "{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [counter], variants: [{id: x, name: X}, {id: x, name: Y}]}", `"x" listed twice`},
		{"bad id", "{id: A-1, name: A, description: d, category: postal, sites: [post_office], channels: [counter]}", "services[0].id"},
		{"control character", "{id: a, name: \"A\\tB\", description: d, category: postal, sites: [post_office], channels: [counter]}", "services[0].name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := "version: \"2026.1\"\nservices:\n  - " + tc.service + "\n"
			_, err := ParseCatalogue("test.yaml", []byte(src))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("accepted; want an error saying %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("error %q does not say %q", err, tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), "test.yaml:3:"):
				t.Fatalf("error %q is not on line 3", err)
			}
		})
	}
}

// FuzzParseCatalogue: any input is refused with positions or parses into a
// catalogue that keeps the loader's promises, and that reads back the same
// once written out.
func FuzzParseCatalogue(f *testing.F) {
	f.Add(defaultCatalogue)
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("version: \"1.1\"\nservices: [{id: a, name: A, description: d, category: postal, sites: [post_office], channels: [counter]}]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseCatalogue("fuzz.yaml", b)
		if err != nil {
			var ce *CatalogueError
			if !errors.As(err, &ce) {
				t.Fatalf("not a CatalogueError: %v", err)
			}
			for _, p := range ce.Problems {
				if p.Line < 1 || p.Col < 1 || p.Msg == "" {
					t.Fatalf("problem without position or message: %+v", p)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, s := range c.Services {
			if seen[s.ID] {
				t.Fatalf("duplicate id %q accepted", s.ID)
			}
			seen[s.ID] = true
			if got, ok := c.Service(s.ID); !ok || got.ID != s.ID {
				t.Fatalf("Service(%q) does not find it", s.ID)
			}
			if len(s.Channels) == 0 || len(s.Sites) == 0 {
				t.Fatalf("%s: no channel or site kind accepted", s.ID)
			}
			for _, ch := range s.Channels {
				if !slices.Contains(Channels, ch) {
					t.Fatalf("%s: unknown channel %q accepted", s.ID, ch)
				}
			}
			for _, k := range s.Sites {
				if k != registry.KindPostOffice && k != registry.KindCoworking {
					t.Fatalf("%s: unknown site kind %q accepted", s.ID, k)
				}
			}
		}
		out, err := yaml.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		again, err := ParseCatalogue("again.yaml", out)
		if err != nil {
			t.Fatalf("the catalogue written back is refused: %v\n%s", err, out)
		}
		a, _ := json.Marshal(c)
		b2, _ := json.Marshal(again)
		if string(a) != string(b2) {
			t.Fatalf("round trip differs:\n%s\n%s", a, b2)
		}
	})
}
