import { parseArgs } from 'node:util';
import { createHistogram } from 'node:perf_hooks';
import pg from 'pg';
import { isolatedEnv } from '../test/helpers/test-env.js';
import { startGateway } from '../test/helpers/gateway.js';

/**
 * bench:erasure — how long eraseUser takes for one user with many events, and whether ingestion
 * keeps going meanwhile. The user's events are inserted straight into `events` (generate_series,
 * over the last 36 hours: two day partitions), the rollups caught up, then one client records
 * batches of other users' events through the gateway while eraseUser runs. Reported: the erasure's
 * time, the events recorded and persisted during it, and the recordEvents latency before and
 * during it. Gateway (ROLE=all) and load share this process and the machine.
 *
 * `--quick` erases 100,000 events instead of 1,000,000.
 */
const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, events: { type: 'string' } } });
const N = Number(values.events ?? (values.quick ? 100_000 : 1_000_000));
const KEY = 'agk_bench-erasure-key-00000000000000000000000000000';
const HOUR = 3_600_000;

const isolation = isolatedEnv('bench_erasure');
const gateway = await startGateway(isolation.env({ BOOTSTRAP_API_KEY: KEY, ROLLUP_REFRESH_INTERVAL_MS: '1000' }));
const pool = new pg.Pool({ connectionString: isolation.databaseUrl, max: 2 });
const count = async (sql: string, params: unknown[] = []) => (await pool.query<{ n: number }>(sql, params)).rows[0]!.n;

try {
  const tenantId = (await pool.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
  let started = performance.now();
  await pool.query(
    `INSERT INTO events (tenant_id, id, type, user_id, session_id, occurred_at, received_at, value, properties)
     SELECT $1, gen_random_uuid(), (ARRAY['view', 'click', 'buy'])[1 + i % 3], 'heavy-user', 'heavy-s' || (i % 50),
            now() - (i * interval '1 millisecond') * (36 * 3600000.0 / $2), now(), i % 100, '{"k":1}'
     FROM generate_series(1, $2) i`,
    [tenantId, N],
  );
  console.log(`loaded ${N} events of one user in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  started = performance.now();
  const now = Date.now();
  await pool.query(
    `INSERT INTO rollup_dirty (tenant_id, hour)
     SELECT $1, generate_series(date_trunc('hour', $2::timestamptz, 'UTC'), $3::timestamptz, interval '1 hour')
     ON CONFLICT DO NOTHING`,
    [tenantId, new Date(now - 37 * HOUR), new Date(now)],
  );
  for (;;) {
    if ((await count('SELECT count(*)::int AS n FROM rollup_dirty')) === 0) break;
    await new Promise((r) => setTimeout(r, 200));
  }
  console.log(`rollups caught up in ${((performance.now() - started) / 1000).toFixed(1)} s`);

  // Background ingestion of other users, before and during the erasure.
  const latency = { before: createHistogram(), during: createHistogram() };
  const state = { phase: 'before' as 'before' | 'during' | 'done' };
  let recordedDuring = 0;
  let i = 0;
  const writer = (async () => {
    while (state.phase !== 'done') {
      const events = Array.from({ length: 200 }, () => ({ type: 'view', userId: `bg-${i++ % 500}` }));
      const t0 = performance.now();
      const res = await fetch(`${gateway.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
        body: JSON.stringify({
          query: 'mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }',
          variables: { e: events },
        }),
      });
      const body = (await res.json()) as { data?: { recordEvents: { accepted: number } } };
      if (body.data?.recordEvents.accepted !== 200) throw new Error(`ingestion failed: ${JSON.stringify(body)}`);
      const at = state.phase as 'before' | 'during' | 'done';
      if (at === 'done') break;
      latency[at].record(Math.max(1, Math.round((performance.now() - t0) * 1000)));
      if (at === 'during') recordedDuring += 200;
    }
  })();
  await new Promise((r) => setTimeout(r, 3_000));
  const persistedBefore = await count("SELECT count(*)::int AS n FROM events WHERE user_id LIKE 'bg-%'");
  state.phase = 'during';
  started = performance.now();
  const res = await fetch(`${gateway.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ query: 'mutation { eraseUser(userId: "heavy-user") { eventsDeleted completedAt } }' }),
  });
  const seconds = (performance.now() - started) / 1000;
  const persistedDuring =
    (await count("SELECT count(*)::int AS n FROM events WHERE user_id LIKE 'bg-%'")) - persistedBefore;
  state.phase = 'done';
  await writer;
  const erased = (await res.json()) as { data?: { eraseUser: { eventsDeleted: number } }; errors?: unknown };
  if (!erased.data) throw new Error(`eraseUser failed: ${JSON.stringify(erased.errors)}`);
  const ms = (h: ReturnType<typeof createHistogram>, p: number) => (h.percentile(p) / 1000).toFixed(0);
  console.log(
    `eraseUser: ${erased.data.eraseUser.eventsDeleted} events in ${seconds.toFixed(1)} s (${Math.round(erased.data.eraseUser.eventsDeleted / seconds)} events/s)`,
  );
  console.log(
    `during it: ${recordedDuring} events recorded (${Math.round(recordedDuring / seconds)}/s), ${persistedDuring} persisted (${Math.round(persistedDuring / seconds)}/s)`,
  );
  console.log(
    `recordEvents(200) latency p50/p99/max ms: before ${ms(latency.before, 50)}/${ms(latency.before, 99)}/${(latency.before.max / 1000).toFixed(0)}, during ${ms(latency.during, 50)}/${ms(latency.during, 99)}/${(latency.during.max / 1000).toFixed(0)}`,
  );
  console.log(
    `left of the user: ${await count("SELECT count(*)::int AS n FROM events WHERE user_id = 'heavy-user'")} events`,
  );
} finally {
  await gateway.stop();
  await pool.end();
  await isolation.cleanup();
}
