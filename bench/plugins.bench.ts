import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { pino } from 'pino';
import { loadConfig } from '../src/config/config.js';
import { prepareDatabase } from '../src/db/prepare-database.js';
import { refreshSeededRollups, seedEvents } from '../src/seed/seed-events.js';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, waitFor } from '../test/helpers/test-env.js';

/**
 * bench:plugins — what each Apollo plugin costs on the request path. The same query load and the
 * same mutation load run against one gateway process per setting, one setting at a time (so they
 * never share the two cores), all in one run:
 *   off       every plugin off and nothing logged: the reference;
 *   logging   pino at info (request line + one line per operation, masked, with trace ids);
 *   tracing   tracing on with no exporter (the default): no SDK, trace ids from traceparent for
 *             logs and audit rows, and the resolver/operation histograms;
 *   tracing+export  OpenTelemetry spans for the request, the operation, resolvers, pg and Redis,
 *             exported over OTLP to a sink in this process;
 *   cost      static cost analysis, the Redis budget (charge and refund) and extensions.cost;
 *   audit     the audit log (a row per mutation, written in batches);
 *   all       every plugin on, as the gateway runs by default (no exporter);
 *   all+export  the same with spans exported.
 * The gateway runs as `npm start` runs it (NODE_ENV=production, ROLE=api so no stream consumer
 * competes for the CPU, --max-semi-space-size=64), its output to /dev/null.
 * Figures are medians over the rounds. Options: --duration 8 --warmup 2 --connections 50 --rounds 3
 * --only cost,audit (off always runs).
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '50' },
    only: { type: 'string' },
    rounds: { type: 'string', default: '3' },
  },
});
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const connections = Number(values.connections);
const KEY = 'agk_bench-plugins-key-000000000000000000000000000000';
const SEEDED_EVENTS = 100_000;

const QUERY = JSON.stringify({
  query:
    'query RecentEvents { events(first: 20) { edges { cursor node { id type userId value timestamp } } pageInfo { hasNextPage endCursor } } }',
});
const MUTATION = JSON.stringify({
  query: 'mutation Record($events: [EventInput!]!) { recordEvents(events: $events) { accepted duplicates } }',
  variables: {
    events: Array.from({ length: 10 }, (_, i) => ({
      type: i % 3 === 0 ? 'page_view' : 'click',
      userId: `bench-user-${i}`,
      sessionId: 'bench-session',
      value: i * 1.5,
      properties: { path: `/bench/${i}`, referrer: 'https://example.test/' },
    })),
  },
});

/** Everything off: each setting below turns on one plugin over this. */
const OFF: Record<string, string> = {
  LOG_LEVEL: 'silent',
  LOG_OPERATIONS: 'false',
  TRACING_ENABLED: 'false',
  COST_MODE: 'off',
  AUDIT_LOG_ENABLED: 'false',
};
/** The budget is real (charged and refunded in Redis) but large enough that the load never exhausts it. */
const BIG_BUDGET: Record<string, string> = {
  COST_BUDGET_CAPACITY: '1000000000',
  COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
};

interface Setting {
  readonly name: string;
  readonly env: (sink: string) => Record<string, string>;
}

const SETTINGS: readonly Setting[] = [
  { name: 'off', env: () => OFF },
  { name: 'logging', env: () => ({ ...OFF, LOG_LEVEL: 'info', LOG_OPERATIONS: 'true' }) },
  { name: 'tracing', env: () => ({ ...OFF, TRACING_ENABLED: 'true' }) },
  {
    name: 'tracing+export',
    env: (sink) => ({ ...OFF, TRACING_ENABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: sink }),
  },
  { name: 'cost', env: () => ({ ...OFF, COST_MODE: 'enforce', ...BIG_BUDGET }) },
  { name: 'audit', env: () => ({ ...OFF, AUDIT_LOG_ENABLED: 'true' }) },
  {
    name: 'all',
    env: () => ({
      LOG_LEVEL: 'info',
      LOG_OPERATIONS: 'true',
      TRACING_ENABLED: 'true',
      COST_MODE: 'enforce',
      AUDIT_LOG_ENABLED: 'true',
      ...BIG_BUDGET,
    }),
  },
  {
    name: 'all+export',
    env: (sink) => ({
      LOG_LEVEL: 'info',
      LOG_OPERATIONS: 'true',
      TRACING_ENABLED: 'true',
      OTEL_EXPORTER_OTLP_ENDPOINT: sink,
      COST_MODE: 'enforce',
      AUDIT_LOG_ENABLED: 'true',
      ...BIG_BUDGET,
    }),
  },
];

