package polisds

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/grafana/grafana-plugin-sdk-go/backend/instancemgmt"

	"github.com/polis-platform/polis/storage"
	"github.com/polis-platform/polis/storage/schema"
)

// Query types: the queryType field of a query's JSON model.
const (
	QueryTypeTimeSeries = "timeseries"
	QueryTypeAlerts     = "alerts"
	QueryTypeSQL        = "sql"
	QueryTypeMilestones = "milestones"
	QueryTypeTwin       = "twin"
	QueryTypeVariable   = "variable"
)

// Query is the part of a query's JSON model every query type shares; the
// rest is TimeSeriesQuery, AlertsQuery, SQLQuery, MilestonesQuery,
// TwinQuery or VariableQuery. An empty queryType
// is "timeseries". (Grafana also sends queryType outside the model, in
// backend.DataQuery.QueryType; either is accepted.)
type Query struct {
	QueryType string `json:"queryType"`
}

// queryTimeout bounds one query's time on ClickHouse.
const queryTimeout = 60 * time.Second

// Datasource is one configured instance of the datasource.
type Datasource struct {
	cfg  Settings
	sec  SecureSettings
	conn driver.Conn
	http *http.Client

	mu       sync.Mutex
	flavor   schema.Flavor // detected on first use
	readOnly *bool         // the login's readonly setting is not 0; asked on first use
}

var (
	_ backend.QueryDataHandler      = (*Datasource)(nil)
	_ backend.CheckHealthHandler    = (*Datasource)(nil)
	_ backend.CallResourceHandler   = (*Datasource)(nil)
	_ instancemgmt.InstanceDisposer = (*Datasource)(nil)
)

// NewDatasource is the instance factory datasource.Manage calls for each
// configured datasource (and again when its settings change).
func NewDatasource(_ context.Context, s backend.DataSourceInstanceSettings) (instancemgmt.Instance, error) {
	cfg, sec, err := LoadSettings(s)
	if err != nil {
		return nil, err
	}
	conn, err := storage.Open(storage.ConnOptions{
		Addr: cfg.ClickHouseAddress, User: cfg.ClickHouseUser, Password: sec.ClickHousePassword, TLS: cfg.ClickHouseTLS,
	}, func(o *clickhouse.Options) {
		o.MaxOpenConns = 10
		o.MaxIdleConns = 5
		o.ConnMaxLifetime = 10 * time.Minute
	})
	if err != nil {
		return nil, err
	}
	return &Datasource{cfg: cfg, sec: sec, conn: conn, http: &http.Client{Timeout: 10 * time.Second}}, nil
}

// Dispose closes the instance's connections when Grafana replaces it.
func (d *Datasource) Dispose() { _ = d.conn.Close() }

// Flavor is the schema flavor of the server, detected once.
func (d *Datasource) Flavor(ctx context.Context) (schema.Flavor, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.flavor.Valid() {
		return d.flavor, nil
	}
	f, err := schema.Detect(ctx, d.conn)
	if err != nil {
		return 0, err
	}
	d.flavor = f
	return f, nil
}

// sessionReadOnly reports whether the login is read-only already (its
// profile sets readonly): then a query may send no settings at all.
func (d *Datasource) sessionReadOnly(ctx context.Context) (bool, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.readOnly != nil {
		return *d.readOnly, nil
	}
	var v string
	if err := d.conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'readonly'").Scan(&v); err != nil {
		return false, fmt.Errorf("cannot read the readonly setting: %w", err)
	}
	ro := v != "0"
	d.readOnly = &ro
	return ro, nil
}

// QueryData answers each query on its own: one query's error is its
// response's error, never the request's.
func (d *Datasource) QueryData(ctx context.Context, req *backend.QueryDataRequest) (*backend.QueryDataResponse, error) {
	resp := backend.NewQueryDataResponse()
	for _, q := range req.Queries {
		resp.Responses[q.RefID] = d.query(ctx, q)
	}
	return resp, nil
}

