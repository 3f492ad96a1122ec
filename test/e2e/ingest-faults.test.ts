import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createStreamKeys } from '../../src/redis/keys.js';
import { RecordEventsDocument } from '../generated/graphql.js';
import { spawnGateway, startGateway } from '../helpers/gateway.js';
import { errorCode, gql } from '../helpers/graphql-client.js';
import { createTcpProxy } from '../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, waitFor, testPool } from '../helpers/test-env.js';

const KEY = 'agk_faults-admin-key-00000000000000000000000000000';

function batch(n: number, tag: string) {
  return Array.from({ length: n }, (_, i) => ({
    type: 'fault_test',
    userId: `u${i % 13}`,
    value: i,
    messageId: `${tag}-${i}`,
  }));
}

describe('ingestion under failures', () => {
  const isolation = isolatedEnv('ingest_faults');
  after(() => isolation.cleanup());

  it('loses and duplicates nothing when a worker is SIGKILLed in the middle of a batch', async () => {
    const api = await startGateway(isolation.env({ ROLE: 'api', BOOTSTRAP_API_KEY: KEY }));
    const proxy = await createTcpProxy(5432);
    const redis = new Redis(REDIS_URL);
    const pool = testPool(isolation.databaseUrl, 2);
    const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    const workerEnv = {
      ROLE: 'worker',
      MIGRATE_ON_START: 'false',
      PERSIST_CLAIM_IDLE_MS: '1000',
      PERSIST_RETRY_MAX_MS: '200',
    };
    let rescuer: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      // The first worker reads batches but cannot commit them: its Postgres is cut.
      const doomed = await spawnGateway(isolation.env({ ...workerEnv, DATABASE_URL: viaProxy.toString() }));
      proxy.cut();
      const acknowledged: string[] = [];
      for (let i = 0; i < 4; i++) {
        const response = await gql(api.url, RecordEventsDocument, {
          key: KEY,
          variables: { events: batch(500, `kill${i}`) },
        });
        assert.equal(response.data?.recordEvents.accepted, 500, JSON.stringify(response.errors));
        acknowledged.push(...response.data!.recordEvents.ids.map((id) => id!));
      }
      await waitFor(async () => ((await redis.xpending(stream, 'persist')) as [number])[0] > 0, 10_000);
      doomed.child.kill('SIGKILL');
      assert.equal((await doomed.exited).signal, 'SIGKILL');

      // Another worker takes over what the dead one held and everything unread.
      rescuer = await startGateway(isolation.env(workerEnv));
      await waitFor(async () => {
        const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [
          acknowledged,
        ]);
        return rows[0].n === acknowledged.length;
      }, 20_000);
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM events WHERE type = 'fault_test'");
      assert.equal(rows.length, acknowledged.length, 'no event stored twice, none extra');
      assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(acknowledged));
      await waitFor(async () => ((await redis.xpending(stream, 'persist')) as [number])[0] === 0, 10_000);
    } finally {
      await rescuer?.stop();
      await api.stop();
      redis.disconnect();
      await pool.end();
      await proxy.close();
    }
  });

  it('loses and doubles nothing when a worker is SIGKILLed in the middle of a COPY', async () => {
    const api = await startGateway(isolation.env({ ROLE: 'api', BOOTSTRAP_API_KEY: KEY }));
    const redis = new Redis(REDIS_URL);
    const pool = testPool(isolation.databaseUrl, 2);
    const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
    // The worker's Postgres traffic passes through this proxy, which kills the worker the moment its
    // second COPY statement goes by, before Postgres has even seen it: the first batch may have
    // committed, the second is cut off mid-COPY inside its transaction.
    let doomed: Awaited<ReturnType<typeof spawnGateway>> | undefined;
    let copies = 0;
    const copyStatement = Buffer.from('COPY event_copy_batch');
    const proxy = await createTcpProxy(5432, '127.0.0.1', () => (chunk) => {
      if (chunk.includes(copyStatement) && ++copies === 2) doomed?.child.kill('SIGKILL');
    });
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    const workerEnv = {
      ROLE: 'worker',
      MIGRATE_ON_START: 'false',
      PERSIST_MODE: 'copy',
      PERSIST_CONCURRENCY: '1',
      PERSIST_BATCH_SIZE: '500',
      PERSIST_CLAIM_IDLE_MS: '1000',
      PERSIST_RETRY_MAX_MS: '200',
    };
    let rescuer: Awaited<ReturnType<typeof startGateway>> | undefined;
    try {
      doomed = await spawnGateway(isolation.env({ ...workerEnv, DATABASE_URL: viaProxy.toString() }));
      const acknowledged: string[] = [];
      for (let i = 0; i < 6; i++) {
        const response = await gql(api.url, RecordEventsDocument, {
          key: KEY,
          variables: { events: batch(500, `copykill${i}`).map((e) => ({ ...e, type: 'copy_kill' })) },
        });
        assert.equal(response.data?.recordEvents.accepted, 500, JSON.stringify(response.errors));
        acknowledged.push(...response.data!.recordEvents.ids.map((id) => id!));
      }
      await waitFor(async () => copies >= 2, 20_000);
      assert.equal((await doomed.exited).signal, 'SIGKILL');
      assert.equal(copies, 2, 'killed at its second COPY');
      const storedBefore = await pool.query("SELECT count(*)::int AS n FROM events WHERE type = 'copy_kill'");
      assert.ok(storedBefore.rows[0].n < acknowledged.length, 'the worker died before storing everything');

      rescuer = await startGateway(isolation.env(workerEnv));
      await waitFor(async () => {
        const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [
          acknowledged,
        ]);
        return rows[0].n === acknowledged.length;
      }, 20_000);
      await waitFor(async () => ((await redis.xpending(stream, 'persist')) as [number])[0] === 0, 10_000);
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM events WHERE type = 'copy_kill'");
      assert.equal(rows.length, acknowledged.length, 'no event stored twice, none extra');
      assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(acknowledged));
      const claims = await pool.query(
        "SELECT count(*)::int AS n FROM event_message_ids WHERE message_id LIKE 'copykill%'",
      );
      assert.equal(claims.rows[0].n, acknowledged.length, 'each messageId claimed once');
    } finally {
      doomed?.child.kill('SIGKILL');
      await rescuer?.stop();
      await api.stop();
      redis.disconnect();
      await pool.end();
      await proxy.close();
    }
  });

  it('keeps ingesting into Postgres while Redis is down, and answers SERVICE_UNAVAILABLE when Postgres is down too', async () => {
    const redisProxy = await createTcpProxy(6379);
    const pgProxy = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(pgProxy.port);
    const gateway = await startGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: KEY,
        REDIS_URL: `redis://127.0.0.1:${redisProxy.port}`,
        DATABASE_URL: viaProxy.toString(),
      }),
    );
    const pool = testPool(isolation.databaseUrl, 2);
    try {
      await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch(1, 'warm') } });
      redisProxy.cut();
      // Degraded, not down: the replica keeps serving (README, "Hardening").
      await waitFor(
        async () => ((await (await fetch(`${gateway.url}/ready`)).json()) as { status: string }).status === 'degraded',
        5_000,
      );

      const degraded = await gql(gateway.url, RecordEventsDocument, {
        key: KEY,
        variables: { events: batch(50, 'degraded') },
      });
      assert.equal(degraded.data?.recordEvents.accepted, 50, JSON.stringify(degraded.errors));
      const ids = degraded.data!.recordEvents.ids;
      // Already in Postgres when the mutation returns: nothing waits in Redis.
      const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [ids]);
      assert.equal(rows[0].n, 50);
      // Degraded mode still deduplicates, through Postgres.
      const repeat = await gql(gateway.url, RecordEventsDocument, {
        key: KEY,
        variables: { events: batch(50, 'degraded') },
      });
      assert.equal(repeat.data?.recordEvents.duplicates, 50);
      assert.deepEqual(repeat.data?.recordEvents.ids, ids);

      const readyResponse = await fetch(`${gateway.url}/ready`);
      assert.equal(readyResponse.status, 200);
      const ready = (await readyResponse.json()) as {
        failing: string[];
        checks: { streams: { details: { ingestDegradedSince: string | null } } };
      };
      assert.deepEqual(ready.failing, ['redis']);
      assert.ok(ready.checks.streams.details.ingestDegradedSince);
      assert.match(await (await fetch(`${gateway.url}/metrics`)).text(), /^ingest_degraded 1$/m);

      pgProxy.cut();
      const refused = await gql(gateway.url, RecordEventsDocument, {
        key: KEY,
        variables: { events: batch(5, 'nowhere') },
      });
      assert.equal(errorCode(refused), 'SERVICE_UNAVAILABLE');
      assert.equal(refused.data, null);
      pgProxy.restore();
      redisProxy.restore();
      const { rows: none } = await pool.query(
        "SELECT count(*)::int AS n FROM events WHERE message_id LIKE 'nowhere-%'",
      );
      assert.equal(none[0].n, 0, 'nothing acknowledged, nothing stored');

      // Back on the stream once Redis returns.
      await waitFor(
        async () => ((await (await fetch(`${gateway.url}/ready`)).json()) as { status: string }).status === 'ok',
        10_000,
      );
      const back = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch(5, 'back') } });
      assert.equal(back.data?.recordEvents.accepted, 5);
      assert.match(await (await fetch(`${gateway.url}/metrics`)).text(), /^ingest_degraded 0$/m);
    } finally {
      pgProxy.restore();
      redisProxy.restore();
      await gateway.stop();
      await pool.end();
      await Promise.all([redisProxy.close(), pgProxy.close()]);
    }
  });
});
