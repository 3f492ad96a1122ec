import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { POSTGRES_URL, isolatedEnv } from '../test/helpers/test-env.js';
import { closedLoop, graphqlPoster } from './closed-loop.js';
import { measureGraphql, printResults, type LoadResult, type LoadSettings } from './support/load.js';
import { startNode, stopProcess } from './support/processes.js';

/**
 * bench:peers — the gateway's request path against what a team would write instead, in one run
 * on one machine: Apollo Server 5 standalone with a constant resolver (the framework's ceiling)
 * and Apollo Server 5 + pg answering the same list by hand from the same table. Each server runs
 * alone in its own process while autocannon drives it from this one. PostGraphile is measured
 * beside these by the side-by-side script outside the project (README, "Benchmarks").
 *
 *   npm run bench:peers -- [--events 1m] [--duration 10] [--connections 50] [--warmup 3]
 *                          [--modes all-plugins,plugins-off] [--reseed]
 */
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1m' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '3' },
    modes: { type: 'string', default: 'all-plugins' },
    reseed: { type: 'boolean', default: false },
  },
});
const settings: LoadSettings = {
  duration: Number(values.duration),
  connections: Number(values.connections),
  warmup: Number(values.warmup),
};
const KEY = 'agk_bench-peers-key-000000000000000000000000000000';
const DATABASE = 'agw_bench_peers';
const databaseUrl = (() => {
  const url = new URL(POSTGRES_URL);
  url.pathname = `/${DATABASE}`;
  return url.toString();
})();

/** Seeds the benchmark's own database once (kept between runs: a 1 M seed takes a while). */
async function seeded(): Promise<string> {
  const admin = new pg.Client({ connectionString: POSTGRES_URL });
  await admin.connect();
  const exists = (await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DATABASE])).rowCount === 1;
  if (exists && values.reseed) await admin.query(`DROP DATABASE ${DATABASE} WITH (FORCE)`);
  await admin.end();
  const count = async () => {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const { rows } = await client.query<{ tenant: string | null; n: string }>(
        `SELECT (SELECT id FROM tenants WHERE slug = 'demo') AS tenant,
                (SELECT count(*) FROM events WHERE tenant_id = (SELECT id FROM tenants WHERE slug = 'demo')) AS n`,
      );
      return { tenant: rows[0]!.tenant, events: Number(rows[0]!.n) };
    } catch {
      return { tenant: null, events: 0 };
    } finally {
      await client.end();
    }
  };
  let state = exists && !values.reseed ? await count() : { tenant: null, events: 0 };
  if (state.events === 0) {
    console.log(`seeding ${values.events} events into ${DATABASE} (kept for the next run; --reseed to redo)`);
    execFileSync(
      process.execPath,
      [
        fileURLToPath(new URL('../src/seed/seed.main.js', import.meta.url)),
        '--events',
        values.events,
        '--tenant',
        'demo',
      ],
      {
        env: { PATH: process.env.PATH, DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' },
        stdio: ['ignore', 'inherit', 'inherit'],
      },
    );
    state = await count();
  }
  console.log(`${DATABASE}: ${state.events} events of tenant demo`);
  // The hand-written peer reads 20 rows of one unpartitioned table, as a team would start: the
  // same events, copied once.
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const copied = await client.query(`SELECT 1 FROM pg_class WHERE relname = 'peer_events'`);
    if (copied.rowCount === 0) {
      await client.query(
        `CREATE TABLE peer_events AS SELECT tenant_id, id, type, user_id, occurred_at, value, properties FROM events`,
      );
      await client.query('CREATE INDEX ON peer_events (tenant_id, occurred_at DESC, id DESC)');
      await client.query('VACUUM ANALYZE peer_events');
    }
  } finally {
    await client.end();
  }
  return state.tenant!;
}

/** The user a dashboard would open: the one seen last. */
async function busiestUser(): Promise<string> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ user_id: string }>(
      'SELECT user_id FROM rollup_user ORDER BY last_seen DESC LIMIT 1',
    );
    return rows[0]?.user_id ?? 'u1';
  } finally {
    await client.end();
  }
}

const hour = (d: Date) => `${d.toISOString().slice(0, 13)}:00:00Z`;
const QUERIES = {
  viewer: '{ viewer { tenant } }',
  list20: '{ events(first: 20) { edges { node { id type userId timestamp value properties } } } }',
  users20x5:
    '{ users(first: 20) { edges { node { id eventCount events(first: 5) { type timestamp user { id } } } } } }',
  timeseries168: `{ timeseries(interval: HOUR, from: "${hour(new Date(Date.now() - 7 * 86_400_000))}", to: "${hour(new Date())}") { bucket count uniqueUsers sum avg p95 } }`,
};

