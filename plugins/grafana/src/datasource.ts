import {
  AdHocVariableFilter,
  CoreApp,
  DataFrame,
  DataQueryRequest,
  DataSourceInstanceSettings,
  getDefaultTimeRange,
  MetricFindValue,
  ScopedVars,
  TimeRange,
} from '@grafana/data';
import { DataSourceWithBackend, getTemplateSrv, TemplateSrv } from '@grafana/runtime';
import { lastValueFrom } from 'rxjs';

import { AdhocFilter, DEFAULT_QUERY, PolisOptions, PolisQuery, VariableName } from './types';

/** The ad hoc filter keys the backend understands (TimeSeriesQuery.AdhocFilters). */
export const ADHOC_KEYS = ['site', 'asset', 'metric', 'region'];

/** The backend's resources for the pickers (pkg/resources.go). */
export type PickerResource = 'sites' | 'assets' | 'metrics';

export class DataSource extends DataSourceWithBackend<PolisQuery, PolisOptions> {
  constructor(
    instanceSettings: DataSourceInstanceSettings<PolisOptions>,
    private readonly templateSrv: TemplateSrv = getTemplateSrv()
  ) {
    super(instanceSettings);
  }

  getDefaultQuery(_app: CoreApp): Partial<PolisQuery> {
    return DEFAULT_QUERY;
  }

  filterQuery(query: PolisQuery): boolean {
    if (query.hide) {
      return false;
    }
    // A SQL query without SQL has nothing to run.
    return !(query.queryType === 'sql' && !query.rawSql?.trim());
  }

  /** expandList interpolates each element of a list; a multi-value variable becomes several elements. */
  private expandList(list: string[] | undefined, scopedVars: ScopedVars): string[] | undefined {
    if (!list) {
      return list;
    }
    const out: string[] = [];
    for (const item of list) {
      const v = this.templateSrv.replace(item, scopedVars, 'csv');
      for (const part of v.split(',')) {
        const p = part.trim();
        if (p !== '' && !out.includes(p)) {
          out.push(p);
        }
      }
    }
    return out;
  }

  private expand(s: string | undefined, scopedVars: ScopedVars): string | undefined {
    return s === undefined ? s : this.templateSrv.replace(s, scopedVars);
  }

  applyTemplateVariables(query: PolisQuery, scopedVars: ScopedVars, filters?: AdHocVariableFilter[]): PolisQuery {
    const q: PolisQuery = {
      ...query,
      sites: this.expandList(query.sites, scopedVars),
      assets: this.expandList(query.assets, scopedVars),
      metrics: this.expandList(query.metrics, scopedVars),
      rules: this.expandList(query.rules, scopedVars),
      severities: this.expandList(query.severities, scopedVars),
      lines: this.expandList(query.lines, scopedVars),
      ids: this.expandList(query.ids, scopedVars),
      region: this.expand(query.region, scopedVars),
      province: this.expand(query.province, scopedVars),
      site: this.expand(query.site, scopedVars),
      asset: this.expand(query.asset, scopedVars),
      rawSql: this.expand(query.rawSql, scopedVars),
    };
    // Drop the keys left undefined so the JSON sent is the query's own.
    for (const k of Object.keys(q) as Array<keyof PolisQuery>) {
      if (q[k] === undefined) {
        delete q[k];
      }
    }
    if ((q.queryType ?? 'timeseries') === 'timeseries' && filters && filters.length > 0) {
      const adhoc: AdhocFilter[] = filters
        .filter((f) => ADHOC_KEYS.includes(f.key))
        .map((f) => ({ key: f.key, operator: f.operator, value: f.value, ...(f.condition ? { condition: f.condition } : {}) }));
      if (adhoc.length > 0) {
        q.adhocFilters = [...(q.adhocFilters ?? []), ...adhoc];
      }
    }
    return q;
  }

