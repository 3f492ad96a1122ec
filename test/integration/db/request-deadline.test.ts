import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import WebSocket from 'ws';
import { DeadlineExceededError, RequestDeadline } from '../../../src/db/request-deadline.js';
import { createEventStream } from '../../../src/ingest/event-stream.js';
import { IngestService } from '../../../src/ingest/ingest.service.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { EventsDocument, RecordEventsDocument } from '../../generated/graphql.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const KEY = 'deadline-key';
const POOL = 'event_reads';
const REQUEST_TIMEOUT_MS = 600;
const STATEMENT_TIMEOUT_MS = 4_000;

/**
 * A request past REQUEST_TIMEOUT_MS is answered SERVICE_UNAVAILABLE at its deadline, even while
 * its statement still waits for a lock that statement_timeout (set far above the deadline here)
 * would end much later, and a request waiting for a connection leaves the pool's queue then.
 */
describe('request deadline', () => {
  const isolation = isolatedEnv('req_deadline');
  let gateway: RunningGateway;

  before(async () => {
    gateway = await startGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: KEY,
        REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        DB_STATEMENT_TIMEOUT_MS: String(STATEMENT_TIMEOUT_MS),
        DATABASE_POOL_MAX: '2',
      }),
    );
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  const events = () => gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 5 } });
  const pool = (state: string) => scrapeMetric(gateway.url, `db_pool_connections{pool="${POOL}",state="${state}"}`);

  /** Runs `body` while another session holds events locked; the lock goes whatever happens. */
  async function withEventsLocked(body: () => Promise<void>): Promise<void> {
    const locker = testPool(isolation.databaseUrl, 1);
    const client = await locker.connect();
    const release = setTimeout(() => void client.query('ROLLBACK').catch(() => undefined), 20_000);
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      await body();
    } finally {
      clearTimeout(release);
      await client.query('ROLLBACK');
      client.release();
      await locker.end();
    }
  }

  function assertDeadlineAnswer(answer: Awaited<ReturnType<typeof events>>, startedAt: number): void {
    assert.equal(errorCode(answer), 'SERVICE_UNAVAILABLE', JSON.stringify(answer.errors));
    assert.equal(answer.status, 503);
    assert.match(answer.errors![0]!.message, /deadline \(REQUEST_TIMEOUT_MS, 600 ms\)/);
    // At the deadline, not when statement_timeout would have ended the statement.
    const tookMs = performance.now() - startedAt;
    assert.ok(tookMs >= REQUEST_TIMEOUT_MS - 50, `answered after ${tookMs} ms`);
    assert.ok(tookMs < STATEMENT_TIMEOUT_MS, `answered after ${tookMs} ms`);
  }

  it('answers SERVICE_UNAVAILABLE at the deadline while statements wait for a lock, then serves again', async () => {
    const first = await events();
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));
    const exceededBefore = await scrapeMetric(gateway.url, 'request_deadlines_exceeded_total{transport="http"}');

    await withEventsLocked(async () => {
      // Twice as many requests as the pool has connections: two statements wait for the lock,
      // two requests wait for a connection.
      const startedAt = performance.now();
      const answers = await Promise.all(Array.from({ length: 4 }, () => events()));
      for (const answer of answers) assertDeadlineAnswer(answer, startedAt);
      assert.equal(await pool('waiting'), 0, 'no request is left waiting for a connection');
    });

    // The lock gone, the statements that held the connections end and give them back.
    const afterwards = await events();
    assert.equal(afterwards.errors, undefined, JSON.stringify(afterwards.errors));
    assert.equal(await pool('waiting'), 0);
    const exceeded = await scrapeMetric(gateway.url, 'request_deadlines_exceeded_total{transport="http"}');
    assert.equal(exceeded - exceededBefore, 4);
  });

  it('refuses a request starved of connections at its deadline instead of leaving it queued', async () => {
    await withEventsLocked(async () => {
      // Both connections taken by statements stuck on the lock (until statement_timeout).
      const holders = Promise.all([events(), events()]);
      while ((await pool('total')) - (await pool('idle')) < 2) await new Promise((r) => setTimeout(r, 20));

      const startedAt = performance.now();
      const starved = await events();
      assertDeadlineAnswer(starved, startedAt);
      // Its place in the queue is given up at once, while the holders' statements still run.
      assert.equal(await pool('waiting'), 0);
      assert.equal((await pool('total')) - (await pool('idle')), 2, 'the holders still have their connections');
      for (const answer of await holders) assert.equal(errorCode(answer), 'SERVICE_UNAVAILABLE');
    });

    const afterwards = await events();
    assert.equal(afterwards.errors, undefined, JSON.stringify(afterwards.errors));
  });

  it('bounds a query over WebSocket alike, and not the life of a subscription', async () => {
    const client = createClient({
      url: `${gateway.url.replace('http', 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams: { authorization: `Bearer ${KEY}` },
      retryAttempts: 0,
    });
    try {
      // Each pushed event resolves Event.user through the database, long after the subscription began.
      const pushed: { data?: unknown; errors?: unknown }[] = [];
      const failures: unknown[] = [];
      client.subscribe(
        { query: 'subscription { eventRecorded(type: "deadline_probe") { id user { id } } }' },
        { next: (msg) => pushed.push(msg), error: (err) => failures.push(err), complete: () => undefined },
      );
      await new Promise((resolve) => setTimeout(resolve, 3 * REQUEST_TIMEOUT_MS));
      const recorded = await gql(gateway.url, RecordEventsDocument, {
        key: KEY,
        variables: { events: [{ type: 'deadline_probe', userId: 'u-deadline', messageId: 'deadline-probe-1' }] },
      });
      assert.equal(recorded.errors, undefined, JSON.stringify(recorded.errors));
      await waitFor(async () => pushed.length > 0 || failures.length > 0, 10_000);
      assert.deepEqual(failures, []);
      assert.equal(pushed[0]!.errors, undefined, JSON.stringify(pushed[0]!.errors));

      await withEventsLocked(async () => {
        const startedAt = performance.now();
        const answer = await new Promise<{ errors?: readonly { message: string; extensions?: { code?: unknown } }[] }>(
          (resolve, reject) => {
            client.subscribe(
              { query: '{ events(first: 5) { edges { node { id } } } }' },
              {
                next: (msg) => resolve(msg as never),
                error: reject,
                complete: () => undefined,
              },
            );
          },
        );
        assert.equal(answer.errors?.[0]?.extensions?.code, 'SERVICE_UNAVAILABLE', JSON.stringify(answer.errors));
        assert.match(answer.errors![0]!.message, /deadline \(REQUEST_TIMEOUT_MS, 600 ms\)/);
        assert.ok(performance.now() - startedAt < STATEMENT_TIMEOUT_MS);
      });
      assert.ok((await scrapeMetric(gateway.url, 'request_deadlines_exceeded_total{transport="websocket"}')) >= 1);
    } finally {
      await client.dispose();
    }
  });

  it('never half-acknowledges a batch: refused whole before storing, or stored and acknowledged whole', async () => {
    const pool = testPool(isolation.databaseUrl, 2);
    const redis = new Redis(REDIS_URL);
    try {
      const tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
      const keys = createStreamKeys(`${isolation.redisKeyPrefix}ingest-deadline:`, 1);
      const stream = createEventStream(redis, keys, { dedupeWindowS: 60, maxLength: 10_000 });
      const service = (ack: 'stream' | 'postgres') =>
        new IngestService({
          pool,
          redis,
          stream,
          config: { ingest: { ack, maxBatch: 1000, dedupeWindowS: 60 } },
          metrics: createMetrics(),
          logger: pino({ level: 'silent' }),
        });
      const batch = (prefix: string) =>
        Array.from({ length: 20 }, (_, i) => ({ type: 'deadline_batch', messageId: `${prefix}-${i}` }));

      // Past its deadline before anything is stored: refused whole, nothing appended.
      const expired = new RequestDeadline(REQUEST_TIMEOUT_MS, performance.now() - 2 * REQUEST_TIMEOUT_MS);
      await assert.rejects(
        service('stream').record(tenantId, batch('late'), undefined, expired),
        DeadlineExceededError,
      );
      assert.equal(await redis.exists(keys.stream(0)), 0, 'nothing reached the stream');
      const retried = await service('stream').record(tenantId, batch('late'), undefined, new RequestDeadline(60_000));
      assert.equal(retried.accepted, 20, 'the retry with the same messageIds is new, not a duplicate');

      // The deadline passes while the batch waits to be stored (events locked): not cut, stored whole.
      let slow: ReturnType<IngestService['record']> | undefined;
      let settled = false;
      await withEventsLocked(async () => {
        const during = new RequestDeadline(REQUEST_TIMEOUT_MS);
        slow = service('postgres').record(tenantId, batch('slow'), undefined, during);
        void slow.finally(() => (settled = true)).catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, REQUEST_TIMEOUT_MS + 200));
        assert.ok(during.remainingMs() < 0);
        assert.equal(settled, false, 'still storing past the deadline');
      });
      const stored = await slow!;
      assert.equal(stored.accepted, 20);
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM events WHERE tenant_id = $1 AND type = 'deadline_batch' AND message_id LIKE 'slow-%'",
        [tenantId],
      );
      assert.equal(rows[0]!.n, 20);
    } finally {
      redis.disconnect();
      await pool.end();
    }
  });
});
