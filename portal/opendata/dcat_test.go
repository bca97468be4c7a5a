package opendata

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/piprate/json-gold/ld"
)

// noNetwork is a document loader that loads nothing: the catalogue's
// context is inline, so a processor must never need to fetch one.
type noNetwork struct{ t *testing.T }

func (n noNetwork) LoadDocument(u string) (*ld.RemoteDocument, error) {
	n.t.Errorf("the JSON-LD processor tried to load %s", u)
	return nil, errors.New("no network in this test: " + u)
}

// graph is an RDF graph indexed by subject and predicate.
type graph map[string]map[string][]ld.Node

const (
	rdfType    = "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"
	xsdDateIRI = nsXSD + "date"
)

// toRDF validates the catalogue as JSON-LD with json-gold (in safe mode:
// a term that does not expand to an IRI is an error, not a dropped
// property) and returns its triples.
func toRDF(t *testing.T, body []byte) graph {
	t.Helper()
	var doc any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("the catalogue is not JSON: %v", err)
	}
	opts := ld.NewJsonLdOptions(testBase + CatalogPath)
	opts.DocumentLoader = noNetwork{t}
	opts.SafeMode = true
	proc := ld.NewJsonLdProcessor()
	if _, err := proc.Expand(doc, opts); err != nil {
		t.Fatalf("expand: %v", err)
	}
	out, err := proc.ToRDF(doc, opts)
	if err != nil {
		t.Fatalf("toRDF: %v", err)
	}
	ds := out.(*ld.RDFDataset)
	g := graph{}
	quads := ds.GetQuads("@default")
	if len(quads) == 0 {
		t.Fatal("the catalogue has no triples")
	}
	for _, q := range quads {
		if !ld.IsIRI(q.Subject) {
			t.Errorf("blank subject %v: every node of the catalogue has an IRI", q.Subject)
		}
		s, p := q.Subject.GetValue(), q.Predicate.GetValue()
		if g[s] == nil {
			g[s] = map[string][]ld.Node{}
		}
		g[s][p] = append(g[s][p], q.Object)
	}
	return g
}

func (g graph) iris(s, p string) []string {
	var out []string
	for _, o := range g[s][p] {
		if ld.IsIRI(o) {
			out = append(out, o.GetValue())
		}
	}
	return out
}

func (g graph) literal(t *testing.T, s, p, datatype, lang string) string {
	t.Helper()
	objs := g[s][p]
	if len(objs) != 1 {
		t.Errorf("<%s> <%s>: %d values, want 1", s, p, len(objs))
		return ""
	}
	l, ok := objs[0].(ld.Literal)
	if !ok || (datatype != "" && l.Datatype != datatype) || l.Language != lang || strings.TrimSpace(l.Value) == "" {
		t.Errorf("<%s> <%s> = %#v, want a literal of type %q language %q", s, p, objs[0], datatype, lang)
	}
	return l.Value
}

func (g graph) one(t *testing.T, s, p string) string {
	t.Helper()
	iris := g.iris(s, p)
	if len(iris) != 1 || len(g[s][p]) != 1 {
		t.Errorf("<%s> <%s>: %v, want one IRI", s, p, g[s][p])
		return ""
	}
	return iris[0]
}

func (g graph) hasType(s, typ string) bool { return slices.Contains(g.iris(s, rdfType), typ) }

