package milestone

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"
)

// DefaultFactsPath is where the public facts table is found from the
// repository root (../shared/data, README section 7 of that folder).
const DefaultFactsPath = "../shared/data/polis_fatti_pubblici.csv"

// Fact types (column tipo) of the public facts table.
const (
	FactFunding  = "finanziamento"
	FactAct      = "atto"
	FactEvent    = "evento"
	FactTarget   = "obiettivo"
	FactProgress = "avanzamento"
	FactServices = "servizi"
	FactImpact   = "impatto"
)

// Fact is one row of the public facts table: a dated, sourced statement
// about the programme. Value is set when the table's valore is a number;
// Text keeps valore as written (F44's "100/80/70" is not a number).
type Fact struct {
	ID         string    `json:"id"`
	Date       time.Time `json:"date"` // midnight UTC
	Line       Line      `json:"line"`
	Type       string    `json:"type"`
	Metric     string    `json:"metric"` // Italian, as published
	Value      float64   `json:"value"`
	HasValue   bool      `json:"has_value"`
	Text       string    `json:"text"`
	Unit       string    `json:"unit"`
	SourceURL  string    `json:"source_url"`
	SourceKind string    `json:"source_kind"` // who published it (tipo_fonte)
	Note       string    `json:"note"`
}

// factColumns is the header the table must have, in this order.
var factColumns = []string{"id", "data", "linea", "tipo", "metrica", "valore", "unita", "fonte_url", "tipo_fonte", "nota"}

// FactError is a problem in the facts table, at a 1-based line.
type FactError struct {
	Line int
	Msg  string
}

func (e *FactError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// LoadFactsFile reads the facts table at path.
func LoadFactsFile(path string) ([]Fact, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read the facts table: %w", err)
	}
	defer f.Close()
	facts, err := ParseFacts(f)
	if err != nil {
		return nil, fmt.Errorf("cannot read the facts table %s: %w", path, err)
	}
	return facts, nil
}

// ParseFacts reads a facts table (CSV, header first, README section 7 of
// ../shared/data). Every row is checked; the first bad one is the error.
func ParseFacts(r io.Reader) ([]Fact, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(factColumns)
	head, err := cr.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &FactError{Line: 1, Msg: "the table is empty; want the header " + strings.Join(factColumns, ",")}
		}
		return nil, csvFactError(err)
	}
	for i, c := range factColumns {
		if strings.TrimPrefix(head[i], "\ufeff") != c {
			return nil, &FactError{Line: 1, Msg: fmt.Sprintf("column %d is %q; want %q (header %s)", i+1, head[i], c, strings.Join(factColumns, ","))}
		}
	}
	var facts []Fact
	seen := map[string]bool{}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return facts, nil
		}
		if err != nil {
			return nil, csvFactError(err)
		}
		line, _ := cr.FieldPos(0)
		f, err := parseFact(rec)
		if err != nil {
			return nil, &FactError{Line: line, Msg: err.Error()}
		}
		if seen[f.ID] {
			return nil, &FactError{Line: line, Msg: fmt.Sprintf("fact %s appears twice", f.ID)}
		}
		seen[f.ID] = true
		facts = append(facts, f)
	}
}

func csvFactError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &FactError{Line: pe.Line, Msg: pe.Err.Error()}
	}
	return err
}

func parseFact(rec []string) (Fact, error) {
	f := Fact{ID: rec[0], Line: Line(rec[2]), Type: rec[3], Metric: rec[4], Text: rec[5], Unit: rec[6],
		SourceURL: rec[7], SourceKind: rec[8], Note: rec[9]}
	if f.ID == "" {
		return f, errors.New("id is empty")
	}
	d, err := time.Parse(time.DateOnly, rec[1])
	if err != nil {
		return f, fmt.Errorf("fact %s: data %q is not a date YYYY-MM-DD", f.ID, rec[1])
	}
	f.Date = d
	switch f.Line {
	case LineProgramma, LineSportelloUnico, LineSpaziPerItalia:
	default:
		return f, fmt.Errorf("fact %s: linea %q is not one of programma, sportello_unico, spazi_per_italia", f.ID, rec[2])
	}
	switch f.Type {
	case FactFunding, FactAct, FactEvent, FactTarget, FactProgress, FactServices, FactImpact:
	default:
		return f, fmt.Errorf("fact %s: tipo %q is not one of finanziamento, atto, evento, obiettivo, avanzamento, servizi, impatto", f.ID, f.Type)
	}
	if !strings.HasPrefix(f.SourceURL, "https://") && !strings.HasPrefix(f.SourceURL, "http://") {
		return f, fmt.Errorf("fact %s: fonte_url %q is not a web address", f.ID, f.SourceURL)
	}
	if v, err := strconv.ParseFloat(rec[5], 64); err == nil {
		f.Value, f.HasValue = v, true
	}
	return f, nil
}

// FactByID returns the fact with id, if facts has it.
func FactByID(facts []Fact, id string) (Fact, bool) {
	for _, f := range facts {
		if f.ID == id {
			return f, true
		}
	}
	return Fact{}, false
}
