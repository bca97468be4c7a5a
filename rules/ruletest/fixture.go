package ruletest

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/ingest/record"
	"github.com/polis-platform/polis/rules/engine"
	"github.com/polis-platform/polis/twin/registry"
)

// Limits that keep a mistyped fixture (a series every 1ms for a week) from
// running for hours or exhausting memory.
const (
	maxInputs = 100_000 // input events of one test, series expanded
	maxTicks  = 200_000 // clock ticks of one test
)

// fixture is a parsed fixture file. Rule files are not read yet: parsing
// touches no file system, so that it can be fuzzed.
type fixture struct {
	path     string
	rules    []rulePattern
	interval time.Duration
	sites    []*registry.Site
	assets   map[string][]string // site -> asset ids, for errors
	tests    []*test
}

type rulePattern struct {
	glob      string
	line, col int
}

type test struct {
	name    string
	start   time.Time
	inputs  []input
	expects []expect
}

// input is one record to apply, series already expanded.
type input struct {
	at          time.Duration
	site, asset string
	kind        record.Kind
	points      []metricValue // telemetry, sorted by metric
	status      string        // online or offline
	body        json.RawMessage
}

type metricValue struct {
	metric string
	value  float64
}

type expect struct {
	at     time.Duration
	alerts []wantAlert
}

type wantAlert struct {
	line, col         int
	ruleLine, ruleCol int
	rule, site, asset string
	state             engine.State
	summary           *string
	heldBy            *string // rule id of the site-down alert holding it back; "": not held
	labels            map[string]string
}

var (
	rootKeys  = []string{"rule_files", "interval", "sites", "tests"}
	siteKeys  = []string{"id", "name", "kind", "region", "province", "opening_hours", "assets"}
	testKeys  = []string{"name", "start", "input", "expect"}
	inputKeys = []string{"at", "asset", "m", "status", "reported"}
	expKeys   = []string{"at", "alerts"}
	alertKeys = []string{"rule", "asset", "state", "summary", "held_by", "labels"}
)

// parse reads a fixture; name is used in error positions and to resolve
// rule_files. The error, if any, is an ErrorList.
func parse(name string, src []byte) (*fixture, error) {
	p := &parser{file: name}
	root := p.root(src)
	if root == nil {
		return nil, p.errs
	}
	f := &fixture{path: name, interval: time.Minute, assets: map[string][]string{}}
	var sites, tests *yaml.Node
	p.mapping(root, "fixture", rootKeys, []string{"rule_files", "sites", "tests"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "rule_files":
			p.seq(v, "rule_files", func(n *yaml.Node) {
				if s, ok := p.str(n, "rule_files"); ok {
					f.rules = append(f.rules, rulePattern{s, n.Line, n.Column})
				}
			})
			if len(f.rules) == 0 && (v.Kind == yaml.SequenceNode && len(v.Content) == 0 || v.Tag == "!!null") {
				p.errorf(v, "rule_files: want at least one rule file")
			}
		case "interval":
			if d, ok := p.duration(v, "interval"); ok {
				if d <= 0 {
					p.errorf(v, "interval: want a positive duration")
				}
				f.interval = d
			}
		case "sites":
			sites = v
		case "tests":
			tests = v
		}
	})
	// Sites before tests, whatever the key order: inputs name their assets.
	if sites != nil {
		p.seq(sites, "sites", func(n *yaml.Node) { p.site(f, n) })
	}
	if tests != nil {
		names := map[string]int{}
		p.seq(tests, "tests", func(n *yaml.Node) {
			t := p.test(f, n)
			if t == nil {
				return
			}
			if line, dup := names[t.name]; dup {
				p.errorf(n, "duplicate test name %q, first at line %d", t.name, line)
			}
			names[t.name] = n.Line
			f.tests = append(f.tests, t)
		})
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return f, nil
}

