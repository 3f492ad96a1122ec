import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { pino } from 'pino';
import WebSocket from 'ws';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { windowStart } from '../../../src/realtime/window.js';
import { RecordEventsDocument, type EventInput } from '../../generated/graphql.js';
import {
  scrapeMetric,
  spawnGateway,
  spawnGatewayPair,
  stopGateways,
  type SpawnedGateway,
} from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_subscriptions-admin-key-0000000000000000000000';
const HOUR = 3_600_000;
/**
 * The gateways' REALTIME_WINDOW_GRACE_MS: long enough that an hour ending while the test runs
 * leaves its events on time in their window, so no assertion depends on when the test starts.
 */
const GRACE_MS = 10 * 60_000;

interface Snapshot {
  type: string | null;
  window: string;
  start: string;
  count: number;
  sum: number | null;
  min: number | null;
  max: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  uniqueUsers: number;
  revision: number;
  final: boolean;
}

const METRIC = `subscription($type: String, $window: Window!) {
  metricUpdated(type: $type, window: $window) {
    type window start count sum min max p50 p95 p99 uniqueUsers revision final
  }
}`;
const EVENTS = 'subscription($type: String) { eventRecorded(type: $type) { id type value timestamp user { id } } }';

/** Collects a subscription's messages; `errors` gets what the server refused. */
function collect<T>(client: Client, query: string, variables: Record<string, unknown>) {
  const received: T[] = [];
  const errors: unknown[] = [];
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (msg) => {
        if (msg.errors) errors.push(...msg.errors);
        if (msg.data) received.push(Object.values(msg.data)[0]!);
      },
      error: (err) => errors.push(err),
      complete: () => undefined,
    },
  );
  return { received, errors, dispose };
}

/** Connects without graphql-ws's client, to see close codes as they are. */
function rawSocket(url: string, init?: Record<string, unknown>): Promise<{ code: number; socket: WebSocket }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    socket.once('open', () => {
      if (init) socket.send(JSON.stringify({ type: 'connection_init', payload: init }));
    });
    socket.once('close', (code) => resolve({ code, socket }));
    socket.once('error', reject);
  });
}

