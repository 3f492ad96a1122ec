import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import type { Cluster } from 'ioredis';
import type pg from 'pg';
import WebSocket from 'ws';
import { createWindowStore } from '../../../src/realtime/window-store.js';
import { windowStart } from '../../../src/realtime/window.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import {
  CreateApiKeyDocument,
  DeadLettersDocument,
  EraseUserDocument,
  RecordEventsDocument,
  ReplayDeadLettersDocument,
  RevokeApiKeyDocument,
  SystemStatusDocument,
  ViewerDocument,
  type EventInput,
} from '../../generated/graphql.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { startRedisCluster, type LocalRedisCluster } from '../../helpers/redis-cluster.js';
import { dropDatabase, isolatedEnv, streamGroupsSettled, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_redis-cluster-admin-key-00000000000000000000';
const PARTITIONS = 6;
const HOUR = 3_600_000;

const METRIC = `subscription { metricUpdated(window: ONE_HOUR) { start count uniqueUsers revision } }`;
const FEED = `subscription($after: String) { eventRecorded(type: "cluster_feed", after: $after) { id type userId cursor } }`;
const TYPES = `query Types { eventTypes(first: 10) { type count } }`;
/** viewer is not cacheable as a whole answer, so eventTypes goes through the per-field query cache. */
const TYPES_AND_VIEWER = `query TypesAndViewer { viewer { tenant } eventTypes(first: 10) { type count } }`;

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
}

async function request(url: string, key: string, init: { body?: unknown; search?: string }): Promise<Answer> {
  const response = await fetch(`${url}/graphql${init.search ?? ''}`, {
    method: init.body ? 'POST' : 'GET',
    headers: {
      authorization: `Bearer ${key}`,
      ...(init.body ? { 'content-type': 'application/json' } : { 'apollo-require-preflight': 'true' }),
    },
    ...(init.body ? { body: JSON.stringify(init.body) } : {}),
  });
  return { status: response.status, headers: response.headers, body: (await response.json()) as Answer['body'] };
}
const post = (url: string, key: string, body: Record<string, unknown>) => request(url, key, { body });

const countOf = (answer: Answer, type: string) =>
  (answer.body.data?.eventTypes as { type: string; count: number }[] | undefined)?.find((t) => t.type === type)
    ?.count ?? 0;

/**
 * The gateway on a three-master Redis Cluster started for this file: every part that touches Redis
 * (streams and their partitions, dedupe, live windows and their unique users, pub/sub, budgets,
 * caches, throttles, readiness, operators' queries) works, with the partitions on several masters.
 */
