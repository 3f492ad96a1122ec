import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { ApiKeyService } from '../../../src/auth/api-key.service.js';
import { fieldsOf, type StreamEntry } from '../../../src/streams/stream-entries.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { RecordEventDocument, RecordEventsDocument, ReplayDeadLettersDocument } from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, waitFor, testPool } from '../../helpers/test-env.js';

const ADMIN = 'agk_ingest-admin-key-000000000000000000000000000';

describe('recordEvent / recordEvents', () => {
  const isolation = isolatedEnv('record_events');
  const keys = createStreamKeys(isolation.redisKeyPrefix, 1);
  let gateway: RunningGateway;
  let pool: pg.Pool;
  let redis: Redis;
  let tenantId: string;

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: ADMIN,
        INGEST_MAX_BATCH: '50',
        MAX_BODY_BYTES: '65536',
        PERSIST_BATCH_WAIT_MS: '10',
        PERSIST_CLAIM_IDLE_MS: '500',
        STREAM_TRIM_INTERVAL_MS: '200',
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

  const stored = async (ids: readonly (string | null | undefined)[]) =>
    Number(
      (
        await pool.query<{ n: string }>('SELECT count(*) AS n FROM events WHERE id = ANY($1::uuid[])', [
          ids.filter(Boolean),
        ])
      ).rows[0]!.n,
    );
  const waitStored = (ids: readonly (string | null | undefined)[], expected = ids.filter(Boolean).length) =>
    waitFor(async () => (await stored(ids)) === expected, 10_000);

  /** The persist group's state: settled once nothing is pending and nothing is unread. */
  const settled = async () => {
    const [group] = (await redis.xinfo('GROUPS', keys.stream(0))) as string[][];
    const info = fieldsOf(group!.map(String));
    return info.pending === '0' && info.lag === '0';
  };
  const deadLetters = async () =>
    ((await redis.xrange(keys.deadLetters(0), '-', '+')) as StreamEntry[]).map(([, flat]) => fieldsOf(flat));

  it('accepts a batch, stores every event once, and reports per-item errors without rejecting the rest', async () => {
    const response = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: {
        events: [
          { type: 'page_view', userId: 'u1', sessionId: 's1', value: 1, properties: { path: '/' } },
          { type: 'bad type' },
          { type: 'click', userId: 'u'.repeat(300) },
          { type: 'click', properties: ['not', 'an', 'object'] },
          { type: 'signup', userId: 'u2' },
        ],
      },
    });
    const payload = response.data!.recordEvents;
    assert.equal(payload.accepted, 2);
    assert.equal(payload.duplicates, 0);
    assert.deepEqual(
      payload.errors.map((e) => [e.index, e.code]),
      [
        [1, 'BAD_USER_INPUT'],
        [2, 'BAD_USER_INPUT'],
        [3, 'BAD_USER_INPUT'],
      ],
    );
    assert.match(payload.errors[1]!.message, /userId/);
    assert.equal(payload.ids[1], null);
    await waitStored(payload.ids);
    const row = await pool.query(
      'SELECT tenant_id, type, user_id, session_id, value, properties FROM events WHERE id = $1',
      [payload.ids[0]],
    );
    assert.deepEqual(row.rows[0], {
      tenant_id: tenantId,
      type: 'page_view',
      user_id: 'u1',
      session_id: 's1',
      value: 1,
      properties: { path: '/' },
    });
  });

  it('answers a repeated messageId as a duplicate with the first id, within a batch and across batches, storing it once', async () => {
    const first = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: {
        events: [
          { type: 'a', messageId: 'dup-1' },
          { type: 'a', messageId: 'dup-1' },
          { type: 'a', messageId: 'dup-2' },
        ],
      },
    });
    const p1 = first.data!.recordEvents;
    assert.equal(p1.accepted, 2);
    assert.equal(p1.duplicates, 1);
    assert.equal(p1.ids[1], p1.ids[0]);

    const again = await gql(gateway.url, RecordEventDocument, {
      key: ADMIN,
      variables: { input: { type: 'a', messageId: 'dup-2' } },
    });
    assert.deepEqual(again.data!.recordEvent, { id: p1.ids[2], duplicate: true });

    await waitStored([p1.ids[0], p1.ids[2]]);
    const counts = await pool.query(
      "SELECT message_id, count(*)::int AS n FROM events WHERE message_id LIKE 'dup-%' GROUP BY 1 ORDER BY 1",
    );
    assert.deepEqual(counts.rows, [
      { message_id: 'dup-1', n: 1 },
      { message_id: 'dup-2', n: 1 },
    ]);
  });

  it('stores a messageId once even when Redis has lost its dedupe keys (the Postgres guard)', async () => {
    const first = await gql(gateway.url, RecordEventDocument, {
      key: ADMIN,
      variables: { input: { type: 'g', messageId: 'guard-1' } },
    });
    await waitStored([first.data!.recordEvent.id]);
    const dedupeKeys = await redis.keys(`${isolation.redisKeyPrefix}*dedupe*guard-1`);
    assert.equal(dedupeKeys.length, 1);
    await redis.del(...dedupeKeys);
    const retry = await gql(gateway.url, RecordEventDocument, {
      key: ADMIN,
      variables: { input: { type: 'g', messageId: 'guard-1' } },
    });
    assert.notEqual(retry.data!.recordEvent.id, first.data!.recordEvent.id, 'Redis could not know');
    // Once the persister has settled the retry, it must not have stored it.
    await waitFor(settled, 5_000);
    const rows = await pool.query("SELECT id FROM events WHERE message_id = 'guard-1'");
    assert.deepEqual(rows.rows, [{ id: first.data!.recordEvent.id }]);
  });

  it('corrects clock skew from sentAt and clamps far-future timestamps', async () => {
    // The client clock is one hour fast.
    const now = Date.now();
    const sentAt = new Date(now + 3_600_000).toISOString();
    const response = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: {
        sentAt,
        events: [
          { type: 'skewed', timestamp: new Date(now + 3_600_000 - 60_000).toISOString() },
          { type: 'future', timestamp: new Date(now + 5 * 3_600_000).toISOString() },
        ],
      },
    });
    const ids = response.data!.recordEvents.ids;
    await waitStored(ids);
    const rows = await pool.query<{ type: string; occurred: Date; received: Date }>(
      'SELECT type, occurred_at AS occurred, received_at AS received FROM events WHERE id = ANY($1::uuid[]) ORDER BY type',
      [ids],
    );
    const [future, skewed] = rows.rows;
    assert.ok(
      Math.abs(skewed!.received.getTime() - skewed!.occurred.getTime() - 60_000) < 50,
      'one minute before receipt',
    );
    // 5 h fast + sentAt 1 h fast = corrected to 4 h ahead: still more than an hour in the future, so clamped.
    assert.equal(future!.occurred.getTime(), future!.received.getTime());
  });

  it('refuses a batch over INGEST_MAX_BATCH or a body over MAX_BODY_BYTES whole, accepting nothing', async () => {
    const before = Number((await pool.query('SELECT count(*) AS n FROM events')).rows[0].n);
    const lengthBefore = await redis.xlen(keys.stream(0));
    const tooMany = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: { events: Array.from({ length: 51 }, () => ({ type: 'x' })) },
    });
    assert.equal(errorCode(tooMany), 'PAYLOAD_TOO_LARGE');
    assert.equal(tooMany.status, 413);
    assert.equal(tooMany.data, null);

    const big = await fetch(`${gateway.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` },
      body: JSON.stringify({
        query: 'mutation($e:[EventInput!]!){ recordEvents(events:$e){ accepted } }',
        variables: { e: Array.from({ length: 10 }, () => ({ type: 'x', properties: { pad: 'p'.repeat(8_000) } })) },
      }),
    });
    assert.equal(big.status, 413);
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(Number((await pool.query('SELECT count(*) AS n FROM events')).rows[0].n), before);
    assert.ok((await redis.xlen(keys.stream(0))) <= lengthBefore, 'nothing was appended');
  });

  it('needs the events:write scope', async () => {
    const service = new ApiKeyService(pool, undefined, isolation.redisKeyPrefix, pino({ level: 'silent' }));
    const reader = await service.createKey({ tenantSlug: 'demo', name: 'reader', scopes: ['analytics:read'] });
    const denied = await gql(gateway.url, RecordEventDocument, {
      key: reader.plaintext,
      variables: { input: { type: 'x' } },
    });
    assert.equal(errorCode(denied), 'FORBIDDEN');
    const writer = await service.createKey({ tenantSlug: 'demo', name: 'writer', scopes: ['events:write'] });
    const allowed = await gql(gateway.url, RecordEventDocument, {
      key: writer.plaintext,
      variables: { input: { type: 'x' } },
    });
    assert.equal(allowed.data?.recordEvent.duplicate, false);
    const replay = await gql(gateway.url, ReplayDeadLettersDocument, { key: writer.plaintext, variables: {} });
    assert.equal(errorCode(replay), 'FORBIDDEN');
  });

  it('dead-letters an event Postgres refuses, stores the rest of its batch, and replays it once fixed', async () => {
    await pool.query(`
      CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.type = 'poison' THEN RAISE EXCEPTION 'poison event refused by test trigger'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER refuse_poison BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_poison();`);
    const response = await gql(gateway.url, RecordEventsDocument, {
      key: ADMIN,
      variables: { events: [{ type: 'fine' }, { type: 'poison', userId: 'p1' }, { type: 'fine' }] },
    });
    const [good1, poison, good2] = response.data!.recordEvents.ids;
    await waitStored([good1, good2]);
    await waitFor(async () => (await redis.xlen(keys.deadLetters(0))) === 1, 5_000);
    const [letter] = await deadLetters();
    assert.match(letter!.reason!, /poison event refused by test trigger/);
    assert.equal(letter!.t, tenantId);
    assert.equal(await stored([poison]), 0);
    const metrics = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(metrics, /dead_letters_total\{reason="rejected"\} 1/);

    await pool.query('DROP TRIGGER refuse_poison ON events; DROP FUNCTION refuse_poison();');
    const replayed = await gql(gateway.url, ReplayDeadLettersDocument, { key: ADMIN, variables: { limit: 10 } });
    assert.equal(replayed.data?.replayDeadLetters, 1);
    await waitStored([poison]);
    assert.equal(await redis.xlen(keys.deadLetters(0)), 0);
  });

  it('dead-letters an entry that cannot be parsed', async () => {
    await redis.xadd(keys.stream(0), '*', 't', tenantId, 'e', '{"not":"an event"');
    await waitFor(async () => (await redis.xlen(keys.deadLetters(0))) === 1, 5_000);
    const [letter] = await deadLetters();
    assert.match(letter!.reason!, /^unparseable/);
    await redis.del(keys.deadLetters(0));
  });

  it("only lets an admin replay its own tenant's dead letters", async () => {
    await redis.xadd(
      keys.deadLetters(0),
      '*',
      'reason',
      'test',
      't',
      '99999999-9999-4999-8999-999999999999',
      'e',
      '[]',
    );
    const replayed = await gql(gateway.url, ReplayDeadLettersDocument, { key: ADMIN, variables: { limit: 10 } });
    assert.equal(replayed.data?.replayDeadLetters, 0);
    assert.equal(await redis.xlen(keys.deadLetters(0)), 1);
    const bad = await gql(gateway.url, ReplayDeadLettersDocument, { key: ADMIN, variables: { limit: 0 } });
    assert.equal(errorCode(bad), 'BAD_USER_INPUT');
    await redis.del(keys.deadLetters(0));
  });

  it('leaves the stream empty once everything is persisted and acknowledged', async () => {
    await waitFor(async () => (await settled()) && (await redis.xlen(keys.stream(0))) === 0, 5_000);
  });
});

