import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config/config.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { startGateway, scrapeMetric, type RunningGateway } from '../../helpers/gateway.js';
import { isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const silent = pino({ level: 'silent' });

describe('AUDIT_RETENTION_DAYS', () => {
  const isolation = isolatedEnv('audit_retention');
  let pool: pg.Pool;
  let gateway: RunningGateway | undefined;
  const role = `agw_app_${randomBytes(4).toString('hex')}`;

  before(async () => {
    await prepareDatabase(loadConfig(isolation.env()), silent, { migrate: true });
    pool = testPool(isolation.databaseUrl, 2);
  });
  after(async () => {
    await gateway?.stop();
    await pool.query(`DROP OWNED BY ${role}`).catch(() => undefined);
    await pool.query(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await pool?.end();
    await isolation.cleanup();
  });

  /** Audit rows of a given age in days (inserting is what the gateway does; it is always allowed). */
  async function rows(action: string, ageDays: number, n: number): Promise<void> {
    await pool.query(
      `INSERT INTO audit_log (occurred_at, action, result)
       SELECT now() - make_interval(days => $2) - (i * interval '1 minute'), $1, 'success' FROM generate_series(1, $3) i`,
      [action, ageDays, n],
    );
  }
  const count = async (action: string) =>
    (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM audit_log WHERE action = $1', [action])).rows[0]!
      .n;

  it('is parsed like EVENT_RETENTION_DAYS', () => {
    assert.equal(loadConfig(isolation.env()).audit.retentionDays, 0);
    assert.equal(loadConfig(isolation.env({ AUDIT_RETENTION_DAYS: '90' })).audit.retentionDays, 90);
    assert.throws(() => loadConfig(isolation.env({ AUDIT_RETENTION_DAYS: '-1' })), /AUDIT_RETENTION_DAYS/);
  });

  it('stays append-only for every role: no UPDATE, DELETE or TRUNCATE, not even with the purge setting faked', async () => {
    await rows('ancient', 400, 2);
    for (const sql of [
      "DELETE FROM audit_log WHERE action = 'ancient'",
      "UPDATE audit_log SET result = 'error' WHERE action = 'ancient'",
      'TRUNCATE audit_log',
    ]) {
      await assert.rejects(pool.query(sql), /append-only/, sql);
    }
    const client = await pool.connect();
    try {
      await client.query('BEGIN');
      await client.query("SELECT set_config('audit.purge_before', (now() - interval '10 days')::text, true)");
      await assert.rejects(client.query("DELETE FROM audit_log WHERE action = 'ancient'"), /append-only/);
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    await assert.rejects(pool.query('SELECT purge_audit_log(0, 100)'), /at least 1/);
    assert.equal(await count('ancient'), 2);
  });

  it('lets only purge_audit_log delete, only rows past the retention, and only for roles granted it', async () => {
    await rows('old', 40, 3);
    await rows('recent', 29, 2);
    await rows('today', 0, 2);
    const purge = async () => (await pool.query<{ n: number }>('SELECT purge_audit_log(30, 2) AS n')).rows[0]!.n;
    // Oldest first, a batch at a time ('ancient' rows of the previous test go first).
    assert.equal(await purge(), 2);
    assert.equal(await purge(), 2);
    assert.equal(await purge(), 1);
    assert.equal(await purge(), 0);
    assert.equal(await count('old'), 0);
    assert.equal(await count('recent'), 2);
    assert.equal(await count('today'), 2);

    // An application role that was not granted the function cannot call it.
    await pool.query(`CREATE ROLE ${role} LOGIN`);
    await pool.query(`GRANT SELECT, INSERT, DELETE ON audit_log TO ${role}`);
    const url = new URL(isolation.databaseUrl);
    url.username = role;
    const app = new pg.Client({ connectionString: url.toString() });
    await app.connect();
    try {
      await assert.rejects(app.query('SELECT purge_audit_log(1, 100)'), /permission denied/);
      await assert.rejects(app.query("DELETE FROM audit_log WHERE action = 'today'"), /append-only/);
    } finally {
      await app.end();
    }
    assert.equal(await count('today'), 2);
  });

  it('is applied by the gateway’s retention worker', async () => {
    await rows('expired', 100, 5);
    gateway = await startGateway(isolation.env({ AUDIT_RETENTION_DAYS: '30', MIGRATE_ON_START: 'false' }));
    await waitFor(async () => (await count('expired')) === 0, 10_000);
    assert.equal(await count('recent'), 2);
    assert.ok((await scrapeMetric(gateway.url, 'audit_rows_purged_total')) >= 5);
  });
});
