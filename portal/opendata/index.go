package opendata

import (
	"encoding/json"
	"fmt"
	"time"
)

// TypeDoc says how the values of a column type are written in each format.
type TypeDoc struct {
	Type        ColumnType `json:"type"`
	Description string     `json:"description"` // Italian
}

// Types documents the column types, for the index and the method page.
func Types() []TypeDoc {
	return []TypeDoc{
		{TypeString, "testo in UTF-8. Nei CSV il campo è tra virgolette se contiene il separatore, virgolette (raddoppiate) o un a capo. Vuoto nei CSV e null nel JSON quando il dato non c'è"},
		{TypeInteger, "numero intero, senza separatore delle migliaia"},
		{TypeNumber, "numero decimale senza separatore delle migliaia: punto decimale nei CSV e nel JSON, virgola decimale nel tracciato nazionale (progetti.csv); double in Parquet"},
		{TypeBoolean, "true o false; SI o NO nel tracciato nazionale (progetti.csv)"},
		{TypeDate, "giorno nel fuso orario italiano: AAAA-MM-GG nei CSV e nel JSON, GG/MM/AAAA nel tracciato nazionale (progetti.csv), DATE in Parquet"},
	}
}

type indexDoc struct {
	Title       string       `json:"title"`
	Description string       `json:"description"`
	Licence     licenceDoc   `json:"licence"`
	Modified    string       `json:"modified"`
	Catalogue   string       `json:"catalogue"`
	Feed        string       `json:"feed"`
	Caching     string       `json:"caching"`
	JSONLayout  string       `json:"json_layout"`
	Types       []TypeDoc    `json:"types"`
	Tables      []indexTable `json:"tables"`
}

type licenceDoc struct {
	Name        string `json:"name"`
	URL         string `json:"url"`
	Attribution string `json:"attribution"`
}

type indexTable struct {
	Table
	Rows int               `json:"rows"`
	URLs map[string]string `json:"urls"`
}

// counter is an encoder that only counts rows.
type counter struct{ n int }

func (c *counter) header(Table) error      { return nil }
func (c *counter) row([]value) error       { c.n++; return nil }
func (c *counter) finish() ([]byte, error) { return nil, nil }

// index is the JSON index of /dati/: every table with its columns, formats,
// filters, row count and paths, the column types, the licence.
func index(st *state) ([]byte, error) {
	doc := indexDoc{
		Title: "Dati aperti del programma Polis",
		Description: "Le tabelle del portale Polis: obiettivi e fonti, avanzamento misurato dal gemello digitale per regione, " +
			"provincia e comune, uffici, coworking, apparati, fornitori, finanziamento. Ogni tabella si scarica in CSV e JSON " +
			"(le grandi anche in Parquet); quelle con \"filters\" accettano ?regione={slug} e ?provincia={sigla}.",
		Licence: licenceDoc{
			Name: LicenceName, URL: LicenceURL,
			Attribution: "Fonte: portale del programma Polis, dati dal gemello digitale degli uffici e dai fatti pubblici citati",
		},
		Modified:  st.at.UTC().Format(time.RFC3339),
		Catalogue: CatalogPath,
		Feed:      FeedPath,
		Caching:   "ogni file ha un ETag e Last-Modified (ora dell'ultimo calcolo) e si può tenere in cache per 60 secondi",
		JSONLayout: "ogni file JSON è un oggetto con table, title, description, licence, modified, filter (se filtrato), " +
			"columns (name, type, description) e rows: un oggetto per riga con le colonne per nome",
		Types: Types(),
	}
	for _, s := range specs {
		t := s.table()
		var c counter
		if err := s.write(st.view, Filter{}, &c); err != nil {
			return nil, fmt.Errorf("count rows of %s: %w", t.Name, err)
		}
		doc.Tables = append(doc.Tables, indexTable{Table: t, Rows: c.n, URLs: formatPaths(t)})
	}
	b, err := json.MarshalIndent(doc, "", " ")
	if err != nil {
		return nil, fmt.Errorf("encode index: %w", err)
	}
	return append(b, '\n'), nil
}
