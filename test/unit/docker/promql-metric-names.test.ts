import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { promqlLabels, promqlMetricNames } from '../../helpers/promql-metric-names.js';

describe('promqlMetricNames', () => {
  it('finds metrics before {, [ and a word boundary, not functions, label names or keywords', () => {
    assert.deepEqual(
      promqlMetricNames(
        'sum by (instance) (rate(graphql_operation_duration_seconds_count{outcome="error"}[5m])) / on (instance) group_left up > 0.05 and ingest_degraded',
      ),
      ['graphql_operation_duration_seconds_count', 'ingest_degraded', 'up'],
    );
  });

  it('keeps histogram suffixes, ignores Grafana variables and strings that look like names', () => {
    assert.deepEqual(
      promqlMetricNames(
        'topk(10, histogram_quantile(0.95, sum by (parent_type, field, le) (rate(graphql_resolver_duration_seconds_bucket{field!="x_total"}[$__rate_interval]))))',
      ),
      ['graphql_resolver_duration_seconds_bucket'],
    );
  });

  it('lists the label names of each selector and of the grouping clauses', () => {
    const { selectors, grouping } = promqlLabels(
      'sum by (reason, mode) (rate(graphql_cost_rejections_total{mode="enforce", reason!~"a,b"}[5m])) / on(instance) up{job="gateway"}',
    );
    assert.deepEqual(
      [...selectors].map(([m, l]) => [m, [...l].sort()]),
      [
        ['graphql_cost_rejections_total', ['mode', 'reason']],
        ['up', ['job']],
      ],
    );
    assert.deepEqual([...grouping].sort(), ['instance', 'mode', 'reason']);
  });
});
