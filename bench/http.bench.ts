import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, waitFor } from '../test/helpers/test-env.js';

/**
 * bench:http — the cost of the gateway's request path (API key check from cache, request id,
 * pino request log, HTTP metrics, error masking, type-graphql resolver) against bare Apollo
 * Server 5 on Express 5, both answering `{ viewer { tenant scopes } }`, measured in one run.
 * Each server runs in its own process; autocannon drives them from this one.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '2' },
  },
});
const duration = Number(values.duration);
const connections = Number(values.connections);
const warmup = Number(values.warmup);
const KEY = 'agk_bench-http-key-0000000000000000000000000000000';
const BODY = JSON.stringify({ query: '{ viewer { tenant scopes } }' });

interface Result {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

function start(
  script: string,
  args: string[],
  env: Record<string, string | undefined>,
  nodeFlags: string[] = [],
): ChildProcess {
  return spawn(process.execPath, [...nodeFlags, fileURLToPath(new URL(script, import.meta.url)), ...args], {
    env: { PATH: process.env.PATH, ...env },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

async function load(name: string, url: string, seconds: number, headers: Record<string, string>): Promise<Result> {
  const result = await autocannon({
    url: `${url}/graphql`,
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: BODY,
    connections,
    duration: seconds,
  });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}

async function measure(name: string, url: string, headers: Record<string, string> = {}): Promise<Result> {
  await waitFor(
    async () =>
      (
        await fetch(`${url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: BODY,
        }).catch(() => null)
      )?.status === 200,
    30_000,
    100,
  );
  if (warmup > 0) await load(name, url, warmup, headers);
  return load(name, url, duration, headers);
}

const isolation = isolatedEnv('bench_http');
const children: ChildProcess[] = [];
try {
  const [gatewayPort, baselinePort] = [await closedPort(), await closedPort()];
  children.push(
    start(
      '../src/main.js',
      [],
      isolation.env({
        NODE_ENV: 'production',
        LOG_LEVEL: 'info',
        PORT: String(gatewayPort),
        BOOTSTRAP_API_KEY: KEY,
        // One key at thousands of requests a second: a budget this load cannot exhaust, so the cost
        // checks run (and are measured) but never refuse.
        COST_BUDGET_CAPACITY: '1000000000',
        COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
      }),
      // As `npm start` and the Dockerfile run it.
      ['--max-semi-space-size=64'],
    ),
    start('./baseline-apollo.server.js', [String(baselinePort)], { NODE_ENV: 'production' }),
  );
  console.log(
    `bench:http  autocannon -c ${connections} -d ${duration} (after ${warmup} s warm-up), POST { viewer { tenant scopes } }\n`,
  );
  const baseline = await measure(
    'Apollo Server 5 + Express 5, constant resolver (baseline)',
    `http://127.0.0.1:${baselinePort}`,
  );
  const gateway = await measure(
    'gateway: cached key check, logging, metrics, type-graphql',
    `http://127.0.0.1:${gatewayPort}`,
    {
      authorization: `Bearer ${KEY}`,
    },
  );

  const rows = [baseline, gateway];
  const pad = (s: string, n: number) => s.padEnd(n);
  console.log(pad('server', 62), pad('req/s', 10), pad('p50 ms', 8), pad('p99 ms', 8), 'errors/non-2xx');
  for (const r of rows) {
    console.log(
      pad(r.name, 62),
      pad(r.rps.toFixed(0), 10),
      pad(String(r.p50), 8),
      pad(String(r.p99), 8),
      `${r.errors}/${r.non2xx}`,
    );
  }
  console.log(`\ngateway / baseline throughput: ${(gateway.rps / baseline.rps).toFixed(3)}`);
  console.log(
    `gateway p50 added: ${(gateway.p50 - baseline.p50).toFixed(2)} ms, p99 added: ${(gateway.p99 - baseline.p99).toFixed(2)} ms`,
  );
  if (rows.some((r) => r.errors > 0 || r.non2xx > 0)) {
    console.error('some requests failed: the figures above are not valid');
    process.exitCode = 1;
  }
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
  await isolation.cleanup();
}
