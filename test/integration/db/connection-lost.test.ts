import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, it } from 'node:test';
import { loadConfig } from '../../../src/config/config.js';
import { closePool, createPool } from '../../../src/db/pool.js';
import { createLogger } from '../../../src/observability/logger.js';
import { createTcpProxy } from '../../helpers/tcp-proxy.js';
import { POSTGRES_URL } from '../../helpers/test-env.js';

/**
 * A connection lost while a caller holds it between two statements (the persist worker's
 * transaction around a COPY) used to emit an 'error' nobody listened to, which ended the process:
 * both workers of a chaos run (test/e2e/chaos.test.ts) died at the first Postgres outage under load.
 */
describe('a pooled connection lost while lent out', () => {
  it('fails the holder’s next statement instead of ending the process, and the pool recovers', async () => {
    const proxy = await createTcpProxy(5432);
    const url = new URL(POSTGRES_URL);
    url.port = String(proxy.port);
    const config = loadConfig({ DATABASE_URL: url.toString(), DATABASE_POOL_MAX: '2' });
    const pool = createPool(config, createLogger({ log: { level: 'silent' } }));
    try {
      const client = await pool.connect();
      await client.query('BEGIN');
      proxy.cut();
      // No statement runs meanwhile, so the loss is an 'error' event on the client; without a
      // listener of the pool's own it is an uncaught exception, and this test fails.
      await sleep(300);
      await assert.rejects(client.query('SELECT 1'));
      client.release(true);

      proxy.restore();
      const { rows } = await pool.query<{ one: number }>('SELECT 1 AS one');
      assert.equal(rows[0]!.one, 1);
    } finally {
      await closePool(pool, { forceAfterMs: 1_000 });
      await proxy.close();
    }
  });
});
