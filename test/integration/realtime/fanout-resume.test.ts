import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient, type Client } from 'graphql-ws';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { pino } from 'pino';
import WebSocket from 'ws';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { trimStreamBelow } from '../../../src/streams/stream-maintenance.worker.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { RecordEventsDocument, type EventInput } from '../../generated/graphql.js';
import { scrapeMetric, spawnGateway, stopGateways, type SpawnedGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_fanout-resume-admin-key-00000000000000000000000';
const PARTITIONS = 2;

const METRIC = `subscription($type: String, $window: Window!) {
  metricUpdated(type: $type, window: $window) { type window start count sum min max uniqueUsers revision final }
}`;
const METRIC_COUNT =
  'subscription($type: String, $window: Window!) { metricUpdated(type: $type, window: $window) { count revision } }';
const EVENTS =
  'subscription($type: String, $after: String) { eventRecorded(type: $type, after: $after) { id type value cursor } }';

interface Pushed {
  id: string;
  type: string;
  value: number | null;
  cursor: string;
}

/** A subscription's messages as received; `errors` holds what the server answered instead. */
function collect<T>(client: Client, query: string, variables: Record<string, unknown>) {
  const received: T[] = [];
  const errors: { message?: string; extensions?: { code?: string } }[] = [];
  let completed = false;
  const dispose = client.subscribe<Record<string, T>>(
    { query, variables },
    {
      next: (msg) => {
        if (msg.errors) errors.push(...(msg.errors as never[]));
        if (msg.data) received.push(Object.values(msg.data)[0]!);
      },
      error: (err) => errors.push(...(Array.isArray(err) ? err : [err as never])),
      complete: () => (completed = true),
    },
  );
  return { received, errors, dispose, completed: () => completed };
}

/** The stream position a cursor names (the test reads it to know the feed's order). */
function positionOf(cursor: string): [number, bigint, bigint] {
  const [partition, id] = JSON.parse(Buffer.from(cursor, 'base64url').toString()) as [string, string];
  const [ms, seq] = id.split('-');
  return [Number(partition), BigInt(ms!), BigInt(seq!)];
}
function feedOrder(a: Pushed, b: Pushed): number {
  const [ap, am, as] = positionOf(a.cursor);
  const [bp, bm, bs] = positionOf(b.cursor);
  if (am !== bm) return am < bm ? -1 : 1;
  if (as !== bs) return as < bs ? -1 : 1;
  return ap - bp;
}

describe('fan-out once per channel, and the resumable event feed', () => {
  const isolation = isolatedEnv('fanout_resume');
  const clients: Client[] = [];
  let gateway: SpawnedGateway;
  let pool: pg.Pool;
  let redis: Redis;
  let readerA: string;
  let readerB: string;
  let adminB: string;
  const client = (key: string) => {
    const c = createClient({
      url: `${gateway.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${key}` },
      retryAttempts: 0,
    });
    clients.push(c);
    return c;
  };
  let sequence = 0;
  async function record(key: string, events: EventInput[]): Promise<string[]> {
    const res = await gql(gateway.url, RecordEventsDocument, { key, variables: { events } });
    assert.equal(res.data?.recordEvents.accepted, events.length, JSON.stringify(res.errors));
    return res.data!.recordEvents.ids.map((id) => id!);
  }
  const make = (n: number, type: string): EventInput[] =>
    Array.from({ length: n }, () => ({ type, userId: `u-${sequence % 17}`, value: sequence++ % 50 }));
  const metric = (name: string, field: string) => scrapeMetric(gateway.url, `${name}{field="${field}"}`);
  /** graphql-ws answers nothing until the first event: wait until the server runs exactly `n`. */
  const eventSubscriptions = (n: number) =>
    waitFor(async () => (await metric('subscriptions_active', 'eventRecorded')) === n, 15_000);

  before(async () => {
    gateway = await spawnGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: ADMIN,
        STREAM_PARTITIONS: String(PARTITIONS),
        PERSIST_BATCH_WAIT_MS: '10',
        REALTIME_PUSH_INTERVAL_MS: '50',
        // Trimmed often, but what every group is done with is kept for replays for 10 minutes.
        STREAM_TRIM_INTERVAL_MS: '200',
        STREAM_REPLAY_RETENTION_MS: '600000',
      }),
    );
    pool = testPool(isolation.databaseUrl, 2);
    redis = new Redis(REDIS_URL);
    const keys = new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    readerA = (await keys.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] })).plaintext;
    adminB = (await keys.createKey({ tenantSlug: 'other', name: 'admin', scopes: ['admin'] })).plaintext;
    readerB = (await keys.createKey({ tenantSlug: 'other', name: 'reader', scopes: ['analytics:read'] })).plaintext;
  });
  after(async () => {
    for (const c of clients) await c.dispose();
    if (gateway) await stopGateways([gateway]);
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  it('executes a window snapshot once per push and selection, and sends every subscriber the same payload', async () => {
    const variables = { type: 'fanout', window: 'ONE_HOUR' };
    const full = Array.from({ length: 5 }, () => collect<Record<string, unknown>>(client(readerA), METRIC, variables));
    const counts = Array.from({ length: 2 }, () =>
      collect<Record<string, unknown>>(client(readerA), METRIC_COUNT, variables),
    );
    // Tenant B, the same document and arguments: its own channel and its own results.
    const other = collect<Record<string, unknown>>(client(readerB), METRIC, variables);
    const all = [...full, ...counts, other];
    await waitFor(async () => all.every((s) => s.received.length >= 1), 20_000);
    const executions0 = await metric('subscription_executions_total', 'metricUpdated');
    const pushes0 = await metric('subscription_pushes_total', 'metricUpdated');
    const firsts = all.map((s) => s.received.length);

    for (let i = 0; i < 4; i++) {
      await record(ADMIN, make(150, 'fanout'));
      await new Promise((resolve) => setTimeout(resolve, 120));
    }
    await waitFor(async () => [...full, ...counts].every((s) => s.received.at(-1)?.count === 600), 15_000).catch(() =>
      assert.fail(`not every subscriber saw 600: ${full.map((s) => JSON.stringify(s.received.at(-1)))}`),
    );
    const executions = (await metric('subscription_executions_total', 'metricUpdated')) - executions0;
    const pushes = (await metric('subscription_pushes_total', 'metricUpdated')) - pushes0;

    const pushed = all.map((s, i) => s.received.slice(firsts[i]!).map((m) => JSON.stringify(m)));
    const distinct = (group: string[][]) => new Set(group.flat()).size;
    assert.ok(pushed[0]!.length >= 2, `${pushed[0]!.length} pushes`);
    assert.equal(pushes, pushed.flat().length, 'every push counted');
    // One execution per distinct message and selection, however many subscribers took it.
    assert.equal(executions, distinct(pushed.slice(0, 5)) + distinct(pushed.slice(5, 7)), `${executions} executions`);
    assert.ok(executions < pushes, `${executions} executions for ${pushes} pushes`);
    const last = full.map((s) => JSON.stringify(s.received.at(-1)));
    assert.equal(new Set(last).size, 1, 'the same payload to every subscriber of one selection');
    // Tenant A's events never reach tenant B, which was subscribed with the same arguments.
    assert.deepEqual(
      other.received.map((s) => s.count),
      other.received.map(() => 0),
    );
    await record(adminB, make(7, 'fanout'));
    await waitFor(async () => other.received.at(-1)?.count === 7, 10_000);
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(
      full.every((s) => s.received.at(-1)?.count === 600 && s.received.every((m) => (m.count as number) <= 600)),
    );
    for (const s of all) s.dispose();
  });

  it('executes an event once per selection for all its subscribers, and keeps tenants apart', async () => {
    const a = Array.from({ length: 3 }, () => collect<Pushed>(client(readerA), EVENTS, { type: 'shared' }));
    const b = collect<Pushed>(client(readerB), EVENTS, { type: 'shared' });
    await eventSubscriptions(4);
    const executions0 = await metric('subscription_executions_total', 'eventRecorded');
    const pushes0 = await metric('subscription_pushes_total', 'eventRecorded');
    const idsA = await record(ADMIN, make(40, 'shared'));
    const idsB = await record(adminB, make(9, 'shared'));
    await waitFor(async () => a.every((s) => s.received.length === 40) && b.received.length === 9, 10_000).catch(() =>
      assert.fail(`received ${a.map((s) => s.received.length)} and ${b.received.length}`),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    for (const s of a) assert.deepEqual(new Set(s.received.map((e) => e.id)), new Set(idsA));
    assert.deepEqual(new Set(b.received.map((e) => e.id)), new Set(idsB));
    assert.equal((await metric('subscription_pushes_total', 'eventRecorded')) - pushes0, 3 * 40 + 9);
    assert.equal((await metric('subscription_executions_total', 'eventRecorded')) - executions0, 40 + 9);
    assert.equal(new Set(a.map((s) => JSON.stringify(s.received))).size, 1, 'identical payloads');
    for (const s of [...a, b]) s.dispose();
  });

  it('resumes after a cursor: what the stream holds after it once, then live events, with no gap and no repeat', async () => {
    const live = collect<Pushed>(client(readerA), EVENTS, { type: 'signup' });
    const liveB = collect<Pushed>(client(readerB), EVENTS, { type: 'signup' });
    await eventSubscriptions(2);
    await record(ADMIN, [...make(30, 'signup'), ...make(10, 'other')]);
    const idsB = await record(adminB, make(6, 'signup'));
    await waitFor(async () => live.received.length === 30 && liveB.received.length === 6, 10_000);
    const seen = [...live.received].sort(feedOrder);
    assert.ok(seen.every((e) => typeof e.cursor === 'string' && e.type === 'signup'));
    assert.equal(new Set(seen.map((e) => e.cursor)).size, 30, 'every event has its own cursor');
    const k = 11;
    const cursor = seen[k - 1]!.cursor;

    // Reconnect with event k's cursor while more events arrive: the replay and the live tail meet.
    const resumed = collect<Pushed>(client(readerA), EVENTS, { type: 'signup', after: cursor });
    const during = record(ADMIN, make(25, 'signup'));
    const resumedB = collect<Pushed>(client(readerB), EVENTS, { type: 'signup', after: cursor });
    await during;
    const later = await record(ADMIN, make(5, 'signup'));
    await waitFor(async () => live.received.length === 60, 10_000);
    const expected = [...live.received].sort(feedOrder).filter((e) => feedOrder(e, seen[k - 1]!) > 0);
    assert.equal(expected.length, 60 - k);
    await waitFor(async () => resumed.received.length >= expected.length, 10_000).catch(() =>
      assert.fail(`resumed got ${resumed.received.length} of ${expected.length}: ${JSON.stringify(resumed.errors)}`),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ids = resumed.received.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, 'no event twice');
    assert.deepEqual(new Set(ids), new Set(expected.map((e) => e.id)), 'events k+1..n, then the live ones');
    assert.deepEqual(ids.slice(-5).sort(), [...later].sort(), 'the last ones arrived live, after the replay');
    // What the stream held when it subscribed comes first, in the feed's order.
    assert.deepEqual(
      resumed.received.slice(0, 30 - k).map((e) => e.id),
      expected.slice(0, 30 - k).map((e) => e.id),
    );
    // Tenant B with the same cursor: B's events after that position (its 6, recorded after
    // A's first batch), then B's live ones; never one of A's.
    const laterB = await record(adminB, make(2, 'signup'));
    await waitFor(async () => resumedB.received.length >= 8, 10_000).catch(() =>
      assert.fail(`tenant B resumed ${JSON.stringify(resumedB.received)} ${JSON.stringify(resumedB.errors)}`),
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.equal(resumedB.received.length, 8, 'no event twice');
    assert.deepEqual(new Set(resumedB.received.map((e) => e.id)), new Set([...idsB, ...laterB]));
    // The other types of the tenant were never sent.
    assert.ok(resumed.received.every((e) => e.type === 'signup'));
    for (const s of [live, liveB, resumed, resumedB]) s.dispose();
  });

  it('answers a malformed cursor, and one older than the stream retains, with BAD_USER_INPUT', async () => {
    const code = async (after: string) => {
      const s = collect<Pushed>(client(readerA), EVENTS, { type: 'signup', after });
      await waitFor(async () => s.errors.length > 0 || s.received.length > 0, 5_000);
      s.dispose();
      assert.equal(s.received.length, 0);
      return s.errors[0]!;
    };
    for (const bad of [
      'not-a-cursor',
      Buffer.from('["9","1-1"]').toString('base64url'),
      Buffer.from('["0","x"]').toString('base64url'),
    ]) {
      const err = await code(bad);
      assert.equal(err.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(err));
    }

    const live = collect<Pushed>(client(readerA), EVENTS, { type: 'trimmed' });
    await eventSubscriptions(1);
    await record(ADMIN, make(20, 'trimmed'));
    await waitFor(async () => live.received.length === 20, 10_000);
    const ordered = [...live.received].sort(feedOrder);
    const old = ordered[2]!.cursor;
    // Still retained: accepted.
    const ok = collect<Pushed>(client(readerA), EVENTS, { type: 'trimmed', after: old });
    await waitFor(async () => ok.received.length === 17, 10_000);
    ok.dispose();
    // Trim every partition past the cursor, as the maintenance loop would once the groups are done.
    const keys = createStreamKeys(isolation.redisKeyPrefix, PARTITIONS);
    const [, ms, seq] = positionOf(ordered[10]!.cursor);
    for (let p = 0; p < PARTITIONS; p++) await trimStreamBelow(redis, keys.stream(p), `${ms}-${seq + 1n}`);
    const err = await code(old);
    assert.equal(err.extensions?.code, 'BAD_USER_INPUT', JSON.stringify(err));
    assert.match(err.message ?? '', /older than the retained event stream/);
    // A cursor after the trim point is still served.
    const recent = collect<Pushed>(client(readerA), EVENTS, { type: 'trimmed', after: ordered.at(-1)!.cursor });
    await record(ADMIN, make(3, 'trimmed'));
    await waitFor(async () => recent.received.length === 3, 10_000);
    assert.deepEqual(recent.errors, []);
    recent.dispose();
    // A client that saw everything, after the loop trimmed all it had seen: nothing after its
    // cursor is gone, so it is served (the newest entry is the one just recorded).
    await waitFor(async () => live.received.length === 23, 10_000);
    const newest = [...live.received].sort(feedOrder).at(-1)!;
    const [, nms, nseq] = positionOf(newest.cursor);
    for (let p = 0; p < PARTITIONS; p++) await trimStreamBelow(redis, keys.stream(p), `${nms}-${nseq + 1n}`);
    const caughtUp = collect<Pushed>(client(readerA), EVENTS, { type: 'trimmed', after: newest.cursor });
    await eventSubscriptions(2);
    const fresh = await record(ADMIN, make(2, 'trimmed'));
    await waitFor(async () => caughtUp.received.length === 2, 10_000).catch(() =>
      assert.fail(`caught-up client: ${JSON.stringify(caughtUp.errors)}`),
    );
    assert.deepEqual(new Set(caughtUp.received.map((e) => e.id)), new Set(fresh));
    caughtUp.dispose();
    live.dispose();
  });
});
