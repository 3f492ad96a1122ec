import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config/config.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { normalizeEvent } from '../../../src/ingest/event-validation.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { createEventStream } from '../../../src/ingest/event-stream.js';
import { EventRepository } from '../../../src/ingest/event.repository.js';
import { encodeStreamEvent, type StreamEvent } from '../../../src/ingest/stream-event.js';
import { createPersistWorker } from '../../../src/ingest/persist.worker.js';
import { ensureGroup, fieldsOf, type StreamEntry } from '../../../src/streams/stream-entries.js';
import { createStreamMaintenanceWorker } from '../../../src/streams/stream-maintenance.worker.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, waitFor, testPool } from '../../helpers/test-env.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const TENANT = '3a1e5c0d-58b4-4f1e-a7c2-9d8e7f6a5b4c';

describe('the persist consumer group', () => {
  const isolation = isolatedEnv('persist');
  const config = loadConfig(isolation.env({ PERSIST_BATCH_WAIT_MS: '10', PERSIST_RETRY_MAX_MS: '200' }));
  const keys = createStreamKeys(isolation.redisKeyPrefix, 1);
  const stream = keys.stream(0);
  let pool: pg.Pool;
  let redis: Redis;
  let appender: ReturnType<typeof createEventStream>;

  before(async () => {
    await prepareDatabase(config, logger, { migrate: true });
    pool = testPool(isolation.databaseUrl, 4);
    redis = new Redis(REDIS_URL);
    appender = createEventStream(redis, keys, { dedupeWindowS: 3600, maxLength: 1_000_000 });
    await ensureGroup(redis, stream, 'persist');
  });
  after(async () => {
    redis?.disconnect();
    await pool?.end();
    await isolation.cleanup();
  });

  async function append(n: number, type = 'e'): Promise<string[]> {
    const events = Array.from({ length: n }, (_, i) => {
      const r = normalizeEvent({ type, userId: `u${i % 7}`, value: i }, { tenantId: TENANT, receivedAt: Date.now() });
      assert.ok(r.ok);
      return r.event;
    });
    for (let i = 0; i < events.length; i += 1000) await appender.enqueue(TENANT, events.slice(i, i + 1000));
    return events.map((e) => e.id);
  }
  const storedOnce = async (ids: string[]) => {
    const { rows } = await pool.query<{ n: number; d: number }>(
      'SELECT count(*)::int AS n, count(DISTINCT id)::int AS d FROM events WHERE id = ANY($1::uuid[])',
      [ids],
    );
    return rows[0]!.n === ids.length && rows[0]!.d === ids.length;
  };
  const pendingCount = async () => ((await redis.xpending(stream, 'persist')) as [number])[0];
  function worker(overrides: Record<string, string> = {}, db: pg.Pool = pool, metrics = createMetrics()) {
    const c = loadConfig(isolation.env({ PERSIST_BATCH_WAIT_MS: '10', PERSIST_RETRY_MAX_MS: '200', ...overrides }));
    return createPersistWorker({ pool: db, connect: () => new Redis(REDIS_URL), keys, config: c, logger, metrics });
  }

  it('trims only below the oldest entry a consumer group still needs', async () => {
    const maintenance = createStreamMaintenanceWorker({
      redis,
      keys,
      metrics: createMetrics(),
      logger,
      intervalMs: 1000,
      // Only the group this test drives by hand (with the default, a missing aggregate group holds all).
      requiredGroups: ['persist'],
    });
    await append(100);
    const read = async (count: number) =>
      (
        (await redis.xreadgroup('GROUP', 'persist', 'hand', 'COUNT', count, 'STREAMS', stream, '>')) as [
          string,
          StreamEntry[],
        ][]
      )[0]![1];
    const delivered = await read(60);
    await redis.xack(stream, 'persist', ...delivered.slice(0, 20).map(([id]) => id));
    await maintenance.runOnce();
    assert.equal(await redis.xlen(stream), 80, 'the 20 acknowledged went; 40 pending and 40 unread stay');

    // Acknowledging entries above the oldest pending one frees nothing yet.
    await redis.xack(stream, 'persist', ...delivered.slice(40).map(([id]) => id));
    await maintenance.runOnce();
    assert.equal(await redis.xlen(stream), 80);

    await redis.xack(stream, 'persist', ...delivered.slice(20, 40).map(([id]) => id));
    await maintenance.runOnce();
    assert.equal(await redis.xlen(stream), 40, 'only the never-delivered entries remain');

    const rest = await read(100);
    await redis.xack(stream, 'persist', ...rest.map(([id]) => id));
    await maintenance.runOnce();
    assert.equal(await redis.xlen(stream), 0);
  });

  it('reclaims entries a dead consumer left pending, and dead-letters those delivered too often', async () => {
    const [normal, tooOften] = [await append(1, 'orphaned'), await append(1, 'cursed')];
    const entries = (
      (await redis.xreadgroup('GROUP', 'persist', 'ghost', 'COUNT', 10, 'STREAMS', stream, '>')) as [
        string,
        StreamEntry[],
      ][]
    )[0]![1];
    assert.equal(entries.length, 2);
    // As if the second had crashed its consumers seven times over.
    await redis.xclaim(stream, 'persist', 'ghost', 0, entries[1]![0], 'RETRYCOUNT', 7);

    const w = worker({ PERSIST_CLAIM_IDLE_MS: '200', PERSIST_MAX_DELIVERIES: '5' });
    await w.start();
    try {
      await waitFor(() => storedOnce(normal), 5_000);
      await waitFor(async () => (await redis.xlen(keys.deadLetters(0))) === 1, 5_000);
      const [letter] = (await redis.xrange(keys.deadLetters(0), '-', '+')) as StreamEntry[];
      assert.match(fieldsOf(letter![1]).reason!, /delivered \d+ times/);
      assert.equal(await pendingCount(), 0);
      assert.equal(await storedOnce(tooOften), false);
    } finally {
      await w.stop();
      await redis.del(keys.deadLetters(0));
    }
  });

  it('writes the same rows by COPY as by unnest, and stores a repeated batch or messageId once', async () => {
    const repository = new EventRepository(pool);
    const at = Date.UTC(2026, 11, 3, 10, 30, 15, 123);
    const make = (i: number, mode: string): StreamEvent => ({
      tenantId: TENANT,
      id: crypto.randomUUID(),
      type: `copy_${mode}`,
      userId: i % 3 === 0 ? null : `ü-${i}\t"quoted"\\`,
      sessionId: i % 2 ? `s${i}` : null,
      messageId: i % 4 === 0 ? null : `${mode}-msg-${i}`,
      occurredAt: at - i * 1_000,
      receivedAt: at + 7,
      value: i % 5 === 0 ? null : i * 1.1e-3 - 17.25,
      properties: i % 2 ? JSON.stringify({ i, path: '/a\nb', nested: { ok: true } }) : null,
    });
    const rowsOf = async (type: string) =>
      (
        await pool.query(
          `SELECT user_id, session_id, message_id, occurred_at, received_at, value, properties
           FROM events WHERE type = $1 ORDER BY occurred_at`,
          [type],
        )
      ).rows;
    const copied = Array.from({ length: 200 }, (_, i) => make(i, 'copy'));
    const unnested = copied.map((e, i) => ({
      ...make(i, 'unnest'),
      id: crypto.randomUUID(),
      messageId: e.messageId?.replace('copy', 'unnest') ?? null,
    }));
    assert.equal(await repository.insertCountByCopy(copied), 200);
    assert.equal(await repository.insertCount(unnested), 200);
    const [a, b] = [await rowsOf('copy_copy'), await rowsOf('copy_unnest')];
    assert.equal(a.length, 200);
    assert.deepEqual(
      a.map((r) => ({ ...r, message_id: r.message_id?.replace('copy', 'unnest') ?? null })),
      b,
      'every value reads back the same',
    );
    assert.equal(a.at(-2).occurred_at.getTime(), at - 1_000, 'milliseconds kept');

    // Redelivered as is: the primary key skips every row. Retried under new ids: the messageId claim does.
    assert.equal(await repository.insertCountByCopy(copied), 0);
    const retried = copied.filter((e) => e.messageId !== null).map((e) => ({ ...e, id: crypto.randomUUID() }));
    assert.equal(await repository.insertCountByCopy(retried), 0);
    assert.equal((await rowsOf('copy_copy')).length, 200);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM event_message_ids WHERE message_id LIKE $1', [
      'copy-msg-%',
    ]);
    assert.equal(rows[0].n, retried.length, 'each messageId claimed once');
  });

  it('dead-letters a refused event alone and stores the rest of its batch by COPY', async () => {
    const good = Array.from({ length: 99 }, (_, i) => {
      const r = normalizeEvent(
        { type: 'poison_batch', userId: `u${i}`, value: i },
        { tenantId: TENANT, receivedAt: Date.now() },
      );
      assert.ok(r.ok);
      return r.event;
    });
    // Valid stream payloads Postgres refuses: a NUL in a text column, properties that are not JSON.
    const nul: StreamEvent = { ...good[0]!, id: crypto.randomUUID(), userId: 'a\u0000b', messageId: null };
    const notJson: StreamEvent = { ...good[0]!, id: crypto.randomUUID(), properties: '{"open":', messageId: null };
    const batchOf = [...good.slice(0, 40), nul, ...good.slice(40, 70), notJson, ...good.slice(70)];
    const pipeline = redis.pipeline();
    for (const e of batchOf) pipeline.xadd(stream, '*', 't', TENANT, 'e', encodeStreamEvent(e));
    await pipeline.exec();
    const w = worker({ PERSIST_BATCH_SIZE: '1000', PERSIST_BATCH_WAIT_MS: '200' });
    await w.start();
    try {
      await waitFor(() => storedOnce(good.map((e) => e.id)), 10_000);
      await waitFor(async () => (await redis.xlen(keys.deadLetters(0))) === 2, 5_000);
      const letters = (await redis.xrange(keys.deadLetters(0), '-', '+')) as StreamEntry[];
      const ids = letters.map(([, f]) => JSON.parse(fieldsOf(f).e!)[2] as string).sort();
      assert.deepEqual(ids, [nul.id, notJson.id].sort());
      for (const [, f] of letters) assert.match(fieldsOf(f).reason!, /^rejected: /);
      await waitFor(async () => (await pendingCount()) === 0, 5_000);
    } finally {
      await w.stop();
      await redis.del(keys.deadLetters(0));
    }
  });

  it('acknowledges nothing while Postgres is unreachable, then stores everything exactly once', async () => {
    const proxy = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    const db = new pg.Pool({ connectionString: viaProxy.toString(), max: 2, connectionTimeoutMillis: 1000 });
    // Cutting the proxy kills idle connections: expected here, and the worker's queries report it.
    db.on('error', () => undefined);
    const metrics = createMetrics();
    const w = worker({}, db, metrics);
    proxy.cut();
    await w.start();
    try {
      const ids = await append(500);
      await waitFor(async () => (await pendingCount()) === 500, 5_000);
      await waitFor(async () => (await metrics.persistRetries.get()).values[0]!.value >= 2, 5_000);
      assert.equal(await storedOnce(ids), false);
      assert.equal(await pendingCount(), 500, 'nothing was acknowledged');

      proxy.restore();
      await waitFor(() => storedOnce(ids), 10_000);
      await waitFor(async () => (await pendingCount()) === 0, 5_000);
    } finally {
      await w.stop();
      await db.end();
      await proxy.close();
    }
  });

  it('keeps a batch it is retrying from being reclaimed, so a long Postgres outage dead-letters nothing', async () => {
    const proxy = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    const db = new pg.Pool({ connectionString: viaProxy.toString(), max: 3, connectionTimeoutMillis: 500 });
    db.on('error', () => undefined);
    // Three consumers of the partition, each free to reclaim what has been idle 200 ms: without a
    // sign of life from the one retrying, the batch would pass from one to the next, its delivery
    // count past the maximum, and into the dead letters though nothing is wrong with it.
    const settings = { PERSIST_CLAIM_IDLE_MS: '200', PERSIST_MAX_DELIVERIES: '2', PERSIST_CONCURRENCY: '1' };
    const workers = [worker(settings, db), worker(settings, db), worker(settings, db)];
    proxy.cut();
    await Promise.all(workers.map((w) => w.start()));
    try {
      const ids = await append(300, 'outage');
      await waitFor(async () => (await pendingCount()) === 300, 5_000);
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      assert.equal(await redis.xlen(keys.deadLetters(0)), 0, 'no dead letters');
      proxy.restore();
      await waitFor(() => storedOnce(ids), 10_000);
      await waitFor(async () => (await pendingCount()) === 0, 5_000);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
      await db.end();
      await proxy.close();
      await redis.del(keys.deadLetters(0));
    }
  });

  it('splits the work between replicas with every event stored once', async () => {
    const workers = [worker(), worker()];
    await Promise.all(workers.map((w) => w.start()));
    try {
      const ids = await append(5_000);
      await waitFor(() => storedOnce(ids), 15_000);
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [ids]);
      assert.equal(rows[0].n, 5_000);
    } finally {
      await Promise.all(workers.map((w) => w.stop()));
    }
  });
});
