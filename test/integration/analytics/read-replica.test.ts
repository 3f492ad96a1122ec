import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { EventsDocument, FreshnessDocument, RecordEventsDocument, UsersDocument } from '../../generated/graphql.js';
import { startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { gql } from '../../helpers/graphql-client.js';
import { startReplica, type PgReplica } from '../../helpers/pg-replica.js';
import { isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const KEY = 'agk_replica-admin-key-0000000000000000000000000000';

describe('DATABASE_READ_URL: the query API reads from a streaming replica', () => {
  const isolation = isolatedEnv('read_replica');
  let replica: PgReplica;
  let gateway: RunningGateway;
  let primaryDb: pg.Pool;
  let replicaDb: pg.Pool;

  before(async () => {
    replica = await startReplica();
    gateway = await startGateway(
      isolation.env({
        BOOTSTRAP_API_KEY: KEY,
        DATABASE_READ_URL: replica.urlOf(isolation.databaseUrl),
        ROLLUP_REFRESH_INTERVAL_MS: '200',
        PERSIST_BATCH_WAIT_MS: '10',
        QUERY_CACHE_ENABLED: 'false',
      }),
    );
    primaryDb = testPool(isolation.databaseUrl, 2);
    replicaDb = testPool(replica.urlOf(isolation.databaseUrl), 2);
  });
  after(async () => {
    await replicaDb?.query('SELECT pg_wal_replay_resume()').catch(() => undefined);
    await gateway?.stop();
    await replicaDb?.end();
    await primaryDb?.end();
    await replica?.stop();
    await isolation.cleanup();
  });

  async function record(type: string, n: number): Promise<void> {
    const events = Array.from({ length: n }, (_, i) => ({ type, userId: `u${i % 4}`, messageId: `${type}-${i}` }));
    const res = await gql(gateway.url, RecordEventsDocument, { key: KEY, variables: { events } });
    assert.equal(res.data?.recordEvents.accepted, n, JSON.stringify(res.errors));
  }

  async function eventsOfType(type: string): Promise<number> {
    const res = await gql(gateway.url, EventsDocument, { key: KEY, variables: { filter: { type }, first: 100 } });
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    return res.data!.events.edges.length;
  }

  async function replicaLag(): Promise<number> {
    const res = await gql(gateway.url, FreshnessDocument, { key: KEY });
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    const entry = res.data!.freshness.find((f) => f.source === 'replica');
    assert.ok(entry, `no replica entry in ${JSON.stringify(res.data!.freshness)}`);
    return entry.stalenessMs;
  }

  it('sends events, users and freshness reads to the replica, and nothing else', async () => {
    await record('before_pause', 12);
    await waitFor(async () => (await eventsOfType('before_pause')) === 12, 15_000);
    const users = await gql(gateway.url, UsersDocument, { key: KEY, variables: { first: 10 } });
    assert.equal(users.errors, undefined, JSON.stringify(users.errors));
    await replicaLag();

    const sessions = async (db: pg.Pool) =>
      new Set(
        (
          await db.query<{ name: string }>(
            `SELECT DISTINCT application_name AS name FROM pg_stat_activity
             WHERE datname = current_database() AND application_name LIKE 'analytics-gateway%'`,
          )
        ).rows.map((r) => r.name),
      );
    const onReplica = await sessions(replicaDb);
    assert.deepEqual(
      [...onReplica].sort(),
      ['analytics-gateway-event-reads', 'analytics-gateway-reads'],
      'the replica serves the read pools only: keys, ingestion, audit and the refresher stay on the primary',
    );
    const onPrimary = await sessions(primaryDb);
    assert.ok(onPrimary.has('analytics-gateway'), `primary sessions: ${[...onPrimary].join(', ')}`);
    assert.ok(!onPrimary.has('analytics-gateway-reads') && !onPrimary.has('analytics-gateway-event-reads'));
  });

  it('reports the replay lag in freshness while replay is paused, and 0 once it has caught up', async () => {
    await waitFor(async () => (await replicaLag()) === 0, 15_000);

    await replicaDb.query('SELECT pg_wal_replay_pause()');
    await waitFor(
      async () =>
        (await replicaDb.query<{ s: string }>('SELECT pg_get_wal_replay_pause_state() AS s')).rows[0]!.s === 'paused',
      10_000,
    );
    await record('after_pause', 8);
    await waitFor(async () => {
      const { rows } = await primaryDb.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM events WHERE type = 'after_pause'",
      );
      return rows[0]!.n === 8;
    }, 15_000);
    // Committed on the primary, not replayed: the gateway's reads do not see them.
    assert.equal(await eventsOfType('after_pause'), 0);
    const lag = await replicaLag();
    assert.ok(lag > 0, `replica lag ${lag} ms while paused`);
    await new Promise((r) => setTimeout(r, 300));
    const later = await replicaLag();
    assert.ok(later >= lag + 200, `the lag grows while paused: ${lag} ms, then ${later} ms`);

    await replicaDb.query('SELECT pg_wal_replay_resume()');
    await waitFor(async () => (await eventsOfType('after_pause')) === 8, 15_000);
    await waitFor(async () => (await replicaLag()) === 0, 15_000);
  });
});