interface Result {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  /** CPU time (user + system) the gateway process spent per answered request. */
  readonly cpuMs: number;
  readonly failed: number;
}

/** utime + stime of a process, in ms (Linux /proc; clock ticks are 10 ms). */
function cpuTimeMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .split(' ');
  // After "(comm) ", field 14 (utime) is at index 11 and field 15 (stime) at index 12.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** An OTLP/HTTP endpoint that accepts and counts what it is sent, so export is measured too. */
async function otlpSink(): Promise<{ server: Server; url: string; received: () => number }> {
  let received = 0;
  const server = createServer((req, res) => {
    req.on('data', (chunk: Buffer) => (received += chunk.length));
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return { server, url: `http://127.0.0.1:${port}`, received: () => received };
}

/** A database with a week of events and its rollups, shared by every setting. */
async function prepare(databaseUrl: string): Promise<void> {
  const logger = pino({ level: 'warn' });
  await prepareDatabase(loadConfig({ DATABASE_URL: databaseUrl, LOG_LEVEL: 'warn' }), logger, { migrate: true });
  const db = new pg.Pool({ connectionString: databaseUrl, max: 4, options: '-c timezone=UTC' });
  try {
    const { rows } = await db.query<{ id: string }>(
      "INSERT INTO tenants (slug, name) VALUES ('demo', 'demo') ON CONFLICT (slug) DO UPDATE SET name = EXCLUDED.name RETURNING id",
    );
    const tenantId = rows[0]!.id;
    const seeded = await seedEvents({ pool: db, tenantId, events: SEEDED_EVENTS, days: 7 });
    await refreshSeededRollups(db, logger, tenantId, seeded.from, seeded.to);
    await db.query('VACUUM ANALYZE');
  } finally {
    await db.end();
  }
}

/** Sends the body once and fails loudly on any GraphQL error: a fast error would flatter a setting. */
async function checkAnswers(url: string, body: string): Promise<void> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body,
  });
  const answer = (await response.json()) as { errors?: unknown };
  if (response.status !== 200 || answer.errors) {
    throw new Error(`the gateway answered ${response.status}: ${JSON.stringify(answer).slice(0, 400)}`);
  }
}

