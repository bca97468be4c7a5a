package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/ipc"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"

	"github.com/polis-platform/polis/credential"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/storage"
)

const analystToken = "an-secret-0123456789"

func init() {
	// An Arrow stream is binary: the contract checks its status and
	// headers; the test reads it back with arrow-go.
	openapi3filter.RegisterBodyDecoder(mediaArrow,
		func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
			b, err := io.ReadAll(r)
			return string(b), err
		})
}

func TestSQLFormat(t *testing.T) {
	for accept, want := range map[string]string{
		"":                              mediaJSON,
		"*/*":                           mediaJSON,
		"text/csv":                      mediaCSV,
		"text/csv;q=0.5, " + mediaArrow: mediaArrow,
		mediaArrow + ";q=0, text/csv":   mediaCSV,
		"text/html":                     "",
	} {
		if got := sqlFormat(accept); got != want {
			t.Errorf("sqlFormat(%q) = %q, want %q", accept, got, want)
		}
	}
}

func TestCheckReadOnly(t *testing.T) {
	for q, ok := range map[string]bool{
		"SELECT 1":                             true,
		"  -- why\n/* c */ select 1;":          true,
		"WITH 1 AS x SELECT x":                 true,
		"SHOW TABLES FROM polis":               true,
		"DESCRIBE TABLE polis.telemetry":       true,
		"EXPLAIN SELECT 1":                     true,
		"(SELECT 1)":                           true,
		"SELECT ';' AS s":                      true,
		"INSERT INTO t VALUES (1)":             false,
		"DROP TABLE polis.telemetry":           false,
		"SELECT 1; DROP TABLE polis.telemetry": false,
		"ALTER TABLE t DELETE WHERE 1":         false,
		"SET readonly = 0":                     false,
		"":                                     false,
	} {
		if err := storage.CheckReadOnly(q); (err == nil) != ok {
			t.Errorf("CheckReadOnly(%q) = %v, want allowed %v", q, err, ok)
		}
	}
}

// sqlEnv is the API with POST /api/v1/sql on a private ClickHouse whose
// table m holds 20 rows of many types.
func sqlEnv(t *testing.T) (*env, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs ClickHouse")
	}
	srv := chtest.Private(t)
	addr := srv.NativeAddr()
	conn := chtest.Conn(t, addr)
	db := chtest.Database(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "CREATE TABLE "+db+".m (site String, n Int32, big UInt64, v Float64, at DateTime('UTC'), d Date, opt Nullable(Int32)) ENGINE = MergeTree ORDER BY (site, n)"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".m (site, n, big, v, at, d, opt)")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		var opt *int32
		if i%2 == 0 {
			v := int32(i * 10)
			opt = &v
		}
		if err := b.Append("PO-001272-1", int32(i), uint64(1)<<40+uint64(i), float64(i)+0.5,
			testNow.Add(time.Duration(i)*time.Minute), testNow, opt); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(o *V1Options) {
		o.SQL = &storage.SQLExecutor{Conn: conn, Limits: storage.SQLLimits{MaxResultRows: 100, MaxExecutionTime: 10 * time.Second}}
		o.Tokens = append(o.Tokens, Token{Name: "analyst", Role: RoleAnalyst, Hash: credential.Hash(analystToken)})
	})
	return e, db
}

func sqlBody(q string) string {
	b, _ := json.Marshal(sqlRequest{Query: q})
	return string(b)
}

