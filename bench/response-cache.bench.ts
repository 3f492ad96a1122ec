import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, waitFor } from '../test/helpers/test-env.js';

/**
 * bench:response-cache — a 168-point hourly `timeseries` (a dashboard's week) at a few thousand
 * events, answered by the gateway with only the per-field result cache (RESPONSE_CACHE=off: the
 * rows come from Redis, graphql-js still executes and serializes ~1,700 fields) and with the
 * whole-response cache (a hit is one MGET and no execution). Both warmed, each in its own
 * process, driven by autocannon from this one. `--quick`: 3 s per measurement, 10 connections.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '3' },
    quick: { type: 'boolean', default: false },
  },
});
const duration = values.quick ? 3 : Number(values.duration);
const connections = values.quick ? 10 : Number(values.connections);
const warmup = values.quick ? 1 : Number(values.warmup);
const KEY = 'agk_bench-response-cache-key-000000000000000000000';
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const EVENTS = 3_000;

const to = new Date(Math.floor(Date.now() / HOUR) * HOUR);
const variables = { from: new Date(to.getTime() - 7 * DAY).toISOString(), to: to.toISOString() };
const BODY = JSON.stringify({
  query: `query Week($from: DateTime!, $to: DateTime!) {
    timeseries(interval: HOUR, from: $from, to: $to) { bucket count uniqueUsers sum avg min max p50 p95 p99 }
  }`,
  variables,
});
const HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${KEY}` };

const isolation = isolatedEnv('bench_response_cache');
const baseEnv = isolation.env({
  NODE_ENV: 'production',
  LOG_LEVEL: 'warn',
  BOOTSTRAP_API_KEY: KEY,
  // One key at thousands of requests a second: a budget this load cannot exhaust.
  COST_BUDGET_CAPACITY: '1000000000',
  COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
});

function start(env: Record<string, string | undefined>): ChildProcess {
  return spawn(
    process.execPath,
    ['--max-semi-space-size=64', fileURLToPath(new URL('../src/main.js', import.meta.url))],
    { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'ignore', 'inherit'] },
  );
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
}

const post = (url: string, body: string) =>
  fetch(`${url}/graphql`, { method: 'POST', headers: HEADERS, body }).then(
    async (r) => ({ status: r.status, json: (await r.json()) as { data?: { timeseries?: { count: number }[] } } }),
    () => null,
  );

/** CPU milliseconds (user + system) a process has used, from /proc: steadier than req/s on a shared machine. */
function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8')
    .replace(/^.*\) /s, '')
    .split(' ');
  // After "(comm) ", field 14 (utime) is at index 11 and field 15 (stime) at index 12 (10 ms ticks).
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

async function load(url: string, seconds: number) {
  const result = await autocannon({
    url: `${url}/graphql`,
    method: 'POST',
    headers: HEADERS,
    body: BODY,
    connections,
    duration: seconds,
  });
  return {
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    failed: result.errors + result.timeouts + result.non2xx,
  };
}

const children: ChildProcess[] = [];
try {
  // Seed through a gateway that also runs the rollup refresher, then stop it: the measured
  // gateways run alone (ROLE=api), with nothing refreshing in the background.
  const seedPort = await closedPort();
  const seeder = start({
    ...baseEnv,
    PORT: String(seedPort),
    INGEST_ACK: 'postgres',
    ROLLUP_REFRESH_INTERVAL_MS: '200',
  });
  children.push(seeder);
  const seedUrl = `http://127.0.0.1:${seedPort}`;
  await waitFor(async () => (await post(seedUrl, BODY))?.status === 200, 60_000, 200);
  for (let i = 0; i < EVENTS; i += 1_000) {
    const events = Array.from({ length: 1_000 }, (_, j) => ({
      type: ['page_view', 'click', 'purchase'][j % 3],
      userId: `user-${(i + j) % 97}`,
      value: (j % 50) / 3,
      timestamp: new Date(to.getTime() - 1 - (((i + j) * 7_919_000) % (7 * DAY))).toISOString(),
    }));
    const res = await fetch(`${seedUrl}/graphql`, {
      method: 'POST',
      headers: HEADERS,
      body: JSON.stringify({
        query: 'mutation($e: [EventInput!]!) { recordEvents(events: $e) { accepted } }',
        variables: { e: events },
      }),
    });
    if (res.status !== 200) throw new Error(`seeding failed: ${res.status} ${await res.text()}`);
  }
  await waitFor(
    async () => {
      const points = (await post(seedUrl, BODY))?.json.data?.timeseries ?? [];
      return points.reduce((n, p) => n + p.count, 0) === EVENTS;
    },
    60_000,
    250,
  );
  await stop(seeder);

  console.log(
    `bench:response-cache  autocannon -c ${connections} -d ${duration} (after ${warmup} s warm-up), 168-point timeseries\n`,
  );
  const rows: { name: string; rps: number; p50: number; p99: number; failed: number; cpuPerRequest: number }[] = [];
  for (const [name, responseCache] of [
    ['per-field result cache only (RESPONSE_CACHE=off)', 'off'],
    ['whole-response cache (RESPONSE_CACHE=on)', 'on'],
  ] as const) {
    const port = await closedPort();
    const child = start({
      ...baseEnv,
      PORT: String(port),
      ROLE: 'api',
      MIGRATE_ON_START: 'false',
      RESPONSE_CACHE: responseCache,
    });
    children.push(child);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(async () => (await post(url, BODY))?.status === 200, 60_000, 200);
    if (warmup > 0) await load(url, warmup);
    const cpuBefore = cpuMs(child.pid!);
    const result = await load(url, duration);
    const cpuPerRequest = (cpuMs(child.pid!) - cpuBefore) / (result.rps * duration);
    rows.push({ name, ...result, cpuPerRequest });
    await stop(child);
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(
    pad('gateway', 52),
    pad('req/s', 10),
    pad('p50 ms', 8),
    pad('p99 ms', 8),
    pad('CPU ms/req', 11),
    'failed',
  );
  for (const r of rows) {
    console.log(
      pad(r.name, 52),
      pad(r.rps.toFixed(0), 10),
      pad(String(r.p50), 8),
      pad(String(r.p99), 8),
      pad(r.cpuPerRequest.toFixed(2), 11),
      r.failed,
    );
  }
  console.log(
    `\nwhole-response / per-field: ${(rows[1]!.rps / rows[0]!.rps).toFixed(2)}x req/s, ` +
      `${(rows[0]!.cpuPerRequest / rows[1]!.cpuPerRequest).toFixed(2)}x less gateway CPU per request`,
  );
  if (rows.some((r) => r.failed > 0)) {
    console.error('some requests failed: the figures above are not valid');
    process.exitCode = 1;
  }
} finally {
  await Promise.all(children.map(stop));
  await isolation.cleanup();
}
