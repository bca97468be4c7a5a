package opendata

import (
	"encoding/json"
	"fmt"
	"time"
)

// The vocabularies the catalogue uses.
const (
	nsDCAT     = "http://www.w3.org/ns/dcat#"
	nsDCT      = "http://purl.org/dc/terms/"
	nsDCATAPIT = "http://dati.gov.it/onto/dcatapit#"
	nsFOAF     = "http://xmlns.com/foaf/0.1/"
	nsVCARD    = "http://www.w3.org/2006/vcard/ns#"
	nsXSD      = "http://www.w3.org/2001/XMLSchema#"
	nsOWL      = "http://www.w3.org/2002/07/owl#"

	euDataTheme = "http://publications.europa.eu/resource/authority/data-theme"
	euFrequency = "http://publications.europa.eu/resource/authority/frequency/"
	euFileType  = "http://publications.europa.eu/resource/authority/file-type/"
	euLanguage  = "http://publications.europa.eu/resource/authority/language/ITA"
	euCountry   = "http://publications.europa.eu/resource/authority/country/ITA"
	admsAttrib  = "http://purl.org/adms/licencetype/Attribution"
	ianaMedia   = "https://www.iana.org/assignments/media-types/"
)

// catalogContext is the catalogue's JSON-LD context, inline: prefixes
// only, so that a processor needs no remote document to read it.
var catalogContext = map[string]string{
	"dcat": nsDCAT, "dct": nsDCT, "dcatapit": nsDCATAPIT, "foaf": nsFOAF,
	"vcard": nsVCARD, "xsd": nsXSD, "owl": nsOWL,
}

// node is a JSON-LD node object; encoding/json writes its keys sorted, so
// the catalogue is the same bytes for the same snapshot.
type node map[string]any

func ref(iri string) node { return node{"@id": iri} }
func it(s string) node    { return node{"@value": s, "@language": "it"} }
func xsdDate(t time.Time) node {
	return node{"@value": t.In(rome).Format(time.DateOnly), "@type": "xsd:date"}
}
func refs(iris ...string) []node { // always an array, so the shape does not depend on the count
	out := make([]node, len(iris))
	for i, s := range iris {
		out[i] = ref(s)
	}
	return out
}

var fileTypes = map[string]struct{ euCode, media, title string }{
	FormatCSV:     {"CSV", "text/csv", "CSV"},
	FormatJSON:    {"JSON", "application/json", "JSON"},
	FormatParquet: {"PARQUET", "application/vnd.apache.parquet", "Apache Parquet"},
}

// catalog is the DCAT-AP_IT catalogue of every table, in JSON-LD: a
// dcatapit:Catalog with one dcatapit:Dataset per table and one
// dcatapit:Distribution per format, every one under CC BY 4.0, so that
// dati.gov.it can harvest it. base is the absolute URL of the portal.
func catalog(base string, modified time.Time, holder Agent, contactEmail string) ([]byte, error) {
	self := base + CatalogPath
	catID, holderID, contactID := self+"#catalogo", self+"#titolare", self+"#contatto"

	graph := []node{}
	var datasets []string
	var dsNodes, distNodes []node
	for _, t := range Tables() {
		id := self + "#" + t.Name
		datasets = append(datasets, id)
		var dists []string
		for _, f := range t.Formats {
			ft, ok := fileTypes[f]
			if !ok {
				return nil, fmt.Errorf("catalogue: table %s: format %q has no EU file type", t.Name, f)
			}
			did := id + "-" + f
			dists = append(dists, did)
			url := base + Path(t.Name, f, Filter{})
			title := t.Title + " (" + ft.title + ")"
			if f == FormatCSV && t.CSV.BOM {
				title = t.Title + " (CSV, tracciato nazionale: separatore ;, date GG/MM/AAAA, virgola decimale)"
			}
			distNodes = append(distNodes, node{
				"@id":              did,
				"@type":            []string{"dcat:Distribution", "dcatapit:Distribution"},
				"dct:title":        it(title),
				"dct:format":       ref(euFileType + ft.euCode),
				"dcat:mediaType":   ref(ianaMedia + ft.media),
				"dcat:accessURL":   ref(url),
				"dcat:downloadURL": ref(url),
				"dct:license":      ref(LicenceURL),
			})
		}
		themes := make([]string, len(t.Themes))
		for i, th := range t.Themes {
			themes[i] = euDataTheme + "/" + th
		}
		dsNodes = append(dsNodes, node{
			"@id":                    id,
			"@type":                  []string{"dcat:Dataset", "dcatapit:Dataset"},
			"dct:identifier":         holder.ID + ":polis-" + t.Name,
			"dct:title":              it(t.Title + " (programma Polis)"),
			"dct:description":        it(t.Description),
			"dct:modified":           xsdDate(modified),
			"dcat:theme":             refs(themes...),
			"dct:rightsHolder":       ref(holderID),
			"dct:publisher":          ref(holderID),
			"dct:accrualPeriodicity": ref(euFrequency + t.Updates),
			"dcat:contactPoint":      ref(contactID),
			"dct:language":           refs(euLanguage),
			"dct:spatial":            refs(euCountry),
			"dcat:keyword":           []node{it("Polis"), it("uffici postali"), it("piccoli comuni"), it(t.Name)},
			"dcat:distribution":      refs(dists...),
		})
	}

	graph = append(graph,
		node{
			"@id":                catID,
			"@type":              []string{"dcat:Catalog", "dcatapit:Catalog"},
			"dct:title":          it("Dati aperti del programma Polis"),
			"dct:description":    it("Gli obiettivi del programma Polis con le loro fonti e l'avanzamento misurato dal gemello digitale degli uffici postali e degli spazi di coworking: uffici, apparati, fornitori, finanziamento, andamento per regione, provincia e comune."),
			"dct:publisher":      ref(holderID),
			"dct:modified":       xsdDate(modified),
			"dct:language":       refs(euLanguage),
			"foaf:homepage":      ref(base + "/"),
			"dcat:themeTaxonomy": ref(euDataTheme),
			"dcat:dataset":       refs(datasets...),
		},
		node{
			"@id":            holderID,
			"@type":          []string{"foaf:Agent", "dcatapit:Agent"},
			"dct:identifier": holder.ID,
			"foaf:name":      it(holder.Name),
		},
		contactNode(contactID, base, holder, contactEmail),
		node{
			"@id":             LicenceURL,
			"@type":           []string{"dct:LicenseDocument", "dcatapit:LicenseDocument"},
			"dct:type":        ref(admsAttrib),
			"foaf:name":       it(LicenceName),
			"owl:versionInfo": "4.0",
		},
	)
	graph = append(graph, dsNodes...)
	graph = append(graph, distNodes...)
	b, err := json.MarshalIndent(map[string]any{"@context": catalogContext, "@graph": graph}, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode catalogue: %w", err)
	}
	return append(b, '\n'), nil
}

func contactNode(id, base string, holder Agent, email string) node {
	n := node{
		"@id":          id,
		"@type":        []string{"vcard:Organization", "vcard:Kind", "dcatapit:Organization"},
		"vcard:fn":     holder.Name,
		"vcard:hasURL": ref(base + "/"),
	}
	if email != "" {
		n["vcard:hasEmail"] = ref("mailto:" + email)
	}
	return n
}
