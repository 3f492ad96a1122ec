import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { EventReadRepository, type EventQuery } from '../../../src/analytics/event-read.repository.js';
import { AuditLogRepository } from '../../../src/audit/audit-log.repository.js';
import { ensureDatabase } from '../../../src/db/ensure-database.js';
import { runMigrations } from '../../../src/db/migrate.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Sent {
  readonly text: string;
  readonly values: unknown[];
}

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Loops'?: number;
  'Subplans Removed'?: number;
  Plans?: PlanNode[];
}

/**
 * The partitions of `events` a statement read, from EXPLAIN (ANALYZE) of it as the event-read
 * pool runs it: prepared, with a generic plan, so pruning happens when the plan starts.
 */
async function partitionsRead(client: pg.PoolClient, sent: Sent): Promise<{ read: string[]; plan: string }> {
  const literal = (v: unknown) =>
    v === null ? 'NULL' : client.escapeLiteral(v instanceof Date ? v.toISOString() : String(v));
  await client.query('SET plan_cache_mode = force_generic_plan');
  await client.query(`PREPARE probe AS ${sent.text}`);
  try {
    const args = sent.values.map(literal).join(', ');
    const { rows } = await client.query<{ 'QUERY PLAN': [{ Plan: PlanNode }] }>(
      `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, FORMAT JSON) EXECUTE probe(${args})`,
    );
    const text = await client.query<{ 'QUERY PLAN': string }>(
      `EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) EXECUTE probe(${args})`,
    );
    const read: string[] = [];
    const walk = (node: PlanNode) => {
      if (node['Relation Name']?.startsWith('events') && (node['Actual Loops'] ?? 0) > 0)
        read.push(node['Relation Name']);
      node.Plans?.forEach(walk);
    };
    walk(rows[0]!['QUERY PLAN'][0].Plan);
    return { read, plan: text.rows.map((r) => r['QUERY PLAN']).join('\n') };
  } finally {
    await client.query('DEALLOCATE probe');
  }
}

