import { spawn, type ChildProcess } from 'node:child_process';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { pino } from 'pino';
import { createRollupRefresher } from '../src/analytics/rollup.refresher.js';
import { ApiKeyService } from '../src/auth/api-key.service.js';
import { loadConfig } from '../src/config/config.js';
import { prepareDatabase } from '../src/db/prepare-database.js';
import { EventRepository } from '../src/ingest/event.repository.js';
import { normalizeEvent } from '../src/ingest/event-validation.js';
import { refreshSeededRollups, seedEvents } from '../src/seed/seed-events.js';
import { deleteRedisKeys, POSTGRES_URL, REDIS_URL, waitFor } from '../test/helpers/test-env.js';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { closedLoop, graphqlPoster, type LoadResult } from './closed-loop.js';

/**
 * bench:query — five dashboard queries against seeded data (1 M and 10 M events by default), at
 * 50 concurrent clients, each measured four ways in one run:
 *   uncached   the gateway with QUERY_CACHE_ENABLED=false: every answer from the rollups;
 *   cached     the gateway with its Redis result cache, warmed by one request;
 *   plain SQL  (a) the same answer computed over the events table, straight through pg;
 *   naive      (b) the relation queries through per-parent resolvers without DataLoaders.
 * Plus, once per size: REFRESH MATERIALIZED VIEW CONCURRENTLY of an hour x type view against one
 * incremental refresh round of all rollups, and EXPLAIN summaries of the indexed queries.
 *
 * Seeded databases (agw_bench_query_<size>) are kept between runs; --reseed rebuilds them.
 * Options: --sizes 1000000,10000000 --duration 10 --warmup 2 --connections 50 --reseed --explain-only
 */
const { values } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000000,10000000' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    reseed: { type: 'boolean', default: false },
    /** Only the EXPLAIN summaries and the refresh comparison, no load. */
    'explain-only': { type: 'boolean', default: false },
  },
});
const sizes = values.sizes.split(',').map(Number);
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const connections = Number(values.connections);
const logger = pino({ level: 'warn' });
const KEY_PREFIX = 'agw-bench-query:';
const DAY = 86_400_000;

interface Query {
  readonly name: string;
  readonly graphql: (p: Params) => string;
  readonly sql: (db: pg.Pool, p: Params) => Promise<unknown>;
  /** Measured against the naive resolvers too (the queries with relations). */
  readonly relations: boolean;
}

interface Params {
  readonly tenantId: string;
  readonly userId: string;
  readonly from7d: string;
  readonly from90d: string;
  readonly to: string;
}

const body = (query: string, variables: Record<string, unknown> = {}) => JSON.stringify({ query, variables });

