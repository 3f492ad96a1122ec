import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { pino } from 'pino';
import { auditEntry } from '../../../src/audit/audit-entry.js';
import { createAuditLogWriter } from '../../../src/audit/audit-log.writer.js';
import { loadConfig } from '../../../src/config/config.js';
import { createPool } from '../../../src/db/pool.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { createMetrics, type Metrics } from '../../../src/observability/metrics.js';
import { createTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.js';
import { isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const silent = pino({ level: 'silent' });

async function counter(metrics: Metrics, result: string): Promise<number> {
  return (await metrics.auditEntries.get()).values.find((v) => v.labels.result === result)?.value ?? 0;
}

describe('the audit writer', () => {
  const isolation = isolatedEnv('audit_writer');
  let proxy: TcpProxy;
  let appPool: pg.Pool;
  let pool: pg.Pool;

  before(async () => {
    const config = loadConfig(isolation.env());
    await prepareDatabase(config, silent, { migrate: true });
    proxy = await createTcpProxy(5432);
    const viaProxy = new URL(isolation.databaseUrl);
    viaProxy.port = String(proxy.port);
    appPool = createPool(loadConfig(isolation.env({ DATABASE_URL: viaProxy.toString() })), silent);
    pool = testPool(isolation.databaseUrl);
  });

  after(async () => {
    await appPool?.end();
    await pool?.end();
    await proxy?.close();
    await isolation.cleanup();
  });

  const count = async (action: string) =>
    (await pool.query<{ n: number }>(`SELECT count(*)::int AS n FROM audit_log WHERE action = $1`, [action])).rows[0]!
      .n;
  const entry = (action: string, details: Record<string, unknown> = {}) =>
    auditEntry({ action, result: 'success', details });

  it('keeps rows while Postgres is unreachable, drops only past the bound, and writes the rest when it is back', async () => {
    const metrics = createMetrics();
    const writer = createAuditLogWriter(
      { pool: appPool, logger: silent, metrics },
      { enabled: true, batchSize: 2, flushIntervalMs: 20, maxQueue: 5, retryMaxMs: 50 },
    );
    await writer.start();
    try {
      for (let i = 0; i < 3; i++) writer.record(entry('outage', { i }));
      await waitFor(async () => (await count('outage')) === 3, 5_000);

      proxy.cut();
      for (let i = 3; i < 10; i++) writer.record(entry('outage', { i }));
      assert.equal(await counter(metrics, 'dropped'), 2, 'the two past AUDIT_MAX_QUEUE');
      await waitFor(async () => writer.readiness().failingSince !== null, 10_000);
      assert.equal(writer.readiness().queued, 5);
      assert.ok((await metrics.auditFlushFailures.get()).values[0]!.value >= 1);

      proxy.restore();
      await waitFor(async () => (await count('outage')) === 8, 10_000);
      const { rows } = await pool.query<{ i: number }>(
        `SELECT (details->>'i')::int AS i FROM audit_log WHERE action = 'outage' ORDER BY id`,
      );
      assert.deepEqual(
        rows.map((r) => r.i),
        [0, 1, 2, 3, 4, 5, 6, 7],
        'the oldest kept, in order',
      );
      assert.equal(writer.readiness().failingSince, null);
      assert.equal(await counter(metrics, 'written'), 8);
    } finally {
      proxy.restore();
      await writer.stop();
    }
  });

  it('drops only a row Postgres refuses, not its batch', async () => {
    const writer = createAuditLogWriter(
      { pool: appPool, logger: silent, metrics: createMetrics() },
      { enabled: true, batchSize: 10, flushIntervalMs: 60_000, maxQueue: 100 },
    );
    writer.record(entry('poison', { n: 1 }));
    writer.record({ ...entry('poison', { n: 2 }), keyId: 'not-a-uuid' });
    writer.record(entry('poison', { n: 3 }));
    await writer.stop();
    const { rows } = await pool.query<{ n: number }>(
      `SELECT (details->>'n')::int AS n FROM audit_log WHERE action = 'poison' ORDER BY id`,
    );
    assert.deepEqual(
      rows.map((r) => r.n),
      [1, 3],
    );
  });

  it('writes everything queued on stop, in batches, without waiting for the interval', async () => {
    const writer = createAuditLogWriter(
      { pool: appPool, logger: silent, metrics: createMetrics() },
      { enabled: true, batchSize: 7, flushIntervalMs: 60_000, maxQueue: 1_000 },
    );
    await writer.start();
    for (let i = 0; i < 5; i++) writer.record(entry('on-stop', { email: `user${i}@example.com` }));
    assert.equal(await count('on-stop'), 0);
    await writer.stop();
    assert.equal(await count('on-stop'), 5);
    const { rows } = await pool.query<{ details: { email: string } }>(
      `SELECT details FROM audit_log WHERE action = 'on-stop'`,
    );
    assert.ok(
      rows.every((r) => r.details.email === '[REDACTED:email]'),
      'details are masked',
    );
  });

  it('records nothing when disabled', async () => {
    const writer = createAuditLogWriter(
      { pool: appPool, logger: silent, metrics: createMetrics() },
      { enabled: false, batchSize: 1, flushIntervalMs: 20, maxQueue: 10 },
    );
    await writer.start();
    writer.record(entry('disabled'));
    await writer.stop();
    assert.equal(await count('disabled'), 0);
  });
});
