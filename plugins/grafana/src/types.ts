// The query model and settings of the Polis datasource. They mirror the Go
// structs of pkg/ (the json tags of TimeSeriesQuery, AlertsQuery, SQLQuery,
// MilestonesQuery, TwinQuery, VariableQuery, Settings, SecureSettings).
import { DataQuery, DataSourceJsonData } from '@grafana/data';

export type QueryType = 'timeseries' | 'alerts' | 'sql' | 'milestones' | 'twin' | 'variable';

export const QUERY_TYPES: Array<{ value: QueryType; label: string; description: string }> = [
  { value: 'timeseries', label: 'Time series', description: 'Telemetry of sites, assets and metrics (raw, 1m or 1h rollup)' },
  { value: 'alerts', label: 'Alerts', description: 'Alert history, as a table or annotations' },
  { value: 'sql', label: 'SQL', description: 'Read-only SQL on ClickHouse' },
  { value: 'milestones', label: 'Milestones', description: 'Programme milestones from the platform API' },
  { value: 'twin', label: 'Digital twin', description: 'Sites or assets of the digital twin from the platform API' },
  { value: 'variable', label: 'Variable', description: 'Values for a template variable' },
];

/** avg (default), min, max, last, count, sum */
export type Aggregation = 'avg' | 'min' | 'max' | 'last' | 'count' | 'sum';
export const AGGREGATIONS: Aggregation[] = ['avg', 'min', 'max', 'last', 'count', 'sum'];

/** One of Grafana's ad hoc filters (Go AdhocFilter). */
export interface AdhocFilter {
  key: string;
  operator: string;
  value: string;
  condition?: string;
}

/** The variables a variable query lists (Go Variables). */
export type VariableName = 'regions' | 'provinces' | 'sites' | 'assets' | 'metrics';
export const VARIABLES: VariableName[] = ['regions', 'provinces', 'sites', 'assets', 'metrics'];

/**
 * PolisQuery is the union of the Go query models: every field of every
 * query type, each used by the types noted. The backend reads the fields of
 * its queryType and ignores the rest.
 */
export interface PolisQuery extends DataQuery {
  queryType?: QueryType;
  // timeseries, alerts
  sites?: string[];
  assets?: string[];
  // timeseries
  metrics?: string[];
  aggregation?: Aggregation;
  adhocFilters?: AdhocFilter[];
  // alerts
  rules?: string[];
  severities?: string[];
  /** alerts: table (default) or annotations; twin: sites (default) or assets */
  format?: string;
  // sql
  rawSql?: string;
  // milestones
  lines?: string[];
  ids?: string[];
  // twin (with the SiteFilter of GET /api/v1/sites) and variable
  region?: string;
  province?: string;
  kind?: string;
  status?: string;
  assetType?: string;
  site?: string;
  live?: boolean;
  limit?: number;
  // variable
  variable?: VariableName;
  asset?: string;
}

export const DEFAULT_QUERY: Partial<PolisQuery> = {
  queryType: 'timeseries',
  sites: [],
  assets: [],
  metrics: [],
  aggregation: 'avg',
};

/** The datasource's jsonData (Go Settings). */
export interface PolisOptions extends DataSourceJsonData {
  /** native-protocol host:port, default 127.0.0.1:9000 */
  clickhouseAddress?: string;
  /** default "default" */
  clickhouseUser?: string;
  clickhouseTLS?: boolean;
  /** default "polis" */
  database?: string;
  /** the platform's HTTP API, e.g. http://127.0.0.1:8080 */
  apiUrl?: string;
}

/** The datasource's secureJsonData (Go SecureSettings). */
export interface PolisSecureOptions {
  clickhousePassword?: string;
  apiToken?: string;
}

/** The variable query editor's model (a PolisQuery of type variable). */
export type PolisVariableQuery = PolisQuery & { queryType: 'variable' };
