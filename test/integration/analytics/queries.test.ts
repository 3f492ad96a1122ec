import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { pino } from 'pino';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import {
  DailyStatsDocument,
  EventDocument,
  EventsDocument,
  EventTypesDocument,
  FreshnessDocument,
  RecordEventsDocument,
  TimeseriesDocument,
  UserDocument,
  UserLatestEventsDocument,
  UsersDocument,
  UsersWithRecentEventsDocument,
  type EventInput,
  type UsersQuery,
} from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { createPgStatementCounter, type PgStatementCounter } from '../../helpers/pg-statement-counter.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';
import { Redis } from 'ioredis';

const ADMIN = 'agk_queries-admin-key-00000000000000000000000000';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Deterministic pseudo-random numbers, so a failure reproduces. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Events over the last three days; both tenants use the same user ids and types. */
function generate(n: number, seed: number, valueScale: number): EventInput[] {
  const rnd = lcg(seed);
  const now = Date.now();
  return Array.from({ length: n }, () => {
    const user = `user-${Math.floor(rnd() ** 2 * 120)}`;
    return {
      type: ['page_view', 'click', 'purchase', 'signup'][Math.floor(rnd() ** 2 * 4)]!,
      userId: rnd() < 0.05 ? null : user,
      sessionId: `${user}-s${Math.floor(rnd() * 5)}`,
      value: rnd() < 0.3 ? null : Math.round(rnd() * 1000 * valueScale) / 100,
      timestamp: new Date(now - Math.floor(rnd() * 3 * DAY) - 60_000).toISOString(),
      properties: { n: Math.floor(rnd() * 10) },
    };
  });
}

