import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import { parse } from 'yaml';
import WebSocket from 'ws';
import { DailyStatsDocument, EventTypesDocument, RecordEventsDocument, ViewerDocument } from '../generated/graphql.js';
import { startGateway, type RunningGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { promqlLabels, promqlMetricNames } from '../helpers/promql-metric-names.js';
import { isolatedEnv, waitFor } from '../helpers/test-env.js';

/**
 * Every metric that an alert of docker/prometheus/alerts.yml or a panel of the Grafana dashboard
 * reads must be one the gateway exports: a renamed metric would otherwise leave an alert that can
 * never fire and a panel that stays empty. The gateway runs with ROLE=all (API and workers in one
 * process, so every metric family is registered) and serves some traffic of each kind first.
 */
const ADMIN = 'agk_metrics-coverage-admin-key-000000000000000000';
/** Series Prometheus makes itself for each scrape, not exported by any target. */
const SYNTHETIC = new Set(['up']);
/** Labels Prometheus adds to every scraped series (docker/prometheus/prometheus.yml), and `le` of histograms. */
const TARGET_LABELS = ['instance', 'job', 'role'];

interface Rule {
  alert?: string;
  expr: string;
}
interface Panel {
  title: string;
  type: string;
  targets?: Array<{ expr: string }>;
}

const alertExpressions = (
  parse(readFileSync('docker/prometheus/alerts.yml', 'utf8')) as { groups: Array<{ rules: Rule[] }> }
).groups
  .flatMap((g) => g.rules)
  .map((r) => ({ where: `alert ${r.alert}`, expr: r.expr }));
const panelExpressions = (
  JSON.parse(readFileSync('docker/grafana/dashboards/gateway.json', 'utf8')) as { panels: Panel[] }
).panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `panel "${p.title}"`, expr: t.expr })));

/** Metric family name -> type, from the `# TYPE` lines of an exposition. */
function families(exposition: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of exposition.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1]!, m[2]!);
  return out;
}

/** Whether `name` is a series of an exported family (histograms expose _bucket, _sum, _count). */
function exported(name: string, types: Map<string, string>): boolean {
  if (types.has(name) || SYNTHETIC.has(name)) return true;
  const suffix = /^(.*)_(bucket|sum|count)$/.exec(name);
  if (!suffix) return false;
  const type = types.get(suffix[1]!);
  return type === 'histogram' || (type === 'summary' && suffix[2] !== 'bucket');
}

