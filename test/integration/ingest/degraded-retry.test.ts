import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { RecordEventsDocument } from '../../generated/graphql.js';
import { startGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const KEY = 'agk_degraded-retry-admin-key-0000000000000000000000';

const batch = (tag: string, n: number) =>
  Array.from({ length: n }, (_, i) => ({ type: 'degraded_retry', userId: `u${i % 5}`, messageId: `${tag}-${i}` }));

/**
 * Events stored in Postgres while Redis was unreachable (degraded mode) claim their messageIds
 * there only. A client retrying them once Redis is back must be told they are duplicates, with the
 * first ids, and they must not reach the stream again, where the live windows would count them a
 * second time (found by test/e2e/chaos.test.ts's reasoning about degraded mode).
 */
describe('a retry of events recorded in degraded mode, once Redis is back', () => {
  const isolation = isolatedEnv('degraded_retry');
  after(() => isolation.cleanup());

  it('is answered as duplicates with the first ids, and appends nothing to the stream', async () => {
    const proxy = await createTcpProxy(6379);
    const gateway = await startGateway(
      isolation.env({ ROLE: 'api', BOOTSTRAP_API_KEY: KEY, REDIS_URL: `redis://127.0.0.1:${proxy.port}` }),
    );
    const redis = new Redis(REDIS_URL);
    const pool = testPool(isolation.databaseUrl, 2);
    const stream = createStreamKeys(isolation.redisKeyPrefix, 1).stream(0);
    const status = async () => ((await (await fetch(`${gateway.url}/ready`)).json()) as { status: string }).status;
    try {
      const warm = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch('warm', 1) } });
      assert.equal(warm.data?.recordEvents.accepted, 1, JSON.stringify(warm.errors));
      proxy.cut();
      await waitFor(async () => (await status()) === 'degraded', 5_000);
      const first = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch('d', 40) } });
      assert.equal(first.data?.recordEvents.accepted, 40, JSON.stringify(first.errors));
      const ids = first.data!.recordEvents.ids;

      proxy.restore();
      await waitFor(async () => (await status()) === 'ok', 10_000);
      const retry = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch('d', 40) } });
      assert.equal(retry.data?.recordEvents.duplicates, 40, JSON.stringify(retry.data));
      assert.equal(retry.data?.recordEvents.accepted, 0);
      assert.deepEqual(retry.data?.recordEvents.ids, ids);
      assert.equal(await redis.xlen(stream), 1, 'only the warm-up event went through the stream');

      // And the stream path is back for new events.
      const fresh = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events: batch('n', 3) } });
      assert.equal(fresh.data?.recordEvents.accepted, 3);
      assert.equal(await redis.xlen(stream), 4);
      const { rows } = await pool.query("SELECT count(*)::int AS n FROM events WHERE message_id LIKE 'd-%'");
      assert.equal(rows[0].n, 40);
    } finally {
      proxy.restore();
      await gateway.stop();
      redis.disconnect();
      await pool.end();
      await proxy.close();
    }
  });
});
