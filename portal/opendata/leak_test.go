package opendata

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/apache/arrow-go/v18/parquet/file"
	"github.com/apache/arrow-go/v18/parquet/pqarrow"

	"github.com/polis-platform/polis/portal/progress"
)

// forbiddenNames are words no field of the public types, and no column,
// may be named after.
var forbiddenNames = []string{"secret", "token", "password", "passwd", "hash", "credential", "salt", "apikey", "api_key"}

// forbiddenText is what no download may contain: the words above, and the
// platform's internal addresses (the twin, Kafka, ClickHouse, MQTT).
var forbiddenText = append([]string{
	"127.0.0.1", "localhost", "0.0.0.0", "[::1]", "::1]:",
	":9092", ":9093", ":8123", ":9000", ":1883", ":8883", ":6060",
	"kafka", "clickhouse", "mqtt://", "tcp://", "ssl://", "polis.telemetry",
}, forbiddenNames...)

// TestPublicTypesHaveNoSecretFields walks every type a Snapshot reaches:
// no field may be named like a secret, so none can reach a download.
func TestPublicTypesHaveNoSecretFields(t *testing.T) {
	seen := map[reflect.Type]bool{}
	var walk func(reflect.Type, string)
	walk = func(typ reflect.Type, path string) {
		for typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Array || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || seen[typ] || typ.PkgPath() == "time" {
			return
		}
		seen[typ] = true
		for f := range typ.Fields() {
			if !f.IsExported() {
				continue // not encoded, not read by this package
			}
			name := strings.ToLower(f.Name + " " + f.Tag.Get("json"))
			for _, bad := range forbiddenNames {
				if strings.Contains(name, bad) {
					t.Errorf("%s.%s: a public type has a field named like a secret", path, f.Name)
				}
			}
			walk(f.Type, path+"."+f.Name)
		}
	}
	walk(reflect.TypeFor[progress.Snapshot](), "Snapshot")
	if len(seen) < 10 {
		t.Fatalf("walked only %d types", len(seen))
	}
	for _, tab := range Tables() {
		for _, c := range tab.Columns {
			for _, bad := range forbiddenNames {
				if strings.Contains(strings.ToLower(c.Name), bad) {
					t.Errorf("table %s: column %s", tab.Name, c.Name)
				}
			}
		}
	}
}

// parquetText is every string, column name and metadata of a Parquet file.
func parquetText(t *testing.T, b []byte) string {
	t.Helper()
	rdr, err := file.NewParquetReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer rdr.Close()
	var sb strings.Builder
	kv := rdr.MetaData().KeyValueMetadata()
	for i, k := range kv.Keys() {
		if k != "ARROW:schema" { // base64 of the schema below
			sb.WriteString(k + "=" + kv.Values()[i] + "\n")
		}
	}
	fr, err := pqarrow.NewFileReader(rdr, pqarrow.ArrowReadProperties{}, memory.DefaultAllocator)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := fr.ReadTable(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tbl.Release()
	sb.WriteString(tbl.Schema().String())
	for ci := range int(tbl.NumCols()) {
		for _, chunk := range tbl.Column(ci).Data().Chunks() {
			for i := 0; i < chunk.Len(); i++ {
				sb.WriteString(cellText(chunk, i) + "\n")
			}
		}
	}
	return sb.String()
}

// TestNothingPrivateLeaks reads every download of two snapshots (the
// package's and progress's fixture, built by the Builder's code from a
// registry) with every filter, and the index, catalogue, feed and errors,
// and looks for secrets and internal addresses.
func TestNothingPrivateLeaks(t *testing.T) {
	for name, s := range map[string]*progress.Snapshot{"test": testSnapshot(), "fixture": fixture()} {
		h := newTestHandler(s)
		paths := []string{IndexPath, CatalogPath, FeedPath, "/dati/nope.csv", "/dati/uffici.csv?regione=nope", "/dati/uffici.xlsx"}
		var filters []Filter
		filters = append(filters, Filter{})
		for _, r := range s.Regions {
			filters = append(filters, Filter{Regione: r.Slug})
		}
		for _, p := range s.Provinces {
			filters = append(filters, Filter{Provincia: p.Slug})
		}
		for _, tab := range Tables() {
			for _, f := range tab.Formats {
				for _, flt := range filters {
					if flt.IsZero() || tab.HasFilter(FilterRegione) {
						paths = append(paths, Path(tab.Name, f, flt))
					}
				}
			}
		}
		n := 0
		for _, p := range paths {
			w := get(t, h, "GET", p)
			body := w.Body.Bytes()
			text := string(body)
			if w.Header().Get("Content-Type") == ctypeParquet && w.Code == 200 {
				text = parquetText(t, body)
			}
			text += "\n" + w.Header().Get("Content-Disposition") + "\n" + strings.Join(w.Header().Values("Link"), "\n")
			low := strings.ToLower(text)
			for _, bad := range forbiddenText {
				if i := strings.Index(low, bad); i >= 0 {
					t.Errorf("%s %s contains %q: …%s…", name, p, bad, text[max(0, i-60):min(len(text), i+60)])
				}
			}
			n++
		}
		if n < 100 {
			t.Errorf("%s: only %d outputs read", name, n)
		}
	}
}