  /** getPicker lists the values of a picker from the backend's resources: sites, assets?site=, metrics?site=&asset=. */
  async getPicker(resource: PickerResource, params: { site?: string; asset?: string; prefix?: string } = {}): Promise<string[]> {
    const p: Record<string, string> = {};
    for (const [k, v] of Object.entries(params)) {
      if (v) {
        p[k] = this.templateSrv.replace(v);
      }
    }
    const out = await this.getResource<string[]>(resource, p);
    return Array.isArray(out) ? out : [];
  }

  /** runVariable runs a backend "variable" query and returns its value field. */
  private async runVariable(q: Partial<PolisQuery> & { variable: VariableName }, options?: { range?: TimeRange; scopedVars?: ScopedVars }): Promise<MetricFindValue[]> {
    const target: PolisQuery = { refId: 'metricFindQuery', ...q, queryType: 'variable' };
    const request = {
      targets: [target],
      range: options?.range ?? getRangeFallback(),
      scopedVars: options?.scopedVars ?? {},
    } as unknown as DataQueryRequest<PolisQuery>;
    const res = await lastValueFrom(this.query(request));
    if (res.errors?.length) {
      throw new Error(res.errors[0].message ?? 'variable query failed');
    }
    return framesToValues(res.data as DataFrame[]);
  }

  /**
   * metricFindQuery serves template variables with the backend's variable
   * query. The query is a PolisQuery (from the variable editor) or, for
   * simple use, a string: regions, provinces [region], sites [region
   * [province]], assets [site], metrics [site [asset]].
   */
  async metricFindQuery(query: PolisQuery | string, options?: any): Promise<MetricFindValue[]> {
    let q: Partial<PolisQuery>;
    if (typeof query === 'string') {
      q = parseVariableString(query);
    } else {
      q = query;
    }
    if (!q.variable) {
      return [];
    }
    return this.runVariable(q as Partial<PolisQuery> & { variable: VariableName }, options);
  }

  async getTagKeys(): Promise<MetricFindValue[]> {
    return ADHOC_KEYS.map((k) => ({ text: k, value: k }));
  }

  async getTagValues(options: { key: string; filters?: AdHocVariableFilter[] }): Promise<MetricFindValue[]> {
    const eq = (k: string) => options.filters?.find((f) => f.key === k && f.operator === '=')?.value;
    let values: string[];
    switch (options.key) {
      case 'site':
        values = await this.getPicker('sites');
        break;
      case 'asset':
        values = await this.getPicker('assets', { site: eq('site') });
        break;
      case 'metric':
        values = await this.getPicker('metrics', { site: eq('site'), asset: eq('asset') });
        break;
      case 'region':
        return this.runVariable({ variable: 'regions' });
      default:
        return [];
    }
    return values.map((v) => ({ text: v }));
  }
}

/** parseVariableString reads "sites Lombardia", "metrics PO-001 locker-1" and the like. */
export function parseVariableString(s: string): Partial<PolisQuery> {
  const [variable, a, b] = s.trim().split(/\s+/);
  switch (variable) {
    case 'regions':
      return { variable };
    case 'provinces':
      return { variable, region: a };
    case 'sites':
      return { variable, region: a, province: b };
    case 'assets':
      return { variable, site: a };
    case 'metrics':
      return { variable, site: a, asset: b };
    default:
      return {};
  }
}

/** framesToValues takes the "value" field (or the first field) of each frame. */
export function framesToValues(frames: DataFrame[] | undefined): MetricFindValue[] {
  const out: MetricFindValue[] = [];
  for (const f of frames ?? []) {
    const field = f.fields.find((x) => x.name === 'value') ?? f.fields[0];
    if (!field) {
      continue;
    }
    for (let i = 0; i < field.values.length; i++) {
      const v = field.values[i];
      if (v !== null && v !== undefined) {
        out.push({ text: String(v) });
      }
    }
  }
  return out;
}

function getRangeFallback(): TimeRange {
  // The variable queries do not depend on time; the backend still wants a range.
  return getDefaultTimeRange();
}