describe('INGEST_ACK=postgres', () => {
  const isolation = isolatedEnv('ack_postgres');
  after(() => isolation.cleanup());

  it('answers only once the events are committed, and still publishes them to the stream', async () => {
    const gateway = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN, INGEST_ACK: 'postgres', PERSIST_BATCH_WAIT_MS: '10' }),
    );
    const pool = testPool(isolation.databaseUrl, 2);
    const redis = new Redis(REDIS_URL);
    try {
      const events = Array.from({ length: 20 }, (_, i) => ({ type: 'committed', messageId: `c-${i}` }));
      const response = await gql(gateway.url, RecordEventsDocument, { key: ADMIN, variables: { events } });
      const ids = response.data!.recordEvents.ids;
      const count = async () =>
        Number((await pool.query('SELECT count(*) AS n FROM events WHERE id = ANY($1::uuid[])', [ids])).rows[0].n);
      assert.equal(await count(), 20, 'in Postgres before the answer');
      const again = await gql(gateway.url, RecordEventsDocument, { key: ADMIN, variables: { events } });
      assert.equal(again.data!.recordEvents.duplicates, 20);
      assert.deepEqual(again.data!.recordEvents.ids, ids);

      // The stream carries the accepted events once (for live aggregates); the persister only acknowledges them.
      const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
      await waitFor(async () => {
        const [group] = (await redis.xinfo('GROUPS', stream)) as string[][];
        const info = fieldsOf((group ?? []).map(String));
        return info.pending === '0' && info.lag === '0' && info['entries-read'] === '20';
      }, 5_000);
      assert.equal(await count(), 20);
      assert.match(
        await (await fetch(`${gateway.url}/metrics`)).text(),
        /events_persisted_total\{outcome="stored"\} 0/,
      );
    } finally {
      await gateway.stop();
      redis.disconnect();
      await pool.end();
    }
  });
});

