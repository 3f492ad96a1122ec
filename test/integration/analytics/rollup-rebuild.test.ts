import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { DailyStatsDocument, RebuildRollupsDocument, RecordEventsDocument } from '../../generated/graphql.js';
import { CLI_JS, startGateway, type RunningGateway } from '../../helpers/gateway.js';
import { errorCode, gql } from '../../helpers/graphql-client.js';
import { assertStatisticsMatchEvents } from '../../helpers/statistics-check.js';
import { isolatedEnv, testPool, waitFor } from '../../helpers/test-env.js';

const ADMIN = 'agk_rebuild-admin-key-0000000000000000000000000000';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('rebuildRollups', () => {
  const isolation = isolatedEnv('rebuild');
  let gateway: RunningGateway;
  let pool: pg.Pool;
  let tenantId: string;
  const today = Math.floor(Date.now() / DAY) * DAY;

  function cli(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(process.execPath, [CLI_JS, ...args], {
        env: { PATH: process.env.PATH, ...isolation.env() } as NodeJS.ProcessEnv,
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.on('exit', (code) => resolve({ code, stdout, stderr }));
    });
  }

  before(async () => {
    // A refresher that runs all the time, so the rebuilds below race with it.
    gateway = await startGateway(
      isolation.env({ BOOTSTRAP_API_KEY: ADMIN, ROLLUP_REFRESH_INTERVAL_MS: '100', PERSIST_BATCH_WAIT_MS: '5' }),
    );
    pool = testPool(isolation.databaseUrl, 3);
    tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
  });
  after(async () => {
    await gateway?.stop();
    await pool?.end();
    await isolation.cleanup();
  });

  /** Events written behind the gateway's back, as a bulk import would: no dirty markers. */
  async function bulkLoad(dayStart: number, n: number): Promise<void> {
    await pool.query(
      `INSERT INTO events (tenant_id, id, type, user_id, session_id, occurred_at, received_at, value)
       SELECT $1, gen_random_uuid(), (ARRAY['import', 'view', 'buy'])[1 + i % 3], 'bulk-' || (i % 40),
              'bulk-' || (i % 40) || '-s' || (i % 3), $2::timestamptz + (i * interval '1 second') * (86399.0 / $3),
              now(), CASE WHEN i % 5 = 0 THEN NULL ELSE i % 100 END
       FROM generate_series(0, $3 - 1) i`,
      [tenantId, new Date(dayStart), n],
    );
  }

  const settled = () =>
    waitFor(
      async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rollup_dirty')).rows[0]!.n === 0,
      20_000,
    );

  async function dayTotal(dayStart: number): Promise<number> {
    const res = await gql(gateway.url, DailyStatsDocument, {
      key: ADMIN,
      variables: { from: new Date(dayStart).toISOString(), to: new Date(dayStart + DAY).toISOString() },
    });
    assert.equal(res.errors, undefined, JSON.stringify(res.errors));
    return res.data!.dailyStats.reduce((sum, d) => sum + d.totalEvents, 0);
  }

  it('counts a bulk-loaded day after a rebuild that races with ingestion and the refresher', async () => {
    const bulkDay = today - 3 * DAY;
    await bulkLoad(bulkDay, 20_000);
    await settled();
    assert.equal(await dayTotal(bulkDay), 0, 'the bulk load bypassed the rollups');

    // Ingestion into the same day (and today) while the rebuild and the refresher both recompute it.
    let stop = false;
    let i = 0;
    const writer = (async () => {
      while (!stop) {
        const events = Array.from({ length: 100 }, () => ({
          type: 'view',
          userId: `live-${i % 7}`,
          timestamp: new Date(
            (i++ % 2 === 0 ? bulkDay : today) + Math.floor(Math.random() * (Date.now() - today)),
          ).toISOString(),
        }));
        const res = await gql(gateway.url, RecordEventsDocument, { key: ADMIN, variables: { events } });
        assert.equal(res.data?.recordEvents.accepted, 100, JSON.stringify(res.errors));
      }
    })();
    const rebuilt = await gql(gateway.url, RebuildRollupsDocument, {
      key: ADMIN,
      variables: { from: new Date(bulkDay).toISOString(), to: new Date(bulkDay + DAY).toISOString() },
    });
    stop = true;
    await writer;
    assert.equal(rebuilt.errors, undefined, JSON.stringify(rebuilt.errors));
    assert.equal(rebuilt.data!.rebuildRollups.hours, 24);
    assert.ok(i > 0);
    assert.ok((await dayTotal(bulkDay)) >= 20_000);

    await waitFor(async () => {
      const { rows } = await pool.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM events WHERE user_id LIKE 'live-%'",
      );
      return rows[0]!.n === i;
    }, 20_000);
    await settled();
    await assertStatisticsMatchEvents(
      gateway.url,
      ADMIN,
      pool,
      tenantId,
      new Date(today - 5 * DAY),
      new Date(today + DAY),
    );
  });

  it('from the CLI, with progress on stderr; and users erase from the CLI', async () => {
    const bulkDay = today - 4 * DAY;
    await bulkLoad(bulkDay, 5_000);
    const result = await cli(
      'rollups',
      'rebuild',
      '--tenant',
      'demo',
      '--from',
      new Date(bulkDay).toISOString(),
      '--to',
      new Date(bulkDay + DAY).toISOString(),
    );
    assert.equal(result.code, 0, result.stderr);
    assert.match(result.stdout, /rebuilt 24 hours of rollups for tenant demo/);
    assert.match(result.stderr, /rebuilding rollups: 0\/24 hours \(0%\)/);
    assert.match(result.stderr, /rebuilding rollups: 24\/24 hours \(100%\)/);
    assert.equal(await dayTotal(bulkDay), 5_000);

    const victim = 'bulk-3';
    const { rows } = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [
      victim,
    ]);
    assert.ok(rows[0]!.n > 0);
    const erased = await cli('users', 'erase', '--tenant', 'demo', '--user', victim);
    assert.equal(erased.code, 0, erased.stderr);
    assert.match(erased.stdout, new RegExp(`erased user ${victim} of tenant demo: ${rows[0]!.n} events deleted`));
    const left = await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM events WHERE user_id = $1', [victim]);
    assert.equal(left.rows[0]!.n, 0);
    const audit = await pool.query<{ details: Record<string, unknown> }>(
      "SELECT details FROM audit_log WHERE action = 'eraseUser'",
    );
    assert.deepEqual(
      audit.rows.map((r) => r.details),
      [{ userId: victim, eventsDeleted: rows[0]!.n }],
    );
    await settled();
    await assertStatisticsMatchEvents(
      gateway.url,
      ADMIN,
      pool,
      tenantId,
      new Date(today - 5 * DAY),
      new Date(today + DAY),
    );

    const unknown = await cli('rollups', 'rebuild', '--tenant', 'nope', '--from', '2026-01-01', '--to', '2026-01-02');
    assert.equal(unknown.code, 1);
  });

  it('refuses an empty or inverted range', async () => {
    const res = await gql(gateway.url, RebuildRollupsDocument, {
      key: ADMIN,
      variables: { from: new Date(today).toISOString(), to: new Date(today).toISOString() },
    });
    assert.equal(errorCode(res), 'BAD_USER_INPUT');
  });
});