describe('analytics queries', () => {
  const isolation = isolatedEnv('queries');
  let gateway: RunningGateway;
  /** ROLE=api behind a statement-counting proxy: no workers, so every statement is a request's. */
  let counted: RunningGateway;
  let counter: PgStatementCounter;
  let pool: pg.Pool;
  let redis: Redis;
  let readerA: string;
  let readerB: string;
  let writerOnly: string;
  let tenantA: string;
  let tenantB: string;

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        // These tests follow the per-field result cache; the whole-response cache, which would answer
        // repeats before it, has its own (test/integration/plugins/response-cache.test.ts).
        BOOTSTRAP_API_KEY: ADMIN,
        INGEST_ACK: 'postgres',
        ROLLUP_REFRESH_INTERVAL_MS: '100',
        RESPONSE_CACHE: 'off',
      }),
    );
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    const keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    readerA = (await keys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    writerOnly = (await keys.createKey({ tenantSlug: 'demo', name: 'writer', scopes: ['events:write'] })).plaintext;
    const adminB = (await keys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    readerB = (await keys.createKey({ tenantSlug: 'other', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    const tenants = await pool.query<{ slug: string; id: string }>('SELECT slug, id FROM tenants');
    tenantA = tenants.rows.find((t) => t.slug === 'demo')!.id;
    tenantB = tenants.rows.find((t) => t.slug === 'other')!.id;

    for (const [key, events] of [
      [ADMIN, generate(3000, 1, 1)],
      [adminB, generate(800, 2, 7)],
    ] as const) {
      for (let i = 0; i < events.length; i += 1000) {
        const res = await gql(gateway.url, RecordEventsDocument, {
          key,
          variables: { events: events.slice(i, i + 1000) },
        });
        assert.equal(res.data?.recordEvents.accepted, Math.min(1000, events.length - i), JSON.stringify(res.errors));
      }
    }
    await caughtUp();

    const url = new URL(isolation.databaseUrl);
    counter = await createPgStatementCounter(Number(url.port || 5432));
    url.port = String(counter.port);
    url.hostname = '127.0.0.1';
    counted = await startGateway(
      isolation.env({
        ROLE: 'api',
        DATABASE_URL: url.toString(),
        MIGRATE_ON_START: 'false',
        QUERY_CACHE_ENABLED: 'false',
        RESPONSE_CACHE: 'off',
        // users(first: 100) { events(first: 5) { user } } costs 1102 points, over the default 1000.
        COST_MAX_PER_OPERATION: '2000',
      }),
    );
  });
  after(async () => {
    await counted?.stop();
    await counter?.close();
    await gateway?.stop();
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  /** Waits until a refresh round that started after now has been recorded. */
  async function caughtUp(): Promise<void> {
    const since = Date.now();
    await waitFor(async () => {
      const { rows } = await pool.query<{ at: Date | null }>('SELECT min(refreshed_at) AS at FROM rollup_refresh');
      const dirty = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rollup_dirty');
      return rows[0]!.at !== null && rows[0]!.at.getTime() > since && dirty.rows[0]!.n === 0;
    }, 15_000);
  }

  it('pages through events newest first with stable cursors, and filters them', async () => {
    const seen: string[] = [];
    let after: string | null | undefined = null;
    let pages = 0;
    type Page = Awaited<ReturnType<typeof gql<import('../../generated/graphql.js').EventsQuery, unknown>>>;
    const filter = { type: 'purchase' };
    do {
      const res: Page = await gql(gateway.url, EventsDocument, {
        key: readerA,
        variables: { filter, first: 100, after },
      });
      assert.equal(res.errors, undefined);
      const page = res.data!.events;
      seen.push(...page.edges.map((e) => e.node.id));
      for (const e of page.edges) assert.equal(e.node.type, 'purchase');
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
      pages++;
    } while (after);
    const { rows } = await pool.query<{ id: string }>(
      "SELECT id FROM events WHERE tenant_id = $1 AND type = 'purchase' ORDER BY occurred_at DESC, id DESC",
      [tenantA],
    );
    assert.deepEqual(
      seen,
      rows.map((r) => r.id),
    );
    assert.ok(pages > 1);

    const bySession = await gql(gateway.url, EventsDocument, {
      key: readerA,
      variables: { filter: { sessionId: 'user-3-s1', userId: 'user-3' }, first: 100 },
    });
    const expected = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM events WHERE tenant_id = $1 AND session_id = 'user-3-s1' AND user_id = 'user-3'",
      [tenantA],
    );
    assert.equal(bySession.data!.events.edges.length, expected.rows[0]!.n);

    const from = new Date(Date.now() - DAY).toISOString();
    const recent = await gql(gateway.url, EventsDocument, {
      key: readerA,
      variables: { filter: { from }, first: 100 },
    });
    for (const e of recent.data!.events.edges) assert.ok(e.node.timestamp >= from);
  });

  it('refuses first over 100, a forged cursor and an inverted range with BAD_USER_INPUT', async () => {
    const big = await gql(gateway.url, EventsDocument, { key: readerA, variables: { first: 101 } });
    assert.equal(errorCode(big), 'BAD_USER_INPUT');
    const forged = await gql(gateway.url, EventsDocument, { key: readerA, variables: { after: 'bm90LWEtY3Vyc29y' } });
    assert.equal(errorCode(forged), 'BAD_USER_INPUT');
    const userCursor = (await gql(gateway.url, UsersDocument, { key: readerA, variables: { first: 1 } })).data!.users
      .pageInfo.endCursor;
    const wrongOrder = await gql(gateway.url, UsersDocument, {
      key: readerA,
      variables: { first: 1, after: userCursor, orderBy: 'EVENT_COUNT' },
    });
    assert.equal(errorCode(wrongOrder), 'BAD_USER_INPUT');
    const inverted = await gql(gateway.url, TimeseriesDocument, {
      key: readerA,
      variables: { interval: 'HOUR', from: new Date().toISOString(), to: new Date(Date.now() - HOUR).toISOString() },
    });
    assert.equal(errorCode(inverted), 'BAD_USER_INPUT');
    const tooMany = await gql(gateway.url, TimeseriesDocument, {
      key: readerA,
      variables: {
        interval: 'MINUTE',
        from: new Date(Date.now() - 30 * DAY).toISOString(),
        to: new Date().toISOString(),
      },
    });
    assert.equal(errorCode(tooMany), 'BAD_USER_INPUT');
  });

  it('answers event(id) with its user, and null for an id of another tenant', async () => {
    const { rows } = await pool.query<{ id: string; tenant_id: string; user_id: string }>(
      'SELECT DISTINCT ON (tenant_id) id, tenant_id, user_id FROM events WHERE user_id IS NOT NULL ORDER BY tenant_id, occurred_at',
    );
    const ofA = rows.find((r) => r.tenant_id === tenantA)!;
    const ofB = rows.find((r) => r.tenant_id === tenantB)!;
    const res = await gql(gateway.url, EventDocument, { key: readerA, variables: { id: ofA.id } });
    assert.equal(res.errors, undefined);
    assert.equal(res.data!.event!.id, ofA.id);
    assert.equal(res.data!.event!.user!.id, ofA.user_id);
    const count = await pool.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM events WHERE tenant_id = $1 AND user_id = $2',
      [tenantA, ofA.user_id],
    );
    assert.equal(res.data!.event!.user!.eventCount, count.rows[0]!.n);
    assert.equal(
      (await gql(gateway.url, EventDocument, { key: readerA, variables: { id: ofB.id } })).data!.event,
      null,
    );
    assert.equal(
      (await gql(gateway.url, EventDocument, { key: readerA, variables: { id: 'nope' } })).data!.event,
      null,
    );
  });

  it('lists users by last seen or event count, with filters, totalCount and their latest events', async () => {
    const { rows: expected } = await pool.query<{ user_id: string; n: number; s: number }>(
      `SELECT user_id, count(*)::int AS n, count(DISTINCT session_id)::int AS s FROM events
       WHERE tenant_id = $1 AND user_id IS NOT NULL GROUP BY user_id ORDER BY count(*) DESC, user_id DESC`,
      [tenantA],
    );
    const all: { id: string; eventCount: number; sessionCount: number }[] = [];
    let after: string | null | undefined = null;
    do {
      const res: Awaited<ReturnType<typeof gql<UsersQuery, unknown>>> = await gql(gateway.url, UsersDocument, {
        key: readerA,
        variables: { orderBy: 'EVENT_COUNT', first: 25, after },
      });
      assert.equal(res.errors, undefined);
      assert.equal(res.data!.users.totalCount, expected.length);
      all.push(...res.data!.users.edges.map((e) => e.node));
      after = res.data!.users.pageInfo.hasNextPage ? res.data!.users.pageInfo.endCursor : null;
    } while (after);
    assert.deepEqual(
      all.map((u) => [u.id, u.eventCount, u.sessionCount]),
      expected.map((r) => [r.user_id, r.n, r.s]),
    );

    const since = new Date(Date.now() - DAY / 2);
    const recent = await gql(gateway.url, UsersDocument, {
      key: readerA,
      variables: { filter: { seenSince: since.toISOString() }, first: 100 },
    });
    const { rows: active } = await pool.query<{ n: number }>(
      'SELECT count(DISTINCT user_id)::int AS n FROM events WHERE tenant_id = $1 AND occurred_at >= $2',
      [tenantA, since],
    );
    assert.equal(recent.data!.users.totalCount, active[0]!.n);
    const lastSeen = recent.data!.users.edges.map((e) => e.node.lastSeen);
    assert.deepEqual([...lastSeen].sort().reverse(), lastSeen);

    const one = await gql(gateway.url, UserDocument, { key: readerA, variables: { id: expected[0]!.user_id } });
    const { rows: latest } = await pool.query<{ id: string }>(
      'SELECT id FROM events WHERE tenant_id = $1 AND user_id = $2 ORDER BY occurred_at DESC, id DESC LIMIT 3',
      [tenantA, expected[0]!.user_id],
    );
    assert.deepEqual(
      one.data!.user!.events.map((e) => e.id),
      latest.map((r) => r.id),
    );
    assert.equal(
      (await gql(gateway.url, UserDocument, { key: readerA, variables: { id: 'nobody' } })).data!.user,
      null,
    );
  });

  it('finds a user’s latest events older than the recent window it searches first', async () => {
    // Its own tenant, so that the other tests' totals stay as they are.
    const keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    const admin = (await keys.createKey({ tenantSlug: 'sparse', name: 'admin', scopes: ['admin'] })).plaintext;
    const at = (daysAgo: number, i: number) => new Date(Date.now() - daysAgo * DAY - 60_000 - i * 1000).toISOString();
    const events: EventInput[] = [
      { type: 'open', userId: 'sparse', timestamp: at(0, 0) },
      ...[0, 1, 2].map((i) => ({ type: 'buy', userId: 'sparse', value: i, timestamp: at(20, i) })),
      ...[0, 1, 2].map((i) => ({ type: 'buy', userId: 'sparse', value: 10 + i, timestamp: at(40, i) })),
    ];
    const recorded = await gql(gateway.url, RecordEventsDocument, { key: admin, variables: { events } });
    assert.equal(recorded.data?.recordEvents.accepted, events.length, JSON.stringify(recorded.errors));
    await caughtUp();
    const tenant = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'sparse'")).rows[0]!.id;

    for (const [first, type] of [
      [5, null],
      [1, null],
      [7, null],
      [20, null],
      [4, 'buy'],
    ] as const) {
      const res = await gql(gateway.url, UserLatestEventsDocument, {
        key: admin,
        variables: { id: 'sparse', first, type },
      });
      assert.equal(res.errors, undefined);
      const { rows } = await pool.query<{ id: string }>(
        `SELECT id FROM events WHERE tenant_id = $1 AND user_id = 'sparse' AND ($3::text IS NULL OR type = $3)
         ORDER BY occurred_at DESC, id DESC LIMIT $2`,
        [tenant, first, type],
      );
      assert.deepEqual(
        res.data!.user!.events.map((e) => e.id),
        rows.map((r) => r.id),
        `events(first: ${first}, type: ${type})`,
      );
    }
  });

  it('resolves users(first: 100) { events(first: 5) { user } } in at most 4 SQL statements', async () => {
    // Warm the key cache, then count only the request itself: twice, since the second time the
    // event reads reuse statements their connections have already prepared.
    await gql(counted.url, UsersWithRecentEventsDocument, { key: readerA, variables: { first: 1 } });
    for (const round of [1, 2]) {
      counter.reset();
      const res = await gql(counted.url, UsersWithRecentEventsDocument, { key: readerA, variables: { first: 100 } });
      const statements = counter.count();
      assert.equal(res.errors, undefined);
      const users = res.data!.users.edges;
      assert.equal(users.length, 100);
      const nested = users.flatMap((u) => u.node.events);
      assert.ok(nested.length > 300, `only ${nested.length} nested events`);
      for (const u of users) {
        assert.ok(u.node.events.length <= 5);
        for (const e of u.node.events) assert.equal(e.user!.id, u.node.id);
      }
      assert.ok(statements <= 4, `round ${round}: ${statements} statements reached Postgres`);
      assert.ok(statements >= 2, `round ${round}: the counter saw ${statements} statements: it is not counting`);
    }
  });

  it('computes eventTypes, dailyStats and timeseries equal to plain SQL over the events table', async () => {
    const types = await gql(gateway.url, EventTypesDocument, { key: readerA, variables: {} });
    const { rows: expectedTypes } = await pool.query<{ type: string; n: number; u: number; avg: number | null }>(
      `SELECT type, count(*)::int AS n, count(DISTINCT user_id)::int AS u, avg(value) AS avg FROM events
       WHERE tenant_id = $1 GROUP BY type ORDER BY count(*) DESC, type`,
      [tenantA],
    );
    assert.deepEqual(
      types.data!.eventTypes.map((t) => [t.type, t.count, t.uniqueUsers]),
      expectedTypes.map((t) => [t.type, t.n, t.u]),
    );
    types.data!.eventTypes.forEach((t, i) => assertClose(t.avgValue, expectedTypes[i]!.avg));
    assert.ok(types.data!.eventTypes[0]!.asOf);

    const from = new Date(Date.now() - 4 * DAY);
    const to = new Date();
    const daily = await gql(gateway.url, DailyStatsDocument, {
      key: readerA,
      variables: { from: from.toISOString(), to: to.toISOString(), type: 'click' },
    });
    const { rows: days } = await pool.query<{ day: Date; n: number; u: number; avg: number | null }>(
      `SELECT d AS day, count(e.id)::int AS n, count(DISTINCT e.user_id)::int AS u, avg(e.value) AS avg
       FROM generate_series(date_trunc('day', $2::timestamptz, 'UTC'), $3::timestamptz, interval '1 day') d
       LEFT JOIN events e ON e.tenant_id = $1 AND e.type = 'click' AND e.occurred_at >= d AND e.occurred_at < d + interval '1 day'
       GROUP BY d ORDER BY d`,
      [tenantA, from, to],
    );
    assert.deepEqual(
      daily.data!.dailyStats.map((d) => [d.day, d.type, d.totalEvents, d.uniqueUsers]),
      days.map((d) => [d.day.toISOString(), 'click', d.n, d.u]),
    );
    daily.data!.dailyStats.forEach((d, i) => assertClose(d.avgValue, days[i]!.avg));

    const series = await gql(gateway.url, TimeseriesDocument, {
      key: readerA,
      variables: { interval: 'HOUR', from: from.toISOString(), to: to.toISOString() },
    });
    const { rows: hours } = await pool.query(
      `SELECT h AS bucket, count(e.id)::int AS n, count(DISTINCT e.user_id)::int AS u, sum(e.value) AS sum,
         avg(e.value) AS avg, min(e.value) AS min, max(e.value) AS max,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY e.value) AS p50,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY e.value) AS p95,
         percentile_cont(0.99) WITHIN GROUP (ORDER BY e.value) AS p99
       FROM generate_series(date_trunc('hour', $2::timestamptz, 'UTC'), $3::timestamptz, interval '1 hour') h
       LEFT JOIN events e ON e.tenant_id = $1 AND e.occurred_at >= h AND e.occurred_at < h + interval '1 hour'
       GROUP BY h ORDER BY h`,
      [tenantA, from, to],
    );
    const points = series.data!.timeseries;
    assert.equal(points.length, hours.length);
    points.forEach((p, i) => {
      const want = hours[i]!;
      assert.equal(p.bucket, want.bucket.toISOString());
      assert.equal(p.count, want.n);
      assert.equal(p.uniqueUsers, want.u);
      for (const k of ['sum', 'avg', 'min', 'max', 'p50', 'p95', 'p99'] as const) assertClose(p[k], want[k]);
    });
    assert.ok(points.some((p) => p.count > 0) && points.some((p) => p.count === 0));
  });

  it('never gives one tenant the other tenant’s cached or loaded data, with identical arguments', async () => {
    const variables = {
      interval: 'DAY' as const,
      from: new Date(Date.now() - 4 * DAY).toISOString(),
      to: new Date().toISOString(),
    };
    const a1 = await gql(gateway.url, TimeseriesDocument, { key: readerA, variables });
    const b1 = await gql(gateway.url, TimeseriesDocument, { key: readerB, variables });
    const a2 = await gql(gateway.url, TimeseriesDocument, { key: readerA, variables });
    const b2 = await gql(gateway.url, TimeseriesDocument, { key: readerB, variables });
    const total = (r: typeof a1) => r.data!.timeseries.reduce((n, p) => n + p.count, 0);
    assert.equal(total(a1), 3000);
    assert.equal(total(b1), 800);
    assert.deepEqual(a2.data, a1.data);
    assert.deepEqual(b2.data, b1.data);

    const hits = await metric(gateway.url, 'query_cache_requests_total{field="timeseries",result="hit"}');
    assert.ok(hits >= 2, `cache hits: ${hits}`);

    // Loaded data: the same user id in both tenants has each tenant's own counts.
    const u = 'user-1';
    const ua = await gql(gateway.url, UserDocument, { key: readerA, variables: { id: u } });
    const ub = await gql(gateway.url, UserDocument, { key: readerB, variables: { id: u } });
    const { rows } = await pool.query<{ tenant_id: string; n: number }>(
      'SELECT tenant_id, count(*)::int AS n FROM events WHERE user_id = $1 GROUP BY tenant_id',
      [u],
    );
    assert.equal(ua.data!.user!.eventCount, rows.find((r) => r.tenant_id === tenantA)!.n);
    assert.equal(ub.data!.user!.eventCount, rows.find((r) => r.tenant_id === tenantB)!.n);
    for (const e of ub.data!.user!.events) {
      const owner = await pool.query('SELECT tenant_id FROM events WHERE id = $1', [e.id]);
      assert.equal(owner.rows[0].tenant_id, tenantB);
    }
  });

  it('drops cached answers once new events reach the rollups, and reports freshness', async () => {
    const variables = { from: new Date(Date.now() - DAY).toISOString(), to: new Date(Date.now() + HOUR).toISOString() };
    const sum = (r: Awaited<ReturnType<typeof daily>>) => r.data!.dailyStats.reduce((n, d) => n + d.totalEvents, 0);
    const daily = () => gql(gateway.url, DailyStatsDocument, { key: readerA, variables });
    const before = sum(await daily());
    assert.equal(sum(await daily()), before);
    await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: { events: Array.from({ length: 7 }, () => ({ type: 'late_arrival', userId: 'user-new' })) },
    });
    await caughtUp();
    assert.equal(sum(await daily()), before + 7);

    const fresh = await gql(gateway.url, FreshnessDocument, { key: readerA });
    assert.deepEqual(
      fresh.data!.freshness.map((f) => f.source),
      ['rollup_day', 'rollup_hour', 'rollup_minute', 'rollup_type', 'rollup_user'],
    );
    for (const f of fresh.data!.freshness)
      assert.ok(f.stalenessMs >= 0 && f.stalenessMs < 10_000, String(f.stalenessMs));
    assert.ok((await metric(gateway.url, 'rollup_staleness_seconds{source="rollup_day"}')) < 10);
  });

  it('keeps answers for 5 s, 5 min or 1 h by how much their data still moves, and not at all when off', async () => {
    const keysOf = async (field: string) =>
      new Set(await redis.keys(`${isolation.redisKeyPrefix}qc:{${tenantA}}:${field}:*`));
    const ttlOfNew = async (field: string, before: Set<string>) => {
      const added = [...(await keysOf(field))].filter((k) => !before.has(k));
      assert.equal(added.length, 1, `${field}: ${added.length} new cache entries`);
      return redis.ttl(added[0]!);
    };
    const now = Date.now();
    let before = await keysOf('timeseries');
    await gql(gateway.url, TimeseriesDocument, {
      key: readerA,
      variables: { interval: 'MINUTE', from: new Date(now - HOUR).toISOString(), to: new Date(now).toISOString() },
    });
    const realtime = await ttlOfNew('timeseries', before);
    assert.ok(realtime > 0 && realtime <= 5, `realtime TTL ${realtime}`);

    before = await keysOf('dailyStats');
    const closedTo = new Date(Math.floor(now / DAY) * DAY - DAY);
    await gql(gateway.url, DailyStatsDocument, {
      key: readerA,
      variables: { from: new Date(closedTo.getTime() - 7 * DAY).toISOString(), to: closedTo.toISOString() },
    });
    const closed = await ttlOfNew('dailyStats', before);
    assert.ok(closed > 300 && closed <= 3600, `closed-days TTL ${closed}`);

    before = await keysOf('timeseries');
    await gql(gateway.url, TimeseriesDocument, {
      key: readerA,
      variables: {
        interval: 'HOUR',
        from: new Date(now - 5 * HOUR).toISOString(),
        to: new Date(Math.floor(now / HOUR) * HOUR - HOUR).toISOString(),
      },
    });
    const aggregate = await ttlOfNew('timeseries', before);
    // A range that ended within today's first hour counts as closed days.
    if (now % DAY >= 2 * HOUR) assert.ok(aggregate > 5 && aggregate <= 300, `aggregate TTL ${aggregate}`);

    // QUERY_CACHE_ENABLED=false (the counted gateway): every answer is computed, nothing is kept.
    before = await keysOf('eventTypes');
    for (const round of [1, 2]) {
      counter.reset();
      const res = await gql(counted.url, EventTypesDocument, { key: readerA, variables: { first: 3 } });
      assert.equal(res.errors, undefined);
      assert.ok(counter.count() >= 1, `round ${round}: eventTypes reached Postgres ${counter.count()} times`);
    }
    assert.deepEqual(await keysOf('eventTypes'), before);
  });

  it('needs analytics:read', async () => {
    const res = await gql(gateway.url, FreshnessDocument, { key: writerOnly });
    assert.equal(errorCode(res), 'FORBIDDEN');
    assert.equal(errorCode(await gql(gateway.url, FreshnessDocument, {})), 'UNAUTHENTICATED');
  });
});

function assertClose(actual: number | null | undefined, expected: number | null | undefined): void {
  if (expected === null || expected === undefined) return assert.equal(actual ?? null, null);
  assert.ok(actual !== null && actual !== undefined, `expected ${expected}, got null`);
  assert.ok(Math.abs(actual - expected) <= 1e-9 * Math.max(1, Math.abs(expected)), `${actual} != ${expected}`);
}

async function metric(url: string, series: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.split(' ')[1]) : 0;
}
