import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { getIntrospectionQuery } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { pino } from 'pino';
import WebSocket from 'ws';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { RecordEventsDocument } from '../../generated/graphql.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { createPgStatementCounter, type PgStatementCounter } from '../../helpers/pg-statement-counter.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_cost-limits-admin-key-000000000000000000000000';
const HOUR = 3_600_000;

interface Cost {
  requestedQueryCost: number | null;
  actualQueryCost: number | null;
  maxOperationCost: number;
  maximumAvailable: number | null;
  currentlyAvailable: number | null;
  restoreRate: number | null;
}

interface Answer {
  status: number;
  headers: Headers;
  data?: Record<string, unknown> | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
  extensions?: { cost?: Cost };
}

/** POSTs raw GraphQL (or a batch of it): these tests send shapes no typed document has. */
async function post(url: string, body: unknown, key?: string): Promise<Answer> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  const parsed = (await response.json()) as Omit<Answer, 'status' | 'headers'>;
  return { status: response.status, headers: response.headers, ...parsed };
}
const query = (url: string, q: string, key?: string, variables?: Record<string, unknown>) =>
  post(url, { query: q, variables }, key);
const code = (a: { errors?: { extensions?: Record<string, unknown> }[] }) => a.errors?.[0]?.extensions?.code;

/** `n` hourly buckets: timeseries answers every bucket, empty ones too, so its actual cost is its requested cost. */
const hours = (n: number, fields = 'count') => {
  const to = Math.floor(Date.now() / HOUR) * HOUR;
  return `{ timeseries(interval: HOUR, from: "${new Date(to - n * HOUR).toISOString()}", to: "${new Date(to).toISOString()}") { ${fields} } }`;
};
const SIXTY_HOURS = hours(60);
/** users(first: 100) with 5 events each and their users: 2 + 100 × (1 + 5 × 2) = 1102. */
const OVER_DEFAULT_MAX = '{ users(first: 100) { edges { node { id events(first: 5) { id user { id } } } } } }';