describe('on a three-master Redis Cluster', () => {
  const isolation = isolatedEnv('redis_cluster');
  const prefix = isolation.redisKeyPrefix;
  const keys = createStreamKeys(prefix, PARTITIONS);
  const clients: Client[] = [];
  let cluster: LocalRedisCluster;
  let redis: Cluster;
  let pool: pg.Pool;
  /** ROLE=all: ingests, runs both consumer groups, refreshes rollups. */
  let full: RunningGateway;
  /** ROLE=api: another replica, reached only through the cluster. */
  let api: RunningGateway;
  /** ROLE=api with a small cost budget and no lease: every charge goes to the cluster. */
  let budgeted: RunningGateway;
  let tenantId: string;
  const startedAt = Date.now();

  const ws = (url: string, key: string) => {
    const client = createClient({
      url: `${url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    clients.push(client);
    return client;
  };
  function collect<T>(client: Client, query: string, variables: Record<string, unknown> = {}) {
    const received: T[] = [];
    const errors: { message?: string; extensions?: Record<string, unknown> }[] = [];
    client.subscribe<Record<string, T>>(
      { query, variables },
      {
        next: (msg) => {
          if (msg.errors) errors.push(...msg.errors);
          if (msg.data) received.push(Object.values(msg.data)[0]!);
        },
        error: (err) => errors.push(err as { message?: string }),
        complete: () => undefined,
      },
    );
    return { received, errors };
  }

  async function record(url: string, events: EventInput[]) {
    const res = await gql(url, RecordEventsDocument, { key: ADMIN, variables: { events } });
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    return res.data!.recordEvents;
  }

  const settled = () => streamGroupsSettled(redis, keys);

  before(async () => {
    cluster = await startRedisCluster(3);
    redis = cluster.client();
    const env = isolation.env({
      REDIS_CLUSTER_NODES: cluster.nodes,
      BOOTSTRAP_API_KEY: ADMIN,
      STREAM_PARTITIONS: String(PARTITIONS),
      PERSIST_BATCH_WAIT_MS: '10',
      PERSIST_CONCURRENCY: '1',
      REALTIME_PUSH_INTERVAL_MS: '50',
      ROLLUP_REFRESH_INTERVAL_MS: '100',
      AUTH_THROTTLE_MAX_PER_KEY_PREFIX: '3',
    });
    full = await startGateway(env);
    api = await startGateway({ ...env, ROLE: 'api', MIGRATE_ON_START: 'false' });
    budgeted = await startGateway({
      ...env,
      ROLE: 'api',
      MIGRATE_ON_START: 'false',
      COST_BUDGET_CAPACITY: '100',
      COST_BUDGET_RESTORE_PER_MINUTE: '1',
      COST_BUDGET_LEASE_POINTS: '0',
    });
    pool = testPool(isolation.databaseUrl, 3);
    tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
    // Every consumer loop connected and its group made before anything is asserted.
    await waitFor(async () => {
      const n = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => redis.exists(keys.stream(p))));
      return n.every((e) => e === 1);
    }, 20_000);
  });

  after(async () => {
    for (const c of clients) await c.dispose();
    for (const g of [full, api, budgeted]) await g?.stop();
    await pool?.end();
    await cluster?.stop();
    // The cluster and its keys are gone with its processes; the database is this file's own.
    await dropDatabase(isolation.databaseUrl);
  });

  it('is ready on every replica, with the cluster as its Redis', async () => {
    for (const g of [full, api, budgeted]) {
      const res = await fetch(`${g.url}/ready`);
      const body = (await res.json()) as { status: string; checks: Record<string, { ok: boolean }> };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.status, 'ok', JSON.stringify(body));
      assert.equal(body.checks.redis?.ok, true);
    }
  });

  it('spreads the stream partitions over more than one master', async () => {
    const masters = new Map<number, number[]>();
    for (let p = 0; p < PARTITIONS; p++) {
      const port = await cluster.masterOf(keys.stream(p));
      masters.set(port, [...(masters.get(port) ?? []), p]);
    }
    assert.ok(masters.size > 1, `every partition on one master: ${JSON.stringify([...masters])}`);
    // The streams themselves, found by SCAN on each master, sit where the slots say.
    for (const [port, partitions] of masters) {
      const held = await cluster.keys(`${prefix}{events:*}`, port);
      for (const p of partitions) assert.ok(held.includes(keys.stream(p)), `partition ${p} on ${port}`);
    }
  });

  it('stores every event once, a repeated messageId included, and counts them with their unique users across partitions', async () => {
    const hourStart = windowStart('ONE_HOUR', startedAt);
    const live = collect<{ start: string; count: number; uniqueUsers: number }>(ws(api.url, ADMIN), METRIC);
    const users = 300;
    const events: EventInput[] = Array.from({ length: 1200 }, (_, i) => ({
      type: ['page_view', 'purchase', 'click'][i % 3]!,
      userId: `user-${(i * 7919) % users}`,
      messageId: `m-${i}`,
      value: (i % 50) + 0.5,
      timestamp: new Date(startedAt).toISOString(),
    }));
    for (let i = 0; i < events.length; i += 400) {
      const res = await record(i % 800 === 0 ? full.url : api.url, events.slice(i, i + 400));
      assert.equal(res.accepted, 400);
    }
    // A retry (the dedupe keys live on the partitions' masters): duplicates, stored nowhere.
    const retry = await record(api.url, events.slice(0, 50));
    assert.equal(retry.duplicates, 50);
    assert.equal(retry.accepted, 0);
    // Through the streams, not around them (degraded mode writes to Postgres when Redis fails).
    for (const g of [full, api]) assert.equal(await scrapeMetric(g.url, 'ingest_degraded'), 0);

    await waitFor(async () => {
      const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events');
      return rows[0]!.n >= events.length && (await settled());
    }, 30_000);
    const { rows } = await pool.query<{ n: number; ids: number; messages: number }>(
      `SELECT count(*)::int AS n, count(DISTINCT id)::int AS ids, count(DISTINCT message_id)::int AS messages FROM events`,
    );
    assert.deepEqual(rows[0], { n: events.length, ids: events.length, messages: events.length });

    // Every partition got some of them, and the partitions span masters (previous test).
    for (let p = 0; p < PARTITIONS; p++) {
      const info = (await redis.xinfo('STREAM', keys.stream(p))) as unknown[];
      const added = Number(info[info.indexOf('entries-added') + 1]);
      assert.ok(added > 0, `partition ${p} got no event`);
    }

    // The merged window: all partitions' counts and one HyperLogLog of the tenant's users.
    const read = await createWindowStore(redis, keys, { graceMs: 30_000 }).read(tenantId, null, 'ONE_HOUR', startedAt);
    assert.equal(read.count, events.length);
    assert.ok(Math.abs(read.uniqueUsers - users) <= 0.02 * users, `uniqueUsers ${read.uniqueUsers} vs ${users}`);
    assert.equal(read.min, 0.5);
    assert.equal(read.max, 49.5);
    // What subscribers were pushed: the same numbers, through the cluster's pub/sub to the other replica.
    await waitFor(async () => live.received.some((s) => s.count === events.length), 10_000);
    const last = live.received.find((s) => s.count === events.length)!;
    assert.equal(new Date(last.start).getTime(), hourStart);
    assert.equal(last.uniqueUsers, read.uniqueUsers);
    assert.deepEqual(live.errors, []);
  });

  type Fed = { id: string; type: string; userId: string; cursor: string };
  let fed: Fed[] = [];

  it('delivers eventRecorded to a subscriber of another replica', async () => {
    const feed = collect<Fed>(ws(api.url, ADMIN), FEED);
    // The subscription is confirmed once its first push arrives; send until one does.
    const sent = new Set<string>();
    await waitFor(
      async () => {
        const res = await record(full.url, [{ type: 'cluster_feed', userId: `feed-${sent.size}` }]);
        sent.add(res.ids[0]!);
        return feed.received.length > 0;
      },
      10_000,
      200,
    );
    const more = await record(full.url, [
      { type: 'cluster_feed', userId: 'feed-a' },
      { type: 'cluster_feed', userId: 'feed-b' },
    ]);
    for (const id of more.ids) sent.add(id!);
    await waitFor(async () => more.ids.every((id) => feed.received.some((e) => e.id === id)), 10_000);
    assert.ok(feed.received.every((e) => sent.has(e.id) && e.type === 'cluster_feed'));
    assert.deepEqual(feed.errors, []);
    fed = feed.received;
  });

  it('trims every partition once both groups are done, and replays a cursor only while nothing after it is gone', async () => {
    // The maintenance loop's trim script (XTRIM, then XSETID) on each partition's master.
    await waitFor(async () => {
      if (!(await settled())) return false;
      const lengths = await Promise.all(Array.from({ length: PARTITIONS }, (_, p) => redis.xlen(keys.stream(p))));
      return lengths.every((n) => n === 0);
    }, 15_000);
    const position = (e: Fed) => JSON.parse(Buffer.from(e.cursor, 'base64url').toString()) as [string, string];
    const byId = (a: Fed, b: Fed) => {
      const [[pa, ia], [pb, ib]] = [position(a), position(b)];
      const [ma, sa] = ia.split('-').map(BigInt);
      const [mb, sb] = ib.split('-').map(BigInt);
      return ma! !== mb! ? (ma! < mb! ? -1 : 1) : sa! !== sb! ? (sa! < sb! ? -1 : 1) : Number(pa) - Number(pb);
    };
    const ordered = [...fed].sort(byId);
    assert.ok(ordered.length >= 3);
    // Entries after the oldest cursor were trimmed: refused, since the replay would have a hole.
    const stale = collect<Fed>(ws(api.url, ADMIN), FEED, { after: ordered[0]!.cursor });
    await waitFor(async () => stale.errors.length > 0, 10_000);
    assert.equal(stale.errors[0]!.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(stale.errors));
    assert.match(stale.errors[0]!.message ?? '', /older than the retained event stream/);
    // A client that saw everything loses nothing: served, then live. Recorded once its replay has
    // read the streams (running, and given a moment), so the new entry cannot be trimmed before.
    const active = () => scrapeMetric(api.url, 'subscriptions_active{field="eventRecorded"}');
    await waitFor(async () => (await active()) === 1, 10_000);
    const caughtUp = collect<Fed>(ws(api.url, ADMIN), FEED, { after: ordered.at(-1)!.cursor });
    await waitFor(async () => (await active()) === 2, 10_000);
    await new Promise((r) => setTimeout(r, 300));
    const next = await record(full.url, [{ type: 'cluster_feed', userId: 'feed-c' }]);
    await waitFor(async () => caughtUp.received.some((e) => e.id === next.ids[0]), 10_000);
    assert.deepEqual(caughtUp.errors, []);
  });

  it('answers from the query cache and the response cache, and forgets both once ingestion changes the rollups', async () => {
    await waitFor(async () => countOf(await post(api.url, ADMIN, { query: TYPES }), 'purchase') === 400, 15_000);
    const hits = () => scrapeMetric(api.url, 'response_cache_requests_total{result="hit"}');
    const fieldHits = () => scrapeMetric(api.url, 'query_cache_requests_total{field="eventTypes",result="hit"}');
    const [responseHitsBefore, fieldHitsBefore] = [await hits(), await fieldHits()];
    // Answers are stored without the client waiting for the write: the next request may still miss.
    await waitFor(async () => {
      assert.equal(countOf(await post(api.url, ADMIN, { query: TYPES }), 'purchase'), 400);
      return (await hits()) > responseHitsBefore;
    }, 5_000);
    await waitFor(async () => {
      assert.equal(countOf(await post(api.url, ADMIN, { query: TYPES_AND_VIEWER }), 'purchase'), 400);
      return (await fieldHits()) > fieldHitsBefore;
    }, 5_000);

    await record(full.url, [{ type: 'purchase', userId: 'late-buyer', value: 1 }]);
    // The refresher's generation bump retires both caches' answers (on the tenant's slot).
    await waitFor(async () => countOf(await post(api.url, ADMIN, { query: TYPES }), 'purchase') === 401, 15_000);
    await waitFor(
      async () => countOf(await post(api.url, ADMIN, { query: TYPES_AND_VIEWER }), 'purchase') === 401,
      15_000,
    );
  });

  it('shares an automatic persisted query between replicas', async () => {
    const query = `query PersistedTypes { eventTypes(first: 3) { type } }`;
    const sha256Hash = createHash('sha256').update(query).digest('hex');
    const extensions = JSON.stringify({ persistedQuery: { version: 1, sha256Hash } });
    const search = `?extensions=${encodeURIComponent(extensions)}`;
    const unknown = await request(api.url, ADMIN, { search });
    assert.equal(unknown.body.errors?.[0]?.extensions?.code, 'PERSISTED_QUERY_NOT_FOUND');
    const registered = await post(full.url, ADMIN, { query, extensions: JSON.parse(extensions) as unknown });
    assert.equal(registered.body.errors, undefined, JSON.stringify(registered.body));
    assert.equal(await redis.exists(`${prefix}apq:${sha256Hash}`), 1);
    const byHash = await request(api.url, ADMIN, { search });
    assert.equal(byHash.status, 200, JSON.stringify(byHash.body));
    assert.deepEqual(byHash.body.data, registered.body.data);
  });

  it('refuses an operation over the shared cost budget', async () => {
    const to = Math.floor(Date.now() / HOUR) * HOUR;
    const sixtyHours = `{ timeseries(interval: HOUR, from: "${new Date(to - 60 * HOUR).toISOString()}", to: "${new Date(to).toISOString()}") { count } }`;
    const key = await newKey('budgeted');
    const first = await post(budgeted.url, key.key, { query: sixtyHours });
    assert.equal(first.body.errors, undefined, JSON.stringify(first.body));
    const second = await post(budgeted.url, key.key, { query: sixtyHours });
    assert.equal(second.status, 429);
    assert.equal(second.body.errors?.[0]?.extensions?.code, 'RATE_LIMITED');
    assert.ok(Number(second.headers.get('retry-after')) > 0);
  });

  it('throttles failed authentication and broadcasts revocations', async () => {
    const target = await newKey('throttled');
    for (const url of [full.url, api.url, full.url]) {
      const wrong = target.key.slice(0, 12) + randomBytes(32).toString('base64url');
      assert.equal((await gql(url, ViewerDocument, { key: wrong })).status, 401);
    }
    const throttled = await gql(api.url, ViewerDocument, { key: target.key });
    assert.equal(throttled.status, 429);
    assert.equal(errorCode(throttled), 'RATE_LIMITED');

    const revoked = await newKey('revoked');
    assert.equal((await gql(api.url, ViewerDocument, { key: revoked.key })).data?.viewer.tenant, 'demo');
    const heard = await scrapeMetric(api.url, 'auth_revocations_received_total');
    const res = await gql(full.url, RevokeApiKeyDocument, { key: ADMIN, variables: { id: revoked.id } });
    assert.equal(res.errors, undefined);
    await waitFor(async () => (await scrapeMetric(api.url, 'auth_revocations_received_total')) > heard, 5_000);
    assert.equal((await gql(api.url, ViewerDocument, { key: revoked.key })).status, 401);
  });

  it('answers the operators: systemStatus over every partition, dead letters, erasure from the streams', async () => {
    const status = await gql(full.url, SystemStatusDocument, { key: ADMIN });
    assert.equal(status.errors, undefined, JSON.stringify(status.errors));
    assert.deepEqual(
      status.data!.systemStatus.streams.map((s) => s.partition),
      Array.from({ length: PARTITIONS }, (_, p) => p),
    );
    const dead = await gql(api.url, DeadLettersDocument, { key: ADMIN, variables: { first: 10 } });
    assert.equal(dead.errors, undefined, JSON.stringify(dead.errors));
    assert.equal(dead.data!.deadLetters.totalCount, 0);
    const replayed = await gql(api.url, ReplayDeadLettersDocument, { key: ADMIN, variables: { limit: 10 } });
    assert.equal(replayed.data?.replayDeadLetters, 0, JSON.stringify(replayed.errors));
    const erased = await gql(full.url, EraseUserDocument, { key: ADMIN, variables: { userId: 'user-0' } });
    assert.equal(erased.errors, undefined, JSON.stringify(erased.errors));
    assert.equal(erased.data!.eraseUser.eventsDeleted, 4);
  });

  async function newKey(name: string): Promise<{ key: string; id: string }> {
    const created = await gql(full.url, CreateApiKeyDocument, {
      key: ADMIN,
      variables: { name, scopes: ['analytics:read'] },
    });
    assert.equal(created.errors, undefined, JSON.stringify(created.errors));
    return { key: created.data!.createApiKey.key, id: created.data!.createApiKey.apiKey.id };
  }
});