func (p *parser) site(f *fixture, n *yaml.Node) {
	s := &registry.Site{Kind: registry.KindPostOffice}
	var idNode *yaml.Node
	before := len(p.errs)
	p.mapping(n, "site", siteKeys, []string{"id", "assets"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "id":
			idNode = v
			if id, ok := p.str(v, "site id"); ok {
				s.ID = id
				if !registry.ValidSiteID(id) {
					p.errorf(v, "bad site id %q: want PO-<ISTAT code>-<n> or CW-<province>-<n>", id)
				} else if _, dup := f.assets[id]; dup {
					p.errorf(v, "duplicate site %q", id)
				}
			}
		case "name":
			s.Name, _ = p.str(v, "name")
		case "kind":
			if k, ok := p.str(v, "kind"); ok {
				s.Kind = registry.SiteKind(k)
				if s.Kind != registry.KindPostOffice && s.Kind != registry.KindCoworking {
					p.errorf(v, "bad site kind %q: want post_office or coworking", k)
				}
			}
		case "region":
			s.Region, _ = p.str(v, "region")
		case "province":
			s.Province, _ = p.str(v, "province")
		case "opening_hours":
			if h, ok := p.str(v, "opening_hours"); ok {
				oh, err := registry.ParseOpeningHours(h)
				var se *registry.HoursSyntaxError
				switch {
				case errors.As(err, &se) && se.Line == 1 && (v.Style == 0 || v.Style == yaml.DoubleQuotedStyle || v.Style == yaml.SingleQuotedStyle):
					// Point at the offending character of a one-line value.
					col := v.Column + se.Col - 1
					if v.Style != 0 {
						col++
					}
					p.errAt(v.Line, col, "opening_hours: "+se.Msg)
				case err != nil:
					p.errorf(v, "opening_hours: %v", err)
				}
				s.OpeningHours = oh
			}
		case "assets":
			seen := map[string]bool{}
			p.seq(v, "assets", func(a *yaml.Node) {
				id, ok := p.str(a, "asset")
				if !ok {
					return
				}
				switch {
				case !registry.ValidAssetID(id):
					p.errorf(a, "bad asset id %q: want <type>-<n>, e.g. atm-1", id)
				case seen[id]:
					p.errorf(a, "asset %q listed twice", id)
				default:
					seen[id] = true
					typ, _, _ := strings.Cut(id, "-")
					s.Assets = append(s.Assets, &registry.Asset{ID: id, Type: typ})
				}
			})
		}
	})
	if len(p.errs) > before || idNode == nil {
		return
	}
	ids := make([]string, len(s.Assets))
	for i, a := range s.Assets {
		ids[i] = a.ID
	}
	f.assets[s.ID] = ids
	f.sites = append(f.sites, s)
}

func (p *parser) test(f *fixture, n *yaml.Node) *test {
	t := &test{}
	var inputs, expects *yaml.Node
	before := len(p.errs)
	p.mapping(n, "test", testKeys, []string{"name", "start", "expect"}, func(key string, k, v *yaml.Node) {
		switch key {
		case "name":
			if s, ok := p.str(v, "name"); ok {
				if strings.TrimSpace(s) == "" || strings.ContainsAny(s, "\n\r") {
					p.errorf(v, "name: want one non-empty line")
				}
				t.name = s
			}
		case "start":
			if s, ok := p.str(v, "start"); ok {
				st, err := time.Parse(time.RFC3339, s)
				if err != nil {
					p.errorf(v, "start: bad time %q: want RFC 3339, e.g. 2026-03-02T09:00:00+01:00", s)
				}
				t.start = st
			}
		case "input":
			inputs = v
		case "expect":
			expects = v
		}
	})
	if inputs != nil {
		t.inputs = p.inputs(f, inputs)
	}
	if expects != nil {
		t.expects = p.expects(f, expects)
	}
	if len(p.errs) > before {
		return nil
	}
	if len(t.expects) == 0 {
		p.errorf(n, "test %q: expect nothing: want at least one expect entry", t.name)
		return nil
	}
	if ticks := t.expects[len(t.expects)-1].at / f.interval; ticks > maxTicks {
		p.errorf(n, "test %q: %d clock ticks, more than %d: make interval longer or the test shorter", t.name, ticks, maxTicks)
		return nil
	}
	return t
}

// asset reads SITE/ASSET and checks it is in the fixture's sites.
func (p *parser) asset(f *fixture, n *yaml.Node) (site, asset string, ok bool) {
	s, ok := p.str(n, "asset")
	if !ok {
		return "", "", false
	}
	site, asset, found := strings.Cut(s, "/")
	if !found {
		p.errorf(n, "asset %q: want SITE/ASSET, e.g. PO-001272-1/atm-1", s)
		return "", "", false
	}
	ids, known := f.assets[site]
	if !known {
		sites := make([]string, 0, len(f.assets))
		for id := range f.assets {
			sites = append(sites, id)
		}
		slices.Sort(sites)
		p.errorf(n, "unknown asset %q: no site %s in sites%s", s, site, didYouMean(site, sites))
		return "", "", false
	}
	if !slices.Contains(ids, asset) {
		p.errorf(n, "unknown asset %q: site %s has %s%s", s, site, strings.Join(ids, ", "), didYouMean(asset, ids))
		return "", "", false
	}
	return site, asset, true
}

// fmtOffset prints an offset the way fixtures write it: 16m, 1h30m, 90s.
func fmtOffset(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