describe('subscriptions over graphql-ws', () => {
  const isolation = isolatedEnv('subscriptions');
  const gateways: SpawnedGateway[] = [];
  const clients: Client[] = [];
  let pool: pg.Pool;
  let redis: Redis;
  let readerA: string;
  let readerB: string;
  let adminB: string;
  let writerOnly: string;
  let tenantA: string;
  /** The hour the events fall in: the window current when the first subscription began (set there). */
  let hourStart = windowStart('ONE_HOUR', Date.now());
  const client = (url: string, key: string) => {
    const c = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    clients.push(c);
    return c;
  };

  before(async () => {
    const env = isolation.env({
      BOOTSTRAP_API_KEY: ADMIN,
      STREAM_PARTITIONS: '2',
      PERSIST_BATCH_WAIT_MS: '10',
      REALTIME_PUSH_INTERVAL_MS: '50',
      WS_CONNECTION_INIT_TIMEOUT_MS: '300',
      WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: '3',
      REALTIME_WINDOW_GRACE_MS: String(GRACE_MS),
    });
    gateways.push(...(await spawnGatewayPair(env)));
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    const keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    readerA = (await keys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    writerOnly = (await keys.createKey({ tenantSlug: 'demo', name: 'writer', scopes: ['events:write'] })).plaintext;
    adminB = (await keys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    readerB = (await keys.createKey({ tenantSlug: 'other', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    tenantA = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
  });
  after(async () => {
    for (const c of clients) await c.dispose();
    await stopGateways(gateways);
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  function generate(n: number, seed: number, prefix: string): EventInput[] {
    let s = seed;
    const rnd = () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    // Up to now, and never past the hour, whichever ends first.
    const span = Math.max(1, Math.min(Date.now(), hourStart + HOUR - 1) - hourStart);
    return Array.from({ length: n }, (_, i) => ({
      type: rnd() < 0.5 ? 'purchase' : 'page_view',
      userId: `u-${Math.floor(rnd() ** 2 * 300)}`,
      messageId: `${prefix}-${i}`,
      value: Math.round(Math.exp(1 + 3 * rnd()) * 100) / 100,
      timestamp: new Date(hourStart + Math.floor(rnd() * span)).toISOString(),
    }));
  }

  it('pushes the current window at once, then windows equal to SQL, to a subscriber on another process', async () => {
    const subscribedFrom = Date.now();
    const a = collect<Snapshot>(client(gateways[0]!.url, readerA), METRIC, { type: 'purchase', window: 'ONE_HOUR' });
    const b = collect<Snapshot>(client(gateways[0]!.url, readerB), METRIC, { type: 'purchase', window: 'ONE_HOUR' });
    const live = collect<{ id: string; type: string }>(client(gateways[0]!.url, readerA), EVENTS, { type: 'purchase' });
    await waitFor(async () => a.received.length >= 1 && b.received.length >= 1, 5_000);
    const subscribedUntil = Date.now();
    assert.equal(a.received[0]!.count, 0, 'the current window, before any event');
    // The hour the gateway was in when it answered: that of the first instant or of the last.
    hourStart = Date.parse(a.received[0]!.start);
    assert.ok(
      hourStart === windowStart('ONE_HOUR', subscribedFrom) || hourStart === windowStart('ONE_HOUR', subscribedUntil),
      `start ${a.received[0]!.start}`,
    );

    const events = generate(2000, 3, 'a');
    for (let i = 0; i < events.length; i += 500) {
      const res = await gql(gateways[1]!.url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: events.slice(i, i + 500) },
      });
      assert.equal(res.data?.recordEvents.accepted, 500, JSON.stringify(res.errors));
    }
    const purchases = events.filter((e) => e.type === 'purchase').length;
    await waitFor(async () => a.received.at(-1)?.count === purchases, 15_000);
    await waitFor(async () => {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
      return rows[0]!.n === events.length;
    }, 15_000);
    const got = a.received.at(-1)!;
    const { rows } = await pool.query(
      `SELECT count(*)::int AS n, sum(value) AS sum, min(value) AS min, max(value) AS max,
              count(DISTINCT user_id)::int AS users,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
              percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99
       FROM events WHERE tenant_id = $1 AND type = 'purchase' AND occurred_at >= $2 AND occurred_at < $3`,
      [tenantA, new Date(hourStart), new Date(hourStart + HOUR)],
    );
    const want = rows[0]!;
    assert.equal(got.count, want.n);
    assert.ok(Math.abs(got.sum! - want.sum) <= 1e-9 * want.sum, `sum ${got.sum} vs ${want.sum}`);
    assert.equal(got.min, want.min);
    assert.equal(got.max, want.max);
    for (const q of ['p50', 'p95', 'p99'] as const)
      assert.ok(Math.abs(got[q]! - want[q]) <= 0.01 * want[q], `${q} ${got[q]} vs ${want[q]}`);
    assert.ok(Math.abs(got.uniqueUsers - want.users) <= 0.02 * want.users, `users ${got.uniqueUsers} vs ${want.users}`);
    const revisions = a.received.map((s) => s.revision);
    assert.deepEqual(
      revisions,
      [...revisions].sort((x, y) => x - y),
      'revisions only increase',
    );
    assert.ok(a.received.length < 2000 / 50, `${a.received.length} pushes: throttled, not one per event`);

    // eventRecorded: every purchase, once.
    await waitFor(async () => live.received.length === purchases, 10_000).catch(() => {
      assert.fail(`eventRecorded: ${live.received.length} of ${purchases}; errors ${JSON.stringify(live.errors)}`);
    });
    assert.equal(new Set(live.received.map((e) => e.id)).size, purchases);
    assert.ok(live.received.every((e) => e.type === 'purchase'));
    assert.deepEqual(live.errors, []);

    // The other tenant, same arguments: nothing of tenant A's.
    assert.ok(
      b.received.every((s) => s.count === 0),
      JSON.stringify(b.received.at(-1)),
    );
    const other = generate(5, 9, 'b').map((e) => ({ ...e, type: 'purchase' }));
    await gql(gateways[1]!.url, RecordEventsDocument, { key: adminB, variables: { events: other } });
    await waitFor(async () => b.received.at(-1)?.count === 5, 10_000).catch(() => {
      assert.fail(`tenant B: ${JSON.stringify(b.received.at(-1))}`);
    });
  });

  it('closes a connection with a bad key (4401), without analytics:read (4403), or without init (4408)', async () => {
    assert.equal((await rawSocket(gateways[0]!.url, { authorization: 'Bearer agk_not-a-key' })).code, 4401);
    assert.equal((await rawSocket(gateways[0]!.url, {})).code, 4401);
    assert.equal((await rawSocket(gateways[0]!.url, { authorization: `Bearer ${writerOnly}` })).code, 4403);
    assert.equal((await rawSocket(gateways[0]!.url)).code, 4408);
  });

  it('refuses subscriptions past the per-connection limit with RATE_LIMITED', async () => {
    const c = client(gateways[0]!.url, readerA);
    const subs = [1, 2, 3, 4].map(() => collect<Snapshot>(c, METRIC, { window: 'ONE_MINUTE' }));
    await waitFor(
      async () => subs.slice(0, 3).every((s) => s.received.length > 0) && subs[3]!.errors.length > 0,
      5_000,
    );
    const refused = subs[3]!.errors[0] as { extensions?: { code?: string } }[] | { extensions?: { code?: string } };
    const code = Array.isArray(refused) ? refused[0]?.extensions?.code : refused.extensions?.code;
    assert.equal(code, 'RATE_LIMITED');
    assert.ok((await scrapeMetric(gateways[0]!.url, 'subscriptions_refused_total{reason="connection_limit"}')) >= 1);

    // Ended subscriptions end on the server too, on a quiet channel as well.
    const active = () => scrapeMetric(gateways[0]!.url, 'subscriptions_active{field="metricUpdated"}');
    const before = await active();
    await c.dispose();
    await waitFor(async () => (await active()) === before - 3, 5_000).catch(async () => {
      assert.fail(`subscriptions_active went from ${before} to ${await active()}, not ${before - 3}`);
    });
  });

  it('drops what a client that stops reading cannot take, and keeps serving', async () => {
    const socket = new WebSocket(`${gateways[0]!.url.replace('http', 'ws')}/graphql`, 'graphql-transport-ws');
    await new Promise((resolve) => socket.once('open', resolve));
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: readerA } }));
    await new Promise((resolve) => socket.once('message', resolve));
    socket.send(
      JSON.stringify({
        id: '1',
        type: 'subscribe',
        payload: { query: 'subscription { eventRecorded { id properties } }' },
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    // Stop reading: the kernel buffers fill, then the server's sends wait.
    (socket as unknown as { _socket: { pause(): void } })._socket.pause();
    const padding = 'x'.repeat(30_000);
    for (let round = 0; round < 20; round++) {
      const batch = Array.from({ length: 150 }, (_, i) => ({
        type: 'bulk',
        messageId: `bulk-${round}-${i}`,
        properties: { padding },
      }));
      const res = await gql(gateways[1]!.url, RecordEventsDocument, { key: ADMIN, variables: { events: batch } });
      assert.equal(res.data?.recordEvents.accepted, 150, JSON.stringify(res.errors));
    }
    // 3,000 events of 30 KB this client never reads: the socket's buffers take a few hundred, the
    // subscriber holds at most 1 MiB (~34), and the rest are dropped rather than kept in memory.
    const dropped = () => scrapeMetric(gateways[0]!.url, 'subscription_pushes_dropped_total');
    await waitFor(async () => (await dropped()) >= 2_000, 30_000).catch(async () => {
      assert.fail(`only ${await dropped()} of 3,000 undeliverable events were dropped`);
    });
    const health = await fetch(`${gateways[0]!.url}/health`);
    assert.equal(health.status, 200);
    socket.terminate();
  });

  it('answers a subscription it cannot serve with Redis gone, keeps running, and serves again once it is back', async () => {
    const proxy = await createTcpProxy(6379);
    const url = new URL(REDIS_URL);
    url.port = String(proxy.port);
    const cutOff = await spawnGateway(
      isolation.env({ ROLE: 'api', MIGRATE_ON_START: 'false', REDIS_URL: url.toString() }),
    );
    try {
      const c = client(cutOff.url, readerA);
      const before = collect<Snapshot>(c, METRIC, { window: 'ONE_MINUTE' });
      await waitFor(async () => before.received.length > 0, 5_000);
      proxy.cut();
      const during = collect<Snapshot>(client(cutOff.url, readerA), METRIC, { window: 'ONE_MINUTE' });
      await waitFor(async () => during.errors.length > 0, 10_000);
      assert.equal(during.received.length, 0);
      assert.equal((await fetch(`${cutOff.url}/health`)).status, 200);
      proxy.restore();
      await waitFor(async () => {
        const after = collect<Snapshot>(client(cutOff.url, readerA), METRIC, { window: 'FIVE_MINUTES' });
        const ok = await waitFor(async () => after.received.length > 0, 2_000).then(
          () => true,
          () => false,
        );
        after.dispose();
        return ok;
      }, 15_000);
    } finally {
      await stopGateways([cutOff]);
      await proxy.close();
    }
  });
});