describe('newest-first event pages read recent partitions first', () => {
  const isolation = isolatedEnv('newest_first');
  const tenant = '7b0c6f1e-6f0a-4c1e-9d51-000000000001';
  const other = '7b0c6f1e-6f0a-4c1e-9d51-000000000002';
  let pool: pg.Pool;
  let sent: Sent[] = [];
  let repository: EventReadRepository;
  const now = Date.now();

  before(async () => {
    const logger = pino({ level: 'silent' });
    await ensureDatabase(isolation.databaseUrl, logger);
    await runMigrations(isolation.databaseUrl, logger);
    pool = testPool(isolation.databaseUrl, 4);
    await pool.query(`SELECT ensure_event_partitions(($1::timestamptz)::date - 60, ($1::timestamptz)::date + 7)`, [
      new Date(now),
    ]);
    // Recent events dense (the last 30 minutes), older ones sparse: 3, 10 and 45 days back, and
    // 200 days back, a day without a partition (events_default). Ties on occurred_at included.
    const times: number[] = [];
    for (let i = 0; i < 50; i++) times.push(now - i * 36_000);
    for (const days of [3, 10, 45, 200]) for (let i = 0; i < 4; i++) times.push(now - days * DAY - (i >> 1) * HOUR);
    await pool.query(
      `INSERT INTO events (tenant_id, id, type, user_id, occurred_at, received_at)
       SELECT t, gen_random_uuid(), CASE WHEN n % 5 = 0 THEN 'rare' ELSE 'common' END, 'u' || (n % 3), at, at
       FROM unnest($1::timestamptz[]) WITH ORDINALITY AS x(at, n), unnest(ARRAY[$2, $3]::uuid[]) AS t`,
      [times.map((t) => new Date(t)), tenant, other],
    );
    await pool.query('ANALYZE events');
    // The statements the repository sends to its generic-plan pool, as sent.
    const planned = {
      query: (config: pg.QueryConfig) => {
        sent.push({ text: config.text, values: config.values ?? [] });
        return pool.query(config);
      },
    } as unknown as pg.Pool;
    repository = new EventReadRepository(pool, planned);
  });
  after(async () => {
    await pool?.end();
    await isolation.cleanup();
  });

  /** The same rows by one unbounded walk: what every page must equal. */
  async function reference(query: Omit<EventQuery, 'limit' | 'before'>): Promise<string[]> {
    const { rows } = await pool.query<{ id: string }>(
      `SELECT id FROM events WHERE tenant_id = $1
         AND ($2::text IS NULL OR type = $2) AND ($3::text IS NULL OR user_id = $3)
         AND ($4::timestamptz IS NULL OR occurred_at >= $4) AND ($5::timestamptz IS NULL OR occurred_at < $5)
       ORDER BY occurred_at DESC, id DESC`,
      [tenant, query.type ?? null, query.userId ?? null, query.from ?? null, query.to ?? null],
    );
    return rows.map((r) => r.id);
  }

  async function walk(query: Omit<EventQuery, 'limit' | 'before'>, limit: number): Promise<string[]> {
    const ids: string[] = [];
    let position: EventQuery['before'] = null;
    for (;;) {
      const rows = await repository.page(tenant, { ...query, before: position, limit: limit + 1 });
      ids.push(...rows.slice(0, limit).map((r) => r.id));
      if (rows.length <= limit) return ids;
      const last = rows[limit - 1]!;
      position = { timeUs: last.timeUs, id: last.id };
    }
  }

  it('answers a first page from at most two daily partitions, in one statement when today fills it', async (t) => {
    const client = await pool.connect();
    try {
      sent = [];
      const rows = await repository.page(tenant, { limit: 21 });
      assert.equal(rows.length, 21);
      assert.deepEqual(
        rows.map((r) => r.id),
        (await reference({})).slice(0, 21),
      );
      assert.ok(sent.length <= 2, `${sent.length} statements`);
      const read: string[] = [];
      for (const s of sent) {
        const probe = await partitionsRead(client, s);
        read.push(...probe.read);
        t.diagnostic(probe.plan);
      }
      const partitions = new Set(read);
      assert.ok(partitions.size >= 1 && partitions.size <= 2, `read ${[...partitions].join(', ')}`);
      assert.ok(!partitions.has('events_default'), 'the default partition is pruned');

      // The same page as one unbounded walk would have opened every partition.
      const unbounded = await partitionsRead(client, {
        text: `SELECT id FROM events WHERE tenant_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2`,
        values: [tenant, 21],
      });
      assert.ok(unbounded.read.length > 60, `an unbounded walk reads ${unbounded.read.length} partitions`);
    } finally {
      client.release();
    }
  });

  it('widens into old partitions only for a short page, and still returns every row in order', async () => {
    sent = [];
    const rare = await repository.page(tenant, { type: 'rare', limit: 101 });
    assert.deepEqual(
      rare.map((r) => r.id),
      await reference({ type: 'rare' }),
    );
    assert.ok(
      rare.some((r) => r.timestamp.getTime() < now - 100 * DAY),
      'rows of the default partition are found',
    );
    assert.ok(sent.length <= 4, `${sent.length} statements`);
  });

  it('pages with cursors across windows exactly like one walk, for every filter', async () => {
    const queries: Omit<EventQuery, 'limit' | 'before'>[] = [
      {},
      { type: 'rare' },
      { userId: 'u1' },
      { from: new Date(now - 12 * DAY) },
      { to: new Date(now - 2 * DAY) },
      { from: new Date(now - 50 * DAY), to: new Date(now - 5 * DAY), type: 'common' },
      { from: new Date(now - 10 * 60_000) },
    ];
    for (const query of queries) {
      const expected = await reference(query);
      for (const limit of [1, 3, 7, 20]) {
        assert.deepEqual(await walk(query, limit), expected, `${JSON.stringify(query)}, pages of ${limit}`);
      }
    }
  });

  it('pages the audit log across rows of one instant in id order, whatever the digits', async () => {
    const { rows } = await pool.query<{ id: string }>(
      `INSERT INTO tenants (id, slug, name) VALUES ($1, 'newest-first', 'n') RETURNING id`,
      [tenant],
    );
    assert.equal(rows.length, 1);
    // 25 rows at one instant (ids 1..25 cross 9 -> 10 and 19 -> 20), 5 a second earlier.
    const at = new Date(now - 60_000);
    await pool.query(
      `INSERT INTO audit_log (occurred_at, tenant_id, action, result)
       SELECT CASE WHEN g <= 25 THEN $2::timestamptz ELSE $2::timestamptz - interval '1 second' END, $1, 'query', 'ok'
       FROM generate_series(1, 30) g`,
      [tenant, at],
    );
    const expected = (
      await pool.query<{ id: string }>(
        'SELECT id::text FROM audit_log WHERE tenant_id = $1 ORDER BY occurred_at DESC, audit_log.id DESC',
        [tenant],
      )
    ).rows.map((r) => r.id);
    const audit = new AuditLogRepository(pool);
    for (const limit of [1, 4, 10]) {
      const ids: string[] = [];
      let position: { timeUs: string; id: string } | null = null;
      for (;;) {
        const page = await audit.page(tenant, { before: position, limit: limit + 1 });
        ids.push(...page.slice(0, limit).map((r) => r.id));
        if (page.length <= limit) break;
        position = { timeUs: page[limit - 1]!.timeUs, id: page[limit - 1]!.id };
      }
      assert.deepEqual(ids, expected, `pages of ${limit}`);
    }
  });
});
