import React from 'react';
import { fireEvent, render, screen, waitFor } from '@testing-library/react';

import { QueryEditor } from './QueryEditor';
import { DataSource } from '../datasource';
import { PolisQuery } from '../types';

/** pick opens a Grafana Select by its label and clicks an option. */
async function pick(label: string, option: string) {
  const input = screen.getByLabelText(label);
  fireEvent.keyDown(input, { key: 'ArrowDown' });
  const opt = await screen.findByRole('option', { name: new RegExp(`^${option}`) });
  fireEvent.click(opt);
}

function setup(query: PolisQuery) {
  const getPicker = jest.fn(async (resource: string, params: { site?: string; asset?: string }) => {
    switch (resource) {
      case 'sites':
        return ['PO-001', 'PO-002'];
      case 'assets':
        return params.site ? [`${params.site}-locker`] : ['a1', 'a2'];
      default:
        return ['temp_c', 'power_kw'];
    }
  });
  const datasource = { getPicker } as unknown as DataSource;
  const onChange = jest.fn();
  const onRunQuery = jest.fn();
  const utils = render(<QueryEditor query={query} datasource={datasource} onChange={onChange} onRunQuery={onRunQuery} />);
  return { ...utils, getPicker, onChange, onRunQuery };
}

describe('QueryEditor', () => {
  it('loads the pickers from the backend resources', async () => {
    const { getPicker } = setup({ refId: 'A', queryType: 'timeseries', sites: ['PO-001'], assets: ['PO-001-locker'] });
    await waitFor(() => expect(getPicker).toHaveBeenCalledTimes(3));
    expect(getPicker).toHaveBeenCalledWith('sites', { site: undefined, asset: undefined });
    expect(getPicker).toHaveBeenCalledWith('assets', { site: 'PO-001', asset: undefined });
    expect(getPicker).toHaveBeenCalledWith('metrics', { site: 'PO-001', asset: 'PO-001-locker' });
  });

  it('changes the aggregation', async () => {
    const query: PolisQuery = { refId: 'A', queryType: 'timeseries', sites: ['PO-001'], metrics: ['temp_c'], aggregation: 'avg' };
    const { onChange, onRunQuery } = setup(query);
    await pick('Aggregation', 'max');
    expect(onChange).toHaveBeenLastCalledWith({ ...query, aggregation: 'max' });
    expect(onRunQuery).toHaveBeenCalled();
  });

  it('changes the query type to alerts with the table format', async () => {
    const query: PolisQuery = { refId: 'A', queryType: 'timeseries', sites: ['PO-001'], aggregation: 'avg' };
    const { onChange } = setup(query);
    await pick('Query type', 'Alerts');
    expect(onChange).toHaveBeenLastCalledWith({ ...query, queryType: 'alerts', format: 'table' });
  });

  it('changes the query type to variable with a default variable, and to sql without running', async () => {
    const query: PolisQuery = { refId: 'B', queryType: 'timeseries' };
    const { onChange, onRunQuery } = setup(query);
    await pick('Query type', 'Variable');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'B', queryType: 'variable', variable: 'sites' });
    onRunQuery.mockClear();
    await pick('Query type', 'SQL');
    expect(onChange).toHaveBeenLastCalledWith({ refId: 'B', queryType: 'sql' });
    expect(onRunQuery).not.toHaveBeenCalled();
  });

  it('shows the fields of each query type', async () => {
    const { rerender, getPicker } = setup({ refId: 'A', queryType: 'sql', rawSql: 'SELECT 1' });
    expect(screen.getByLabelText('SQL')).toHaveValue('SELECT 1');
    expect(screen.queryByLabelText('Aggregation')).not.toBeInTheDocument();
    expect(getPicker).not.toHaveBeenCalled();
    const noop = () => {};
    const ds = { getPicker } as unknown as DataSource;
    rerender(<QueryEditor query={{ refId: 'A', queryType: 'twin', format: 'assets', site: 'PO-001' }} datasource={ds} onChange={noop} onRunQuery={noop} />);
    expect(screen.getByLabelText('Site')).toHaveValue('PO-001');
    expect(screen.getByText('assets')).toBeInTheDocument();
    rerender(<QueryEditor query={{ refId: 'A', queryType: 'milestones', lines: ['l1', 'l2'] }} datasource={ds} onChange={noop} onRunQuery={noop} />);
    expect(screen.getByLabelText('Lines')).toHaveValue('l1, l2');
  });

  it('writes the alert rules as a list', async () => {
    const query: PolisQuery = { refId: 'A', queryType: 'alerts', format: 'table' };
    const { onChange } = setup(query);
    await waitFor(() => expect(screen.getByLabelText('Rules')).toBeInTheDocument());
    fireEvent.change(screen.getByLabelText('Rules'), { target: { value: 'r1, r2 ,' } });
    expect(onChange).toHaveBeenLastCalledWith({ ...query, rules: ['r1', 'r2'] });
  });
});
