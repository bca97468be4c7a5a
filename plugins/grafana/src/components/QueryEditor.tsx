import React, { useEffect, useMemo, useState } from 'react';
import { QueryEditorProps, SelectableValue } from '@grafana/data';
import { InlineField, InlineSwitch, Input, MultiSelect, Select, Stack, TextArea } from '@grafana/ui';

import { DataSource, PickerResource } from '../datasource';
import { AGGREGATIONS, DEFAULT_QUERY, PolisOptions, PolisQuery, QUERY_TYPES, QueryType, VARIABLES, VariableName } from '../types';

type Props = QueryEditorProps<DataSource, PolisQuery, PolisOptions>;

const LABEL_WIDTH = 16;

const toOptions = (vals: string[]): Array<SelectableValue<string>> => vals.map((v) => ({ label: v, value: v }));

/** usePicker loads a picker's values from the backend's resources when its inputs change. */
function usePicker(ds: DataSource, resource: PickerResource | undefined, site?: string, asset?: string) {
  const [values, setValues] = useState<string[]>([]);
  const [loading, setLoading] = useState(false);
  useEffect(() => {
    if (!resource) {
      return;
    }
    let live = true;
    setLoading(true);
    ds.getPicker(resource, { site, asset })
      .then((v) => live && setValues(v))
      .catch(() => live && setValues([]))
      .finally(() => live && setLoading(false));
    return () => {
      live = false;
    };
  }, [ds, resource, site, asset]);
  return { values, loading };
}

/** single picks the one value of a list that narrows the next picker (sites → assets → metrics). */
const single = (list?: string[]) => (list && list.length === 1 ? list[0] : undefined);

/** withCustom keeps values typed by hand (e.g. $site) among the options. */
function withCustom(options: string[], selected?: string[]): Array<SelectableValue<string>> {
  const extra = (selected ?? []).filter((v) => !options.includes(v));
  return toOptions([...extra, ...options]);
}

