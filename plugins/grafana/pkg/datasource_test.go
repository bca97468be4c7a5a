package polisds_test

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/data"
	"github.com/grafana/grafana-plugin-sdk-go/experimental/datasourcetest"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/polis-platform/polis/internal/chserver/chtest"
	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
	"github.com/polis-platform/polis/storage/schema"
)

func TestMain(m *testing.M) { chtest.Main(m) }

// fixture is one test's database with known rows, and the plugin's real
// gRPC server (the SDK's datasourcetest harness) in front of it.
type fixture struct {
	updated time.Time // of the datasource settings: a change makes a new instance
	t0      time.Time // an hour boundary three hours ago
	db      string
	addr    string
	flavor  schema.Flavor
	apiURL  string // of the fixture API (startAPI), "" without
	secure  map[string]string
	client  *datasourcetest.TestPluginClient
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	addr := chtest.Shared(t)
	db := chtest.Database(t, addr)
	conn := chtest.Conn(t, addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := schema.Apply(ctx, conn, db); err != nil {
		t.Fatal(err)
	}
	f, err := schema.Detect(ctx, conn)
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{updated: time.Now(), t0: time.Now().UTC().Truncate(time.Hour).Add(-3 * time.Hour), db: db, addr: addr, flavor: f}
	fx.insert(t, ctx, conn)
	fx.client = startPlugin(t)
	return fx
}

// startPlugin runs the datasource behind the SDK's test gRPC server on a
// free loopback port.
func startPlugin(t testing.TB) *datasourcetest.TestPluginClient {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	prometheus.DefaultRegisterer = prometheus.NewRegistry() // the SDK registers its metrics per server
	tp, err := datasourcetest.Manage(polisds.NewDatasource, datasourcetest.ManageOpts{Address: addr})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := tp.Shutdown(); err != nil {
			t.Log(err)
		}
	})
	return tp.Client
}

func chtestConn(t *testing.T, addr string) driver.Conn { return chtest.Conn(t, addr) }

