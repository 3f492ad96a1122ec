import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { Redis } from 'ioredis';
import { encodeStreamEvent } from '../../../src/ingest/stream-event.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import type { StreamEntry } from '../../../src/streams/stream-entries.js';
import {
  DeadLettersDocument,
  EraseUserDocument,
  EventDocument,
  EventsDocument,
  EventTypesDocument,
  RecordEventsDocument,
  UserDocument,
  type EventInput,
} from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { assertStatisticsMatchEvents } from '../../helpers/statistics-check.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_erasure-admin-key-000000000000000000000000000';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const VICTIM = 'victim-7';

function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Events over the last two days by eight users, the victim among them. */
function generate(n: number, seed: number): EventInput[] {
  const rnd = lcg(seed);
  const now = Date.now();
  return Array.from({ length: n }, (_, i) => {
    const user = i % 4 === 0 ? VICTIM : `user-${Math.floor(rnd() * 8)}`;
    return {
      type: ['page_view', 'click', 'purchase'][Math.floor(rnd() * 3)]!,
      userId: user,
      sessionId: `${user}-s${Math.floor(rnd() * 3)}`,
      messageId: `m-${seed}-${i}`,
      value: rnd() < 0.3 ? null : Math.round(rnd() * 10_000) / 100,
      timestamp: new Date(now - Math.floor(rnd() * 2 * DAY) - 60_000).toISOString(),
      properties: { email: `${user}@example.com` },
    };
  });
}

