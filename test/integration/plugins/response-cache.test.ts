import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { createPgStatementCounter, type PgStatementCounter } from '../../helpers/pg-statement-counter.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_response-cache-admin-key-0000000000000000000';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

const TIMESERIES = `query Series($type: String, $from: DateTime!, $to: DateTime!) {
  timeseries(type: $type, interval: HOUR, from: $from, to: $to) { bucket count uniqueUsers sum avg min max p50 p95 p99 }
}`;
/** Two operations in one document: the operation name picks the answer. */
const TWO_OPERATIONS = `query Types { eventTypes(first: 10) { type count } }
query Daily($from: DateTime!, $to: DateTime!) { dailyStats(from: $from, to: $to) { day totalEvents } }`;
const RECORD = `mutation Record($events: [EventInput!]!) { recordEvents(events: $events) { accepted } }`;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions?: { code?: string } }[];
    extensions?: { cost?: Record<string, number | null> };
  } | null;
}

async function answer(response: Response): Promise<Answer> {
  const text = await response.text();
  return {
    status: response.status,
    headers: response.headers,
    text,
    body: text ? (JSON.parse(text) as Answer['body']) : null,
  };
}

async function post(url: string, key: string | null, body: Record<string, unknown>): Promise<Answer> {
  return answer(
    await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
      body: JSON.stringify(body),
    }),
  );
}

async function get(url: string, key: string, params: Record<string, unknown>, headers: Record<string, string> = {}) {
  const search = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) search.set(k, typeof v === 'string' ? v : JSON.stringify(v));
  return answer(
    await fetch(`${url}/graphql?${search}`, {
      headers: { authorization: `Bearer ${key}`, 'apollo-require-preflight': 'true', ...headers },
    }),
  );
}

/** The bytes of the answer before its extensions (Apollo writes data, errors, extensions in that order). */
const dataBytes = (a: Answer) => a.text.slice(0, a.text.indexOf(',"extensions":'));

