import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { pino } from 'pino';
import { readdirSync } from 'node:fs';
import { MIGRATIONS_DIR } from '../../../src/db/migrate.js';
import { prepareDatabase } from '../../../src/db/prepare-database.js';
import { createEventPartitionsWorker } from '../../../src/ingest/event-partitions.worker.js';
import { loadConfig } from '../../../src/config/config.js';
import { isolatedEnv, testPool } from '../../helpers/test-env.js';

const logger = pino({ level: 'silent' });

describe('database preparation and migrations', () => {
  const isolation = isolatedEnv('migrations');
  const config = loadConfig(isolation.env());
  let pool: pg.Pool;

  before(async () => {
    // Three replicas starting at once: one creates the database, the migration lock serializes the rest.
    await Promise.all([1, 2, 3].map(() => prepareDatabase(config, logger, { migrate: true })));
    pool = testPool(isolation.databaseUrl, 3);
  });
  after(async () => {
    await pool?.end();
    await isolation.cleanup();
  });

  it('creates the database and applies every migration exactly once, and again is a no-op', async () => {
    const { rows } = await pool.query<{ name: string }>('SELECT name FROM pgmigrations');
    const files = readdirSync(MIGRATIONS_DIR)
      .map((f) => f.replace(/\.sql$/, ''))
      .sort();
    assert.ok(files.length >= 2);
    assert.deepEqual(
      rows.map((r) => r.name),
      files,
    );
    await prepareDatabase(config, logger, { migrate: true });
    assert.equal((await pool.query('SELECT 1 FROM pgmigrations')).rowCount, files.length);
  });

  it('has the foundation tables, with only a hash of each key', async () => {
    const { rows } = await pool.query<{ table_name: string }>(
      "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' AND table_name IN ('tenants','api_keys','events','audit_log') ORDER BY 1",
    );
    assert.deepEqual(
      rows.map((r) => r.table_name),
      ['api_keys', 'audit_log', 'events', 'tenants'],
    );
    const columns = await pool.query<{ column_name: string }>(
      "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_keys'",
    );
    const names = columns.rows.map((r) => r.column_name);
    for (const c of ['key_hash', 'key_prefix', 'scopes', 'created_at', 'revoked_at', 'last_used_at'])
      assert.ok(names.includes(c), c);
    assert.ok(!names.some((n) => n === 'key' || n === 'plaintext'));
  });

  it('partitions events by day on the event time, with the tenant+time, tenant+user+time and tenant+type+time indexes', async () => {
    const strategy = await pool.query<{ strategy: string; key: string }>(
      "SELECT partstrat AS strategy, pg_get_partkeydef('events'::regclass) AS key FROM pg_partitioned_table WHERE partrelid = 'events'::regclass",
    );
    assert.equal(strategy.rows[0]?.strategy, 'r');
    assert.equal(strategy.rows[0]?.key, 'RANGE (occurred_at)');
    const indexes = await pool.query<{ def: string }>(
      "SELECT indexdef AS def FROM pg_indexes WHERE tablename = 'events'",
    );
    const defs = indexes.rows.map((r) => r.def).join('\n');
    assert.match(defs, /\(tenant_id, occurred_at, id\)/);
    assert.match(defs, /\(tenant_id, user_id, occurred_at DESC, id DESC\)/);
    assert.match(defs, /\(tenant_id, type, occurred_at DESC\)/);
    const today = new Date().toISOString().slice(0, 10).replaceAll('-', '');
    const parts = await pool.query<{ name: string }>(
      "SELECT inhrelid::regclass::text AS name FROM pg_inherits WHERE inhparent = 'events'::regclass",
    );
    assert.ok(
      parts.rows.some((r) => r.name === `events_${today}`),
      "today's partition exists",
    );
  });

  it('routes an event to its day, and moves early arrivals out of the default partition when their day is created', async () => {
    const tenant = '11111111-1111-4111-8111-111111111111';
    const insert = (id: string, at: string) =>
      pool.query(
        "INSERT INTO events (tenant_id, id, type, occurred_at, received_at) VALUES ($1, $2, 'page_view', $3, now())",
        [tenant, id, at],
      );
    await insert('00000000-0000-7000-8000-000000000001', new Date().toISOString());
    await insert('00000000-0000-7000-8000-000000000002', '2020-03-04T05:06:07Z');
    const where = async (id: string) =>
      (await pool.query<{ part: string }>('SELECT tableoid::regclass::text AS part FROM events WHERE id = $1', [id]))
        .rows[0]?.part;
    assert.match((await where('00000000-0000-7000-8000-000000000001')) ?? '', /^events_\d{8}$/);
    assert.equal(await where('00000000-0000-7000-8000-000000000002'), 'events_default');

    const created = await pool.query<{ n: number }>("SELECT ensure_event_partitions('2020-03-03', '2020-03-05') AS n");
    assert.equal(created.rows[0]?.n, 3);
    assert.equal(await where('00000000-0000-7000-8000-000000000002'), 'events_20200304');
    assert.equal((await pool.query('SELECT 1 FROM events WHERE tenant_id = $1', [tenant])).rowCount, 2);
  });

  it('keeps partitions ready ahead of time from the gateway worker, and concurrent runs agree', async () => {
    const worker = createEventPartitionsWorker({ pool, logger }, { daysAhead: 20 });
    const now = new Date();
    const days = Array.from({ length: 22 }, (_, i) =>
      new Date(now.getTime() + (i - 1) * 86_400_000).toISOString().slice(0, 10).replaceAll('-', ''),
    );
    const exists = async (day: string) =>
      (await pool.query('SELECT to_regclass($1) AS t', [`events_${day}`])).rows[0].t !== null;
    const missing = (await Promise.all(days.map(exists))).filter((e) => !e).length;
    assert.ok(missing >= 12, 'the migration prepares about a week; the worker the rest');
    const created = await Promise.all([worker.runOnce(now), worker.runOnce(now)]);
    assert.equal(created[0]! + created[1]!, missing, 'each missing day was created exactly once');
    assert.ok((await Promise.all(days.map(exists))).every(Boolean));
  });

  it('makes audit_log append-only: UPDATE, DELETE and TRUNCATE are refused', async () => {
    await pool.query("INSERT INTO audit_log (action, result, details) VALUES ('test', 'ok', '{}')");
    await assert.rejects(pool.query("UPDATE audit_log SET result = 'changed'"), /append-only/);
    await assert.rejects(pool.query('DELETE FROM audit_log'), /append-only/);
    await assert.rejects(pool.query('TRUNCATE audit_log'), /append-only/);
    assert.equal((await pool.query("SELECT 1 FROM audit_log WHERE result = 'ok'")).rowCount, 1);
  });

  it('refuses unknown scopes and empty scope lists at the database too', async () => {
    const { rows } = await pool.query<{ id: string }>(
      "INSERT INTO tenants (slug, name) VALUES ('scopes-check', 'x') RETURNING id",
    );
    const insert = (scopes: string[]) =>
      pool.query("INSERT INTO api_keys (tenant_id, name, key_prefix, key_hash, scopes) VALUES ($1, 'x', 'p', $2, $3)", [
        rows[0]!.id,
        Buffer.alloc(32, scopes.length),
        scopes,
      ]);
    await assert.rejects(insert(['root']), /check constraint/);
    await assert.rejects(insert([]), /check constraint/);
    await insert(['admin']);
  });
});
