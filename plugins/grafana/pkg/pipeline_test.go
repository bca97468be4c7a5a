package polisds_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/polis-platform/polis/app"
	"github.com/polis-platform/polis/internal/chserver/chtest"
	"github.com/polis-platform/polis/internal/testutil"
	polisds "github.com/polis-platform/polis/plugins/grafana/pkg"
	"github.com/polis-platform/polis/twin/registry"
)

// The real pipeline into a panel: a paho device publishes through the
// platform's broker, Kafka and the storage writer; the plugin's gRPC
// server reads what ClickHouse holds and draws the series.
func TestPipelineToPanel(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the platform")
	}
	dir := t.TempDir()
	reg, creds, err := registry.Generate(registry.GenerateOptions{Sites: 3, Coworking: 1, Seed: 7})
	if err != nil {
		t.Fatal(err)
	}
	cfg := app.Defaults()
	cfg.DataDir, cfg.RegistryPath = dir, filepath.Join(dir, "registry.json")
	if err := reg.Save(cfg.RegistryPath); err != nil {
		t.Fatal(err)
	}
	addr := chtest.Shared(t)
	cfg.ClickHouseAddr, cfg.Database = addr, chtest.Database(t, addr)
	cfg.MQTTAddr, cfg.HTTPAddr, cfg.KafkaAddr = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1:0"
	cfg.WriterMaxWait, cfg.WriterRollupEvery = 100*time.Millisecond, 200*time.Millisecond
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p, err := app.Start(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := p.Shutdown(context.Background()); err != nil {
			t.Error(err)
		}
	}()

	c := creds[0]
	cl := paho.NewClient(paho.NewClientOptions().AddBroker("tcp://" + p.Broker.Addr()).SetClientID(c.Username).
		SetUsername(c.Username).SetPassword(c.Password).SetAutoReconnect(false))
	if tok := cl.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer cl.Disconnect(50)
	t0 := time.Now().UTC().Add(-5 * time.Minute).Truncate(time.Minute)
	var want []float64
	for i := range 6 {
		v := 20 + float64(i)/2
		want = append(want, v)
		pl := fmt.Sprintf(`{"ts":%d,"m":{"temp_c":%v}}`, t0.Add(time.Duration(i)*10*time.Second).UnixMilli(), v)
		if tok := cl.Publish(fmt.Sprintf("polis/v1/%s/%s/telemetry", c.Site, c.Asset), 1, false, pl); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}

	fx := &fixture{updated: time.Now(), db: cfg.Database, addr: addr, client: startPlugin(t)}
	model := polisds.TimeSeriesQuery{QueryType: "timeseries", Sites: []string{c.Site}, Assets: []string{c.Asset},
		Metrics: []string{"temp_c"}, Aggregation: "avg"}
	var got []point
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		r := fx.query(t, model, t0.Add(-time.Minute), t0.Add(2*time.Minute), time.Second)
		if r.Error != nil || len(r.Frames) != 1 || r.Frames[0].Rows() != len(want) {
			return false // the writer has not stored them all yet
		}
		got = series(t, r.Frames[0], c.Site, c.Asset, "temp_c", "celsius")
		return len(got) == len(want)
	}, "the published points drawn from raw data; got %v", testutil.Lazy(func() any { return got }))
	if !equal(values(got), want) || resolution(t, fx.query(t, model, t0.Add(-time.Minute), t0.Add(2*time.Minute), time.Second).Frames[0]) != "raw" {
		t.Fatalf("raw series %v; want %v", values(got), want)
	}
	// Over a day with a minute interval the 1-minute rollup draws one
	// bucket holding the mean of what was published.
	testutil.Eventually(t, 30*time.Second, 100*time.Millisecond, func() bool {
		r := fx.query(t, model, t0.Add(-12*time.Hour), t0.Add(12*time.Hour), time.Minute)
		if r.Error != nil || len(r.Frames) != 1 || r.Frames[0].Rows() != 1 || resolution(t, r.Frames[0]) != "1m" {
			return false
		}
		ps := series(t, r.Frames[0], c.Site, c.Asset, "temp_c", "celsius")
		return len(ps) == 1 && ps[0].v == 21.25
	}, "the 1-minute rollup of the published points")
}