const MODES: Record<string, Record<string, string>> = {
  // Default settings, all plugins on; a budget this load cannot exhaust, so the cost checks run
  // (and are measured) but never refuse.
  'all-plugins': { COST_BUDGET_CAPACITY: '1000000000', COST_BUDGET_RESTORE_PER_MINUTE: '1000000000' },
  'plugins-off': {
    COST_MODE: 'off',
    TRACING_ENABLED: 'false',
    AUDIT_LOG_ENABLED: 'false',
    LOG_OPERATIONS: 'false',
    LOG_LEVEL: 'warn',
  },
};

const body = (query: string) => JSON.stringify({ query });
const results: LoadResult[] = [];
const mixes: { mode: string; rps: number; p50: number; p95: number; p99: number; errors: number }[] = [];
let userQuery = '{ user(id: "u1") { id eventCount } }';
const isolation = isolatedEnv('bench_peers');
try {
  const tenantId = await seeded();
  userQuery = `{ user(id: ${JSON.stringify(await busiestUser())}) { id eventCount lastSeen events(first: 10) { type timestamp } } }`;
  console.log(
    `bench:peers  autocannon -c ${settings.connections} -d ${settings.duration} after a ${settings.warmup} s warm-up, nproc 2, one server at a time\n`,
  );
  const port = await closedPort();
  const url = `http://127.0.0.1:${port}`;

  const min = startNode(new URL('./peers/apollo-min.server.js', import.meta.url), [String(port)], {
    NODE_ENV: 'production',
  });
  results.push(await measureGraphql('apollo-min { hello }', `${url}/`, body('{ hello }'), {}, settings));
  await stopProcess(min);

  const hand = startNode(
    new URL('./peers/apollo-pg.server.js', import.meta.url),
    [String(port), databaseUrl, tenantId],
    {
      NODE_ENV: 'production',
    },
  );
  results.push(
    await measureGraphql(
      'apollo-pg list20 (hand-written)',
      `${url}/`,
      body('{ events(first: 20) { id type userId timestamp value properties } }'),
      {},
      settings,
    ),
  );
  await stopProcess(hand);

  for (const mode of values.modes.split(',')) {
    const gateway = startNode(
      new URL('../src/main.js', import.meta.url),
      [],
      isolation.env({
        NODE_ENV: 'production',
        ROLE: 'api',
        LOG_LEVEL: 'info',
        PORT: String(port),
        DATABASE_URL: databaseUrl,
        BOOTSTRAP_API_KEY: KEY,
        ...MODES[mode],
      }),
      // As `npm start` and the Dockerfile run it.
      ['--max-semi-space-size=64'],
    );
    for (const [name, query] of Object.entries(QUERIES)) {
      results.push(
        await measureGraphql(
          `gw-${mode} ${name}`,
          `${url}/graphql`,
          body(query),
          { authorization: `Bearer ${KEY}` },
          settings,
        ),
      );
    }
    // A dashboard's mix, 10 clients each waiting for its answer before the next (exact p95).
    const post = graphqlPoster(url, { authorization: `Bearer ${KEY}` }, 10);
    const mix = [
      QUERIES.users20x5,
      QUERIES.timeseries168,
      '{ eventTypes(first: 20) { type count uniqueUsers } }',
      userQuery,
    ];
    let next = 0;
    const op = () => post(body(mix[next++ % mix.length]!));
    await closedLoop(10, settings.warmup, op);
    mixes.push({ mode, ...(await closedLoop(10, settings.duration, op)) });
    await stopProcess(gateway);
  }

  printResults(results);
  for (const m of mixes) {
    console.log(
      `gw-${m.mode} dashboard mix (users, timeseries, eventTypes, user), 10 closed-loop clients: ${m.rps.toFixed(0)} req/s, p50 ${m.p50.toFixed(1)} ms, p95 ${m.p95.toFixed(1)} ms, p99 ${m.p99.toFixed(1)} ms, errors ${m.errors}`,
    );
  }
  const rps = (name: string) => results.find((r) => r.name === name)?.rps ?? NaN;
  console.log('\nratios (same run):');
  for (const mode of values.modes.split(',')) {
    const g = (q: string) => rps(`gw-${mode} ${q}`);
    console.log(`  ${mode}: viewer / apollo-min            ${(g('viewer') / rps('apollo-min { hello }')).toFixed(3)}`);
    for (const q of ['list20', 'users20x5', 'timeseries168']) {
      console.log(
        `  ${mode}: ${q.padEnd(13)} / apollo-pg list20  ${(g(q) / rps('apollo-pg list20 (hand-written)')).toFixed(3)}`,
      );
    }
  }
  if (results.some((r) => r.errors > 0 || r.non2xx > 0) || mixes.some((m) => m.errors > 0)) {
    console.error('some requests failed: the figures above are not valid');
    process.exitCode = 1;
  }
} finally {
  await isolation.cleanup();
}
