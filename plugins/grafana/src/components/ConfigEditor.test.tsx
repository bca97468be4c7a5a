import React from 'react';
import { fireEvent, render, screen } from '@testing-library/react';
import { DataSourceSettings } from '@grafana/data';

import { ConfigEditor } from './ConfigEditor';
import { PolisOptions, PolisSecureOptions } from '../types';

function settings(over: Partial<DataSourceSettings<PolisOptions, PolisSecureOptions>> = {}) {
  return {
    id: 1,
    uid: 'polis',
    orgId: 1,
    name: 'Polis',
    type: 'polis-platform-datasource',
    typeName: 'Polis',
    typeLogoUrl: '',
    access: 'proxy',
    url: '',
    user: '',
    database: '',
    basicAuth: false,
    basicAuthUser: '',
    isDefault: false,
    withCredentials: false,
    readOnly: false,
    jsonData: { clickhouseAddress: '127.0.0.1:9000', database: 'polis' },
    secureJsonFields: {},
    secureJsonData: {},
    version: 1,
    ...over,
  } as DataSourceSettings<PolisOptions, PolisSecureOptions>;
}

describe('ConfigEditor', () => {
  it('writes jsonData', () => {
    const options = settings();
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
    expect(screen.getByLabelText('Address')).toHaveValue('127.0.0.1:9000');

    fireEvent.change(screen.getByLabelText('Address'), { target: { value: 'ch:9440' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, jsonData: { ...options.jsonData, clickhouseAddress: 'ch:9440' } });

    fireEvent.change(screen.getByLabelText('Database'), { target: { value: 'polis2' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, jsonData: { ...options.jsonData, database: 'polis2' } });

    fireEvent.change(screen.getByLabelText('API URL'), { target: { value: 'http://api:8080' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, jsonData: { ...options.jsonData, apiUrl: 'http://api:8080' } });

    fireEvent.click(screen.getByLabelText('TLS'));
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, jsonData: { ...options.jsonData, clickhouseTLS: true } });
  });

  it('writes secureJsonData', () => {
    const options = settings();
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);

    fireEvent.change(screen.getByLabelText('Password'), { target: { value: 's3cret' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, secureJsonData: { clickhousePassword: 's3cret' } });

    fireEvent.change(screen.getByLabelText('API token'), { target: { value: 'tok' } });
    expect(onOptionsChange).toHaveBeenLastCalledWith({ ...options, secureJsonData: { apiToken: 'tok' } });
  });

  it('resets a configured secret', () => {
    const options = settings({ secureJsonFields: { apiToken: true, clickhousePassword: true } });
    const onOptionsChange = jest.fn();
    render(<ConfigEditor options={options} onOptionsChange={onOptionsChange} />);
    const resets = screen.getAllByRole('button', { name: 'Reset' });
    expect(resets).toHaveLength(2);
    fireEvent.click(resets[1]);
    expect(onOptionsChange).toHaveBeenLastCalledWith({
      ...options,
      secureJsonFields: { apiToken: false, clickhousePassword: true },
      secureJsonData: { apiToken: '' },
    });
  });
});