async function load(url: string, body: string, seconds: number, pid: number): Promise<Result> {
  const cpuBefore = cpuTimeMs(pid);
  const result = await autocannon({
    url: `${url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body,
    connections,
    duration: seconds,
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuMs: (cpuTimeMs(pid) - cpuBefore) / Math.max(1, result.requests.total),
    failed: result.errors + result.timeouts + result.non2xx,
  };
}

async function runSetting(
  setting: Setting,
  env: Record<string, string | undefined>,
): Promise<{ query: Result; mutation: Result }> {
  const port = await closedPort();
  const child: ChildProcess = spawn(
    process.execPath,
    ['--max-semi-space-size=64', fileURLToPath(new URL('../src/main.js', import.meta.url))],
    { env: { PATH: process.env.PATH, ...env, PORT: String(port) }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(async () => (await fetch(`${url}/health`).catch(() => null))?.status === 200, 60_000, 100);
    await checkAnswers(url, QUERY);
    await checkAnswers(url, MUTATION);
    const pid = child.pid!;
    if (warmup > 0) await load(url, QUERY, warmup, pid);
    const query = await load(url, QUERY, duration, pid);
    if (warmup > 0) await load(url, MUTATION, warmup, pid);
    const mutation = await load(url, MUTATION, duration, pid);
    return { query, mutation };
  } finally {
    child.kill('SIGTERM');
    if (child.exitCode === null) await new Promise((resolve) => child.once('exit', resolve));
  }
}

const only = values.only?.split(',');
const chosen = SETTINGS.filter((s) => s.name === 'off' || !only || only.includes(s.name));
const rounds = Number(values.rounds);
const isolation = isolatedEnv('bench_plugins');
const sink = await otlpSink();

/**
 * The median of each figure over the rounds (each round runs every setting once, in order): one
 * disturbed run on this shared machine moves a mean, not a median of three.
 */
function median(rs: readonly Result[]): Result {
  const mid = (f: (r: Result) => number) => {
    const sorted = rs.map(f).sort((a, b) => a - b);
    const half = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[half]! : (sorted[half - 1]! + sorted[half]!) / 2;
  };
  return {
    rps: mid((r) => r.rps),
    p50: mid((r) => r.p50),
    p99: mid((r) => r.p99),
    cpuMs: mid((r) => r.cpuMs),
    failed: rs.reduce((sum, r) => sum + r.failed, 0),
  };
}

try {
  console.log(
    `bench:plugins  autocannon -c ${connections} -d ${duration} (after ${warmup} s warm-up) per load and setting, ` +
      `${rounds} round(s); gateway NODE_ENV=production ROLE=api; ${SEEDED_EVENTS.toLocaleString()} seeded events\n` +
      '  query:    RecentEvents, events(first: 20) with 5 fields per node (Postgres, no result cache)\n' +
      '  mutation: recordEvents with 10 events (answered once in the Redis stream)\n',
  );
  await prepare(isolation.databaseUrl);
  const runs = new Map<string, { query: Result[]; mutation: Result[] }>();
  for (let round = 1; round <= rounds; round++) {
    for (const setting of chosen) {
      const env = isolation.env({
        NODE_ENV: 'production',
        ROLE: 'api',
        MIGRATE_ON_START: 'false',
        BOOTSTRAP_API_KEY: KEY,
        ...setting.env(sink.url),
      });
      const { query, mutation } = await runSetting(setting, env);
      const entry = runs.get(setting.name) ?? { query: [], mutation: [] };
      entry.query.push(query);
      entry.mutation.push(mutation);
      runs.set(setting.name, entry);
      process.stdout.write(`  round ${round}: ${setting.name} done\n`);
    }
  }
  const results = new Map(
    [...runs].map(([name, r]) => [name, { query: median(r.query), mutation: median(r.mutation) }]),
  );

  const off = results.get('off')!;
  const pad = (s: string, n: number) => s.padEnd(n);
  for (const kind of ['query', 'mutation'] as const) {
    console.log(`\n${kind === 'query' ? 'Query: RecentEvents' : 'Mutation: recordEvents × 10 events'}`);
    console.log(
      pad('setting', 16),
      pad('req/s', 8),
      pad('× off', 7),
      pad('p50 ms', 7),
      pad('p99 ms', 7),
      pad('CPU ms/req', 11),
      pad('added', 8),
      'failed',
    );
    for (const [name, r] of results) {
      const x = r[kind];
      console.log(
        pad(name, 16),
        pad(x.rps.toFixed(0), 8),
        pad((x.rps / off[kind].rps).toFixed(3), 7),
        pad(x.p50.toFixed(1), 7),
        pad(x.p99.toFixed(1), 7),
        pad(x.cpuMs.toFixed(3), 11),
        pad(name === 'off' ? '-' : (x.cpuMs - off[kind].cpuMs).toFixed(3), 8),
        String(x.failed),
      );
    }
    if (rounds > 1) {
      const off = runs.get('off')![kind];
      console.log(
        `  (off, per round: ${off.map((r) => r.rps.toFixed(0)).join(', ')} req/s, ` +
          `${off.map((r) => r.cpuMs.toFixed(3)).join(', ')} CPU ms/req: the noise between identical runs)`,
      );
    }
  }
  if (results.has('tracing+export')) console.log(`\nOTLP sink received ${(sink.received() / 1e6).toFixed(1)} MB`);

  const logging = results.get('logging');
  console.log('\nTargets');
  if (logging) {
    for (const kind of ['query', 'mutation'] as const) {
      const added = logging[kind].cpuMs - off[kind].cpuMs;
      console.log(
        `  logging < 1 ms per request (${kind}): ${added.toFixed(3)} ms of CPU -> ${added < 1 ? 'met' : 'missed'}`,
      );
    }
  }
  // Throughput lost, measured (req/s) and as the gateway's CPU per request implies it (less noisy).
  for (const name of ['all', 'all+export']) {
    const together = results.get(name);
    if (!together) continue;
    for (const kind of ['query', 'mutation'] as const) {
      const measured = 1 - together[kind].rps / off[kind].rps;
      const byCpu = 1 - off[kind].cpuMs / together[kind].cpuMs;
      console.log(
        `  ${name} <= 15% of throughput (${kind}): ${(100 * measured).toFixed(1)}% measured, ` +
          `${(100 * byCpu).toFixed(1)}% by CPU per request -> ${Math.max(measured, byCpu) <= 0.15 ? 'met' : 'missed'}`,
      );
    }
  }
  if ([...results.values()].some((r) => r.query.failed > 0 || r.mutation.failed > 0)) {
    console.error('some requests failed: the figures above are not valid');
    process.exitCode = 1;
  }
} finally {
  sink.server.close();
  await isolation.cleanup();
}