func exec(t testing.TB, ctx context.Context, conn driver.Conn, sql string, rows ...[]any) {
	t.Helper()
	b, err := conn.PrepareBatch(ctx, sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	for _, r := range rows {
		if err := b.Append(r...); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (fx *fixture) insert(t *testing.T, ctx context.Context, conn driver.Conn) {
	t0 := fx.t0
	// Raw: 12 points 10s apart per series.
	var raw [][]any
	for i := range 12 {
		ts := t0.Add(time.Duration(i) * 10 * time.Second)
		raw = append(raw,
			[]any{"PO-1", "env-1", "temp_c", ts, 20 + float64(i), uint64(i), uint16(0)},
			[]any{"PO-1", "meter-1", "energy_kwh", ts, 100 + float64(i), uint64(i), uint16(1)},
			[]any{"PO-2", "env-1", "temp_c", ts, 30 + float64(i), uint64(i), uint16(2)})
	}
	exec(t, ctx, conn, "INSERT INTO "+fx.db+".telemetry (site, asset, metric, ts, value, koffset, kidx)", raw...)

	lastTS := func(ts time.Time) any {
		if fx.flavor == schema.Modern {
			return ts
		}
		return uint64(ts.UnixMilli())
	}
	cols := " (site, asset, metric, bucket, min, max, sum, count, last, last_ts, upto)"
	// 1m: values unlike the raw ones, so a test knows which table it read;
	// a stale version of the first bucket (lower upto) that FINAL hides.
	exec(t, ctx, conn, "INSERT INTO "+fx.db+".telemetry_1m"+cols,
		[]any{"PO-1", "env-1", "temp_c", t0, 1.0, 9.0, 999.0, uint64(1), 9.0, lastTS(t0), uint64(1)},
		[]any{"PO-1", "env-1", "temp_c", t0, 1.0, 9.0, 50.0, uint64(10), 7.0, lastTS(t0.Add(59 * time.Second)), uint64(2)},
		[]any{"PO-1", "env-1", "temp_c", t0.Add(time.Minute), 2.0, 8.0, 30.0, uint64(5), 3.0, lastTS(t0.Add(61 * time.Second)), uint64(3)})
	exec(t, ctx, conn, "INSERT INTO "+fx.db+".telemetry_1h"+cols,
		[]any{"PO-1", "env-1", "temp_c", t0, 0.0, 100.0, 500.0, uint64(50), 42.0, lastTS(t0.Add(time.Minute)), uint64(2)},
		[]any{"PO-1", "meter-1", "energy_kwh", t0, 100.0, 111.0, 1266.0, uint64(12), 111.0, lastTS(t0.Add(110 * time.Second)), uint64(2)},
		[]any{"PO-2", "env-1", "temp_c", t0, 30.0, 41.0, 426.0, uint64(12), 41.0, lastTS(t0.Add(110 * time.Second)), uint64(2)})

	epoch := time.Unix(0, 0).UTC()
	acols := " (ts, kind, fingerprint, rule_id, site, asset, state, severity, summary, value, fired_at, resolved_at, occurrence)"
	exec(t, ctx, conn, "INSERT INTO "+fx.db+".alerts"+acols,
		[]any{t0.Add(10 * time.Second), "fired", "fp1", "hot", "PO-1", "env-1", "firing", "critical", "too hot", 31.0, t0.Add(10 * time.Second), epoch, uint32(1)},
		[]any{t0.Add(40 * time.Second), "acked", "fp1", "hot", "PO-1", "env-1", "firing", "critical", "too hot", 31.0, t0.Add(10 * time.Second), epoch, uint32(1)},
		[]any{t0.Add(70 * time.Second), "resolved", "fp1", "hot", "PO-1", "env-1", "resolved", "critical", "too hot", 25.0, t0.Add(10 * time.Second), t0.Add(70 * time.Second), uint32(1)},
		[]any{t0.Add(30 * time.Second), "fired", "fp2", "co2", "PO-2", "env-1", "firing", "warning", "CO2 high", 1500.0, t0.Add(30 * time.Second), epoch, uint32(1)},
		[]any{t0.Add(20 * time.Second), "resolved", "fp3", "door", "PO-1", "door-1", "resolved", "info", "", 0.0, t0.Add(-40 * 24 * time.Hour), t0.Add(20 * time.Second), uint32(4)})
}

func (fx *fixture) settings(t *testing.T, jsonData map[string]any, secure map[string]string) *backend.DataSourceInstanceSettings {
	t.Helper()
	if jsonData == nil {
		jsonData = map[string]any{"clickhouseAddress": fx.addr, "database": fx.db}
		if fx.apiURL != "" {
			jsonData["apiUrl"] = fx.apiURL
		}
	}
	b, err := json.Marshal(jsonData)
	if err != nil {
		t.Fatal(err)
	}
	if secure == nil {
		secure = fx.secure
	}
	return &backend.DataSourceInstanceSettings{ID: 1, UID: "polis-" + fx.db, Name: "Polis", JSONData: b,
		DecryptedSecureJSONData: secure, Updated: fx.updated}
}

// query runs one query (model as JSON) and returns its response.
func (fx *fixture) query(t *testing.T, model any, from, to time.Time, interval time.Duration) backend.DataResponse {
	t.Helper()
	b, err := json.Marshal(model)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	resp, err := fx.client.QueryData(ctx, &backend.QueryDataRequest{
		PluginContext: backend.PluginContext{PluginID: polisds.PluginID, DataSourceInstanceSettings: fx.settings(t, nil, nil)},
		Queries: []backend.DataQuery{{RefID: "A", JSON: b, Interval: interval, MaxDataPoints: 1000,
			TimeRange: backend.TimeRange{From: from, To: to}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := resp.Responses["A"]
	if !ok {
		t.Fatalf("no response for A: %+v", resp.Responses)
	}
	return r
}

func mustOK(t *testing.T, r backend.DataResponse) data.Frames {
	t.Helper()
	if r.Error != nil {
		t.Fatalf("query failed: %v", r.Error)
	}
	return r.Frames
}

type point struct {
	t time.Time
	v float64
}

// series checks a timeseries frame's shape and returns its points.
func series(t *testing.T, fr *data.Frame, site, asset, metric, unit string) []point {
	t.Helper()
	if fr.Name != site+"/"+asset+"/"+metric {
		t.Errorf("frame name %q, want %q", fr.Name, site+"/"+asset+"/"+metric)
	}
	if len(fr.Fields) != 2 || fr.Fields[0].Type() != data.FieldTypeTime || fr.Fields[1].Type() != data.FieldTypeFloat64 {
		t.Fatalf("frame %s fields: %v", fr.Name, fr.Fields)
	}
	v := fr.Fields[1]
	want := data.Labels{"site": site, "asset": asset, "metric": metric}
	if v.Labels.String() != want.String() {
		t.Errorf("labels %v, want %v", v.Labels, want)
	}
	if got := ""; v.Config != nil {
		got = v.Config.Unit
		if got != unit {
			t.Errorf("%s unit %q, want %q", metric, got, unit)
		}
	} else if unit != "" {
		t.Errorf("%s: no field config, want unit %q", metric, unit)
	}
	var out []point
	for i := range fr.Rows() {
		out = append(out, point{fr.Fields[0].At(i).(time.Time), v.At(i).(float64)})
	}
	return out
}

func resolution(t *testing.T, fr *data.Frame) string {
	t.Helper()
	if fr.Meta == nil {
		t.Fatal("no frame meta")
	}
	b, _ := json.Marshal(fr.Meta.Custom)
	var m polisds.TimeSeriesMeta
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m.Resolution
}

func values(ps []point) []float64 {
	out := make([]float64, len(ps))
	for i, p := range ps {
		out[i] = p.v
	}
	return out
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > 1e-9 {
			return false
		}
	}
	return true
}

func TestTimeSeries(t *testing.T) {
	fx := newFixture(t)
	t0 := fx.t0
	ts := func(sites, assets, metrics []string, agg string) polisds.TimeSeriesQuery {
		return polisds.TimeSeriesQuery{QueryType: "timeseries", Sites: sites, Assets: assets, Metrics: metrics, Aggregation: agg}
	}

	t.Run("raw, one frame per series", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, ts(nil, nil, nil, "avg"), t0, t0.Add(2*time.Minute), time.Second))
		if len(frs) != 3 {
			t.Fatalf("%d frames, want 3", len(frs))
		}
		if r := resolution(t, frs[0]); r != "raw" {
			t.Errorf("resolution %q, want raw", r)
		}
		if frs[0].Meta.Type != data.FrameTypeTimeSeriesMulti {
			t.Errorf("frame type %q", frs[0].Meta.Type)
		}
		temp := series(t, frs[0], "PO-1", "env-1", "temp_c", "celsius")
		energy := series(t, frs[1], "PO-1", "meter-1", "energy_kwh", "kwatth")
		series(t, frs[2], "PO-2", "env-1", "temp_c", "celsius")
		if len(temp) != 12 || temp[0].v != 20 || temp[11].v != 31 || !temp[3].t.Equal(t0.Add(30*time.Second)) {
			t.Errorf("temp: %v", temp)
		}
		if len(energy) != 12 || energy[0].v != 100 {
			t.Errorf("energy: %v", energy)
		}
	})

	t.Run("raw, aggregated into the interval", func(t *testing.T) {
		for agg, want := range map[string][]float64{
			"avg": {21, 24, 27, 30}, "min": {20, 23, 26, 29}, "max": {22, 25, 28, 31},
			"last": {22, 25, 28, 31}, "count": {3, 3, 3, 3}, "sum": {63, 72, 81, 90},
		} {
			frs := mustOK(t, fx.query(t, ts([]string{"PO-1"}, []string{"env-1"}, []string{"temp_c"}, agg), t0, t0.Add(2*time.Minute), 30*time.Second))
			if len(frs) != 1 || resolution(t, frs[0]) != "raw" {
				t.Fatalf("%s: %d frames, %s", agg, len(frs), resolution(t, frs[0]))
			}
			if got := values(series(t, frs[0], "PO-1", "env-1", "temp_c", "celsius")); !equal(got, want) {
				t.Errorf("%s: %v, want %v", agg, got, want)
			}
		}
	})

	t.Run("several values per list", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, ts([]string{"PO-1", "PO-2"}, []string{"env-1"}, []string{"temp_c", "humidity_pct"}, "max"),
			t0, t0.Add(2*time.Minute), time.Second))
		if len(frs) != 2 || frs[0].Name != "PO-1/env-1/temp_c" || frs[1].Name != "PO-2/env-1/temp_c" {
			t.Fatalf("frames %v", frs)
		}
	})

	t.Run("interval of a minute reads the 1m rollup with FINAL", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, ts([]string{"PO-1"}, []string{"env-1"}, []string{"temp_c"}, "avg"), t0, t0.Add(2*time.Minute), time.Minute))
		if len(frs) != 1 || resolution(t, frs[0]) != "1m" || !strings.Contains(frs[0].Meta.ExecutedQueryString, "telemetry_1m FINAL") {
			t.Fatalf("frames %v", frs)
		}
		if got := values(series(t, frs[0], "PO-1", "env-1", "temp_c", "celsius")); !equal(got, []float64{5, 6}) {
			t.Errorf("avg %v, want [5 6]", got)
		}
	})

	t.Run("1m rollup merged into a 2m interval, exactly", func(t *testing.T) {
		for agg, want := range map[string]float64{"avg": 80.0 / 15, "min": 1, "max": 9, "last": 3, "count": 15, "sum": 80} {
			frs := mustOK(t, fx.query(t, ts([]string{"PO-1"}, []string{"env-1"}, []string{"temp_c"}, agg), t0, t0.Add(2*time.Minute), 2*time.Minute))
			ps := series(t, frs[0], "PO-1", "env-1", "temp_c", "celsius")
			if len(ps) != 1 || !ps[0].t.Equal(t0) || math.Abs(ps[0].v-want) > 1e-9 {
				t.Errorf("%s: %v, want %v at %v", agg, ps, want, t0)
			}
		}
	})

	t.Run("a span over 7 days reads the 1h rollup", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, ts(nil, nil, []string{"temp_c"}, "avg"), t0.Add(-8*24*time.Hour), t0.Add(time.Hour), time.Minute))
		if len(frs) != 2 || resolution(t, frs[0]) != "1h" {
			t.Fatalf("%d frames, %s", len(frs), resolution(t, frs[0]))
		}
		if got := values(series(t, frs[0], "PO-1", "env-1", "temp_c", "celsius")); !equal(got, []float64{10}) {
			t.Errorf("avg %v, want [10]", got)
		}
		if got := values(series(t, frs[1], "PO-2", "env-1", "temp_c", "celsius")); !equal(got, []float64{35.5}) {
			t.Errorf("avg %v, want [35.5]", got)
		}
	})

	t.Run("bad queries", func(t *testing.T) {
		r := fx.query(t, ts(nil, nil, nil, "median"), t0, t0.Add(time.Minute), time.Second)
		if r.Error == nil || !strings.Contains(r.Error.Error(), "median") || r.Status != backend.StatusBadRequest {
			t.Errorf("median: %v %v", r.Status, r.Error)
		}
		r = fx.query(t, map[string]string{"queryType": "nope"}, t0, t0.Add(time.Minute), time.Second)
		if r.Error == nil || !strings.Contains(r.Error.Error(), "nope") {
			t.Errorf("nope: %v", r.Error)
		}
	})
}