describe('cost limits', () => {
  const isolation = isolatedEnv('cost_limits');
  /** Full gateway: records the events the queries read. */
  let writer: RunningGateway;
  /** ROLE=api behind a statement-counting proxy, default limits. */
  let counted: RunningGateway;
  let counter: PgStatementCounter;
  /** Two replicas sharing one Redis prefix, a 100-point budget restoring 1 point a minute, small shape limits. */
  let replicaA: RunningGateway;
  let replicaB: RunningGateway;
  /** COST_MODE=measure. */
  let measuring: RunningGateway;
  let pool: pg.Pool;
  let redis: Redis;
  let keys: ApiKeyService;
  const clients: Client[] = [];
  const newKey = async (name: string, maxOperationCost?: number) =>
    (await keys.createKey({ tenantSlug: 'demo', name, scopes: ['analytics:read'], maxOperationCost })).plaintext;

  before(async () => {
    writer = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN, INGEST_ACK: 'postgres', ROLLUP_REFRESH_INTERVAL_MS: '100' }),
    );
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    const now = Date.now();
    const events = Array.from({ length: 40 }, (_, i) => ({
      type: ['view', 'click', 'buy'][i % 3]!,
      userId: `u-${i % 4}`,
      messageId: `m-${i}`,
      timestamp: new Date(now - 60_000 - i * 1000).toISOString(),
    }));
    const recorded = await gql(writer.url, RecordEventsDocument, { key: ADMIN, variables: { events } });
    assert.equal(recorded.data?.recordEvents.accepted, 40, JSON.stringify(recorded.errors));
    // The user rollup knows the four users once a refresh round has run.
    await waitFor(async () => (await pool.query('SELECT count(*)::int AS n FROM rollup_user')).rows[0].n === 4, 10_000);

    const url = new URL(isolation.databaseUrl);
    counter = await createPgStatementCounter(Number(url.port || 5432));
    url.port = String(counter.port);
    const apiOnly = { ROLE: 'api', MIGRATE_ON_START: 'false', QUERY_CACHE_ENABLED: 'false' };
    counted = await startGateway(
      isolation.env({ ...apiOnly, DATABASE_URL: url.toString(), AUTH_CACHE_TTL_MS: '4000' }),
    );
    const small = isolation.env({
      ...apiOnly,
      COST_BUDGET_CAPACITY: '100',
      COST_BUDGET_RESTORE_PER_MINUTE: '1',
      // Exact figures across replicas: every charge goes to the shared bucket (leases are tested
      // in cost-budget.test.ts).
      COST_BUDGET_LEASE_POINTS: '0',
      MAX_QUERY_DEPTH: '4',
      MAX_ALIASES: '2',
      MAX_DIRECTIVES: '1',
      MAX_TOKENS: '200',
      MAX_BATCH_OPERATIONS: '2',
    });
    replicaA = await startGateway(small);
    replicaB = await startGateway(small);
    measuring = await startGateway(isolation.env({ ...apiOnly, COST_MODE: 'measure', MAX_QUERY_DEPTH: '3' }));
  });

  after(async () => {
    for (const c of clients) await c.dispose();
    for (const g of [counted, replicaA, replicaB, measuring, writer]) await g?.stop();
    await counter?.close();
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  it('refuses an operation over the maximum before any resolver or SQL runs', async () => {
    const key = await newKey('over-max');
    // Twice: the first request looks the key up (and records its use); the second is served from the cache.
    for (let i = 0; i < 2; i++) assert.equal(code(await query(counted.url, '{ viewer { tenant } }', key)), undefined);
    counter.reset();
    // Sent twice: the second is answered from what was computed for the first (the same parsed
    // document comes back from Apollo's store), and is refused all the same.
    const [first, refused] = [
      await query(counted.url, OVER_DEFAULT_MAX, key),
      await query(counted.url, OVER_DEFAULT_MAX, key),
    ];
    assert.deepEqual(first.extensions!.cost, refused.extensions!.cost);
    assert.equal(refused.status, 400);
    assert.equal(code(refused), 'COST_LIMIT_EXCEEDED');
    assert.equal(refused.errors![0]!.extensions!.limit, 'operation_cost');
    assert.equal(refused.data, undefined);
    assert.equal(counter.count(), 0, 'no statement reached Postgres');
    assert.deepEqual(
      refused.extensions!.cost,
      {
        requestedQueryCost: 1102,
        actualQueryCost: 0,
        maxOperationCost: 1000,
        maximumAvailable: 20_000,
        currentlyAvailable: null,
        restoreRate: 333.33,
      },
      'nothing charged: the budget is not even read',
    );

    // The same query one notch smaller runs, and reaches Postgres: the count above could have been non-zero.
    const allowed = await query(counted.url, OVER_DEFAULT_MAX.replace('first: 100', 'first: 90'), key);
    assert.equal(code(allowed), undefined, JSON.stringify(allowed.errors));
    assert.ok(counter.count() > 0);
    assert.equal(allowed.extensions!.cost!.requestedQueryCost, 2 + 90 * 11);
  });

  it("applies a key's own maximum, set at creation over GraphQL", async () => {
    const created = await query(
      counted.url,
      'mutation { big: createApiKey(name: "big", scopes: ["analytics:read"], maxOperationCost: 2000) { key apiKey { maxOperationCost } } }',
      ADMIN,
    );
    const big = created.data!.big as { key: string; apiKey: { maxOperationCost: number } };
    assert.equal(big.apiKey.maxOperationCost, 2000);
    const answer = await query(counted.url, OVER_DEFAULT_MAX, big.key);
    assert.equal(code(answer), undefined, JSON.stringify(answer.errors));
    assert.equal(answer.extensions!.cost!.maxOperationCost, 2000);

    const tight = await newKey('tight', 50);
    const refused = await query(counted.url, '{ events(first: 100) { edges { node { id } } } }', tight);
    assert.equal(code(refused), 'COST_LIMIT_EXCEEDED');
    assert.equal(refused.extensions!.cost!.maxOperationCost, 50);
    const budget = await query(
      counted.url,
      '{ viewer { costBudget { maxOperationCost maximumAvailable restoreRate } } }',
      tight,
    );
    assert.deepEqual((budget.data!.viewer as { costBudget: unknown }).costBudget, {
      maxOperationCost: 50,
      maximumAvailable: 20_000,
      restoreRate: 333.33,
    });
  });

  it('shares one budget between replicas and answers RATE_LIMITED with when to retry', async () => {
    const key = await newKey('shared');
    const first = await query(replicaA.url, SIXTY_HOURS, key);
    assert.equal(code(first), undefined, JSON.stringify(first.errors));
    assert.deepEqual(first.extensions!.cost, {
      requestedQueryCost: 60,
      actualQueryCost: 60,
      maxOperationCost: 100,
      maximumAvailable: 100,
      currentlyAvailable: 40,
      restoreRate: 0.02,
    });
    const second = await query(replicaB.url, SIXTY_HOURS, key);
    assert.equal(second.status, 429);
    assert.equal(code(second), 'RATE_LIMITED');
    const retryAfterMs = second.errors![0]!.extensions!.retryAfterMs as number;
    // 20 points missing at 1 point a minute.
    assert.ok(retryAfterMs > 19 * 60_000 && retryAfterMs <= 20 * 60_000, String(retryAfterMs));
    assert.equal(second.headers.get('retry-after'), String(Math.ceil(retryAfterMs / 1000)));
    assert.equal(second.extensions!.cost!.currentlyAvailable, 40, 'a refused operation takes nothing');
    assert.equal(second.extensions!.cost!.actualQueryCost, 0);
    // Still enough for something smaller, on either replica.
    const small = await query(replicaB.url, '{ viewer { costBudget { currentlyAvailable } } }', key);
    assert.equal(
      (small.data!.viewer as { costBudget: { currentlyAvailable: number } }).costBudget.currentlyAvailable,
      38,
    );
    assert.ok((await scrapeMetric(replicaB.url, 'graphql_cost_rejections_total{reason="budget",mode="enforce"}')) >= 1);
  });

  it('refunds what an operation did not use once the lists come back short', async () => {
    const key = await newKey('refund');
    const answer = await query(replicaA.url, '{ eventTypes(first: 90) { type count } }', key);
    assert.equal((answer.data!.eventTypes as unknown[]).length, 3);
    const cost = answer.extensions!.cost!;
    assert.equal(cost.requestedQueryCost, 90);
    assert.equal(cost.actualQueryCost, 3);
    assert.equal(cost.currentlyAvailable, 97, 'charged 90, refunded 87');
    const budget = await query(replicaB.url, '{ viewer { costBudget { currentlyAvailable } } }', key);
    assert.equal(
      (budget.data!.viewer as { costBudget: { currentlyAvailable: number } }).costBudget.currentlyAvailable,
      95,
    );
  });

  it('puts extensions.cost on every response, refusals and anonymous requests included', async () => {
    const key = await newKey('every');
    const ok = await query(counted.url, '{ users(first: 10) { edges { node { id events(first: 2) { id } } } } }', key);
    assert.equal(ok.extensions!.cost!.requestedQueryCost, 2 + 10 * 3);
    assert.equal(ok.extensions!.cost!.actualQueryCost, 2 + 4 * 3, 'four users, each with two events');
    const anonymous = await query(counted.url, '{ viewer { tenant } }');
    assert.equal(code(anonymous), 'UNAUTHENTICATED');
    assert.deepEqual(anonymous.extensions!.cost, {
      requestedQueryCost: 1,
      actualQueryCost: 0,
      maxOperationCost: 1000,
      maximumAvailable: null,
      currentlyAvailable: null,
      restoreRate: null,
    });
    const invalid = await query(counted.url, '{ nope }', key);
    assert.equal(code(invalid), 'GRAPHQL_VALIDATION_FAILED');
    assert.equal(invalid.extensions!.cost!.requestedQueryCost, null);
  });

  it('lets introspection through under the default limits', async () => {
    const answer = await query(counted.url, getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }));
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.ok((answer.data!.__schema as { types: unknown[] }).types.length > 10);
    assert.equal(answer.extensions!.cost!.requestedQueryCost, 0);
  });

  it('in measure mode runs what it would refuse, and reports and counts it', async () => {
    const key = await newKey('measure');
    const before = await scrapeMetric(
      measuring.url,
      'graphql_cost_rejections_total{reason="operation_limit",mode="measure"}',
    );
    const answer = await query(measuring.url, OVER_DEFAULT_MAX, key);
    assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
    assert.equal((answer.data!.users as { edges: unknown[] }).edges.length, 4);
    assert.equal(answer.extensions!.cost!.requestedQueryCost, 1102);
    assert.equal(answer.extensions!.cost!.maxOperationCost, 1000);
    const after = await scrapeMetric(
      measuring.url,
      'graphql_cost_rejections_total{reason="operation_limit",mode="measure"}',
    );
    assert.equal(after, before + 1);
    const depthCount = () =>
      scrapeMetric(measuring.url, 'graphql_cost_rejections_total{reason="depth",mode="measure"}');
    const depthBefore = await depthCount();
    const deep = await query(measuring.url, '{ users { edges { node { events { user { id } } } } } }', key);
    assert.equal(deep.errors, undefined);
    assert.equal(await depthCount(), depthBefore + 1);
  });

  it('refuses operations over the depth, alias, directive, token and batch limits', async () => {
    const key = await newKey('shape');
    const deep = await query(replicaA.url, '{ users(first: 1) { edges { node { events(first: 1) { id } } } } }', key);
    assert.equal(code(deep), 'COST_LIMIT_EXCEEDED');
    const again = await query(replicaA.url, '{ users(first: 1) { edges { node { events(first: 1) { id } } } } }', key);
    assert.equal(again.errors![0]!.extensions!.limit, 'depth', 'a repeated document is refused again');
    assert.deepEqual(
      {
        limit: deep.errors![0]!.extensions!.limit,
        maximum: deep.errors![0]!.extensions!.maximum,
        found: deep.errors![0]!.extensions!.found,
      },
      { limit: 'depth', maximum: 4, found: 5 },
    );
    assert.equal(code(await query(replicaA.url, '{ users(first: 1) { edges { node { id } } } }', key)), undefined);

    const aliases = await query(
      replicaA.url,
      '{ a: viewer { tenant } b: viewer { tenant } c: viewer { tenant } }',
      key,
    );
    assert.equal(aliases.errors![0]!.extensions!.limit, 'aliases');
    assert.equal(code(await query(replicaA.url, '{ a: viewer { tenant } b: viewer { tenant } }', key)), undefined);

    const directives = await query(
      replicaA.url,
      '{ viewer { tenant @include(if: true) keyName @skip(if: false) } }',
      key,
    );
    assert.equal(directives.errors![0]!.extensions!.limit, 'directives');

    const tokens = await query(replicaA.url, `{ viewer { ${'tenant '.repeat(200)} } }`, key);
    assert.equal(code(tokens), 'GRAPHQL_PARSE_FAILED');
    assert.match(tokens.errors![0]!.message, /more th\w+ 200 tokens/);
    assert.equal(await scrapeMetric(replicaA.url, 'graphql_cost_rejections_total{reason="tokens",mode="enforce"}'), 1);

    const batch = await post(
      replicaA.url,
      [1, 2, 3].map(() => ({ query: '{ viewer { tenant } }' })),
      key,
    );
    assert.equal(batch.status, 400);
    assert.equal(code(batch), 'COST_LIMIT_EXCEEDED');
    assert.equal(batch.errors![0]!.extensions!.limit, 'batch');
    const pair = (await fetch(`${replicaA.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify([{ query: '{ viewer { tenant } }' }, { query: hours(60, 'count bucket') }]),
    }).then((r) => r.json())) as Answer[];
    assert.equal(pair.length, 2);
    assert.deepEqual(
      pair.map((a) => a.extensions!.cost!.requestedQueryCost),
      [1, 60],
      'each operation of a batch is costed on its own',
    );
  });

  it('serves without a budget while Redis is unreachable (fail-open), and counts it', async () => {
    const proxy = await createTcpProxy(Number(new URL(REDIS_URL).port || 6379));
    const gateway = await startGateway(
      isolation.env({
        ROLE: 'api',
        MIGRATE_ON_START: 'false',
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        // Without a lease to spend meanwhile, the first charge after the cut meets the outage.
        COST_BUDGET_LEASE_POINTS: '0',
      }),
    );
    try {
      const key = await newKey('redis-down');
      const up = await query(gateway.url, '{ viewer { tenant } }', key);
      assert.equal(typeof up.extensions!.cost!.currentlyAvailable, 'number');
      proxy.cut();
      const down = await query(gateway.url, '{ viewer { tenant costBudget { currentlyAvailable } } }', key);
      assert.deepEqual(down.data, { viewer: { tenant: 'demo', costBudget: null } }, JSON.stringify(down.errors));
      assert.equal(down.extensions!.cost!.currentlyAvailable, null);
      assert.equal(down.extensions!.cost!.requestedQueryCost, 2);
      assert.ok((await scrapeMetric(gateway.url, 'cost_budget_errors_total')) >= 1);
      // The per-operation maximum needs no Redis and still holds.
      assert.equal(code(await query(gateway.url, OVER_DEFAULT_MAX, key)), 'COST_LIMIT_EXCEEDED');
    } finally {
      await gateway.stop();
      await proxy.close();
    }
  });

  it('applies the same limits to subscriptions, and charges a subscription when it starts', async () => {
    const key = await newKey('subscriber');
    const client = createClient({
      url: `${replicaA.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    clients.push(client);
    const subscribe = (q: string) => {
      const outcome = { received: 0, errors: [] as { extensions?: Record<string, unknown> }[] };
      client.subscribe(
        { query: q },
        {
          next: () => void outcome.received++,
          error: (err) =>
            outcome.errors.push(...(Array.isArray(err) ? err : [err as { extensions?: Record<string, unknown> }])),
          complete: () => undefined,
        },
      );
      return outcome;
    };
    const deep = subscribe('subscription { eventRecorded { user { events { user { id } } } } }');
    await waitFor(async () => deep.errors.length > 0, 5_000);
    assert.equal(deep.errors[0]!.extensions!.code, 'COST_LIMIT_EXCEEDED');
    assert.equal(deep.errors[0]!.extensions!.limit, 'depth');

    const long = subscribe(`subscription { metricUpdated(window: ONE_MINUTE) { ${'count '.repeat(200)} } }`);
    await waitFor(async () => long.errors.length > 0, 5_000);
    assert.equal(long.errors[0]!.extensions!.code, 'GRAPHQL_PARSE_FAILED', 'the token limit, as over HTTP');

    const live = subscribe('subscription { metricUpdated(window: ONE_MINUTE) { count } }');
    await waitFor(async () => live.received > 0, 5_000);
    const budget = await query(replicaA.url, '{ viewer { costBudget { currentlyAvailable } } }', key);
    assert.equal(
      (budget.data!.viewer as { costBudget: { currentlyAvailable: number } }).costBudget.currentlyAvailable,
      100 - 10 - 2,
      'the subscription took its 10 points when it started',
    );

    // A budget left with less than a subscription costs refuses the next one with RATE_LIMITED.
    assert.equal(code(await query(replicaA.url, hours(60, 'count sum'), key)), undefined);
    assert.equal(code(await query(replicaA.url, hours(20, 'count sum'), key)), undefined);
    const refused = subscribe('subscription { metricUpdated(window: ONE_HOUR) { count } }');
    await waitFor(async () => refused.errors.length > 0, 5_000);
    assert.equal(refused.errors[0]!.extensions!.code, 'RATE_LIMITED');
    assert.ok((refused.errors[0]!.extensions!.retryAfterMs as number) > 0);
  });
});
