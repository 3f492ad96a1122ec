import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type pg from 'pg';
import { pino } from 'pino';
import { createRollupRefresher } from '../../../src/analytics/rollup.refresher.js';
import { loadConfig } from '../../../src/config/config.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { EventPartitionRepository } from '../../../src/ingest/event-partition.repository.js';
import { EventRepository } from '../../../src/ingest/event.repository.js';
import { normalizeEvent } from '../../../src/ingest/event-validation.js';
import type { StreamEvent } from '../../../src/ingest/stream-event.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const TENANTS = ['0b7d6a7e-3c1f-4f7e-9a51-2f5d8c1e4b01', '0b7d6a7e-3c1f-4f7e-9a51-2f5d8c1e4b02'];
const DAY = 86_400_000;

/** Deterministic pseudo-random numbers, so a failure reproduces. */
function lcg(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function events(tenantId: string, n: number, from: number, spanMs: number, seed: number): StreamEvent[] {
  const rnd = lcg(seed);
  const types = ['view', 'click', 'buy', 'error'];
  return Array.from({ length: n }, () => {
    const user = rnd() < 0.1 ? null : `u${Math.floor(rnd() ** 3 * 60)}`;
    const r = normalizeEvent(
      {
        type: types[Math.floor(rnd() ** 2 * types.length)]!,
        userId: user,
        sessionId: user && rnd() < 0.9 ? `${user}-s${Math.floor(rnd() * 4)}` : null,
        value: rnd() < 0.2 ? null : Math.round(Math.exp(rnd() * 8) * 100) / 100,
        timestamp: new Date(from + Math.floor(rnd() * spanMs)),
      },
      { tenantId, receivedAt: from + spanMs },
    );
    assert.ok(r.ok);
    return r.event;
  });
}

/** Rows equal, floats to 1e-9 relative (a sum of day sums rounds differently from one sum). */
function assertRowsEqual(actual: Record<string, unknown>[], expected: Record<string, unknown>[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: row count`);
  assert.ok(expected.length > 0, `${what}: compared no rows`);
  expected.forEach((row, i) => {
    for (const [key, want] of Object.entries(row)) {
      const got = actual[i]![key];
      if (typeof want === 'number' && typeof got === 'number') {
        assert.ok(
          Math.abs(got - want) <= 1e-9 * Math.max(1, Math.abs(want)),
          `${what}[${i}].${key}: ${got} != ${want}`,
        );
      } else {
        assert.deepEqual(got, want, `${what}[${i}].${key}`);
      }
    }
  });
}

const BUCKET_COLUMNS = `events::int, unique_users::int, value_count::int, value_sum, value_min, value_max, p50, p95, p99,
  first_seen, last_seen`;

/** The statistic computed by plain SQL over the events table. */
function plainBuckets(unit: string): string {
  return `SELECT tenant_id, COALESCE(type, '') AS type, date_trunc('${unit}', occurred_at, 'UTC') AS bucket,
      count(*)::int AS events, count(DISTINCT user_id)::int AS unique_users, count(value)::int AS value_count,
      sum(value) AS value_sum, min(value) AS value_min, max(value) AS value_max,
      percentile_cont(0.5) WITHIN GROUP (ORDER BY value) AS p50,
      percentile_cont(0.95) WITHIN GROUP (ORDER BY value) AS p95,
      percentile_cont(0.99) WITHIN GROUP (ORDER BY value) AS p99,
      min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
    FROM events
    GROUP BY GROUPING SETS ((tenant_id, date_trunc('${unit}', occurred_at, 'UTC'), type),
                            (tenant_id, date_trunc('${unit}', occurred_at, 'UTC')))
    ORDER BY 1, 2, 3`;
}

async function assertRollupsMatchEvents(pool: pg.Pool): Promise<void> {
  for (const unit of ['minute', 'hour', 'day']) {
    const { rows: expected } = await pool.query(plainBuckets(unit));
    const { rows: actual } = await pool.query(
      `SELECT tenant_id, type, bucket, ${BUCKET_COLUMNS} FROM rollup_${unit} ORDER BY 1, 2, 3`,
    );
    assertRowsEqual(actual, expected, `rollup_${unit}`);
  }
  const { rows: types } = await pool.query(
    `SELECT tenant_id, type, count(*)::int AS events, count(DISTINCT user_id)::int AS unique_users,
       avg(value) AS avg_value, min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
     FROM events GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  const { rows: typeRollup } = await pool.query(
    `SELECT tenant_id, type, events::int, unique_users::int, value_sum / NULLIF(value_count, 0) AS avg_value,
       first_seen, last_seen FROM rollup_type ORDER BY 1, 2`,
  );
  assertRowsEqual(typeRollup, types, 'rollup_type');
  const { rows: users } = await pool.query(
    `SELECT tenant_id, user_id, count(*)::int AS events, count(DISTINCT session_id)::int AS sessions,
       min(occurred_at) AS first_seen, max(occurred_at) AS last_seen
     FROM events WHERE user_id IS NOT NULL GROUP BY 1, 2 ORDER BY 1, 2`,
  );
  const { rows: userRollup } = await pool.query(
    'SELECT tenant_id, user_id, events::int, sessions::int, first_seen, last_seen FROM rollup_user ORDER BY 1, 2',
  );
  assertRowsEqual(userRollup, users, 'rollup_user');
}

describe('rollups', () => {
  const isolation = isolatedEnv('rollups');
  const config = loadConfig(isolation.env());
  let pool: pg.Pool;
  const now = Date.now();
  const dayStart = Math.floor(now / DAY) * DAY;

  before(async () => {
    await prepareDatabase(config, logger, { migrate: true });
    pool = testPool(isolation.databaseUrl, 4);
  });
  after(async () => {
    await pool?.end();
    await isolation.cleanup();
  });

  it('equal the same statistics computed by plain SQL over the events table, after inserts and late events', async () => {
    const repository = new EventRepository(pool);
    // Two tenants with the same users and types, across three days and the default partition.
    await repository.insert(events(TENANTS[0]!, 4000, dayStart - 2 * DAY, 3 * DAY, 1));
    await repository.insert(events(TENANTS[1]!, 1500, dayStart - DAY, 2 * DAY, 2));
    const refreshed: string[] = [];
    const refresher = createRollupRefresher({ pool, logger }, { onTenantRefreshed: (t) => void refreshed.push(t) });
    const before = Date.now();
    await refresher.catchUp();
    await assertRollupsMatchEvents(pool);
    assert.deepEqual(refreshed.sort(), [...TENANTS].sort());

    // Late events into an old hour and day, more into today, and redelivered rows (skipped by the key).
    const late = events(TENANTS[0]!, 300, dayStart - 2 * DAY + 3_600_000, 600_000, 3);
    await repository.insert([...late, ...events(TENANTS[0]!, 700, dayStart, 3_600_000, 4)]);
    assert.equal(await repository.insertCount(late), 0);
    const { rows: dirty } = await pool.query('SELECT count(*)::int AS n FROM rollup_dirty');
    assert.ok(dirty[0].n >= 2, 'the inserts marked their hours dirty');
    await refresher.catchUp();
    await assertRollupsMatchEvents(pool);
    const { rows: left } = await pool.query('SELECT count(*)::int AS n FROM rollup_dirty');
    assert.equal(left[0].n, 0);

    const { rows: freshness } = await pool.query('SELECT source, refreshed_at FROM rollup_refresh ORDER BY 1');
    assert.deepEqual(
      freshness.map((r) => r.source),
      ['rollup_day', 'rollup_hour', 'rollup_minute', 'rollup_type', 'rollup_user'],
    );
    for (const r of freshness) assert.ok(r.refreshed_at.getTime() >= before - 1000);
  });

  it('lets exactly one replica refresh at a time', async () => {
    await new EventRepository(pool).insert(events(TENANTS[1]!, 2000, dayStart - DAY, DAY, 5));
    const a = createRollupRefresher({ pool, logger });
    const b = createRollupRefresher({ pool, logger });
    const rounds = await Promise.all([a.runOnce(), b.runOnce(), a.runOnce(), b.runOnce()]);
    const leaders = rounds.filter((r) => r.leader && r.hours > 0);
    assert.equal(leaders.length, 1, JSON.stringify(rounds));
    await a.catchUp();
    await assertRollupsMatchEvents(pool);
  });

  it('folds in a tenant at most maxHoursPerTenant hours per round, oldest first', async () => {
    await new EventRepository(pool).insert(events(TENANTS[0]!, 500, dayStart - 2 * DAY, 2 * DAY, 6));
    const refresher = createRollupRefresher({ pool, logger }, { maxHoursPerTenant: 5 });
    const first = await refresher.runOnce();
    assert.equal(first.pending, true);
    assert.equal(first.hours, 5);
    await refresher.catchUp();
    await assertRollupsMatchEvents(pool);
  });

  it('drops day partitions past EVENT_RETENTION_DAYS and forgets their rollup rows', async () => {
    const partitions = new EventPartitionRepository(pool);
    await partitions.ensurePartitions(new Date(dayStart - 12 * DAY), new Date(dayStart - 9 * DAY));
    await new EventRepository(pool).insert([
      ...events(TENANTS[0]!, 400, dayStart - 12 * DAY, 3 * DAY, 7),
      ...events(TENANTS[1]!, 100, dayStart - 11 * DAY, DAY, 8),
    ]);
    const refresher = createRollupRefresher({ pool, logger }, { retentionDays: 5 });
    await refresher.catchUp();
    const exists = async (day: number) =>
      (
        await pool.query('SELECT to_regclass($1) AS t', [
          `events_${new Date(day).toISOString().slice(0, 10).replaceAll('-', '')}`,
        ])
      ).rows[0].t !== null;
    for (const day of [12, 11, 10, 9]) assert.equal(await exists(dayStart - day * DAY), false, `day -${day} dropped`);
    assert.equal(await exists(dayStart), true);
    const { rows } = await pool.query('SELECT count(*)::int AS n FROM events WHERE occurred_at < $1', [
      new Date(dayStart - 5 * DAY),
    ]);
    assert.equal(rows[0].n, 0);
    const { rows: old } = await pool.query('SELECT count(*)::int AS n FROM rollup_hour WHERE bucket < $1', [
      new Date(dayStart - 5 * DAY),
    ]);
    assert.equal(old[0].n, 0);
    await assertRollupsMatchEvents(pool);
  });
});