describe('eraseUser', () => {
  const isolation = isolatedEnv('erasure');
  let gateway: RunningGateway;
  let pool: pg.Pool;
  let redis: Redis;
  let tenantId: string;
  const keys = () => createStreamKeys(isolation.redisKeyPrefix, 1);

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: ADMIN,
        ROLLUP_REFRESH_INTERVAL_MS: '100',
        // A persister that holds what it reads for a while: events recorded just before an
        // erasure are still in flight (in the stream or in a batch) when it runs.
        PERSIST_BATCH_WAIT_MS: '3000',
        PERSIST_BATCH_SIZE: '10000',
      }),
    );
    pool = testPool(isolation.databaseUrl, 3);
    redis = new Redis(REDIS_URL);
    tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
  });
  after(async () => {
    await gateway?.stop();
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  const count = async (sql: string, params: unknown[] = []) =>
    (await pool.query<{ n: number }>(sql, params)).rows[0]!.n;

  /** Waits until the persister has settled every stream entry and the rollups have caught up. */
  async function settled(): Promise<void> {
    await waitFor(async () => {
      const groups = (await redis.xinfo('GROUPS', keys().stream(0))) as unknown[][];
      const persist = groups
        .map((g) => Object.fromEntries(Array.from({ length: g.length / 2 }, (_, i) => [g[2 * i], g[2 * i + 1]])))
        .find((g) => g.name === 'persist');
      return persist !== undefined && Number(persist.pending) === 0 && Number(persist.lag ?? 0) === 0;
    }, 20_000);
    await waitFor(async () => (await count('SELECT count(*)::int AS n FROM rollup_dirty')) === 0, 20_000);
  }

  async function record(events: EventInput[]): Promise<void> {
    for (let i = 0; i < events.length; i += 500) {
      const res = await gql(gateway.url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: events.slice(i, i + 500) },
      });
      assert.equal(res.data?.recordEvents.accepted, Math.min(500, events.length - i), JSON.stringify(res.errors));
    }
  }

  it("removes the user's events from every table, rollup, cache, stream and dead letter, and accepts new ones", async () => {
    await record(generate(1200, 1));
    await settled();
    const victimEvents = await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [VICTIM]);
    const { rows: someEvent } = await pool.query<{ id: string }>('SELECT id FROM events WHERE user_id = $1 LIMIT 1', [
      VICTIM,
    ]);
    assert.equal(
      (await gql(gateway.url, EventDocument, { key: ADMIN, variables: { id: someEvent[0]!.id } })).data!.event?.userId,
      VICTIM,
    );
    assert.equal(victimEvents, 300);

    // Answers cached before the erasure must not survive it.
    const typesBefore = await gql(gateway.url, EventTypesDocument, { key: ADMIN, variables: { first: 10 } });
    assert.ok(typesBefore.data!.eventTypes.length > 0);
    // A dead letter of the victim (refused by Postgres before) and one of another user.
    const old = Date.now() - HOUR;
    const letter = (userId: string) =>
      encodeStreamEvent({
        tenantId,
        id: randomUUID(),
        type: 'click',
        userId,
        sessionId: null,
        messageId: null,
        occurredAt: old,
        receivedAt: old,
        value: null,
        properties: '{"card":"x"}',
      });
    for (const who of [VICTIM, 'user-1']) {
      await redis.xadd(
        keys().deadLetters(0),
        '*',
        'reason',
        'rejected: test',
        'source',
        '0-1',
        't',
        tenantId,
        'e',
        letter(who),
        'at',
        new Date().toISOString(),
        'n',
        '1',
      );
    }
    const erased = await gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: VICTIM } });
    assert.equal(erased.errors, undefined, JSON.stringify(erased.errors));
    assert.equal(erased.data!.eraseUser.userId, VICTIM);
    assert.equal(erased.data!.eraseUser.eventsDeleted, victimEvents);
    const completedAt = new Date(erased.data!.eraseUser.completedAt);

    // Tables.
    assert.equal(await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [VICTIM]), 0);
    for (const table of ['rollup_user', 'rollup_user_day', 'rollup_type_user', 'rollup_user_session']) {
      assert.equal(await count(`SELECT count(*)::int AS n FROM ${table} WHERE user_id = $1`, [VICTIM]), 0, table);
    }
    assert.equal(
      await count('SELECT count(*)::int AS n FROM event_message_ids WHERE event_id NOT IN (SELECT id FROM events)'),
      0,
    );
    // Streams (entries persisted but not yet trimmed are still readable) and dead letters.
    const stream = (await redis.xrange(keys().stream(0), '-', '+')) as StreamEntry[];
    assert.equal(stream.filter(([, f]) => f.join(' ').includes(VICTIM)).length, 0, 'stream entries of the user');
    const letters = await gql(gateway.url, DeadLettersDocument, { key: ADMIN, variables: { first: 10 } });
    assert.equal(letters.data!.deadLetters.totalCount, 1);
    assert.equal((letters.data!.deadLetters.edges[0]!.node.event as { userId: string }).userId, 'user-1');
    // Queries.
    const user = await gql(gateway.url, UserDocument, { key: ADMIN, variables: { id: VICTIM } });
    assert.equal(user.data!.user, null);
    const byId = await gql(gateway.url, EventDocument, { key: ADMIN, variables: { id: someEvent[0]!.id } });
    assert.equal(byId.data!.event, null);
    const events = await gql(gateway.url, EventsDocument, {
      key: ADMIN,
      variables: { filter: { userId: VICTIM }, first: 10 },
    });
    assert.deepEqual(events.data!.events.edges, []);
    const now = Date.now();
    await assertStatisticsMatchEvents(
      gateway.url,
      ADMIN,
      pool,
      tenantId,
      new Date(now - 3 * DAY),
      new Date(now + HOUR),
    );

    // The audit row names the user and the count, nothing of the events.
    await waitFor(
      async () => (await count("SELECT count(*)::int AS n FROM audit_log WHERE action = 'eraseUser'")) === 1,
      5_000,
    );
    const { rows: audit } = await pool.query<{ details: Record<string, unknown>; result: string }>(
      "SELECT details, result FROM audit_log WHERE action = 'eraseUser'",
    );
    assert.equal(audit[0]!.result, 'success');
    assert.deepEqual(audit[0]!.details, { userId: VICTIM, eventsDeleted: victimEvents });

    // An old event of the user arriving late (a redelivery) is refused; a new one is recorded.
    await redis.xadd(keys().stream(0), '*', 't', tenantId, 'e', letter(VICTIM));
    await record([{ type: 'signup', userId: VICTIM, messageId: 'after-erasure' }]);
    await settled();
    const { rows: remaining } = await pool.query<{ type: string; received_at: Date }>(
      'SELECT type, received_at FROM events WHERE user_id = $1',
      [VICTIM],
    );
    assert.deepEqual(
      remaining.map((r) => r.type),
      ['signup'],
    );
    assert.ok(remaining[0]!.received_at >= completedAt);
    const back = await gql(gateway.url, UserDocument, { key: ADMIN, variables: { id: VICTIM } });
    assert.equal(back.data!.user?.eventCount, 1);
  });

  it('an erasure racing with ingestion of the same user: what was recorded before it is gone, what after it is kept', async () => {
    const USER = 'racer';
    type Batch = { ids: string[]; sentAt: number; answeredAt: number };
    const batches: Batch[] = [];
    let stop = false;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const events = Array.from({ length: 50 }, () => ({
          type: 'tick',
          userId: USER,
          messageId: `race-${n++}`,
          timestamp: new Date(Date.now() - Math.floor(Math.random() * DAY)).toISOString(),
        }));
        const sentAt = Date.now();
        const res = await gql(gateway.url, RecordEventsDocument, { key: ADMIN, variables: { events } });
        assert.equal(res.data?.recordEvents.accepted, 50, JSON.stringify(res.errors));
        batches.push({ ids: res.data!.recordEvents.ids as string[], sentAt, answeredAt: Date.now() });
      }
    })();
    // Both paths at once: some of the user's events already stored (the erasure deletes them),
    // others recorded since the persister's last insert and held in its next batch (the tombstone
    // refuses them).
    await waitFor(
      async () =>
        batches.length >= 20 && (await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [USER])) > 0,
      20_000,
      10,
    );
    const storedAt = batches.length;
    await waitFor(async () => batches.length >= storedAt + 2, 20_000, 5);
    const erasureSent = Date.now();
    const inFlight = await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [USER]);
    const erased = await gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: USER } });
    const erasureAnswered = Date.now();
    assert.equal(erased.errors, undefined, JSON.stringify(erased.errors));
    const answeredBefore = batches.filter((b) => b.answeredAt < erasureSent).length;
    await waitFor(async () => batches.filter((b) => b.sentAt > erasureAnswered).length >= 10, 20_000, 10);
    stop = true;
    await writer;
    await settled();

    const before = batches.filter((b) => b.answeredAt < erasureSent).flatMap((b) => b.ids);
    const afterwards = batches.filter((b) => b.sentAt > erasureAnswered).flatMap((b) => b.ids);
    assert.ok(before.length >= 1000 && answeredBefore >= 20);
    assert.ok(afterwards.length >= 500);
    // The race is real: some events recorded before the erasure were not in Postgres when it began.
    assert.ok(inFlight < before.length, `${inFlight} of ${before.length} were already stored`);
    assert.equal(await count('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [before]), 0);
    assert.equal(
      await count('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [afterwards]),
      afterwards.length,
    );
    assert.ok(erased.data!.eraseUser.eventsDeleted > 0);
    // The rollups hold exactly the events left.
    const user = await gql(gateway.url, UserDocument, { key: ADMIN, variables: { id: USER } });
    assert.equal(
      user.data!.user?.eventCount,
      await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [USER]),
    );
  });

  it('waits for an event write already running when it starts, and deletes what that write stored', async () => {
    const USER = 'stalled';
    const hour = Math.floor((Date.now() - 2 * HOUR) / HOUR) * HOUR;
    // Holding the (tenant, hour) dirty marker stalls the persister's insert statement of events of
    // that hour after it has read erased_users (before any tombstone exists) and before COMMIT.
    const holder = await pool.connect();
    let erasure: Promise<unknown> | undefined;
    try {
      await holder.query('BEGIN');
      await holder.query(
        `INSERT INTO rollup_dirty (tenant_id, hour) VALUES ($1, $2)
         ON CONFLICT (tenant_id, hour) DO UPDATE SET version = rollup_dirty.version + 1`,
        [tenantId, new Date(hour)],
      );
      const events = Array.from({ length: 50 }, (_, i) => ({
        type: 'stall',
        userId: USER,
        timestamp: new Date(hour + i * 1000).toISOString(),
      }));
      await record(events);
      await waitFor(
        async () =>
          (await count(
            `SELECT count(*)::int AS n FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO events%'`,
          )) > 0,
        15_000,
      );
      erasure = gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: USER } });
      // The erasure waits for the stalled write rather than deleting before it commits.
      await new Promise((r) => setTimeout(r, 300));
      await holder.query('COMMIT');
    } finally {
      holder.release();
    }
    const erased = (await erasure) as Awaited<
      ReturnType<typeof gql<import('../../generated/graphql.js').EraseUserMutation, unknown>>
    >;
    assert.equal(erased.errors, undefined, JSON.stringify(erased.errors));
    assert.equal(erased.data!.eraseUser.eventsDeleted, 50);
    await settled();
    assert.equal(await count('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [USER]), 0);
  });

  it("deletes the user's stream entries and dead letters received before the erasure, and nothing else", async () => {
    // A partition layout of its own that no consumer reads: what is left is exactly what the sweep left.
    const side = createStreamKeys(`${isolation.redisKeyPrefix}side:`, 2);
    const payload = (userId: string, receivedAt: number, tenant = tenantId) =>
      encodeStreamEvent({
        tenantId: tenant,
        id: randomUUID(),
        type: 'click',
        userId,
        sessionId: null,
        messageId: null,
        occurredAt: receivedAt,
        receivedAt,
        value: null,
        properties: null,
      });
    const cut = Date.now();
    const otherTenant = randomUUID();
    for (const partition of [0, 1]) {
      for (const key of [side.stream(partition), side.deadLetters(partition)]) {
        await redis.xadd(key, '*', 't', tenantId, 'e', payload(VICTIM, cut - 1000));
        await redis.xadd(key, '*', 't', tenantId, 'e', payload(VICTIM, cut + 1000));
        await redis.xadd(key, '*', 't', tenantId, 'e', payload('someone-else', cut - 1000));
        await redis.xadd(key, '*', 't', otherTenant, 'e', payload(VICTIM, cut - 1000, otherTenant));
        await redis.xadd(key, '*', 't', tenantId, 'e', 'not json');
      }
    }
    const { eraseUserStreamEntries } = await import('../../../src/ingest/stream-erasure.js');
    const result = await eraseUserStreamEntries(redis, side, tenantId, VICTIM, cut);
    assert.deepEqual(result, { streamEntries: 2, deadLetters: 2 });
    for (const partition of [0, 1]) {
      for (const key of [side.stream(partition), side.deadLetters(partition)]) {
        assert.equal(await redis.xlen(key), 4, key);
      }
    }
  });

  it('needs the admin scope and a sensible user id', async () => {
    const empty = await gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: '' } });
    assert.equal(errorCode(empty), 'BAD_USER_INPUT');
    const anonymous = await gql(gateway.url, EraseUserDocument, { variables: { userId: 'x' } });
    assert.equal(errorCode(anonymous), 'UNAUTHENTICATED');
    // One erasure of a user at a time: while another holds the user's lock, a second one is refused.
    const holder = await pool.connect();
    try {
      await holder.query("SELECT pg_advisory_lock(hashtextextended('erase-user:' || $1 || ':' || $2, 0))", [
        tenantId,
        'busy',
      ]);
      // The same request sent twice at once is the client's doing: 429 with a Retry-After, never a 5xx.
      const refused = await gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: 'busy' } });
      assert.equal(errorCode(refused), 'RATE_LIMITED');
      assert.equal(refused.status, 429);
      assert.equal(refused.headers.get('retry-after'), '1');
      assert.match(refused.errors![0]!.message, /already running/);
      await holder.query("SELECT pg_advisory_unlock(hashtextextended('erase-user:' || $1 || ':' || $2, 0))", [
        tenantId,
        'busy',
      ]);
    } finally {
      holder.release();
    }
    const done = await gql(gateway.url, EraseUserDocument, { key: ADMIN, variables: { userId: 'busy' } });
    assert.equal(done.data?.eraseUser.eventsDeleted, 0, JSON.stringify(done.errors));
  });
});