export function QueryEditor({ query, onChange, onRunQuery, datasource }: Props) {
  const q: PolisQuery = { ...DEFAULT_QUERY, ...query };
  const type: QueryType = q.queryType ?? 'timeseries';
  const usesPickers = type === 'timeseries' || type === 'alerts';

  const sites = usePicker(datasource, usesPickers ? 'sites' : undefined);
  const assets = usePicker(datasource, usesPickers ? 'assets' : undefined, single(q.sites));
  const metrics = usePicker(datasource, type === 'timeseries' ? 'metrics' : undefined, single(q.sites), single(q.assets));

  const change = (patch: Partial<PolisQuery>, run = true) => {
    onChange({ ...query, ...patch });
    if (run) {
      onRunQuery();
    }
  };

  const onType = (v: SelectableValue<QueryType>) => {
    const t = v.value ?? 'timeseries';
    const patch: Partial<PolisQuery> = { queryType: t };
    if (t === 'timeseries' && !query.aggregation) {
      patch.aggregation = 'avg';
    }
    if (t === 'alerts' && !query.format) {
      patch.format = 'table';
    }
    if (t === 'twin' && (!query.format || query.format === 'table' || query.format === 'annotations')) {
      patch.format = 'sites';
    }
    if (t === 'alerts' && (query.format === 'sites' || query.format === 'assets')) {
      patch.format = 'table';
    }
    if (t === 'variable' && !query.variable) {
      patch.variable = 'sites';
    }
    change(patch, t !== 'sql');
  };

  const multi = (field: 'sites' | 'assets' | 'metrics') => (vals: Array<SelectableValue<string>>) =>
    change({ [field]: vals.map((v) => v.value!).filter(Boolean) });

  const text = (field: keyof PolisQuery) => (e: React.FormEvent<HTMLInputElement>) =>
    onChange({ ...query, [field]: e.currentTarget.value || undefined });

  const csv = (field: 'rules' | 'severities' | 'lines' | 'ids') => (e: React.FormEvent<HTMLInputElement>) => {
    const v = e.currentTarget.value
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean);
    onChange({ ...query, [field]: v.length ? v : undefined });
  };

  const typeOptions = useMemo(() => QUERY_TYPES.map((t) => ({ label: t.label, value: t.value, description: t.description })), []);

  return (
    <Stack direction="column" gap={0.5}>
      <InlineField label="Query type" labelWidth={LABEL_WIDTH} htmlFor="polis-query-type">
        <Select inputId="polis-query-type" width={30} options={typeOptions} value={type} onChange={onType} />
      </InlineField>

      {usesPickers && (
        <>
          <InlineField label="Sites" labelWidth={LABEL_WIDTH} tooltip="Empty: every site. Template variables allowed." htmlFor="polis-sites">
            <MultiSelect
              inputId="polis-sites"
              width={60}
              allowCustomValue
              isLoading={sites.loading}
              options={withCustom(sites.values, q.sites)}
              value={q.sites}
              onChange={multi('sites')}
            />
          </InlineField>
          <InlineField label="Assets" labelWidth={LABEL_WIDTH} tooltip="Empty: every asset (of one site: its assets are offered)." htmlFor="polis-assets">
            <MultiSelect
              inputId="polis-assets"
              width={60}
              allowCustomValue
              isLoading={assets.loading}
              options={withCustom(assets.values, q.assets)}
              value={q.assets}
              onChange={multi('assets')}
            />
          </InlineField>
        </>
      )}

      {type === 'timeseries' && (
        <>
          <InlineField label="Metrics" labelWidth={LABEL_WIDTH} tooltip="Empty: every metric." htmlFor="polis-metrics">
            <MultiSelect
              inputId="polis-metrics"
              width={60}
              allowCustomValue
              isLoading={metrics.loading}
              options={withCustom(metrics.values, q.metrics)}
              value={q.metrics}
              onChange={multi('metrics')}
            />
          </InlineField>
          <InlineField label="Aggregation" labelWidth={LABEL_WIDTH} tooltip="Per bucket of the panel's interval" htmlFor="polis-aggregation">
            <Select
              inputId="polis-aggregation"
              width={20}
              options={toOptions(AGGREGATIONS)}
              value={q.aggregation ?? 'avg'}
              onChange={(v) => change({ aggregation: v.value as PolisQuery['aggregation'] })}
            />
          </InlineField>
        </>
      )}

      {type === 'alerts' && (
        <>
          <InlineField label="Rules" labelWidth={LABEL_WIDTH} tooltip="Rule ids, comma-separated; empty: every rule">
            <Input width={60} defaultValue={(q.rules ?? []).join(', ')} onChange={csv('rules')} onBlur={onRunQuery} aria-label="Rules" />
          </InlineField>
          <InlineField label="Severities" labelWidth={LABEL_WIDTH} tooltip="e.g. critical, warning; empty: every severity">
            <Input width={60} defaultValue={(q.severities ?? []).join(', ')} onChange={csv('severities')} onBlur={onRunQuery} aria-label="Severities" />
          </InlineField>
          <InlineField label="Format" labelWidth={LABEL_WIDTH} htmlFor="polis-alert-format">
            <Select
              inputId="polis-alert-format"
              width={20}
              options={toOptions(['table', 'annotations'])}
              value={q.format === 'annotations' ? 'annotations' : 'table'}
              onChange={(v) => change({ format: v.value })}
            />
          </InlineField>
        </>
      )}

      {type === 'sql' && (
        <InlineField label="SQL" labelWidth={LABEL_WIDTH} grow tooltip="Read-only ClickHouse SQL; macros $__timeFilter(col), $__interval_s and the like">
          <TextArea
            aria-label="SQL"
            rows={6}
            defaultValue={q.rawSql ?? ''}
            onBlur={(e) => change({ rawSql: e.currentTarget.value })}
            placeholder="SELECT ts, value FROM polis.telemetry_1m WHERE $__timeFilter(ts) LIMIT 1000"
          />
        </InlineField>
      )}

      {type === 'milestones' && (
        <>
          <InlineField label="Lines" labelWidth={LABEL_WIDTH} tooltip="Programme lines, comma-separated; empty: every line">
            <Input width={60} defaultValue={(q.lines ?? []).join(', ')} onChange={csv('lines')} onBlur={onRunQuery} aria-label="Lines" />
          </InlineField>
          <InlineField label="Ids" labelWidth={LABEL_WIDTH} tooltip="Milestone ids, comma-separated; empty: every milestone">
            <Input width={60} defaultValue={(q.ids ?? []).join(', ')} onChange={csv('ids')} onBlur={onRunQuery} aria-label="Ids" />
          </InlineField>
        </>
      )}

      {type === 'twin' && (
        <>
          <InlineField label="Format" labelWidth={LABEL_WIDTH} htmlFor="polis-twin-format">
            <Select
              inputId="polis-twin-format"
              width={20}
              options={toOptions(['sites', 'assets'])}
              value={q.format === 'assets' ? 'assets' : 'sites'}
              onChange={(v) => change({ format: v.value })}
            />
          </InlineField>
          <InlineField label="Site" labelWidth={LABEL_WIDTH} tooltip="Only this site">
            <Input width={30} defaultValue={q.site ?? ''} onChange={text('site')} onBlur={onRunQuery} aria-label="Site" />
          </InlineField>
          <InlineField label="Region" labelWidth={LABEL_WIDTH}>
            <Input width={30} defaultValue={q.region ?? ''} onChange={text('region')} onBlur={onRunQuery} aria-label="Region" />
          </InlineField>
          <InlineField label="Province" labelWidth={LABEL_WIDTH}>
            <Input width={30} defaultValue={q.province ?? ''} onChange={text('province')} onBlur={onRunQuery} aria-label="Province" />
          </InlineField>
          <InlineField label="Kind" labelWidth={LABEL_WIDTH}>
            <Input width={30} defaultValue={q.kind ?? ''} onChange={text('kind')} onBlur={onRunQuery} aria-label="Kind" />
          </InlineField>
          <InlineField label="Status" labelWidth={LABEL_WIDTH}>
            <Input width={30} defaultValue={q.status ?? ''} onChange={text('status')} onBlur={onRunQuery} aria-label="Status" />
          </InlineField>
          <InlineField label="Asset type" labelWidth={LABEL_WIDTH}>
            <Input width={30} defaultValue={q.assetType ?? ''} onChange={text('assetType')} onBlur={onRunQuery} aria-label="Asset type" />
          </InlineField>
          <InlineField label="Live" labelWidth={LABEL_WIDTH} tooltip="Sites: add the live aggregates (one API call per site)">
            <InlineSwitch value={!!q.live} onChange={(e) => change({ live: e.currentTarget.checked || undefined })} aria-label="Live" />
          </InlineField>
          <InlineField label="Limit" labelWidth={LABEL_WIDTH} tooltip="Sites, default 1000">
            <Input
              width={12}
              type="number"
              defaultValue={q.limit ?? ''}
              onBlur={(e) => change({ limit: e.currentTarget.value ? Number(e.currentTarget.value) : undefined })}
              aria-label="Limit"
            />
          </InlineField>
        </>
      )}

      {type === 'variable' && <VariableFields query={q} onChange={(p) => change(p)} />}
    </Stack>
  );
}

/** VariableFields edits a variable query: the variable and its narrowing fields. */
export function VariableFields({ query, onChange }: { query: PolisQuery; onChange: (patch: Partial<PolisQuery>) => void }) {
  const v: VariableName = query.variable ?? 'sites';
  const field = (name: 'region' | 'province' | 'site' | 'asset', label: string) => (
    <InlineField label={label} labelWidth={LABEL_WIDTH} tooltip="Empty or $__all: any">
      <Input width={30} defaultValue={query[name] ?? ''} onBlur={(e) => onChange({ [name]: e.currentTarget.value || undefined })} aria-label={label} />
    </InlineField>
  );
  return (
    <>
      <InlineField label="Variable" labelWidth={LABEL_WIDTH} htmlFor="polis-variable">
        <Select inputId="polis-variable" width={20} options={toOptions(VARIABLES)} value={v} onChange={(o) => onChange({ variable: o.value as VariableName })} />
      </InlineField>
      {(v === 'provinces' || v === 'sites') && field('region', 'Region')}
      {v === 'sites' && field('province', 'Province')}
      {(v === 'assets' || v === 'metrics') && field('site', 'Site')}
      {v === 'metrics' && field('asset', 'Asset')}
    </>
  );
}