describe('metrics used by alerts and dashboard panels', () => {
  const isolation = isolatedEnv('metrics_coverage');
  let gateway: RunningGateway;
  let exposition = '';

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        ROLE: 'all',
        BOOTSTRAP_API_KEY: ADMIN,
        STREAM_TRIM_INTERVAL_MS: '100',
        ROLLUP_REFRESH_INTERVAL_MS: '200',
        REALTIME_PUSH_INTERVAL_MS: '50',
        TRACING_ENABLED: 'false',
      }),
    );
    const { url } = gateway;

    // A live subscription, so the subscription gauges and pushes have series.
    const client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${ADMIN}` },
      retryAttempts: 0,
    });
    let pushes = 0;
    const dispose = client.subscribe(
      { query: 'subscription { metricUpdated(window: ONE_MINUTE) { count } }' },
      { next: () => void pushes++, error: () => undefined, complete: () => undefined },
    );

    const recorded = await gql(url, RecordEventsDocument, {
      key: ADMIN,
      variables: { events: [1, 2, 3].map((i) => ({ type: 'coverage', userId: `u${i}`, value: i })) },
    });
    assert.equal(recorded.data?.recordEvents.accepted, 3);
    await waitFor(async () => pushes > 0, 10_000);
    await gql(url, ViewerDocument, { key: ADMIN });
    await gql(url, DailyStatsDocument, {
      key: ADMIN,
      variables: { from: new Date(Date.now() - 86_400_000).toISOString(), to: new Date().toISOString() },
    });
    // A refresh of the rollups empties the tenant's cache, so ask until one answer is a hit. Each
    // ask is a document of its own: a repeated one would be answered whole by the response cache,
    // before the per-field cache is asked.
    let probe = 0;
    await waitFor(async () => {
      await gql(url, EventTypesDocument, { key: ADMIN, variables: { first: 10 } });
      await fetch(`${url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
        body: JSON.stringify({ query: `query Probe${probe++} { eventTypes(first: 10) { type count } }` }),
      });
      const text = await (await fetch(`${url}/metrics`)).text();
      return text.includes('query_cache_requests_total{field="eventTypes",result="hit"}');
    }, 15_000);
    // A refused subscription and a bad key, for the refusal counters.
    await gql(url, ViewerDocument, { key: 'agk_not-a-key' });
    // /ready sets dependency_up.
    await fetch(`${url}/ready`);
    // The rollups refresh once the persister has stored the events.
    await waitFor(
      async () => (await (await fetch(`${url}/metrics`)).text()).includes('rollup_staleness_seconds{'),
      15_000,
    );
    dispose();
    await client.dispose();
    exposition = await (await fetch(`${url}/metrics`)).text();
  });

  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('parses a metric out of every alert and every panel', () => {
    assert.ok(alertExpressions.length >= 10);
    assert.ok(panelExpressions.length >= 12);
    for (const { where, expr } of [...alertExpressions, ...panelExpressions])
      assert.ok(promqlMetricNames(expr).length > 0, `${where} reads a metric: ${expr}`);
  });

  it('finds each of them in /metrics', () => {
    const types = families(exposition);
    const missing: string[] = [];
    for (const { where, expr } of [...alertExpressions, ...panelExpressions]) {
      for (const name of promqlMetricNames(expr)) if (!exported(name, types)) missing.push(`${where}: ${name}`);
    }
    assert.deepEqual(missing, []);
  });

  it('has samples for the pipeline, cache, subscription and pool series after that traffic', () => {
    for (const sample of [
      'events_ingested_total{outcome="accepted"} 3',
      'events_persisted_total{outcome="stored"} 3',
      'query_cache_requests_total{field="eventTypes",result="hit"}',
      'subscription_pushes_total{field="metricUpdated"}',
      'stream_group_lag{group="persist",partition="0"}',
      'db_pool_connections{pool="main",state="total"}',
      'db_pool_connections{pool="event_reads",state="waiting"} 0',
      'dependency_up{dependency="redis"} 1',
      'rollup_staleness_seconds{source="rollup_hour"}',
      'graphql_operation_duration_seconds_count{operation_name="EventTypes"',
    ]) {
      assert.ok(exposition.includes(sample), `/metrics has ${sample}`);
    }
  });

  it('selects and groups only by labels those metrics have', () => {
    // The label names each metric is declared with, whether or not it has samples yet.
    const { registry } = createMetrics();
    const declared = (name: string): string[] | undefined => {
      const histogram = /^(.*)_(bucket|sum|count)$/.exec(name);
      const metric =
        registry.getSingleMetric(name) ?? (histogram ? registry.getSingleMetric(histogram[1]!) : undefined);
      if (!metric) return SYNTHETIC.has(name) ? TARGET_LABELS : undefined;
      const labels = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
      return [...labels, ...TARGET_LABELS, ...(name.endsWith('_bucket') ? ['le'] : [])];
    };
    const wrong: string[] = [];
    for (const { where, expr } of [...alertExpressions, ...panelExpressions]) {
      const { selectors, grouping } = promqlLabels(expr);
      const inExpression = new Set<string>();
      for (const name of promqlMetricNames(expr)) for (const l of declared(name) ?? []) inExpression.add(l);
      for (const [metric, labels] of selectors) {
        const known = declared(metric);
        for (const label of labels)
          if (!known?.includes(label)) wrong.push(`${where}: ${metric} has no label ${label}`);
      }
      for (const label of grouping) if (!inExpression.has(label)) wrong.push(`${where}: no metric has label ${label}`);
    }
    assert.deepEqual(wrong, []);
  });
});
