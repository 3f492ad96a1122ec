import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { auditEntry } from '../../../src/audit/audit-entry.js';
import { createAuditLogWriter } from '../../../src/audit/audit-log.writer.js';
import { loadConfig } from '../../../src/config/config.js';
import { createPool } from '../../../src/db/pool.js';
import { createMetrics } from '../../../src/observability/metrics.js';
import { startGateway } from '../../helpers/gateway.js';
import { POSTGRES_URL, isolatedEnv, testPool } from '../../helpers/test-env.js';

/**
 * The role README "Audit log: an append-only database role" describes: INSERT and SELECT on
 * audit_log and nothing else there. The writer must work with it alone, and the role can neither
 * change nor remove a row, nor switch the append-only triggers off (only the table's owner can).
 */
describe('audit_log under an INSERT and SELECT role', () => {
  const isolation = isolatedEnv('audit_role');
  const role = `agw_audit_${randomBytes(4).toString('hex')}`;
  let roleUrl: string;
  const silent = pino({ level: 'silent' });

  before(async () => {
    // Creates and migrates the database, then steps aside.
    await (await startGateway(isolation.env())).stop();
    const owner = testPool(isolation.databaseUrl, 1);
    try {
      const r = pg.escapeIdentifier(role);
      const db = pg.escapeIdentifier(new URL(isolation.databaseUrl).pathname.slice(1));
      await owner.query(`CREATE ROLE ${r} LOGIN`);
      await owner.query(`GRANT CONNECT ON DATABASE ${db} TO ${r}`);
      await owner.query(`GRANT USAGE ON SCHEMA public TO ${r}`);
      await owner.query(`GRANT INSERT, SELECT ON audit_log TO ${r}`);
    } finally {
      await owner.end();
    }
    const url = new URL(isolation.databaseUrl);
    url.username = role;
    roleUrl = url.toString();
  });
  after(async () => {
    await isolation.cleanup();
    const admin = new pg.Client({ connectionString: POSTGRES_URL });
    await admin.connect();
    await admin.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`).finally(() => admin.end());
  });

  it('lets the writer append rows and read them back', async () => {
    const config = loadConfig(isolation.env({ DATABASE_URL: roleUrl }));
    const pool = createPool(config, silent);
    const metrics = createMetrics();
    const writer = createAuditLogWriter({ pool, logger: silent, metrics }, { ...config.audit, flushIntervalMs: 20 });
    try {
      await writer.start();
      for (let i = 0; i < 3; i++) {
        writer.record(auditEntry({ action: 'authenticate', result: 'unauthenticated', details: { attempt: i } }));
      }
      await writer.stop();
      const { rows } = await pool.query<{ n: number; who: string }>(
        `SELECT count(*)::int AS n, current_user AS who FROM audit_log WHERE action = 'authenticate'`,
      );
      assert.equal(rows[0]!.who, role);
      assert.equal(rows[0]!.n, 3);
      assert.equal(
        (await metrics.registry.getSingleMetricAsString('audit_entries_total')).match(/result="written"\} 3/)?.length,
        1,
      );
    } finally {
      await pool.end();
    }
  });

  it('refuses UPDATE, DELETE, TRUNCATE and disabling the triggers', async () => {
    const pool = testPool(roleUrl, 1);
    try {
      for (const statement of [
        `UPDATE audit_log SET result = 'success'`,
        `DELETE FROM audit_log`,
        `TRUNCATE audit_log`,
        `ALTER TABLE audit_log DISABLE TRIGGER USER`,
        `DROP TABLE audit_log`,
      ]) {
        await assert.rejects(pool.query(statement), (err: { code?: string }) => {
          // 42501 insufficient_privilege; 42501 too for "must be owner of table".
          assert.equal(err.code, '42501', statement);
          return true;
        });
      }
      const { rows } = await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log`);
      assert.ok(rows[0]!.n >= 3, 'every row is still there');
    } finally {
      await pool.end();
    }
  });
});
