package opendata

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"
)

// cellText is an Arrow value written as the JSON download writes it.
func cellText(col arrow.Array, i int) string {
	if col.IsNull(i) {
		return "null"
	}
	switch a := col.(type) {
	case *array.String:
		b, _ := json.Marshal(a.Value(i))
		return string(b)
	case *array.Int64:
		return strconv.FormatInt(a.Value(i), 10)
	case *array.Float64:
		return strconv.FormatFloat(a.Value(i), 'f', -1, 64)
	case *array.Boolean:
		return strconv.FormatBool(a.Value(i))
	case *array.Date32:
		return `"` + a.Value(i).FormattedString() + `"`
	}
	return fmt.Sprintf("?%T", col)
}

// TestParquetRoundTrip reads every Parquet download back with pqarrow and
// compares it, cell by cell, with the JSON download of the same rows.
func TestParquetRoundTrip(t *testing.T) {
	h := newTestHandler(bigSnapshot(40))
	for _, tab := range Tables() {
		if !tab.HasFormat(FormatParquet) {
			continue
		}
		for _, f := range []Filter{{}, {Regione: "lombardia"}, {Provincia: "bg"}} {
			name := Path(tab.Name, FormatParquet, f)
			t.Run(name, func(t *testing.T) {
				pq := mustGet(t, h, name)
				var doc struct {
					Rows []map[string]json.RawMessage `json:"rows"`
				}
				if err := json.Unmarshal(mustGet(t, h, Path(tab.Name, FormatJSON, f)), &doc); err != nil {
					t.Fatal(err)
				}

				rdr, err := file.NewParquetReader(bytes.NewReader(pq))
				if err != nil {
					t.Fatalf("not a Parquet file: %v", err)
				}
				defer rdr.Close()
				kv := rdr.MetaData().KeyValueMetadata()
				if v := kv.FindValue("licence"); v == nil || *v != LicenceURL {
					t.Errorf("licence metadata %v", v)
				}
				if v := kv.FindValue("table"); v == nil || *v != tab.Name {
					t.Errorf("table metadata %v", v)
				}
				fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
				if err != nil {
					t.Fatal(err)
				}
				tbl, err := fr.ReadTable(t.Context())
				if err != nil {
					t.Fatalf("read back: %v", err)
				}
				defer tbl.Release()

				if int(tbl.NumRows()) != len(doc.Rows) || int(tbl.NumCols()) != len(tab.Columns) {
					t.Fatalf("%d rows x %d columns, JSON has %d rows, the table %d columns", tbl.NumRows(), tbl.NumCols(), len(doc.Rows), len(tab.Columns))
				}
				if len(doc.Rows) == 0 {
					t.Fatal("no rows to compare")
				}
				for ci, c := range tab.Columns {
					field := tbl.Schema().Field(ci)
					want, _ := arrowType(c.Type)
					if field.Name != c.Name || !arrow.TypeEqual(field.Type, want) {
						t.Errorf("column %d: %s %s, want %s %s", ci, field.Name, field.Type, c.Name, want)
					}
					if d, ok := field.Metadata.GetValue("description"); !ok || d != c.Description {
						t.Errorf("column %s: description %q", c.Name, d)
					}
					row := 0
					for _, chunk := range tbl.Column(ci).Data().Chunks() {
						for i := 0; i < chunk.Len(); i++ {
							if got, want := cellText(chunk, i), string(doc.Rows[row][c.Name]); got != want {
								t.Errorf("row %d %s: Parquet %s, JSON %s", row, c.Name, got, want)
							}
							row++
						}
					}
				}
			})
		}
	}
}