const QUERIES: Query[] = [
  {
    name: 'timeseries: hourly, 7 days, all types',
    relations: false,
    graphql: (p) =>
      body(
        `query($from: DateTime!, $to: DateTime!) { timeseries(interval: HOUR, from: $from, to: $to) { bucket count uniqueUsers avg p50 p95 p99 } }`,
        { from: p.from7d, to: p.to },
      ),
    sql: (db, p) =>
      db.query(
        `SELECT date_trunc('hour', occurred_at, 'UTC') AS bucket, count(*), count(DISTINCT user_id), avg(value),
           percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value)
         FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1 ORDER BY 1`,
        [p.tenantId, p.from7d, p.to],
      ),
  },
  {
    name: 'dailyStats: 90 days, all types',
    relations: false,
    graphql: (p) =>
      body(
        `query($from: DateTime!, $to: DateTime!) { dailyStats(from: $from, to: $to) { day totalEvents uniqueUsers avgValue } }`,
        { from: p.from90d, to: p.to },
      ),
    sql: (db, p) =>
      db.query(
        `SELECT date_trunc('day', occurred_at, 'UTC') AS day, count(*), count(DISTINCT user_id), avg(value)
         FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 GROUP BY 1 ORDER BY 1`,
        [p.tenantId, p.from90d, p.to],
      ),
  },
  {
    name: 'eventTypes: top 12',
    relations: false,
    graphql: () => body('{ eventTypes(first: 12) { type count uniqueUsers avgValue lastSeen } }'),
    sql: (db, p) =>
      db.query(
        `SELECT type, count(*), count(DISTINCT user_id), avg(value), max(occurred_at)
         FROM events WHERE tenant_id = $1 GROUP BY type ORDER BY 2 DESC LIMIT 12`,
        [p.tenantId],
      ),
  },
  {
    name: 'users(first: 20) with events(first: 5) { user }',
    relations: true,
    graphql: () =>
      body(
        '{ users(first: 20) { edges { node { id eventCount sessionCount lastSeen events(first: 5) { type timestamp value user { id eventCount } } } } } }',
      ),
    sql: (db, p) =>
      db.query(
        `WITH u AS (
           SELECT user_id, count(*) AS events, count(DISTINCT session_id) AS sessions, max(occurred_at) AS last_seen
           FROM events WHERE tenant_id = $1 AND user_id IS NOT NULL
           GROUP BY user_id ORDER BY last_seen DESC, user_id DESC LIMIT 20)
         SELECT u.*, e.* FROM u CROSS JOIN LATERAL (
           SELECT type, occurred_at, value FROM events
           WHERE tenant_id = $1 AND user_id = u.user_id ORDER BY occurred_at DESC, id DESC LIMIT 5) e`,
        [p.tenantId],
      ),
  },
  {
    name: "user(id): one user's page, 20 latest events",
    relations: true,
    graphql: (p) =>
      body(
        'query($id: ID!) { user(id: $id) { id firstSeen lastSeen eventCount sessionCount events(first: 20) { id type timestamp value properties } } }',
        { id: p.userId },
      ),
    sql: async (db, p) => {
      await db.query(
        `SELECT count(*), count(DISTINCT session_id), min(occurred_at), max(occurred_at)
         FROM events WHERE tenant_id = $1 AND user_id = $2`,
        [p.tenantId, p.userId],
      );
      await db.query(
        `SELECT id, type, occurred_at, value, properties FROM events
         WHERE tenant_id = $1 AND user_id = $2 ORDER BY occurred_at DESC, id DESC LIMIT 20`,
        [p.tenantId, p.userId],
      );
    },
  },
];

