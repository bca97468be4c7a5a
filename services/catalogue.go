package services

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"gopkg.in/yaml.v3"

	"github.com/polis-platform/polis/twin/registry"
)

// The catalogue the platform ships, and its schema.
var (
	//go:embed catalogue.yaml
	defaultCatalogue []byte
	//go:embed catalogue.schema.json
	catalogueSchema []byte
)

// MaxCatalogueBytes bounds a catalogue file: the shipped one is about
// 15 KB, and a file is parsed whole.
const MaxCatalogueBytes = 1 << 20

// Catalogue is the list of services, in the file's order.
type Catalogue struct {
	Version  string    `json:"version"`
	Services []Service `json:"services"`

	byID map[string]int
}

// Service returns the service with the given id.
func (c *Catalogue) Service(id string) (*Service, bool) {
	i, ok := c.byID[id]
	if !ok {
		return nil, false
	}
	return &c.Services[i], true
}

// IDs returns the service ids in catalogue order.
func (c *Catalogue) IDs() []string {
	out := make([]string, len(c.Services))
	for i, s := range c.Services {
		out[i] = s.ID
	}
	return out
}

// channelAsset is the asset type each channel needs ("" for the counter;
// coworking needs desk or room, see checkService).
var channelAsset = map[Channel]string{
	ChannelTotem:   registry.TypeTotem,
	ChannelATM:     registry.TypeATM,
	ChannelLocker:  registry.TypeLocker,
	ChannelCharger: registry.TypeEVC,
}

// coworkingAssets are the asset types the coworking channel can need.
var coworkingAssets = []string{registry.TypeDesk, registry.TypeRoom}

// Problem is one thing wrong with a catalogue file, where it is.
type Problem struct {
	Line, Col int // 1-based; 0 when the file could not be parsed that far
	Msg       string
}

// CatalogueError lists every problem found in a catalogue file, in file
// order.
type CatalogueError struct {
	File     string
	Problems []Problem
}

func (e *CatalogueError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid services catalogue %s:", e.File)
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s:%d:%d: %s", e.File, p.Line, p.Col, p.Msg)
	}
	return b.String()
}

// LoadCatalogue reads and checks a catalogue file.
func LoadCatalogue(path string) (*Catalogue, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot open services catalogue: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxCatalogueBytes+1))
	if err != nil {
		return nil, fmt.Errorf("cannot read services catalogue %s: %w", path, err)
	}
	if len(b) > MaxCatalogueBytes {
		return nil, fmt.Errorf("cannot load services catalogue %s: over %d bytes", path, MaxCatalogueBytes)
	}
	return ParseCatalogue(path, b)
}

// DefaultCatalogue is the catalogue shipped in the binary
// (services/catalogue.yaml). The tests keep it valid, so a failure here is
// a bug.
var DefaultCatalogue = sync.OnceValue(func() *Catalogue {
	c, err := ParseCatalogue("catalogue.yaml", defaultCatalogue)
	if err != nil {
		panic("BUG: the shipped services catalogue is invalid: " + err.Error())
	}
	return c
})

var compiledSchema = sync.OnceValues(func() (*jsonschema.Schema, error) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(catalogueSchema))
	if err != nil {
		return nil, fmt.Errorf("cannot parse catalogue.schema.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	const url = "catalogue.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		return nil, fmt.Errorf("cannot load catalogue.schema.json: %w", err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, fmt.Errorf("cannot compile catalogue.schema.json: %w", err)
	}
	return s, nil
})

