import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, testPool, waitFor } from '../test/helpers/test-env.js';

/**
 * bench:tracing — what tracing costs a request: the same gateway (ROLE=api, production mode,
 * LOG_LEVEL=info to /dev/null) with TRACING_ENABLED=true (spans made, nothing exported) and
 * with TRACING_ENABLED=false, on a small query and on a list query with a field resolver per
 * item, in one run, the two processes measured in turns (off, on, off, on) to even out drift.
 * Besides throughput, it reports the gateway process's own CPU time per request (Linux
 * /proc/<pid>/stat), which other load on a shared machine disturbs far less than req/s.
 * Resolver and operation histograms are on in both.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '8' },
    connections: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '2' },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const warmup = Number(values.warmup);
const rounds = Number(values.rounds);
const KEY = 'agk_bench-tracing-key-00000000000000000000000000000';
const QUERIES = {
  'viewer (1 resolver)': '{ viewer { tenant scopes } }',
  'users(first: 50) × events(first: 5) (51 resolvers)':
    '{ users(first: 50) { edges { node { id events(first: 5) { type value } } } } }',
};

const MAIN = fileURLToPath(new URL('../src/main.js', import.meta.url));
const isolation = isolatedEnv('bench_tracing');
const children: ChildProcess[] = [];

/** utime + stime of a process, in microseconds (clock ticks of 10 ms). */
function cpuMicros(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) * 10_000;
}

const pids = new Map<string, number>();

async function start(env: Record<string, string | undefined>): Promise<string> {
  const port = await closedPort();
  const child = spawn(process.execPath, ['--max-semi-space-size=64', MAIN], {
    env: { PATH: process.env.PATH, ...isolation.env({ ...env, PORT: String(port) }) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.push(child);
  const url = `http://127.0.0.1:${port}`;
  await waitFor(async () => (await fetch(`${url}/health`).catch(() => null))?.status === 200, 60_000, 100);
  pids.set(url, child.pid!);
  return url;
}

async function post(url: string, query: string): Promise<{ data?: unknown; errors?: unknown }> {
  const res = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ query }),
  });
  return (await res.json()) as { data?: unknown; errors?: unknown };
}

async function load(url: string, query: string, seconds: number) {
  const cpuBefore = cpuMicros(pids.get(url)!);
  const result = await autocannon({
    url: `${url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({ query }),
    connections,
    duration: seconds,
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpu: (cpuMicros(pids.get(url)!) - cpuBefore) / result.requests.total,
    bad: result.errors + result.non2xx,
  };
}

try {
  // One ROLE=all process migrates, takes the events and refreshes the rollups, then leaves.
  const seeder = await start({
    BOOTSTRAP_API_KEY: KEY,
    INGEST_ACK: 'postgres',
    ROLLUP_REFRESH_INTERVAL_MS: '200',
    LOG_LEVEL: 'warn',
  });
  const events = Array.from({ length: 1000 }, (_, i) => ({
    type: ['page_view', 'click', 'purchase'][i % 3],
    userId: `user-${i % 200}`,
    value: i % 7,
  }));
  const res = await fetch(`${seeder}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
    body: JSON.stringify({
      query: 'mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }',
      variables: { e: events },
    }),
  });
  if (!res.ok) throw new Error(`seeding failed: ${await res.text()}`);
  const pool = testPool(isolation.databaseUrl, 1);
  const since = Date.now();
  await waitFor(async () => {
    const { rows } = await pool.query<{ at: Date | null; dirty: number }>(
      'SELECT (SELECT min(refreshed_at) FROM rollup_refresh) AS at, (SELECT count(*)::int FROM rollup_dirty) AS dirty',
    );
    return rows[0]!.at !== null && rows[0]!.at.getTime() > since && rows[0]!.dirty === 0;
  }, 30_000);
  await pool.end();
  children.shift()!.kill('SIGTERM');

  const common = { ROLE: 'api', NODE_ENV: 'production', LOG_LEVEL: 'info', MIGRATE_ON_START: 'false' };
  const off = await start({ ...common, TRACING_ENABLED: 'false' });
  const on = await start({ ...common, TRACING_ENABLED: 'true' });
  const check = await post(on, Object.values(QUERIES)[1]!);
  if ((check.data as { users: { edges: unknown[] } } | undefined)?.users.edges.length !== 50)
    throw new Error(`the list query does not answer 50 users: ${JSON.stringify(check).slice(0, 300)}`);

  console.log(
    `bench:tracing  autocannon -c ${connections} -d ${duration} (after ${warmup} s warm-up), ${rounds} rounds, off/on alternating\n`,
  );
  for (const [label, query] of Object.entries(QUERIES)) {
    const totals = { off: { rps: 0, p50: 0, p99: 0, cpu: 0, bad: 0 }, on: { rps: 0, p50: 0, p99: 0, cpu: 0, bad: 0 } };
    for (const url of [off, on]) if (warmup > 0) await load(url, query, warmup);
    for (let round = 0; round < rounds; round++) {
      for (const [name, url] of [
        ['off', off],
        ['on', on],
      ] as const) {
        const r = await load(url, query, duration);
        totals[name].rps += r.rps / rounds;
        totals[name].p50 += r.p50 / rounds;
        totals[name].p99 += r.p99 / rounds;
        totals[name].cpu += r.cpu / rounds;
        totals[name].bad += r.bad;
      }
    }
    console.log(label);
    for (const name of ['off', 'on'] as const) {
      const t = totals[name];
      console.log(
        `  TRACING_ENABLED=${name === 'on' ? 'true ' : 'false'}  ${t.rps.toFixed(0).padStart(6)} req/s  p50 ${t.p50.toFixed(1)} ms  p99 ${t.p99.toFixed(1)} ms  CPU ${t.cpu.toFixed(0)} µs/request  failed ${t.bad}`,
      );
    }
    console.log(
      `  on / off: throughput ${(totals.on.rps / totals.off.rps).toFixed(3)}, CPU per request ${(totals.on.cpu / totals.off.cpu).toFixed(3)}\n`,
    );
    if (totals.on.bad + totals.off.bad > 0) process.exitCode = 1;
  }
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await isolation.cleanup();
}