function start(script: string, args: string[], env: Record<string, string | undefined>, nodeFlags: string[] = []) {
  return spawn(process.execPath, [...nodeFlags, fileURLToPath(new URL(script, import.meta.url)), ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

async function serve(
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
  port: number,
  nodeFlags: string[] = [],
): Promise<ChildProcess> {
  const child = start(script, args, env, nodeFlags);
  await waitFor(
    async () =>
      (await fetch(`http://127.0.0.1:${port}/graphql?query=%7B__typename%7D`, {
        headers: { 'apollo-require-preflight': '1' },
      }).catch(() => null)) !== null,
    60_000,
    100,
  );
  return child;
}

async function measureHttp(
  url: string,
  headers: Record<string, string>,
  payload: string,
): Promise<{ loaded: LoadResult; alone: LoadResult }> {
  const post = graphqlPoster(url, headers, connections);
  await post(payload);
  if (warmup > 0) await closedLoop(connections, warmup, () => post(payload));
  const loaded = await closedLoop(connections, duration, () => post(payload));
  // One client alone: the latency of a request that does not queue behind 49 others.
  const alone = await closedLoop(1, Math.max(1, duration / 4), () => post(payload));
  return { loaded, alone };
}

/** Plain SQL at the same concurrency; statements past the window are cancelled, not awaited. */
async function measureSql(databaseUrl: string, run: (db: pg.Pool) => Promise<unknown>): Promise<LoadResult> {
  const db = new pg.Pool({
    connectionString: databaseUrl,
    max: connections,
    options: `-c timezone=UTC -c statement_timeout=${(duration + 5) * 1000}`,
    application_name: 'bench-plain-sql',
  });
  db.on('error', () => undefined);
  try {
    const result = closedLoop(connections, duration, async () => void (await run(db)));
    const timer = setTimeout(() => {
      void db.query(
        "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'bench-plain-sql' AND pid <> pg_backend_pid()",
      );
    }, duration * 1000);
    const r = await result;
    clearTimeout(timer);
    return r;
  } finally {
    await db.end();
  }
}

/**
 * Plain SQL from one client, one statement after another: at least 3 runs and duration/4 seconds,
 * so that statements slower than the loaded window still give a latency to compare.
 */
async function measureSqlAlone(databaseUrl: string, run: (db: pg.Pool) => Promise<unknown>): Promise<LoadResult> {
  const db = new pg.Pool({ connectionString: databaseUrl, max: 1, options: '-c timezone=UTC' });
  try {
    const histogram = createHistogram();
    const started = performance.now();
    let requests = 0;
    while (requests < 3 || performance.now() - started < (duration / 4) * 1000) {
      const t = performance.now();
      await run(db);
      histogram.record(Math.max(1, Math.round((performance.now() - t) * 1000)));
      requests++;
    }
    const at = (q: number) => histogram.percentile(q) / 1000;
    const seconds = (performance.now() - started) / 1000;
    return { requests, rps: requests / seconds, p50: at(50), p95: at(95), p99: at(99), errors: 0 };
  } finally {
    await db.end();
  }
}

/**
 * A plan in one line: node types (and indexes) from the top, how many partition scans ran, and the
 * planning and execution times. `generic`: planned as the gateway's event-read pool plans it
 * (plan_cache_mode=force_generic_plan); the gateway pays that planning once per connection.
 */
async function explain(db: pg.Pool, sql: string, params: unknown[]): Promise<string> {
  // Once first, so the figures are of warm caches (pages, the session's catalog entries), as the
  // gateway's connections see them.
  await db.query(sql, params);
  const { rows } = await db.query(`EXPLAIN (ANALYZE, FORMAT JSON) ${sql}`, params);
  const plan = (rows[0]['QUERY PLAN'] as [{ Plan: PlanNode; 'Execution Time': number; 'Planning Time': number }])[0];
  const nodes: string[] = [];
  let scans = 0;
  let ran = 0;
  const walk = (n: PlanNode) => {
    nodes.push(n['Index Name'] ? `${n['Node Type']} (${n['Index Name']})` : n['Node Type']);
    if (/^events_\d{8}$|^events_default$/.test(n['Relation Name'] ?? '')) {
      scans++;
      if ((n['Actual Loops'] ?? 0) > 0) ran++;
    }
    for (const child of n.Plans ?? []) walk(child);
  };
  walk(plan.Plan);
  const distinct = [...new Set(nodes.map((n) => n.replace(/events_\d{8}/g, 'events_<day>')))];
  return (
    `${distinct.slice(0, 6).join(' > ')}${distinct.length > 6 ? ' > …' : ''}; ` +
    (scans > 0 ? `${ran} of ${scans} partition scans ran; ` : '') +
    `planning ${plan['Planning Time'].toFixed(2)} ms, execution ${plan['Execution Time'].toFixed(2)} ms`
  );
}
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Actual Loops'?: number;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

const fmt = (n: number, digits = 1) => (Number.isFinite(n) ? n.toFixed(digits) : 'n/a');
const row = (label: string, r: LoadResult) =>
  `    ${label.padEnd(20)} ${fmt(r.rps, 0).padStart(8)} req/s   p50 ${fmt(r.p50, 2).padStart(8)}   p95 ${fmt(r.p95, 2).padStart(8)}   p99 ${fmt(r.p99, 2).padStart(8)} ms${r.errors ? `   errors ${r.errors}` : ''}`;

async function prepareSize(size: number): Promise<{ databaseUrl: string; tenantId: string }> {
  const label = size >= 1e6 && size % 1e6 === 0 ? `${size / 1e6}m` : String(size);
  const url = new URL(POSTGRES_URL);
  url.pathname = `/agw_bench_query_${label}`;
  const databaseUrl = url.toString();
  const config = loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' });
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  try {
    if (values.reseed)
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(url.pathname.slice(1))} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  await prepareDatabase(config, logger, { migrate: true });
  const db = new pg.Pool({ connectionString: databaseUrl, max: 4, options: '-c timezone=UTC' });
  try {
    await db.query("INSERT INTO tenants (slug, name) VALUES ('demo', 'demo') ON CONFLICT (slug) DO NOTHING");
    const tenantId = (await db.query<{ id: string }>("SELECT id FROM tenants WHERE slug = 'demo'")).rows[0]!.id;
    // The seeded events alone: each run's refresh comparison adds its own (users bench-*).
    const { rows } = await db.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM events WHERE tenant_id = $1 AND (user_id IS NULL OR user_id NOT LIKE 'bench-%')",
      [tenantId],
    );
    if (rows[0]!.n >= size && rows[0]!.n < size * 1.01) {
      console.log(
        `  reusing ${rows[0]!.n.toLocaleString()} seeded events in ${url.pathname.slice(1)} (--reseed to rebuild)`,
      );
      await refreshSeededRollups(db, logger, tenantId, new Date(0), new Date(0));
      return { databaseUrl, tenantId };
    }
    await db.query(
      'TRUNCATE events, rollup_dirty, rollup_minute, rollup_hour, rollup_day, rollup_type, rollup_type_user, rollup_user_session, rollup_user_day, rollup_user, rollup_refresh',
    );
    let last = 0;
    const seeded = await seedEvents({
      pool: db,
      tenantId,
      events: size,
      onProgress: (done, total) => {
        if (done - last >= total / 10 || done === total) {
          last = done;
          process.stdout.write(`  seeding ${((100 * done) / total).toFixed(0)}%\r`);
        }
      },
    });
    console.log(
      `  seeded ${seeded.rows.toLocaleString()} events by COPY in ${seeded.seconds.toFixed(1)} s: ${Math.round(seeded.rowsPerSecond).toLocaleString()} rows/s`,
    );
    const refreshed = await refreshSeededRollups(db, logger, tenantId, seeded.from, seeded.to);
    console.log(`  built the rollups (${refreshed.hours} hours) in ${refreshed.seconds.toFixed(1)} s`);
    await db.query('VACUUM ANALYZE');
    return { databaseUrl, tenantId };
  } finally {
    await db.end();
  }
}

/** Full REFRESH MATERIALIZED VIEW CONCURRENTLY of one hour x type view against one incremental round. */
async function compareRefresh(databaseUrl: string, tenantId: string): Promise<void> {
  const db = new pg.Pool({ connectionString: databaseUrl, max: 4, options: '-c timezone=UTC' });
  try {
    await db.query('DROP MATERIALIZED VIEW IF EXISTS bench_hourly_mv');
    let t = performance.now();
    await db.query(
      `CREATE MATERIALIZED VIEW bench_hourly_mv AS
       SELECT tenant_id, type, date_trunc('hour', occurred_at, 'UTC') AS bucket, count(*) AS events,
              count(DISTINCT user_id) AS unique_users, sum(value) AS value_sum, min(value) AS value_min, max(value) AS value_max,
              percentile_cont(ARRAY[0.5, 0.95, 0.99]) WITHIN GROUP (ORDER BY value) AS pct
       FROM events GROUP BY 1, 2, 3`,
    );
    await db.query('CREATE UNIQUE INDEX ON bench_hourly_mv (tenant_id, type, bucket)');
    const create = performance.now() - t;
    t = performance.now();
    await db.query('REFRESH MATERIALIZED VIEW CONCURRENTLY bench_hourly_mv');
    const full = performance.now() - t;
    await db.query('DROP MATERIALIZED VIEW bench_hourly_mv');

    // One minute of traffic at 1,000 events/s lands in the current hour, through the event writer.
    const receivedAt = Date.now();
    const events = Array.from({ length: 60_000 }, (_, i) => {
      const r = normalizeEvent(
        {
          type: 'page_view',
          userId: `bench-${i % 500}`,
          sessionId: `bench-${i % 900}`,
          value: i % 97,
          timestamp: new Date(receivedAt - (i % 60_000)),
        },
        { tenantId, receivedAt },
      );
      if (!r.ok) throw new Error(r.message);
      return r.event;
    });
    for (let i = 0; i < events.length; i += 1000) await new EventRepository(db).insert(events.slice(i, i + 1000));
    const refresher = createRollupRefresher({ pool: db, logger });
    t = performance.now();
    const round = await refresher.runOnce();
    const incremental = performance.now() - t;
    console.log(
      `  refresh: REFRESH MATERIALIZED VIEW CONCURRENTLY (hour x type only) ${(full / 1000).toFixed(2)} s (creating it: ${(create / 1000).toFixed(2)} s);` +
        ` one incremental round of all rollups after 60,000 new events (${round.hours} dirty hours) ${(incremental / 1000).toFixed(2)} s;` +
        ` ratio ${(full / incremental).toFixed(1)}x`,
    );
  } finally {
    await db.end();
  }
}

async function explainAll(databaseUrl: string, p: Params): Promise<void> {
  const db = new pg.Pool({ connectionString: databaseUrl, max: 2, options: '-c timezone=UTC' });
  const genericDb = new pg.Pool({
    connectionString: databaseUrl,
    max: 1,
    options: '-c timezone=UTC -c plan_cache_mode=force_generic_plan',
  });
  try {
    const { rows } = await db.query<{ id: string; session_id: string }>(
      `SELECT e.id, e.session_id FROM events e WHERE e.tenant_id = $1 AND e.user_id = $2 AND e.session_id IS NOT NULL
       ORDER BY occurred_at DESC LIMIT 1`,
      [p.tenantId, p.userId],
    );
    const sample = rows[0]!;
    const seen = await db.query<{ last_seen: Date }>(
      'SELECT last_seen FROM rollup_user WHERE tenant_id = $1 AND user_id = $2',
      [p.tenantId, p.userId],
    );
    // The statement of EventReadRepository.latestSince, once with a week's window, once without.
    const latest = `SELECT e.* FROM unnest($2::text[], $5::timestamptz[]) AS u(user_id, since)
       CROSS JOIN LATERAL (SELECT id FROM events
         WHERE tenant_id = $1 AND user_id = u.user_id AND occurred_at >= COALESCE(u.since, '-infinity')
           AND ($4::text IS NULL OR type = $4)
         ORDER BY occurred_at DESC, id DESC LIMIT $3) e`;
    const plans: { name: string; sql: string; params: unknown[]; generic?: boolean }[] = [
      {
        name: 'timeseries (rollup_hour pkey)',
        sql: `SELECT * FROM rollup_hour WHERE tenant_id = $1 AND type = '' AND bucket >= $2 AND bucket < $3`,
        params: [p.tenantId, p.from7d, p.to],
      },
      {
        name: 'users page (last_seen index)',
        sql: `SELECT * FROM rollup_user WHERE tenant_id = $1 ORDER BY last_seen DESC, user_id DESC LIMIT 101`,
        params: [p.tenantId],
      },
      {
        name: 'users by event count (events index)',
        sql: `SELECT * FROM rollup_user WHERE tenant_id = $1 ORDER BY events DESC, user_id DESC LIMIT 101`,
        params: [p.tenantId],
      },
      {
        name: "a user's latest events, the week before their last event (user index, LATERAL)",
        sql: latest,
        params: [p.tenantId, [p.userId], 20, null, [new Date(seen.rows[0]!.last_seen.getTime() - 7 * DAY)]],
        generic: true,
      },
      {
        name: "a user's latest events, whole history (the fallback)",
        sql: latest,
        params: [p.tenantId, [p.userId], 20, null, [null]],
        generic: true,
      },
      {
        name: 'event(id) (pkey, one partition)',
        sql: `SELECT * FROM events WHERE tenant_id = $1 AND id = $2 AND occurred_at >= $3 AND occurred_at < $3::timestamptz + interval '1 millisecond'`,
        params: [p.tenantId, sample.id, new Date(parseInt(sample.id.slice(0, 8) + sample.id.slice(9, 13), 16))],
      },
      {
        name: 'events by session (session index)',
        sql: `SELECT id FROM events WHERE tenant_id = $1 AND session_id = $2 ORDER BY occurred_at DESC, id DESC LIMIT 101`,
        params: [p.tenantId, sample.session_id],
        generic: true,
      },
      {
        name: 'events by type (type index)',
        sql: `SELECT id FROM events WHERE tenant_id = $1 AND type = $2 ORDER BY occurred_at DESC, id DESC LIMIT 101`,
        params: [p.tenantId, 'purchase'],
        generic: true,
      },
      {
        name: "events newest first, the page's first window: today (pkey backward)",
        sql: `SELECT id FROM events WHERE tenant_id = $1 AND occurred_at >= $2 AND occurred_at < $3 ORDER BY occurred_at DESC, id DESC LIMIT 21`,
        params: [p.tenantId, new Date(Math.floor(Date.now() / DAY) * DAY), new Date(Date.now() + 65 * 60_000)],
        generic: true,
      },
      {
        name: "events by type, the page's first window: today (type index)",
        sql: `SELECT id FROM events WHERE tenant_id = $1 AND type = $2 AND occurred_at >= $3 AND occurred_at < $4 ORDER BY occurred_at DESC, id DESC LIMIT 21`,
        params: [
          p.tenantId,
          'purchase',
          new Date(Math.floor(Date.now() / DAY) * DAY),
          new Date(Date.now() + 65 * 60_000),
        ],
        generic: true,
      },
      {
        name: 'events newest first, unbounded (pkey backward)',
        sql: `SELECT id FROM events WHERE tenant_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT 101`,
        params: [p.tenantId],
        generic: true,
      },
    ];
    for (const q of plans) {
      const summary = await explain(q.generic ? genericDb : db, q.sql, q.params);
      console.log(`  EXPLAIN ${q.name}${q.generic ? ' [generic plan]' : ''}: ${summary}`);
    }
  } finally {
    await Promise.all([db.end(), genericDb.end()]);
  }
}

const redis = new Redis(REDIS_URL);
const children: ChildProcess[] = [];
try {
  console.log(
    `bench:query  ${connections} concurrent clients, ${duration} s per measurement after ${warmup} s warm-up; gateway NODE_ENV=production, ROLE=api\n`,
  );
  for (const size of sizes) {
    console.log(`== ${size.toLocaleString()} events ==`);
    const { databaseUrl, tenantId } = await prepareSize(size);
    const db = new pg.Pool({ connectionString: databaseUrl, max: 2, options: '-c timezone=UTC' });
    const apiKeys = new ApiKeyService(db, redis, KEY_PREFIX, logger);
    const key = (await apiKeys.createKey({ tenantSlug: 'demo', name: 'bench', scopes: ['analytics:read'] })).plaintext;
    const userId = (
      await db.query<{ user_id: string }>(
        'SELECT user_id FROM rollup_user WHERE tenant_id = $1 ORDER BY events DESC OFFSET 50 LIMIT 1',
        [tenantId],
      )
    ).rows[0]!.user_id;
    await db.end();
    const now = Date.now();
    const params: Params = {
      tenantId,
      userId,
      from7d: new Date(now - 7 * DAY).toISOString(),
      from90d: new Date(now - 90 * DAY).toISOString(),
      to: new Date(now).toISOString(),
    };

    await explainAll(databaseUrl, params);
    await compareRefresh(databaseUrl, tenantId);
    if (values['explain-only']) continue;

    const results = new Map<string, Record<string, LoadResult>>(QUERIES.map((q) => [q.name, {}]));
    const gatewayEnv = (cache: boolean, port: number) => ({
      NODE_ENV: 'production',
      LOG_LEVEL: 'info',
      ROLE: 'api',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      REDIS_URL,
      REDIS_KEY_PREFIX: KEY_PREFIX,
      QUERY_CACHE_ENABLED: String(cache),
      // One key at hundreds of requests a second: a cost budget this load cannot exhaust.
      COST_BUDGET_CAPACITY: '1000000000',
      COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
    });
    for (const [label, cache] of [
      ['uncached', false],
      ['cached', true],
    ] as const) {
      const port = await closedPort();
      const child = await serve('../src/main.js', [], gatewayEnv(cache, port), port, ['--max-semi-space-size=64']);
      children.push(child);
      for (const q of QUERIES) {
        const { loaded, alone } = await measureHttp(
          `http://127.0.0.1:${port}`,
          { authorization: `Bearer ${key}` },
          q.graphql(params),
        );
        results.get(q.name)![label] = loaded;
        results.get(q.name)![`${label}, 1 client`] = alone;
      }
      await stop(child);
    }
    const naivePort = await closedPort();
    const naive = await serve(
      './naive-gateway.server.js',
      [String(naivePort), databaseUrl, tenantId],
      { NODE_ENV: 'production' },
      naivePort,
    );
    children.push(naive);
    for (const q of QUERIES.filter((q) => q.relations)) {
      results.get(q.name)!.naive = (await measureHttp(`http://127.0.0.1:${naivePort}`, {}, q.graphql(params))).loaded;
    }
    await stop(naive);
    for (const q of QUERIES) {
      results.get(q.name)!['plain SQL'] = await measureSql(databaseUrl, (db) => q.sql(db, params));
      results.get(q.name)!['plain SQL, 1 client'] = await measureSqlAlone(databaseUrl, (db) => q.sql(db, params));
    }

    console.log('');
    for (const q of QUERIES) {
      const r = results.get(q.name)!;
      console.log(`  ${q.name}`);
      for (const label of [
        'uncached',
        'cached',
        'plain SQL',
        'naive',
        'uncached, 1 client',
        'cached, 1 client',
        'plain SQL, 1 client',
      ]) {
        if (r[label]) console.log(row(label, r[label]));
      }
      const ratio = (a: LoadResult | undefined, b: LoadResult | undefined) =>
        a && b && b.rps > 0 ? `${(a.rps / b.rps).toFixed(1)}x` : 'n/a';
      const faster = (slow: LoadResult | undefined, fast: LoadResult | undefined) =>
        slow && fast && fast.p50 > 0 ? `${(slow.p50 / fast.p50).toFixed(1)}x` : 'n/a';
      console.log(
        `    throughput: uncached / plain SQL ${ratio(r.uncached, r['plain SQL'])}, cached / uncached ${ratio(r.cached, r.uncached)}` +
          (r.naive ? `, uncached / naive ${ratio(r.uncached, r.naive)}` : ''),
      );
      console.log(
        `    1-client p50 speed-up: uncached over plain SQL ${faster(r['plain SQL, 1 client'], r['uncached, 1 client'])},` +
          ` cached over uncached ${faster(r['uncached, 1 client'], r['cached, 1 client'])}`,
      );
    }
    console.log('');
  }
} finally {
  for (const child of children) await stop(child);
  await deleteRedisKeys(KEY_PREFIX);
  redis.disconnect();
}