// ParseCatalogue parses and checks a catalogue; name is the file name used
// in errors. A file that is not valid YAML, does not match
// catalogue.schema.json or fails the semantic checks is refused with a
// *CatalogueError naming the line and column of every problem.
func ParseCatalogue(name string, b []byte) (*Catalogue, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, &CatalogueError{File: name, Problems: []Problem{yamlProblem(err)}}
	}
	if root.Kind == 0 {
		return nil, &CatalogueError{File: name, Problems: []Problem{{1, 1, "empty file; want version and services"}}}
	}
	p := &checker{file: name}
	doc := p.toAny(&root)
	if len(p.problems) > 0 {
		return nil, p.err()
	}
	sch, err := compiledSchema()
	if err != nil {
		return nil, fmt.Errorf("BUG: %w", err)
	}
	if err := sch.Validate(doc); err != nil {
		var ve *jsonschema.ValidationError
		if !errors.As(err, &ve) {
			return nil, fmt.Errorf("cannot validate services catalogue %s: %w", name, err)
		}
		p.schemaProblems(&root, ve)
		return nil, p.err()
	}
	var c Catalogue
	if err := root.Decode(&c); err != nil { // the schema has checked every type
		return nil, fmt.Errorf("BUG: cannot decode services catalogue %s after validating it: %w", name, err)
	}
	p.semantics(&root, &c)
	if len(p.problems) > 0 {
		return nil, p.err()
	}
	c.byID = make(map[string]int, len(c.Services))
	for i, s := range c.Services {
		c.byID[s.ID] = i
	}
	return &c, nil
}

// yamlProblem turns a yaml.v3 syntax error ("yaml: line 3: ...") into a
// Problem.
func yamlProblem(err error) Problem {
	msg := err.Error()
	rest, ok := strings.CutPrefix(msg, "yaml: line ")
	if ok {
		if n, tail, ok := strings.Cut(rest, ": "); ok {
			if line, err := strconv.Atoi(n); err == nil {
				return Problem{line, 1, tail}
			}
		}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) && len(te.Errors) > 0 {
		msg = te.Errors[0]
	}
	return Problem{1, 1, strings.TrimPrefix(msg, "yaml: ")}
}

type checker struct {
	file     string
	problems []Problem
}

func (p *checker) at(n *yaml.Node, format string, args ...any) {
	p.problems = append(p.problems, Problem{n.Line, n.Column, fmt.Sprintf(format, args...)})
}

func (p *checker) err() error {
	sort.SliceStable(p.problems, func(i, j int) bool {
		a, b := p.problems[i], p.problems[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Col < b.Col
	})
	p.problems = slices.Compact(p.problems)
	return &CatalogueError{File: p.file, Problems: p.problems}
}

// toAny converts a YAML node tree to the values a JSON Schema validates
// (maps, slices, strings, numbers, booleans, nil). Aliases are refused:
// expanding them could take exponential time on a hostile file, and a
// catalogue does not need them. Duplicate keys are refused too.
func (p *checker) toAny(n *yaml.Node) any {
	switch n.Kind {
	case yaml.DocumentNode:
		if len(n.Content) == 0 {
			return nil
		}
		return p.toAny(n.Content[0])
	case yaml.AliasNode:
		p.at(n, "aliases (*%s) are not supported in the services catalogue", n.Value)
		return nil
	case yaml.MappingNode:
		m := make(map[string]any, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode || k.Tag == "!!null" || k.Tag == "!!merge" {
				p.at(k, "want a key that is a string")
				continue
			}
			if _, dup := m[k.Value]; dup {
				p.at(k, "duplicate key %q", k.Value)
				continue
			}
			m[k.Value] = p.toAny(v)
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, 0, len(n.Content))
		for _, c := range n.Content {
			s = append(s, p.toAny(c))
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b
			}
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return json.Number(strconv.FormatFloat(f, 'g', -1, 64))
			}
		}
		return n.Value
	}
	return nil
}

// locate finds the node at a JSON pointer's tokens below root (a document
// node), or the deepest node on the way.
func locate(root *yaml.Node, tokens []string) *yaml.Node {
	n := root
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	for _, tok := range tokens {
		next := child(n, tok)
		if next == nil {
			return n
		}
		n = next
	}
	return n
}

// keyOf finds the key node of a mapping's member, for a problem about the
// key itself (an unknown property).
func keyOf(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i]
		}
	}
	return nil
}

func child(n *yaml.Node, tok string) *yaml.Node {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == tok {
				return n.Content[i+1]
			}
		}
	case yaml.SequenceNode:
		if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(n.Content) {
			return n.Content[i]
		}
	}
	return nil
}

var english = message.NewPrinter(language.English)