func (d *Datasource) query(ctx context.Context, q backend.DataQuery) backend.DataResponse {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	var head Query
	if err := json.Unmarshal(q.JSON, &head); err != nil {
		return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream,
			"cannot read the query: "+err.Error())
	}
	qt := head.QueryType
	if qt == "" {
		qt = q.QueryType
	}
	var (
		r   backend.DataResponse
		err error
	)
	switch qt {
	case "", QueryTypeTimeSeries:
		r, err = d.timeSeries(ctx, q)
	case QueryTypeAlerts:
		r, err = d.alerts(ctx, q)
	case QueryTypeSQL:
		r, err = d.sql(ctx, q)
	case QueryTypeMilestones:
		r, err = d.milestones(ctx, q)
	case QueryTypeTwin:
		r, err = d.twin(ctx, q)
	case QueryTypeVariable:
		r, err = d.variable(ctx, q)
	default:
		err = badQuery("unknown queryType %q: want timeseries, alerts, sql, milestones, twin or variable", qt)
	}
	if err != nil {
		var bad *badQueryError
		if errors.As(err, &bad) {
			return backend.ErrDataResponseWithSource(backend.StatusBadRequest, backend.ErrorSourceDownstream, bad.Error())
		}
		return backend.ErrDataResponseWithSource(backend.StatusInternal, backend.ErrorSourceDownstream, err.Error())
	}
	return r
}

// badQueryError is a query the user must fix.
type badQueryError struct{ msg string }

func (e *badQueryError) Error() string { return e.msg }

func badQuery(format string, args ...any) error {
	return &badQueryError{msg: fmt.Sprintf(format, args...)}
}

// CheckHealth pings ClickHouse, checks that the database holds the
// telemetry table, and, when an API URL is set, asks the API's /healthz.
func (d *Datasource) CheckHealth(ctx context.Context, _ *backend.CheckHealthRequest) (*backend.CheckHealthResult, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	fail := func(format string, args ...any) (*backend.CheckHealthResult, error) {
		return &backend.CheckHealthResult{Status: backend.HealthStatusError, Message: fmt.Sprintf(format, args...)}, nil
	}
	if err := storage.Ping(ctx, d.conn); err != nil {
		return fail("ClickHouse at %s: %v", d.cfg.ClickHouseAddress, err)
	}
	version, err := schema.ServerVersion(ctx, d.conn)
	if err != nil {
		return fail("ClickHouse at %s: %v", d.cfg.ClickHouseAddress, err)
	}
	var n uint64
	if err := d.conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = ?",
		d.cfg.Database, schema.TableTelemetry).Scan(&n); err != nil {
		return fail("ClickHouse at %s: %v", d.cfg.ClickHouseAddress, err)
	}
	if n == 0 {
		return fail("ClickHouse at %s (%s) has no table %s.%s: is this the platform's database?",
			d.cfg.ClickHouseAddress, version, d.cfg.Database, schema.TableTelemetry)
	}
	msg := fmt.Sprintf("ClickHouse %s at %s, database %s", version, d.cfg.ClickHouseAddress, d.cfg.Database)
	if d.cfg.APIURL != "" {
		if err := d.apiHealth(ctx); err != nil {
			return fail("%s is fine, but the platform API: %v", msg, err)
		}
		msg += "; API at " + d.cfg.APIURL
	}
	return &backend.CheckHealthResult{Status: backend.HealthStatusOk, Message: msg + ": OK"}, nil
}

func (d *Datasource) apiHealth(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.cfg.APIURL+"/healthz", nil)
	if err != nil {
		return err
	}
	if d.sec.APIToken != "" {
		req.Header.Set("Authorization", "Bearer "+d.sec.APIToken)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("GET %s/healthz answered %s", d.cfg.APIURL, resp.Status)
	}
	return nil
}
