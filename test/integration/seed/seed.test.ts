import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { pipeline } from 'node:stream/promises';
import type pg from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { pino } from 'pino';
import { loadConfig } from '../../../src/config/config.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { EventGenerator, type SeedEvent, escapeCopyText } from '../../../src/seed/event-generator.js';
import { refreshSeededRollups, seedEvents } from '../../../src/seed/seed-events.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
const TENANTS = ['5eed0000-0000-4000-8000-000000000001', '5eed0000-0000-4000-8000-000000000002'];
const DAY = 86_400_000;

interface EventRow {
  tenant_id: string;
  id: string;
  type: string;
  user_id: string | null;
  session_id: string | null;
  message_id: string | null;
  occurred_at: Date;
  received_at: Date;
  value: number | null;
  properties: unknown;
}

function assertStored(row: EventRow | undefined, e: SeedEvent): void {
  assert.ok(row, `event ${e.id} stored`);
  assert.deepEqual(
    {
      ...row,
      occurred_at: row.occurred_at.getTime(),
      received_at: row.received_at.getTime(),
    },
    {
      tenant_id: e.tenantId,
      id: e.id,
      type: e.type,
      user_id: e.userId,
      session_id: e.sessionId,
      message_id: e.messageId,
      occurred_at: e.occurredAt,
      received_at: e.receivedAt,
      value: e.value,
      // jsonb orders keys its own way: compare values.
      properties: e.properties === null ? null : JSON.parse(e.properties),
    },
  );
}