func TestSQL(t *testing.T) {
	e, db := sqlEnv(t)
	query := sqlBody("SELECT site, n, big, v, at, d, opt FROM " + db + ".m ORDER BY n")

	t.Run("json", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/v1/sql", query, append(bearer(analystToken), "Accept", mediaJSON)...)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, b)
		}
		var res struct {
			Columns []storage.ResultColumn `json:"columns"`
			Rows    [][]any                `json:"rows"`
			Error   *Error                 `json:"error"`
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		if err := dec.Decode(&res); err != nil {
			t.Fatalf("%v: %s", err, b)
		}
		if res.Error != nil || len(res.Rows) != 20 || len(res.Columns) != 7 {
			t.Fatalf("got %d rows, %d columns, error %v", len(res.Rows), len(res.Columns), res.Error)
		}
		if c := res.Columns[4]; c.Name != "at" || c.Type != "DateTime('UTC')" {
			t.Fatalf("column 4 is %+v", c)
		}
		r := res.Rows[3]
		want := []string{"PO-001272-1", "3", "1099511627779", "3.5", testNow.Add(3 * time.Minute).Format(time.RFC3339), "2026-03-10", "<nil>"}
		for i, w := range want {
			if got := jsonString(r[i]); got != w {
				t.Errorf("row 3 column %s = %s, want %s", res.Columns[i].Name, got, w)
			}
		}
		if got := jsonString(res.Rows[2][6]); got != "20" {
			t.Errorf("row 2 opt = %s, want 20", got)
		}
		if resp.Trailer.Get(sqlErrorTrailer) != "" {
			t.Errorf("error trailer on a whole result: %s", resp.Trailer.Get(sqlErrorTrailer))
		}
	})

	t.Run("csv", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/v1/sql", query, append(bearer(analystToken), "Accept", mediaCSV)...)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != mediaCSV {
			t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 21 || strings.Join(recs[0], ",") != "site,n,big,v,at,d,opt" {
			t.Fatalf("got %d records, header %v", len(recs), recs[0])
		}
		if got := strings.Join(recs[4], ","); got != "PO-001272-1,3,1099511627779,3.5,2026-03-10T09:03:00Z,2026-03-10," {
			t.Fatalf("row 3 is %s", got)
		}
	})

	t.Run("arrow", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/v1/sql", query, append(bearer(analystToken), "Accept", mediaArrow)...)
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != mediaArrow {
			t.Fatalf("status %d, %s: %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
		}
		rd, err := ipc.NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Release()
		wantTypes := []arrow.DataType{arrow.BinaryTypes.String, arrow.PrimitiveTypes.Int32, arrow.PrimitiveTypes.Uint64,
			arrow.PrimitiveTypes.Float64, &arrow.TimestampType{Unit: arrow.Second, TimeZone: "UTC"}, arrow.FixedWidthTypes.Date32,
			arrow.PrimitiveTypes.Int32}
		for i, f := range rd.Schema().Fields() {
			if !arrow.TypeEqual(f.Type, wantTypes[i]) {
				t.Errorf("field %s is %s, want %s", f.Name, f.Type, wantTypes[i])
			}
		}
		if !rd.Schema().Field(6).Nullable {
			t.Error("opt (Nullable(Int32)) is not nullable")
		}
		n := 0
		for rd.Next() {
			rec := rd.RecordBatch()
			for i := 0; i < int(rec.NumRows()); i++ {
				row := n + i
				if got := rec.Column(1).(*array.Int32).Value(i); got != int32(row) {
					t.Fatalf("row %d: n = %d", row, got)
				}
				if got := rec.Column(2).(*array.Uint64).Value(i); got != 1<<40+uint64(row) {
					t.Fatalf("row %d: big = %d", row, got)
				}
				if got := rec.Column(3).(*array.Float64).Value(i); got != float64(row)+0.5 {
					t.Fatalf("row %d: v = %v", row, got)
				}
				at := rec.Column(4).(*array.Timestamp).Value(i).ToTime(arrow.Second)
				if !at.Equal(testNow.Add(time.Duration(row) * time.Minute)) {
					t.Fatalf("row %d: at = %v", row, at)
				}
				if got := rec.Column(5).(*array.Date32).Value(i).ToTime(); !got.Equal(time.Date(2026, 3, 10, 0, 0, 0, 0, time.UTC)) {
					t.Fatalf("row %d: d = %v", row, got)
				}
				opt := rec.Column(6).(*array.Int32)
				if opt.IsNull(i) != (row%2 == 1) || (row%2 == 0 && opt.Value(i) != int32(row*10)) {
					t.Fatalf("row %d: opt null %v value %d", row, opt.IsNull(i), opt.Value(i))
				}
			}
			n += int(rec.NumRows())
		}
		if err := rd.Err(); err != nil {
			t.Fatal(err)
		}
		if n != 20 {
			t.Fatalf("read %d rows, want 20", n)
		}
	})

	t.Run("roles", func(t *testing.T) {
		q := sqlBody("SELECT 1")
		if resp, b := e.do(t, "POST", "/api/v1/sql", q, bearer(operatorToken)...); resp.StatusCode != http.StatusOK {
			t.Fatalf("operator: %d %s", resp.StatusCode, b)
		}
		resp, b := e.do(t, "POST", "/api/v1/sql", q, bearer(managerToken)...)
		if resp.StatusCode != http.StatusForbidden || decodeError(t, b).Code != CodeForbidden {
			t.Fatalf("facility manager: %d %s", resp.StatusCode, b)
		}
		if resp, b := e.do(t, "POST", "/api/v1/sql", q); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("no token: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("refused", func(t *testing.T) {
		for _, q := range []string{"INSERT INTO " + db + ".m (site, n) VALUES ('x', 1)", "DROP TABLE " + db + ".m",
			"SELECT 1; DROP TABLE " + db + ".m"} {
			resp, b := e.do(t, "POST", "/api/v1/sql", sqlBody(q), bearer(analystToken)...)
			if resp.StatusCode != http.StatusBadRequest || decodeError(t, b).Code != CodeSQLRefused {
				t.Fatalf("%s: %d %s", q, resp.StatusCode, b)
			}
		}
		// The second guard: the query runs with readonly=1.
		resp, b := e.do(t, "POST", "/api/v1/sql", sqlBody("SELECT value FROM system.settings WHERE name = 'readonly'"),
			append(bearer(analystToken), "Accept", mediaCSV)...)
		if resp.StatusCode != http.StatusOK || string(b) != "value\n1\n" {
			t.Fatalf("readonly setting: %d %q", resp.StatusCode, b)
		}
	})

	t.Run("limits", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/v1/sql", sqlBody("SELECT number FROM system.numbers LIMIT 1000"),
			append(bearer(analystToken), "Accept", mediaArrow)...)
		er := decodeError(t, b)
		if resp.StatusCode != http.StatusUnprocessableEntity || er.Code != CodeSQLLimit || !strings.Contains(er.Message, "ClickHouse error") {
			t.Fatalf("over the row limit: %d %s", resp.StatusCode, b)
		}
	})

	t.Run("bad", func(t *testing.T) {
		resp, b := e.do(t, "POST", "/api/v1/sql", sqlBody("SELECT nope FROM "+db+".m"), bearer(analystToken)...)
		er := decodeError(t, b)
		if resp.StatusCode != http.StatusBadRequest || er.Code != CodeBadSQL || !strings.Contains(er.Message, "nope") {
			t.Fatalf("bad SQL: %d %s", resp.StatusCode, b)
		}
		resp, b = e.do(t, "POST", "/api/v1/sql", sqlBody("SELECT 1"), append(bearer(analystToken), "Accept", "text/html")...)
		if resp.StatusCode != http.StatusNotAcceptable || decodeError(t, b).Code != CodeNotAcceptable {
			t.Fatalf("Accept text/html: %d %s", resp.StatusCode, b)
		}
	})
}

func jsonString(v any) string {
	if v == nil {
		return "<nil>"
	}
	switch x := v.(type) {
	case string:
		return x
	case json.Number:
		return x.String()
	}
	b, _ := json.Marshal(v)
	return string(b)
}