func TestAlerts(t *testing.T) {
	fx := newFixture(t)
	t0 := fx.t0
	from, to := t0, t0.Add(time.Hour)

	t.Run("table", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, polisds.AlertsQuery{QueryType: "alerts"}, from, to, time.Second))
		if len(frs) != 1 {
			t.Fatalf("%d frames", len(frs))
		}
		fr := frs[0]
		if fr.Rows() != 5 {
			t.Fatalf("%d rows, want 5", fr.Rows())
		}
		var kinds []string
		kind, _ := fr.FieldByName("kind")
		for i := range fr.Rows() {
			kinds = append(kinds, kind.At(i).(string))
		}
		if strings.Join(kinds, ",") != "fired,resolved,fired,acked,resolved" {
			t.Errorf("kinds %v", kinds)
		}
		tf, _ := fr.FieldByName("time")
		if tf.Type() != data.FieldTypeTime || !tf.At(0).(time.Time).Equal(t0.Add(10*time.Second)) {
			t.Errorf("time %v", tf.At(0))
		}
		resolved, _ := fr.FieldByName("resolved")
		if resolved.Type() != data.FieldTypeNullableTime || resolved.At(0).(*time.Time) != nil {
			t.Errorf("resolved of a fired row: %v", resolved.At(0))
		}
		frs = mustOK(t, fx.query(t, polisds.AlertsQuery{QueryType: "alerts", Sites: []string{"PO-2"}}, from, to, time.Second))
		if frs[0].Rows() != 1 {
			t.Errorf("PO-2: %d rows", frs[0].Rows())
		}
	})

	t.Run("annotations", func(t *testing.T) {
		frs := mustOK(t, fx.query(t, polisds.AlertsQuery{QueryType: "alerts", Format: "annotations"}, from, to, time.Second))
		fr := frs[0]
		for i, name := range []string{"time", "timeEnd", "text", "tags"} {
			if fr.Fields[i].Name != name {
				t.Fatalf("field %d %q, want %q", i, fr.Fields[i].Name, name)
			}
		}
		type ann struct {
			start, end time.Time
			text, tags string
		}
		var got []ann
		for i := range fr.Rows() {
			got = append(got, ann{fr.Fields[0].At(i).(time.Time), fr.Fields[1].At(i).(time.Time), fr.Fields[2].At(i).(string), fr.Fields[3].At(i).(string)})
		}
		now := time.Now()
		want := []ann{
			{t0.Add(-40 * 24 * time.Hour), t0.Add(20 * time.Second), "door (PO-1/door-1)", "door,info,PO-1,door-1,resolved"},
			{t0.Add(10 * time.Second), t0.Add(70 * time.Second), "too hot (PO-1/env-1)", "hot,critical,PO-1,env-1,resolved"},
			{t0.Add(30 * time.Second), to, "CO2 high (PO-2/env-1)", "co2,warning,PO-2,env-1,firing"},
		}
		if len(got) != len(want) {
			t.Fatalf("annotations %+v", got)
		}
		for i := range want {
			if !got[i].start.Equal(want[i].start) || !got[i].end.Equal(want[i].end) || got[i].text != want[i].text || got[i].tags != want[i].tags {
				t.Errorf("annotation %d: %+v, want %+v", i, got[i], want[i])
			}
		}
		// A range reaching into the future ends a firing region now.
		frs = mustOK(t, fx.query(t, polisds.AlertsQuery{QueryType: "alerts", Format: "annotations", Sites: []string{"PO-2"}}, from, now.Add(time.Hour), time.Second))
		if end := frs[0].Fields[1].At(0).(time.Time); end.Before(now.Add(-time.Minute)) || end.After(time.Now()) {
			t.Errorf("firing region ends %v, want about now %v", end, now)
		}
	})
}