// schemaProblems reports the leaves of a validation error, each at its
// node, with the JSON path spelled out so that a person finds it.
func (p *checker) schemaProblems(root *yaml.Node, ve *jsonschema.ValidationError) {
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		n := locate(root, e.InstanceLocation)
		if ap, ok := e.ErrorKind.(*kind.AdditionalProperties); ok && len(ap.Properties) > 0 {
			if k := keyOf(n, ap.Properties[0]); k != nil {
				n = k
			}
		}
		p.at(n, "%s: %s", jsonPath(e.InstanceLocation), e.ErrorKind.LocalizedString(english))
	}
	walk(ve)
}

// jsonPath writes an instance location as services[3].channels[1].
func jsonPath(tokens []string) string {
	if len(tokens) == 0 {
		return "(top level)"
	}
	var b strings.Builder
	for _, t := range tokens {
		if _, err := strconv.Atoi(t); err == nil {
			b.WriteString("[" + t + "]")
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(t)
	}
	return b.String()
}

// knownAssetTypes are the asset types a service may need.
var knownAssetTypes = []string{registry.TypeTotem, registry.TypeATM, registry.TypeLocker, registry.TypeEVC, registry.TypeDesk, registry.TypeRoom}

// semantics checks what the schema cannot: unique ids, and channels,
// asset types and site kinds that agree.
func (p *checker) semantics(root *yaml.Node, c *Catalogue) {
	seen := map[string]int{}
	for i := range c.Services {
		s := &c.Services[i]
		at := func(field ...string) *yaml.Node {
			return locate(root, append([]string{"services", strconv.Itoa(i)}, field...))
		}
		if j, dup := seen[s.ID]; dup {
			p.at(at("id"), "services[%d].id: %q is already the id of services[%d]", i, s.ID, j)
		}
		seen[s.ID] = i
		served := map[string]bool{}
		for k, ch := range s.Channels {
			chNode := func() *yaml.Node { return at("channels", strconv.Itoa(k)) }
			switch ch {
			case ChannelCounter:
				if slices.Contains(s.Sites, registry.KindCoworking) {
					p.at(chNode(), "services[%d] (%s): the counter channel is only at post offices; remove coworking from sites", i, s.ID)
				}
			case ChannelCoworking:
				if slices.Contains(s.Sites, registry.KindPostOffice) {
					p.at(chNode(), "services[%d] (%s): the coworking channel is only at coworking spaces; remove post_office from sites", i, s.ID)
				}
				var found []string
				for _, a := range coworkingAssets {
					if slices.Contains(s.Needs, a) {
						found = append(found, a)
						served[a] = true
					}
				}
				if len(found) != 1 {
					p.at(chNode(), "services[%d] (%s): the coworking channel needs exactly one of desk or room in needs", i, s.ID)
				}
			default:
				a := channelAsset[ch]
				if !slices.Contains(s.Needs, a) {
					p.at(chNode(), "services[%d] (%s): channel %s needs asset type %q in needs", i, s.ID, ch, a)
				}
				served[a] = true
			}
		}
		for k, a := range s.Needs {
			switch {
			case !slices.Contains(knownAssetTypes, a):
				p.at(at("needs", strconv.Itoa(k)), "services[%d].needs[%d]: unknown asset type %q; want one of %s", i, k, a, strings.Join(knownAssetTypes, ", "))
			case !served[a]:
				p.at(at("needs", strconv.Itoa(k)), "services[%d].needs[%d]: no channel of %s uses asset type %q; add its channel or remove it", i, k, s.ID, a)
			}
		}
		if s.NeedsFreeCompartment && !slices.Contains(s.Channels, ChannelLocker) {
			p.at(at("needs_free_compartment"), "services[%d] (%s): needs_free_compartment is for the locker channel, which it does not have", i, s.ID)
		}
		vseen := map[string]bool{}
		for k, v := range s.Variants {
			if vseen[v.ID] {
				p.at(at("variants", strconv.Itoa(k), "id"), "services[%d].variants[%d].id: %q listed twice", i, k, v.ID)
			}
			vseen[v.ID] = true
		}
	}
}