describe('STREAM_MAX_LENGTH backpressure', () => {
  const isolation = isolatedEnv('backpressure');
  after(() => isolation.cleanup());

  it('refuses events with SERVICE_UNAVAILABLE once a partition holds that many unconsumed entries, dropping none', async () => {
    // API only: no consumer drains the stream.
    const gateway = await startGateway(
      isolation.env({ ROLE: 'api', BOOTSTRAP_API_KEY: ADMIN, STREAM_MAX_LENGTH: '1000', INGEST_MAX_BATCH: '1000' }),
    );
    const redis = new Redis(REDIS_URL);
    const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
    try {
      const fill = await gql(gateway.url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: Array.from({ length: 1000 }, (_, i) => ({ type: 'fill', messageId: `f-${i}` })) },
      });
      assert.equal(fill.data?.recordEvents.accepted, 1000);
      const refused = await gql(gateway.url, RecordEventsDocument, {
        key: ADMIN,
        variables: { events: [{ type: 'over' }] },
      });
      assert.equal(errorCode(refused), 'SERVICE_UNAVAILABLE');
      assert.equal(refused.status, 503);
      assert.equal(await redis.xlen(stream), 1000, 'nothing trimmed, nothing added');
    } finally {
      await gateway.stop();
      redis.disconnect();
    }
  });
});