// TestCatalogueJSONLD checks the DCAT-AP_IT catalogue as RDF: the
// properties the profile requires for the catalogue, every dataset, its
// rights holder and distributions, and the licence.
func TestCatalogueJSONLD(t *testing.T) {
	h := New(Options{Snapshot: fixedSnapshot(testSnapshot()), BaseURL: testBase, Holder: Agent{ID: "p_test", Name: "Ente di prova"}, ContactEmail: "dati@example.it"})
	g := toRDF(t, mustGet(t, h, CatalogPath))

	var catalogs []string
	for s := range g {
		if g.hasType(s, nsDCATAPIT+"Catalog") {
			catalogs = append(catalogs, s)
		}
	}
	if len(catalogs) != 1 {
		t.Fatalf("%d dcatapit:Catalog, want 1", len(catalogs))
	}
	cat := catalogs[0]
	if !g.hasType(cat, nsDCAT+"Catalog") {
		t.Error("the catalogue is not a dcat:Catalog")
	}
	g.literal(t, cat, nsDCT+"title", "", "it")
	g.literal(t, cat, nsDCT+"description", "", "it")
	if d := g.literal(t, cat, nsDCT+"modified", xsdDateIRI, ""); d != "2026-03-15" {
		t.Errorf("catalogue modified %q", d)
	}
	publisher := g.one(t, cat, nsDCT+"publisher")
	if !g.hasType(publisher, nsDCATAPIT+"Agent") || g.literal(t, publisher, nsDCT+"identifier", "", "") != "p_test" {
		t.Errorf("publisher %s: %v", publisher, g[publisher])
	}
	g.literal(t, publisher, nsFOAF+"name", "", "it")

	datasets := g.iris(cat, nsDCAT+"dataset")
	if len(datasets) != len(Tables()) {
		t.Fatalf("%d datasets, want one per table (%d)", len(datasets), len(Tables()))
	}
	ids := map[string]bool{}
	formats := map[string]bool{}
	for _, ds := range datasets {
		if !g.hasType(ds, nsDCATAPIT+"Dataset") || !g.hasType(ds, nsDCAT+"Dataset") {
			t.Errorf("%s: types %v", ds, g.iris(ds, rdfType))
		}
		id := g.literal(t, ds, nsDCT+"identifier", "", "")
		if ids[id] || !strings.HasPrefix(id, "p_test:") {
			t.Errorf("%s: identifier %q duplicate or not under the holder's IPA code", ds, id)
		}
		ids[id] = true
		g.literal(t, ds, nsDCT+"title", "", "it")
		g.literal(t, ds, nsDCT+"description", "", "it")
		g.literal(t, ds, nsDCT+"modified", xsdDateIRI, "")
		themes := g.iris(ds, nsDCAT+"theme")
		if len(themes) == 0 {
			t.Errorf("%s has no theme", ds)
		}
		for _, th := range themes {
			if !strings.HasPrefix(th, "http://publications.europa.eu/resource/authority/data-theme/") {
				t.Errorf("%s: theme %s is not in the EU data theme vocabulary", ds, th)
			}
		}
		if f := g.one(t, ds, nsDCT+"accrualPeriodicity"); !strings.HasPrefix(f, "http://publications.europa.eu/resource/authority/frequency/") {
			t.Errorf("%s: frequency %s", ds, f)
		}
		holder := g.one(t, ds, nsDCT+"rightsHolder")
		if !g.hasType(holder, nsDCATAPIT+"Agent") || len(g[holder][nsDCT+"identifier"]) != 1 || len(g[holder][nsFOAF+"name"]) != 1 {
			t.Errorf("%s: rights holder %s is not a dcatapit:Agent with identifier and name", ds, holder)
		}
		contact := g.one(t, ds, nsDCAT+"contactPoint")
		if !g.hasType(contact, nsDCATAPIT+"Organization") || !slices.Contains(g.iris(contact, nsVCARD+"hasEmail"), "mailto:dati@example.it") {
			t.Errorf("%s: contact point %s: %v", ds, contact, g[contact])
		}
		dists := g.iris(ds, nsDCAT+"distribution")
		if len(dists) < 2 {
			t.Errorf("%s: %d distributions", ds, len(dists))
		}
		for _, d := range dists {
			if !g.hasType(d, nsDCATAPIT+"Distribution") {
				t.Errorf("%s is not a dcatapit:Distribution", d)
			}
			f := g.one(t, d, nsDCT+"format")
			if !strings.HasPrefix(f, euFileType) {
				t.Errorf("%s: format %s is not an EU file type", d, f)
			}
			formats[strings.TrimPrefix(f, euFileType)] = true
			if u := g.one(t, d, nsDCAT+"accessURL"); !strings.HasPrefix(u, testBase+"/dati/") {
				t.Errorf("%s: accessURL %s", d, u)
			}
			lic := g.one(t, d, nsDCT+"license")
			if lic != LicenceURL || !g.hasType(lic, nsDCATAPIT+"LicenseDocument") || !g.hasType(lic, nsDCT+"LicenseDocument") {
				t.Errorf("%s: licence %s types %v", d, lic, g.iris(lic, rdfType))
			}
		}
	}
	for _, f := range []string{"CSV", "JSON", "PARQUET"} {
		if !formats[f] {
			t.Errorf("no distribution in %s", f)
		}
	}
	if got := g.iris(LicenceURL, nsDCT+"type"); !slices.Equal(got, []string{admsAttrib}) {
		t.Errorf("licence type %v", got)
	}
}

// TestCatalogueBaseFromRequest: without BaseURL the catalogue's URLs are
// the request's, and the two hosts get two bodies.
func TestCatalogueBaseFromRequest(t *testing.T) {
	h := New(Options{Snapshot: fixedSnapshot(testSnapshot())})
	r := get(t, h, "GET", "http://dati.example.org/dati/catalogo.jsonld", "X-Forwarded-Proto", "https")
	if !strings.Contains(r.Body.String(), `"https://dati.example.org/dati/uffici.csv"`) {
		t.Errorf("catalogue without BaseURL does not use the request's host:\n%.400s", r.Body)
	}
	other := get(t, h, "GET", "http://altro.example.org/dati/catalogo.jsonld")
	if !strings.Contains(other.Body.String(), `"http://altro.example.org/dati/uffici.csv"`) {
		t.Errorf("a second host got the first host's catalogue")
	}
}
