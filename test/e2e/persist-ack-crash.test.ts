import assert from 'node:assert/strict';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createStreamKeys } from '../../src/redis/keys.js';
import { RecordEventsDocument } from '../generated/graphql.js';
import { scrapeMetric, spawnGateway, startGateway, type RunningGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../helpers/test-env.js';

const KEY = 'agk_ack-crash-admin-key-000000000000000000000000000';

/**
 * A proxy to Redis that forwards everything until a client sends an XACK for the persist group:
 * that chunk, and whatever follows on its connection, is held back, and `onHold` runs. The worker
 * behind it has committed the batch (XACK comes only after COMMIT) but Redis never hears the ack.
 */
async function ackHoldingProxy(
  targetPort: number,
  onHold: () => void,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let held = false;
  const server: Server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    sockets.add(client).add(upstream);
    let stalled = false;
    client.on('data', (chunk: Buffer) => {
      if (stalled) return;
      const text = chunk.toString('latin1');
      if (!held && /xack/i.test(text) && text.includes('persist')) {
        held = stalled = true;
        onHold();
        return;
      }
      upstream.write(chunk);
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('a persist worker killed after COMMIT and before XACK', () => {
  const isolation = isolatedEnv('ack_crash');
  after(() => isolation.cleanup());

  it('stores the redelivered batch once: no event lost, none doubled', async () => {
    const api = await startGateway(isolation.env({ ROLE: 'api', BOOTSTRAP_API_KEY: KEY }));
    const redis = new Redis(REDIS_URL);
    const pool = testPool(isolation.databaseUrl, 2);
    const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
    const workerEnv = { ROLE: 'worker', MIGRATE_ON_START: 'false', PERSIST_CLAIM_IDLE_MS: '500' };
    let rescuer: RunningGateway | undefined;
    let killed: () => void = () => undefined;
    const heldAck = new Promise<void>((resolve) => (killed = resolve));
    let doomed: Awaited<ReturnType<typeof spawnGateway>> | undefined;
    const proxy = await ackHoldingProxy(6379, () => {
      // At once, before anything else reaches Redis: the process dies between COMMIT and XACK.
      doomed?.child.kill('SIGKILL');
      killed();
    });
    try {
      doomed = await spawnGateway(isolation.env({ ...workerEnv, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }));
      const events = Array.from({ length: 200 }, (_, i) => ({
        type: 'ack_crash',
        userId: `u${i % 7}`,
        messageId: `m-${i}`,
      }));
      const response = await gql(api.url, RecordEventsDocument, { key: KEY, variables: { events } });
      assert.equal(response.data?.recordEvents.accepted, 200, JSON.stringify(response.errors));
      const acknowledged = response.data!.recordEvents.ids.map((id) => id!);

      await heldAck;
      assert.equal((await doomed.exited).signal, 'SIGKILL');
      // The state this test is about: committed in Postgres, still pending in the stream.
      const committed = await pool.query<{ n: number }>(
        'SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])',
        [acknowledged],
      );
      assert.ok(committed.rows[0]!.n > 0, 'the killed worker had committed its batch');
      const [pendingAfterKill] = (await redis.xpending(stream, 'persist')) as [number];
      assert.ok(pendingAfterKill > 0, 'and had not acknowledged it');

      // Another worker reclaims the batch (XAUTOCLAIM), writes it again, and acknowledges it.
      rescuer = await startGateway(isolation.env(workerEnv));
      await waitFor(async () => ((await redis.xpending(stream, 'persist')) as [number])[0] === 0, 20_000);
      const { rows } = await pool.query<{ id: string }>("SELECT id FROM events WHERE type = 'ack_crash'");
      assert.equal(rows.length, acknowledged.length, 'each acknowledged event stored exactly once');
      assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(acknowledged));
      // The redelivery did happen, and was recognised as already stored.
      assert.ok((await scrapeMetric(rescuer.url, 'events_persisted_total{outcome="skipped"}')) >= committed.rows[0]!.n);
    } finally {
      doomed?.child.kill('SIGKILL');
      await rescuer?.stop();
      await api.stop();
      redis.disconnect();
      await pool.end();
      await proxy.close();
    }
  });
});
