import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import pg from 'pg';
import { createStreamKeys } from '../../../src/redis/keys.js';
import { RecordEventsDocument } from '../../generated/graphql.js';
import { startGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { REDIS_URL, isolatedEnv, waitFor, testPool } from '../../helpers/test-env.js';

const KEY = 'agk_roles-admin-key-000000000000000000000000000000';

describe('roles and stream partitions', () => {
  const isolation = isolatedEnv('roles_partitions');
  after(() => isolation.cleanup());

  it('splits ingestion over STREAM_PARTITIONS between an API replica and two worker replicas', async () => {
    const env = { STREAM_PARTITIONS: '4', PERSIST_BATCH_WAIT_MS: '10' };
    const api = await startGateway(isolation.env({ ...env, ROLE: 'api', BOOTSTRAP_API_KEY: KEY }));
    const workers = [
      await startGateway(isolation.env({ ...env, ROLE: 'worker' })),
      await startGateway(isolation.env({ ...env, ROLE: 'worker' })),
    ];
    const pool = testPool(isolation.databaseUrl, 2);
    const redis = new Redis(REDIS_URL);
    try {
      // A worker serves probes and metrics but no GraphQL.
      assert.equal((await fetch(`${workers[0]!.url}/graphql`, { method: 'POST' })).status, 404);
      assert.equal((await fetch(`${workers[0]!.url}/ready`)).status, 200);

      const events = Array.from({ length: 400 }, (_, i) => ({ type: 'p', messageId: `part-${i}`, userId: `u${i}` }));
      const first = await gql(api.url, RecordEventsDocument, { key: KEY, variables: { events } });
      assert.equal(first.data?.recordEvents.accepted, 400, JSON.stringify(first.errors));
      const again = await gql(api.url, RecordEventsDocument, { key: KEY, variables: { events: events.slice(0, 100) } });
      assert.equal(
        again.data?.recordEvents.duplicates,
        100,
        'a messageId always meets its dedupe key in its partition',
      );

      // What each partition was given, counted by Redis whatever the workers have consumed and
      // the maintenance loop trimmed since (XLEN may already be 0): XINFO STREAM's entries-added.
      const keys = createStreamKeys(isolation.redisKeyPrefix, 4);
      const added = await Promise.all(
        [0, 1, 2, 3].map(async (p) => {
          const info = (await redis.xinfo('STREAM', keys.stream(p))) as unknown[];
          return Number(info[info.indexOf('entries-added') + 1]);
        }),
      );
      assert.ok(
        added.every((n) => n > 0),
        `every partition got events: ${added}`,
      );
      assert.equal(
        added.reduce((a, b) => a + b, 0),
        400,
        `each accepted event appended once, no duplicate: ${added}`,
      );

      const ids = first.data!.recordEvents.ids;
      await waitFor(async () => {
        const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE id = ANY($1::uuid[])', [ids]);
        return rows[0].n === 400;
      }, 10_000);
      const { rows } = await pool.query("SELECT count(*)::int AS n FROM events WHERE type = 'p'");
      assert.equal(rows[0].n, 400);
    } finally {
      await api.stop();
      await Promise.all(workers.map((w) => w.stop()));
      redis.disconnect();
      await pool.end();
    }
  });
});