func TestSQL(t *testing.T) {
	fx := newFixture(t)
	t0 := fx.t0
	sqlq := func(sql string) polisds.SQLQuery { return polisds.SQLQuery{QueryType: "sql", RawSQL: sql} }

	frs := mustOK(t, fx.query(t, sqlq(`-- per metric
SELECT metric, count() AS n, max(value) AS top FROM `+fx.db+`.telemetry WHERE $__timeFilter(ts) GROUP BY metric ORDER BY metric;`),
		t0, t0.Add(30*time.Second), time.Second))
	fr := frs[0]
	if len(fr.Fields) != 3 || fr.Fields[0].Name != "metric" || fr.Fields[1].Name != "n" || fr.Fields[1].Type() != data.FieldTypeUint64 ||
		fr.Fields[2].Type() != data.FieldTypeFloat64 || fr.Rows() != 2 {
		t.Fatalf("frame %v", fr)
	}
	if fr.Fields[0].At(0) != "energy_kwh" || fr.Fields[1].At(1) != uint64(6) || fr.Fields[2].At(1) != 32.0 {
		t.Errorf("rows %v %v %v", fr.Fields[0].At(0), fr.Fields[1].At(1), fr.Fields[2].At(1))
	}

	frs = mustOK(t, fx.query(t, sqlq(`SELECT $__timeGroup(ts, $__interval) AS t, avg(value) AS v FROM `+fx.db+`.telemetry
WHERE site = 'PO-1' AND metric = 'temp_c' AND $__timeFilter(ts) GROUP BY t ORDER BY t`), t0, t0.Add(2*time.Minute), 30*time.Second))
	fr = frs[0]
	if fr.Rows() != 4 || fr.Fields[0].Type() != data.FieldTypeTime || !fr.Fields[0].At(1).(time.Time).Equal(t0.Add(30*time.Second)) ||
		fr.Fields[1].At(1) != 24.0 {
		t.Errorf("timeGroup: %d rows, %v %v", fr.Rows(), fr.Fields[0].At(1), fr.Fields[1].At(1))
	}

	// The server runs it read-only.
	frs = mustOK(t, fx.query(t, sqlq(`SELECT value FROM system.settings WHERE name = 'readonly'`), t0, t0.Add(time.Minute), time.Second))
	if v := frs[0].Fields[0].At(0); v != "1" {
		t.Errorf("readonly = %v, want 1", v)
	}

	for _, bad := range []string{
		"INSERT INTO " + fx.db + ".telemetry (site) VALUES ('x')",
		"DROP TABLE " + fx.db + ".telemetry",
		"SELECT 1; DROP TABLE " + fx.db + ".telemetry",
		"/* hi */ ALTER TABLE x DELETE WHERE 1",
		"SELECT $__nope(ts)",
		"SELECT * FROM nosuch.table",
		"SELECT 1 SETTINGS max_execution_time = 0",
	} {
		if r := fx.query(t, sqlq(bad), t0, t0.Add(time.Minute), time.Second); r.Error == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	// Still there.
	frs = mustOK(t, fx.query(t, sqlq("SELECT count() AS n FROM "+fx.db+".telemetry"), t0, t0.Add(time.Minute), time.Second))
	if frs[0].Fields[0].At(0) != uint64(36) {
		t.Errorf("count %v", frs[0].Fields[0].At(0))
	}
}

func TestCheckHealth(t *testing.T) {
	fx := newFixture(t)
	ctx := context.Background()
	check := func(jsonData map[string]any, secure map[string]string) *backend.CheckHealthResult {
		t.Helper()
		r, err := fx.client.CheckHealth(ctx, &backend.CheckHealthRequest{
			PluginContext: backend.PluginContext{PluginID: polisds.PluginID, DataSourceInstanceSettings: fx.settings(t, jsonData, secure)}})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(nil, nil); r.Status != backend.HealthStatusOk || !strings.Contains(r.Message, fx.db) {
		t.Errorf("healthy: %v %q", r.Status, r.Message)
	}
	fx.updated = fx.updated.Add(time.Second)
	if r := check(map[string]any{"clickhouseAddress": fx.addr, "database": "nosuchdb"}, nil); r.Status != backend.HealthStatusError {
		t.Errorf("no database: %v %q", r.Status, r.Message)
	}
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := l.Addr().String()
	l.Close()
	fx.updated = fx.updated.Add(time.Second)
	if r := check(map[string]any{"clickhouseAddress": dead, "database": fx.db}, nil); r.Status != backend.HealthStatusError || !strings.Contains(r.Message, dead) {
		t.Errorf("dead ClickHouse: %v %q", r.Status, r.Message)
	}

	var auth string
	healthy := true
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth = r.Header.Get("Authorization")
		if r.URL.Path != "/healthz" || !healthy {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	defer api.Close()
	withAPI := map[string]any{"clickhouseAddress": fx.addr, "database": fx.db, "apiUrl": api.URL + "/"}
	fx.updated = fx.updated.Add(time.Second)
	if r := check(withAPI, map[string]string{"apiToken": "s3cret"}); r.Status != backend.HealthStatusOk || auth != "Bearer s3cret" {
		t.Errorf("API up: %v %q, auth %q", r.Status, r.Message, auth)
	}
	healthy = false
	fx.updated = fx.updated.Add(time.Second) // new settings, new instance
	if r := check(withAPI, nil); r.Status != backend.HealthStatusError || !strings.Contains(r.Message, "503") {
		t.Errorf("API down: %v %q", r.Status, r.Message)
	}
}

type collect struct{ resp *backend.CallResourceResponse }

func (c *collect) Send(r *backend.CallResourceResponse) error { c.resp = r; return nil }

func TestPickers(t *testing.T) {
	fx := newFixture(t)
	get := func(path, rawQuery string) (int, []string) {
		t.Helper()
		u := path
		if rawQuery != "" {
			u += "?" + rawQuery
		}
		var c collect
		err := fx.client.CallResource(context.Background(), &backend.CallResourceRequest{
			PluginContext: backend.PluginContext{PluginID: polisds.PluginID, DataSourceInstanceSettings: fx.settings(t, nil, nil)},
			Path:          path, Method: http.MethodGet, URL: u,
		}, &c)
		if err != nil {
			t.Fatal(err)
		}
		if c.resp == nil {
			t.Fatal("no response")
		}
		var out []string
		if c.resp.Status == http.StatusOK {
			if err := json.Unmarshal(c.resp.Body, &out); err != nil {
				t.Fatalf("%s: %v: %s", u, err, c.resp.Body)
			}
		}
		return c.resp.Status, out
	}
	for _, c := range []struct {
		path, query string
		want        string
	}{
		{"sites", "", "PO-1,PO-2"},
		{"sites", "prefix=PO-2", "PO-2"},
		{"assets", "site=PO-1", "env-1,meter-1"},
		{"assets", "", "env-1,meter-1"},
		{"metrics", "site=PO-1&asset=meter-1", "energy_kwh"},
		{"metrics", "site=PO-2", "temp_c"},
		{"metrics", "site=nowhere", ""},
	} {
		status, got := get(c.path, c.query)
		if status != http.StatusOK || strings.Join(got, ",") != c.want {
			t.Errorf("%s?%s: %d %v, want %s", c.path, c.query, status, got, c.want)
		}
	}
	if status, _ := get("nothing", ""); status != http.StatusNotFound {
		t.Errorf("unknown resource: %d", status)
	}
}
