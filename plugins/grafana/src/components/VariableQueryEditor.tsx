import React from 'react';

import { PolisQuery } from '../types';
import { VariableFields } from './QueryEditor';

interface Props {
  query: PolisQuery | string;
  onChange: (query: PolisQuery, definition?: string) => void;
}

/**
 * VariableQueryEditor edits a template variable's query, a backend
 * "variable" query (DataSource.metricFindQuery runs it).
 */
export function VariableQueryEditor({ query, onChange }: Props) {
  const base: Partial<PolisQuery> = typeof query === 'string' ? {} : query;
  const q: PolisQuery = { refId: 'variable', ...base, queryType: 'variable', variable: base.variable ?? 'sites' };
  const definition = (p: PolisQuery) => [p.variable, p.region, p.province, p.site, p.asset].filter(Boolean).join(' ');
  return (
    <VariableFields
      query={q}
      onChange={(patch) => {
        const next = { ...q, ...patch };
        onChange(next, definition(next));
      }}
    />
  );
}
