import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { EventsDocument } from '../../generated/graphql.js';
import { scrapeMetric, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const KEY = 'timeout-key';
const POOL = 'event_reads';

/**
 * A statement that cannot finish (the events table locked by another session, as a long
 * migration or a stuck transaction would) is cancelled at DB_STATEMENT_TIMEOUT_MS: the client is
 * answered SERVICE_UNAVAILABLE, and the connection is back in the pool for the next request.
 */
describe('statement timeout', () => {
  const isolation = isolatedEnv('stmt_timeout');
  let gateway: RunningGateway;

  before(async () => {
    gateway = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: KEY, DB_STATEMENT_TIMEOUT_MS: '300', DATABASE_POOL_MAX: '2' }),
    );
  });
  after(async () => {
    await gateway?.stop();
    await isolation.cleanup();
  });

  it('answers SERVICE_UNAVAILABLE for statements stuck behind a lock, and frees the pool', async () => {
    const first = await gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 5 } });
    assert.equal(first.errors, undefined, JSON.stringify(first.errors));

    const locker = testPool(isolation.databaseUrl, 1);
    const client = await locker.connect();
    // Whatever happens below, the lock goes: a failing test must not hang on it.
    const release = setTimeout(() => void client.query('ROLLBACK').catch(() => undefined), 15_000);
    try {
      await client.query('BEGIN');
      await client.query('LOCK TABLE events IN ACCESS EXCLUSIVE MODE');
      // Twice as many requests as the pool has connections: the later ones wait for a connection
      // the earlier ones must give back.
      const answers = await Promise.all(
        Array.from({ length: 4 }, () => gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 5 } })),
      );
      for (const answer of answers) {
        assert.equal(errorCode(answer), 'SERVICE_UNAVAILABLE', JSON.stringify(answer.errors));
        assert.match(answer.errors![0]!.message, /cancelled/);
      }
      assert.ok((await scrapeMetric(gateway.url, `db_statement_timeouts_total{pool="${POOL}"}`)) >= 4);
      assert.equal(await scrapeMetric(gateway.url, `db_pool_connections{pool="${POOL}",state="waiting"}`), 0);
    } finally {
      clearTimeout(release);
      await client.query('ROLLBACK');
      client.release();
      await locker.end();
    }

    const afterwards = await gql(gateway.url, EventsDocument, { key: KEY, variables: { first: 5 } });
    assert.equal(afterwards.errors, undefined, JSON.stringify(afterwards.errors));
    const total = await scrapeMetric(gateway.url, `db_pool_connections{pool="${POOL}",state="total"}`);
    const idle = await scrapeMetric(gateway.url, `db_pool_connections{pool="${POOL}",state="idle"}`);
    assert.ok(total >= 1 && total <= 2, `total ${total}`);
    assert.equal(idle, total, 'every connection is back in the pool');
  });

  it('times statements per pool and statement name, with bounded labels', async () => {
    const text = await (await fetch(`${gateway.url}/metrics`)).text();
    assert.match(
      text,
      /db_query_duration_seconds_count\{pool="event_reads",statement="events_read_[0-9a-f]+",outcome="ok"\} \d+/,
    );
    assert.match(
      text,
      /db_query_duration_seconds_count\{pool="event_reads",statement="events_read_[0-9a-f]+",outcome="timeout"\} \d+/,
    );
    assert.match(text, /db_query_duration_seconds_count\{pool="main",statement="[a-z_]+ [a-z_.]+",outcome="ok"\}/);
  });
});