/** Every 37th generated event of the seed (and each day's last) matches its row in `events`. */
async function assertSampleStored(pool: pg.Pool, generator: EventGenerator): Promise<number> {
  const sample: SeedEvent[] = [];
  for (const day of generator.days) {
    const events = generator.generateDay(day.index);
    for (let i = 0; i < events.length; i++) {
      if (i % 37 === 0 || i === events.length - 1) sample.push(events.event(i));
    }
  }
  const { rows } = await pool.query<EventRow>(
    `SELECT tenant_id, id, type, user_id, session_id, message_id, occurred_at, received_at, value, properties
     FROM events WHERE tenant_id = $1 AND id = ANY ($2::uuid[])`,
    [generator.tenantId, sample.map((e) => e.id)],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  for (const e of sample) assertStored(byId.get(e.id), e);
  return sample.length;
}

describe('seed', () => {
  const isolation = isolatedEnv('seed');
  const config = loadConfig(isolation.env());
  let pool: pg.Pool;
  // Now: the migration made partitions for yesterday to a week ahead, so both ways of loading run.
  const now = new Date();

  before(async () => {
    await prepareDatabase(config, logger, { migrate: true });
    pool = testPool(isolation.databaseUrl, 4);
    await pool.query("INSERT INTO tenants (id, slug, name) VALUES ($1, 'seed-a', 'A'), ($2, 'seed-b', 'B')", TENANTS);
  });
  after(async () => {
    await pool?.end();
    await isolation.cleanup();
  });

  it('loads 20,000 events, each into its own day partition, as the generator made them', async () => {
    const progress: number[] = [];
    const result = await seedEvents({
      pool,
      tenantId: TENANTS[0]!,
      events: 20_000,
      days: 8,
      now,
      seed: 7,
      concurrency: 3,
      chunkBytes: 64 * 1024,
      onProgress: (done, total) => {
        assert.equal(total, 20_000);
        progress.push(done);
      },
    });
    assert.equal(result.rows, 20_000);
    assert.ok(result.rowsPerSecond > 0);
    assert.equal(result.to.getTime(), now.getTime());
    assert.equal(result.from.getTime(), now.getTime() - 8 * DAY);
    assert.equal(result.attachedDays + result.directDays, 9);
    assert.equal(result.directDays, 2, 'yesterday and today had partitions already');
    assert.equal(progress.at(-1), 20_000);
    assert.deepEqual(
      progress,
      [...progress].sort((a, b) => a - b),
    );

    const { rows: counts } = await pool.query<{ n: number; misplaced: number; outside: number }>(
      `SELECT count(*)::int AS n,
              count(*) FILTER (WHERE tableoid::regclass::text <> 'events_' || to_char(occurred_at AT TIME ZONE 'UTC', 'YYYYMMDD'))::int AS misplaced,
              count(*) FILTER (WHERE occurred_at < $2 OR occurred_at >= $3)::int AS outside
       FROM events WHERE tenant_id = $1`,
      [TENANTS[0], result.from, result.to],
    );
    assert.deepEqual(counts[0], { n: 20_000, misplaced: 0, outside: 0 });
    const { rows: defaults } = await pool.query('SELECT 1 FROM events_default');
    assert.equal(defaults.length, 0);

    const generator = new EventGenerator({ tenantId: TENANTS[0]!, events: 20_000, days: 8, now, seed: 7 });
    assert.ok((await assertSampleStored(pool, generator)) > 500);
  });

  it('gives the partitions it attaches the same indexes as any other, and no leftover constraint', async () => {
    const { rows } = await pool.query<{ partition: string; indexes: string[]; checks: number }>(
      `SELECT c.relname AS partition,
              array_agg(pg_get_indexdef(i.indexrelid) ORDER BY pg_get_indexdef(i.indexrelid))
                FILTER (WHERE EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)) AS indexes,
              (SELECT count(*)::int FROM pg_constraint k WHERE k.conrelid = c.oid AND k.contype = 'c') AS checks
       FROM pg_inherits p JOIN pg_class c ON c.oid = p.inhrelid LEFT JOIN pg_index i ON i.indrelid = c.oid
       WHERE p.inhparent = 'events'::regclass AND c.relname <> 'events_default'
       GROUP BY c.oid, c.relname`,
    );
    assert.ok(rows.length >= 9);
    const { rows: parent } = await pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_index WHERE indrelid = 'events'::regclass",
    );
    // Each index attached to its parent index, and nothing else.
    const shapes = new Set(rows.map((r) => r.indexes.map((d) => d.replace(/INDEX \S+ ON \S+/, '')).join('\n')));
    assert.equal(shapes.size, 1, [...shapes].join('\n---\n'));
    for (const r of rows) {
      assert.equal(r.indexes.length, parent[0]!.n, r.partition);
      assert.equal(r.checks, 0, r.partition);
    }
  });

  it('also loads text COPY into partitions made up front, and the rollups take the events in', async () => {
    const result = await seedEvents({
      pool,
      tenantId: TENANTS[1]!,
      events: 3_000,
      days: 3,
      now,
      seed: 3,
      strategy: 'direct',
      format: 'text',
    });
    assert.equal(result.attachedDays, 0);
    const generator = new EventGenerator({ tenantId: TENANTS[1]!, events: 3_000, days: 3, now, seed: 3 });
    await assertSampleStored(pool, generator);

    const refreshed = await refreshSeededRollups(pool, logger, TENANTS[1]!, result.from, result.to);
    assert.ok(refreshed.hours === 3 * 24 || refreshed.hours === 3 * 24 + 1, `${refreshed.hours} hours`);
    const { rows } = await pool.query<{ type: string; events: number; expected: number }>(
      `SELECT e.type, r.events::int AS events, count(*)::int AS expected
       FROM events e LEFT JOIN rollup_type r ON r.tenant_id = e.tenant_id AND r.type = e.type
       WHERE e.tenant_id = $1 GROUP BY e.type, r.events ORDER BY e.type`,
      [TENANTS[1]],
    );
    assert.equal(rows.length, 12);
    for (const r of rows) assert.equal(r.events, r.expected, r.type);
  });

  it('refuses a table in the way of a partition, and leaves no partition behind a failed day', async () => {
    const count = async (from: string, to: string) =>
      (
        await pool.query<{ n: number }>(
          'SELECT count(*)::int AS n FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3',
          [TENANTS[0], from, to],
        )
      ).rows[0]!.n;
    const exists = async (table: string) =>
      (await pool.query<{ t: string | null }>('SELECT to_regclass($1)::text AS t', [table])).rows[0]!.t !== null;

    await pool.query('CREATE TABLE events_20240109 (x int)');
    const january = new Date(Date.UTC(2024, 0, 10, 12));
    await assert.rejects(
      seedEvents({ pool, tenantId: TENANTS[0]!, events: 1_000, days: 2, now: january }),
      /not partitions of events: events_20240109/,
    );
    assert.equal(await count('2024-01-01', '2024-02-01'), 0);
    await pool.query('DROP TABLE events_20240109');

    // An event already in the default partition under the id a seeded one gets: that day fails
    // as a whole when its rows move in, and its new partition goes with it.
    const february = new Date(Date.UTC(2024, 1, 10, 12));
    const generator = new EventGenerator({ tenantId: TENANTS[0]!, events: 1_000, days: 2, now: february, seed: 1 });
    const clash = generator.generateDay(generator.days.findIndex((d) => d.partition === 'events_20240209')).event(0);
    await pool.query(
      `INSERT INTO events (tenant_id, id, type, occurred_at, received_at) VALUES ($1, $2, 'clash', $3, $3)`,
      [TENANTS[0], clash.id, new Date(clash.occurredAt)],
    );
    await assert.rejects(
      seedEvents({ pool, tenantId: TENANTS[0]!, events: 1_000, days: 2, now: february, concurrency: 1 }),
      /duplicate key/,
    );
    assert.equal(await exists('events_20240209'), false);
    assert.equal(await count('2024-02-09', '2024-02-10'), 1, 'the clashing event, still in the default partition');

    // Without the clash, the day is attached with the default partition's rows of that day in it.
    await pool.query("UPDATE events SET id = '018d8a00-0000-7000-8000-000000000001' WHERE type = 'clash'");
    await seedEvents({ pool, tenantId: TENANTS[0]!, events: 1_000, days: 2, now: january });
    await seedEvents({ pool, tenantId: TENANTS[0]!, events: 1_000, days: 2, now: february, seed: 2 });
    const { rows } = await pool.query<{ part: string }>(
      "SELECT tableoid::regclass::text AS part FROM events WHERE type = 'clash'",
    );
    assert.deepEqual(rows, [{ part: 'events_20240209' }]);
    assert.equal(await count('2024-01-01', '2024-02-01'), 1_000);
    assert.equal(await count('2024-02-01', '2024-03-01'), 1_001);
  });

  it('lets two seeds load the same new days at once', async () => {
    const now = new Date(Date.UTC(2023, 5, 1, 6));
    const results = await Promise.all(
      TENANTS.map((tenantId, i) => seedEvents({ pool, tenantId, events: 2_000, days: 3, now, seed: 10 + i })),
    );
    // Each day was attached by one seed and loaded into by the other.
    assert.equal(results[0]!.attachedDays + results[1]!.attachedDays, 4);
    assert.equal(results[0]!.directDays + results[1]!.directDays, 4);
    const { rows } = await pool.query<{ tenant_id: string; n: number }>(
      `SELECT tenant_id, count(*)::int AS n FROM events
       WHERE occurred_at >= '2023-05-01' AND occurred_at < '2023-07-01' GROUP BY 1 ORDER BY 1`,
    );
    assert.deepEqual(
      rows,
      TENANTS.map((tenant_id) => ({ tenant_id, n: 2_000 })),
    );
  });

  it('stores text fields with tabs, newlines and backslashes through COPY text unchanged', async () => {
    const values = ['tab\there', 'line\nbreak', 'cr\r\n', 'back\\slash', '\\N', '\\t literally'];
    const client = await pool.connect();
    try {
      await client.query('CREATE TEMP TABLE copy_escapes (n int, t text, j jsonb)');
      const body = values
        .map((v, n) => `${n}\t${escapeCopyText(v)}\t${escapeCopyText(JSON.stringify({ v }))}\n`)
        .join('');
      await pipeline([Buffer.from(body)], client.query(copyFrom('COPY copy_escapes (n, t, j) FROM STDIN')));
      const { rows } = await client.query<{ t: string; j: { v: string } }>('SELECT t, j FROM copy_escapes ORDER BY n');
      assert.deepEqual(
        rows.map((r) => r.t),
        values,
      );
      assert.deepEqual(
        rows.map((r) => r.j.v),
        values,
      );
    } finally {
      client.release();
    }
  });
});
