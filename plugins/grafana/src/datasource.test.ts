import { DataSourceInstanceSettings, FieldType, toDataFrame } from '@grafana/data';
import { TemplateSrv } from '@grafana/runtime';
import { of } from 'rxjs';

import { DataSource, framesToValues, parseVariableString } from './datasource';
import { PolisOptions, PolisQuery } from './types';

const vars: Record<string, string[]> = { site: ['PO-001', 'PO-002'], metric: ['temp_c'], region: ['Lombardia'] };

const templateSrv = {
  replace: jest.fn((s: string, _scoped?: unknown, format?: string) =>
    s.replace(/\$(\w+)/g, (m, name) => (vars[name] ? vars[name].join(format === 'csv' ? ',' : ',') : m))
  ),
} as unknown as TemplateSrv;

const settings = { id: 1, uid: 'polis', type: 'polis-platform-datasource', name: 'Polis', jsonData: {} } as unknown as DataSourceInstanceSettings<PolisOptions>;

describe('DataSource', () => {
  const ds = new DataSource(settings, templateSrv);

  it('interpolates lists, strings and sql', () => {
    const q: PolisQuery = {
      refId: 'A',
      queryType: 'timeseries',
      sites: ['$site', 'PO-003'],
      metrics: ['$metric'],
      aggregation: 'max',
      region: '$region',
      rawSql: 'SELECT * WHERE site IN ($site)',
    };
    expect(ds.applyTemplateVariables(q, {})).toEqual({
      refId: 'A',
      queryType: 'timeseries',
      sites: ['PO-001', 'PO-002', 'PO-003'],
      metrics: ['temp_c'],
      aggregation: 'max',
      region: 'Lombardia',
      rawSql: 'SELECT * WHERE site IN (PO-001,PO-002)',
    });
  });

  it('adds the ad hoc filters it knows to time series queries', () => {
    const q: PolisQuery = { refId: 'A', queryType: 'timeseries' };
    const out = ds.applyTemplateVariables(q, {}, [
      { key: 'site', operator: '=', value: 'PO-001' },
      { key: 'other', operator: '=', value: 'x' },
      { key: 'region', operator: '!=', value: 'Lazio' },
    ]);
    expect(out.adhocFilters).toEqual([
      { key: 'site', operator: '=', value: 'PO-001' },
      { key: 'region', operator: '!=', value: 'Lazio' },
    ]);
    expect(ds.applyTemplateVariables({ refId: 'A', queryType: 'sql', rawSql: 'SELECT 1' }, {}, [{ key: 'site', operator: '=', value: 'x' }]).adhocFilters).toBeUndefined();
  });

  it('runs variable queries on the backend', async () => {
    const frame = toDataFrame({ fields: [{ name: 'value', type: FieldType.string, values: ['PO-001', 'PO-002'] }] });
    const spy = jest.spyOn(ds, 'query').mockReturnValue(of({ data: [frame] }));
    await expect(ds.metricFindQuery('metrics PO-001 locker-1')).resolves.toEqual([{ text: 'PO-001' }, { text: 'PO-002' }]);
    const target = (spy.mock.calls[0][0] as any).targets[0];
    expect(target).toMatchObject({ queryType: 'variable', variable: 'metrics', site: 'PO-001', asset: 'locker-1' });
    await ds.metricFindQuery({ refId: 'v', queryType: 'variable', variable: 'provinces', region: 'Lombardia' });
    expect((spy.mock.calls[1][0] as any).targets[0]).toMatchObject({ queryType: 'variable', variable: 'provinces', region: 'Lombardia' });
    spy.mockRestore();
  });

  it('offers the ad hoc keys and their values from the resources', async () => {
    await expect(ds.getTagKeys()).resolves.toEqual(['site', 'asset', 'metric', 'region'].map((k) => ({ text: k, value: k })));
    const res = jest.spyOn(ds, 'getResource').mockResolvedValue(['a1', 'a2']);
    await expect(ds.getTagValues({ key: 'asset', filters: [{ key: 'site', operator: '=', value: 'PO-001' }] })).resolves.toEqual([{ text: 'a1' }, { text: 'a2' }]);
    expect(res).toHaveBeenCalledWith('assets', { site: 'PO-001' });
    res.mockRestore();
  });

  it('parses variable strings and frames', () => {
    expect(parseVariableString('sites Lombardia MI')).toEqual({ variable: 'sites', region: 'Lombardia', province: 'MI' });
    expect(parseVariableString('nonsense')).toEqual({});
    expect(framesToValues([toDataFrame({ fields: [{ name: 'value', values: ['x', null] }] })])).toEqual([{ text: 'x' }]);
  });

  it('defaults to an average time series', () => {
    expect(ds.getDefaultQuery('explore' as any)).toMatchObject({ queryType: 'timeseries', aggregation: 'avg' });
  });
});