describe('whole-response cache', () => {
  const isolation = isolatedEnv('response_cache');
  /** ROLE=all straight to Postgres: ingests and refreshes the rollups (bumping the generation). */
  let writer: RunningGateway;
  /** ROLE=api behind a statement-counting proxy and without the per-field query cache: every executed statistics field reaches Postgres. */
  let reader: RunningGateway;
  let counter: PgStatementCounter;
  let pool: pg.Pool;
  let redis: Redis;
  let readerA: string;
  let readerB: string;
  let writerOnlyA: string;
  let cheapA: { plaintext: string; id: string };
  let tenantA: string;
  const to = new Date(Math.floor(Date.now() / HOUR) * HOUR - HOUR);
  /** 168 hourly points, ending an hour before the current one: the aggregate (or closed) tier, not the 5 s one. */
  const week = { from: new Date(to.getTime() - 7 * DAY).toISOString(), to: to.toISOString() };

  const resolverCalls = (url: string, field: string) =>
    scrapeMetric(url, `graphql_resolver_duration_seconds_count{parent_type="Query",field="${field}"}`);
  const cacheRequests = (url: string, result: string) =>
    scrapeMetric(url, `response_cache_requests_total{result="${result}"}`);

  /** Waits until a refresh round that started after now has been recorded. */
  async function caughtUp(): Promise<void> {
    const since = Date.now();
    await waitFor(async () => {
      const { rows } = await pool.query<{ at: Date | null }>('SELECT min(refreshed_at) AS at FROM rollup_refresh');
      const dirty = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rollup_dirty');
      return rows[0]!.at !== null && rows[0]!.at.getTime() > since && dirty.rows[0]!.n === 0;
    }, 15_000);
  }

  /**
   * Resets the statement count after re-verifying both readers' keys with a query that runs no SQL
   * of its own, so a key check falling due (AUTH_CACHE_TTL_MS) on a slow machine is not counted.
   */
  async function quiet(): Promise<void> {
    for (const key of [readerA, readerB]) await post(reader.url, key, { query: '{ viewer { tenant } }' });
    counter.reset();
  }

  async function record(key: string, events: Record<string, unknown>[]): Promise<void> {
    const res = await post(writer.url, key, { query: RECORD, variables: { events } });
    assert.equal((res.body?.data?.recordEvents as { accepted: number }).accepted, events.length, res.text);
  }

  before(async () => {
    writer = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN, INGEST_ACK: 'postgres', ROLLUP_REFRESH_INTERVAL_MS: '100' }),
    );
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    const keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    readerA = (await keys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    writerOnlyA = (await keys.createKey({ tenantSlug: 'demo', name: 'writer', scopes: ['events:write'] })).plaintext;
    const cheap = await keys.createKey({
      tenantSlug: 'demo',
      name: 'cheap',
      scopes: ['analytics:read'],
      maxOperationCost: 20,
    });
    cheapA = { plaintext: cheap.plaintext, id: cheap.apiKey.id };
    const adminB = (await keys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    readerB = (await keys.createKey({ tenantSlug: 'other', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    tenantA = (await pool.query<{ id: string }>(`SELECT id FROM tenants WHERE slug = 'demo'`)).rows[0]!.id;

    const spread = (n: number, type: string) =>
      Array.from({ length: n }, (_, i) => ({
        type,
        userId: `user-${i % 17}`,
        value: i % 7,
        timestamp: new Date(to.getTime() - ((i * 37 * 60_000) % (7 * DAY)) - 60_000).toISOString(),
      }));
    await record(ADMIN, [...spread(300, 'page_view'), ...spread(120, 'click')]);
    await record(adminB, spread(50, 'page_view'));
    await caughtUp();

    const url = new URL(isolation.databaseUrl);
    counter = await createPgStatementCounter(Number(url.port || 5432));
    url.port = String(counter.port);
    url.hostname = '127.0.0.1';
    reader = await startGateway(
      isolation.env({
        ROLE: 'api',
        DATABASE_URL: url.toString(),
        MIGRATE_ON_START: 'false',
        QUERY_CACHE_ENABLED: 'false',
        AUDIT_FLUSH_INTERVAL_MS: '20',
        // A budget that refills next to nothing during the test, so each charge shows in it.
        COST_BUDGET_CAPACITY: '1000000',
        COST_BUDGET_RESTORE_PER_MINUTE: '1',
      }),
    );
  });
  after(async () => {
    await reader?.stop();
    await counter?.close();
    await writer?.stop();
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  it('answers a repeat without executing: no resolver, no SQL, the same bytes, and still costed and charged', async () => {
    const request = { query: TIMESERIES, variables: week };
    await quiet();
    const calls = await resolverCalls(reader.url, 'timeseries');
    const miss = await post(reader.url, readerA, request);
    assert.equal(miss.body?.errors, undefined, miss.text);
    assert.equal((miss.body!.data!.timeseries as unknown[]).length, 168);
    assert.ok(counter.count() >= 1, `the miss ran ${counter.count()} statements`);
    assert.equal(await resolverCalls(reader.url, 'timeseries'), calls + 1);
    const hits = await cacheRequests(reader.url, 'hit');

    await quiet();
    const hit = await post(reader.url, readerA, request);
    assert.equal(counter.count(), 0, `the hit ran ${counter.count()} statements`);
    assert.equal(await resolverCalls(reader.url, 'timeseries'), calls + 1);
    assert.equal(await cacheRequests(reader.url, 'hit'), hits + 1);
    assert.equal(dataBytes(hit), dataBytes(miss));
    assert.ok(dataBytes(hit).length > 10_000, `data bytes ${dataBytes(hit).length}`);

    const [m, h] = [miss.body!.extensions!.cost!, hit.body!.extensions!.cost!];
    assert.equal(h.requestedQueryCost, m.requestedQueryCost);
    assert.equal(h.actualQueryCost, m.actualQueryCost);
    assert.ok(m.actualQueryCost! > 0);
    // Each hit is charged the same points as the executed answer (two hits in a row: nothing else
    // of this key's is charged in between).
    const next = (await post(reader.url, readerA, request)).body!.extensions!.cost!;
    const charged = h.currentlyAvailable! - next.currentlyAvailable!;
    assert.ok(Math.abs(charged - h.actualQueryCost!) <= 1, `charged ${charged}, cost ${h.actualQueryCost}`);

    // A successful answer, cached or not, leaves no audit row (only mutations, admin reads and refusals do).
    await new Promise((r) => setTimeout(r, 100));
    const { rows } = await pool.query(
      `SELECT 1 FROM audit_log a JOIN api_keys k ON k.id = a.api_key_id WHERE k.name = 'reader' AND a.tenant_id = $1`,
      [tenantA],
    );
    assert.equal(rows.length, 0);
  });

  it('keys by variables and operation name, and never answers one tenant with another’s', async () => {
    const typeOnly = { query: TIMESERIES, variables: { ...week, type: 'click' } };
    const all = await post(reader.url, readerA, { query: TIMESERIES, variables: week });
    await quiet();
    const clicks = await post(reader.url, readerA, typeOnly);
    assert.ok(counter.count() >= 1, 'other variables are another entry');
    const total = (a: Answer) => (a.body!.data!.timeseries as { count: number }[]).reduce((n, p) => n + p.count, 0);
    assert.equal(total(all), 420);
    assert.equal(total(clicks), 120);
    // Variable order does not matter: normalized before hashing.
    await quiet();
    const reordered = await post(reader.url, readerA, {
      query: TIMESERIES,
      variables: { type: 'click', to: week.to, from: week.from },
    });
    assert.equal(counter.count(), 0);
    assert.equal(dataBytes(reordered), dataBytes(clicks));

    const types = await post(reader.url, readerA, { query: TWO_OPERATIONS, operationName: 'Types', variables: week });
    await quiet();
    const daily = await post(reader.url, readerA, { query: TWO_OPERATIONS, operationName: 'Daily', variables: week });
    assert.ok(counter.count() >= 1, 'another operation of the same document is another entry');
    assert.ok(Array.isArray(types.body!.data!.eventTypes) && !('dailyStats' in types.body!.data!));
    assert.ok(Array.isArray(daily.body!.data!.dailyStats) && !('eventTypes' in daily.body!.data!));
    await quiet();
    const again = await post(reader.url, readerA, { query: TWO_OPERATIONS, operationName: 'Types', variables: week });
    assert.equal(counter.count(), 0);
    assert.equal(dataBytes(again), dataBytes(types));

    // Same document, same variables, another tenant: its own data, from its own execution.
    await quiet();
    const b = await post(reader.url, readerB, { query: TIMESERIES, variables: week });
    assert.ok(counter.count() >= 1, 'tenant B was answered from tenant A’s entry');
    assert.equal(total(b), 50);
    await quiet();
    assert.equal(total(await post(reader.url, readerB, { query: TIMESERIES, variables: week })), 50);
    assert.equal(total(await post(reader.url, readerA, { query: TIMESERIES, variables: week })), 420);
    assert.equal(counter.count(), 0);
  });

  it('still applies scopes and cost limits to a cached operation, and audits the refusal', async () => {
    const request = { query: TIMESERIES, variables: week };
    await post(reader.url, readerA, request);
    const denied = await post(reader.url, writerOnlyA, request);
    assert.equal(denied.body?.errors?.[0]?.extensions?.code, 'FORBIDDEN', denied.text);
    assert.equal(denied.body?.data, null);
    const refused = await post(reader.url, cheapA.plaintext, request);
    assert.equal(refused.body?.errors?.[0]?.extensions?.code, 'COST_LIMIT_EXCEEDED', refused.text);
    assert.equal(refused.body?.data, undefined);
    await waitFor(async () => {
      const { rows } = await pool.query(`SELECT result FROM audit_log WHERE api_key_id = $1`, [cheapA.id]);
      return rows.length === 1 && rows[0].result === 'rejected';
    }, 5_000);
    // Mixed with a field that is not cacheable: executed every time.
    const mixed = {
      query: `query { viewer { tenant } timeseries(interval: HOUR, from: "${week.from}", to: "${week.to}") { count } }`,
    };
    await post(reader.url, readerA, mixed);
    await quiet();
    const calls = await resolverCalls(reader.url, 'timeseries');
    const res = await post(reader.url, readerA, mixed);
    assert.equal(res.body?.errors, undefined, res.text);
    assert.equal(await resolverCalls(reader.url, 'timeseries'), calls + 1);
  });

  it('drops the cached answer once a new event reaches the rollups', async () => {
    const request = { query: TIMESERIES, variables: week };
    const total = (a: Answer) => (a.body!.data!.timeseries as { count: number }[]).reduce((n, p) => n + p.count, 0);
    const first = await post(reader.url, readerA, request);
    await quiet();
    assert.equal(total(await post(reader.url, readerA, request)), total(first));
    assert.equal(counter.count(), 0);
    await record(ADMIN, [
      { type: 'page_view', userId: 'late', timestamp: new Date(to.getTime() - 30 * 60_000).toISOString() },
    ]);
    await caughtUp();
    await quiet();
    const after = await post(reader.url, readerA, request);
    assert.ok(counter.count() >= 1, 'the answer was not recomputed after the generation moved');
    assert.equal(total(after), total(first) + 1);
    // Tenant B's data did not change, but the generation is per tenant: its entry stays valid.
    await quiet();
    await post(reader.url, readerB, request);
    assert.equal(counter.count(), 0);
  });

  it('gives GET answers Cache-Control and an ETag, and 304 for a matching If-None-Match', async () => {
    const params = { query: TIMESERIES, variables: { ...week, type: 'page_view' } };
    const first = await get(reader.url, readerA, params);
    assert.equal(first.status, 200, first.text);
    const maxAge = Number(/^private, max-age=(\d+)$/.exec(first.headers.get('cache-control') ?? '')?.[1]);
    // The aggregate tier (300 s), or closed days (3600 s) when the range ended before today.
    assert.ok(maxAge === 300 || maxAge === 3600, `cache-control ${first.headers.get('cache-control')}`);
    const etag = first.headers.get('etag')!;
    const dataHash = createHash('sha256').update(dataBytes(first).slice('{"data":'.length)).digest('base64url');
    assert.equal(etag, `W/"${dataHash.slice(0, 27)}"`);

    const second = await get(reader.url, readerA, params);
    assert.equal(second.headers.get('etag'), etag);
    assert.ok(second.headers.has('age'));
    assert.ok(second.body?.extensions?.cost, 'a cached GET answer carries extensions.cost');

    const before304 = await scrapeMetric(reader.url, 'response_cache_not_modified_total');
    const notModified = await get(reader.url, readerA, params, { 'if-none-match': etag });
    assert.equal(notModified.status, 304);
    assert.equal(notModified.text, '');
    assert.equal(await scrapeMetric(reader.url, 'response_cache_not_modified_total'), before304 + 1);
    const changed = await get(reader.url, readerA, params, { 'if-none-match': 'W/"something-else"' });
    assert.equal(changed.status, 200);

    // Not cacheable over GET: no-store. POST answers get no cache header.
    const viewer = await get(reader.url, readerA, { query: '{ viewer { tenant } }' });
    assert.equal(viewer.status, 200, viewer.text);
    assert.equal(viewer.headers.get('cache-control'), 'no-store');
    const posted = await post(reader.url, readerA, params);
    assert.equal(posted.headers.get('cache-control'), null);
  });

  it('shares automatic persisted queries between gateways through Redis', async () => {
    const query = `query PersistedTypes { eventTypes(first: 3) { type } }`;
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = { persistedQuery: { version: 1, sha256Hash } };
    const unknown = await get(reader.url, readerA, { extensions });
    assert.equal(unknown.body?.errors?.[0]?.extensions?.code, 'PERSISTED_QUERY_NOT_FOUND', unknown.text);

    const registered = await post(writer.url, readerA, { query, extensions });
    assert.equal(registered.body?.errors, undefined, registered.text);
    assert.equal(await redis.exists(`${isolation.redisKeyPrefix}apq:${sha256Hash}`), 1);
    const ttl = await redis.ttl(`${isolation.redisKeyPrefix}apq:${sha256Hash}`);
    assert.ok(ttl > 3600 && ttl <= 86_400, `APQ ttl ${ttl}`);

    const byHash = await get(reader.url, readerA, { extensions });
    assert.equal(byHash.status, 200, byHash.text);
    assert.deepEqual(byHash.body?.data, registered.body?.data);
  });
});
