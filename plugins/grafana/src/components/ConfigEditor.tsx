import React, { ChangeEvent } from 'react';
import { DataSourcePluginOptionsEditorProps } from '@grafana/data';
import { InlineField, InlineSwitch, Input, SecretInput, Stack } from '@grafana/ui';

import { PolisOptions, PolisSecureOptions } from '../types';

type Props = DataSourcePluginOptionsEditorProps<PolisOptions, PolisSecureOptions>;

const LABEL_WIDTH = 22;

export function ConfigEditor({ options, onOptionsChange }: Props) {
  const { jsonData, secureJsonFields } = options;
  const secureJsonData = (options.secureJsonData ?? {}) as PolisSecureOptions;

  const setJson = <K extends keyof PolisOptions>(key: K, value: PolisOptions[K]) =>
    onOptionsChange({ ...options, jsonData: { ...jsonData, [key]: value } });

  const onJson = (key: 'clickhouseAddress' | 'clickhouseUser' | 'database' | 'apiUrl') => (e: ChangeEvent<HTMLInputElement>) =>
    setJson(key, e.target.value);

  const onSecure = (key: keyof PolisSecureOptions) => (e: ChangeEvent<HTMLInputElement>) =>
    onOptionsChange({ ...options, secureJsonData: { ...secureJsonData, [key]: e.target.value } });

  const onReset = (key: keyof PolisSecureOptions) => () =>
    onOptionsChange({
      ...options,
      secureJsonFields: { ...secureJsonFields, [key]: false },
      secureJsonData: { ...secureJsonData, [key]: '' },
    });

  return (
    <Stack direction="column" gap={1}>
      <h3>ClickHouse</h3>
      <InlineField label="Address" labelWidth={LABEL_WIDTH} tooltip="Native protocol, host:port (default 127.0.0.1:9000)" htmlFor="polis-ch-address">
        <Input id="polis-ch-address" width={40} value={jsonData.clickhouseAddress ?? ''} placeholder="127.0.0.1:9000" onChange={onJson('clickhouseAddress')} />
      </InlineField>
      <InlineField label="User" labelWidth={LABEL_WIDTH} tooltip="Default: default" htmlFor="polis-ch-user">
        <Input id="polis-ch-user" width={40} value={jsonData.clickhouseUser ?? ''} placeholder="default" onChange={onJson('clickhouseUser')} />
      </InlineField>
      <InlineField label="Password" labelWidth={LABEL_WIDTH} htmlFor="polis-ch-password">
        <SecretInput
          id="polis-ch-password"
          width={40}
          isConfigured={!!secureJsonFields?.clickhousePassword}
          value={secureJsonData.clickhousePassword ?? ''}
          onChange={onSecure('clickhousePassword')}
          onReset={onReset('clickhousePassword')}
        />
      </InlineField>
      <InlineField label="TLS" labelWidth={LABEL_WIDTH} tooltip="Secure native port" htmlFor="polis-ch-tls">
        <InlineSwitch id="polis-ch-tls" value={!!jsonData.clickhouseTLS} onChange={(e) => setJson('clickhouseTLS', e.currentTarget.checked)} />
      </InlineField>
      <InlineField label="Database" labelWidth={LABEL_WIDTH} tooltip="The platform's tables (default polis)" htmlFor="polis-database">
        <Input id="polis-database" width={40} value={jsonData.database ?? ''} placeholder="polis" onChange={onJson('database')} />
      </InlineField>

      <h3>Platform API</h3>
      <InlineField
        label="API URL"
        labelWidth={LABEL_WIDTH}
        tooltip="For the milestones, twin and variable (regions, provinces) queries and the region ad hoc filter"
        htmlFor="polis-api-url"
      >
        <Input id="polis-api-url" width={40} value={jsonData.apiUrl ?? ''} placeholder="http://127.0.0.1:8080" onChange={onJson('apiUrl')} />
      </InlineField>
      <InlineField label="API token" labelWidth={LABEL_WIDTH} htmlFor="polis-api-token">
        <SecretInput
          id="polis-api-token"
          width={40}
          isConfigured={!!secureJsonFields?.apiToken}
          value={secureJsonData.apiToken ?? ''}
          onChange={onSecure('apiToken')}
          onReset={onReset('apiToken')}
        />
      </InlineField>
    </Stack>
  );
}
