import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { EventsDocument } from '../generated/graphql.js';
import { spawnGateway } from '../helpers/gateway.js';
import { gql } from '../helpers/graphql-client.js';
import { isolatedEnv, testPool } from '../helpers/test-env.js';

const KEY = 'agk_shutdown-grace-key-00000000000000000000000000';
const GRACE_MS = 1_000;

/**
 * SHUTDOWN_GRACE_MS bounds a drain: a request that is still running when it runs out (here a
 * statement waiting for a lock that is never released, with no statement timeout to end it) is
 * cut, and the process still stops cleanly (exit 0, "shutdown complete") rather than waiting for
 * it or being killed by its own last-resort timer.
 */
describe('shutdown with a request still running at the end of the grace period', () => {
  const isolation = isolatedEnv('shutdown_grace');
  after(() => isolation.cleanup());

  it('cuts the request and exits 0', async () => {
    const gateway = await spawnGateway(
      isolation.env({ BOOTSTRAP_API_KEY: KEY, SHUTDOWN_GRACE_MS: String(GRACE_MS), DB_STATEMENT_TIMEOUT_MS: '0' }),
    );
    const locker = testPool(isolation.databaseUrl, 1);
    const client = await locker.connect();
    try {
      const warm = await gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 1 } });
      assert.equal(warm.errors, undefined, JSON.stringify(warm.errors));
      await client.query('BEGIN');
      await client.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      const stuck = gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 1 } }).then(
        (r) => ({ answered: r.status }),
        () => ({ answered: 'connection closed' as const }),
      );
      // Until the statement waits on the lock in Postgres, the request is surely in flight.
      for (;;) {
        const { rows } = await client.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        if (rows[0]!.n > 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      gateway.child.kill('SIGTERM');
      const exited = await gateway.exited;
      assert.equal(exited.code, 0, gateway.output().slice(-2_000));
      assert.match(gateway.output(), /"shutdown complete"/);
      assert.doesNotMatch(gateway.output(), /shutdown did not finish in time/);
      // Cut, not answered after the grace period.
      assert.deepEqual(await stuck, { answered: 'connection closed' });
    } finally {
      await client.query('ROLLBACK').catch(() => undefined);
      client.release();
      await locker.end();
      gateway.child.kill('SIGKILL');
    }
  });
});
