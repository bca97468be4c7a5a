package polisds_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"testing"
	"time"

	"github.com/grafana/grafana-plugin-sdk-go/backend"

	"github.com/polis-platform/polis/internal/chserver"
	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
	"github.com/polis-platform/polis/storage/schema"
)

// The read-only polis_analyst login (readonly=1 in its profile) takes no
// settings at all: sql queries must run without them.
func TestAnalystLogin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse of its own")
	}
	const password = "analyst-test-password"
	sum := sha256.Sum256([]byte(password))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := chserver.Start(ctx, chserver.Options{Dir: t.TempDir(), Analyst: &chserver.Analyst{PasswordSHA256: hex.EncodeToString(sum[:])}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Stop(); err != nil {
			t.Error(err)
		}
	})
	admin := chtestConn(t, s.NativeAddr())
	if _, err := schema.Apply(ctx, admin, schema.DefaultDatabase); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Truncate(time.Hour).Add(-time.Hour)
	exec(t, ctx, admin, "INSERT INTO polis.telemetry (site, asset, metric, ts, value, koffset, kidx)",
		[]any{"PO-1", "env-1", "co2_ppm", t0, 800.0, uint64(1), uint16(0)},
		[]any{"PO-1", "env-1", "co2_ppm", t0.Add(time.Second), 900.0, uint64(2), uint16(0)})

	client := startPlugin(t)
	jd, _ := json.Marshal(polisds.Settings{ClickHouseAddress: s.NativeAddr(), ClickHouseUser: chserver.AnalystUser, Database: "polis"})
	pc := backend.PluginContext{PluginID: polisds.PluginID, DataSourceInstanceSettings: &backend.DataSourceInstanceSettings{
		ID: 2, UID: "analyst", JSONData: jd, DecryptedSecureJSONData: map[string]string{polisds.SecureClickHousePassword: password}}}
	q := func(model any) backend.DataResponse {
		t.Helper()
		b, _ := json.Marshal(model)
		resp, err := client.QueryData(ctx, &backend.QueryDataRequest{PluginContext: pc, Queries: []backend.DataQuery{{
			RefID: "A", JSON: b, Interval: time.Second, TimeRange: backend.TimeRange{From: t0, To: t0.Add(time.Minute)}}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.Responses["A"]
	}
	frs := mustOK(t, q(polisds.SQLQuery{QueryType: "sql", RawSQL: "SELECT max(value) AS top FROM polis.telemetry WHERE $__timeFilter(ts)"}))
	if v := frs[0].Fields[0].At(0); v != 900.0 {
		t.Errorf("max %v", v)
	}
	frs = mustOK(t, q(polisds.TimeSeriesQuery{QueryType: "timeseries", Metrics: []string{"co2_ppm"}}))
	if len(frs) != 1 || frs[0].Rows() != 2 || frs[0].Fields[1].Config.Unit != "ppm" {
		t.Errorf("timeseries as analyst: %v", frs)
	}
	if r := q(polisds.SQLQuery{QueryType: "sql", RawSQL: "SELECT 1 SETTINGS max_execution_time = 0"}); r.Error == nil {
		t.Error("the analyst lifted a limit")
	}
	h, err := client.CheckHealth(ctx, &backend.CheckHealthRequest{PluginContext: pc})
	if err != nil || h.Status != backend.HealthStatusOk {
		t.Errorf("health as analyst: %v %v", h, err)
	}
}
