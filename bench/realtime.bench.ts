import { fork } from 'node:child_process';
import { Agent, request } from 'node:http';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { ApiKeyService } from '../src/auth/api-key.service.js';
import { scrapeMetric, spawnGateway, stopGateways } from '../test/helpers/gateway.js';
import { isolatedEnv, REDIS_URL, testPool } from '../test/helpers/test-env.js';

/**
 * bench:realtime — live windows under load. An API process and a worker process (persist and
 * aggregate consumers), or with --roles all one process for both (NODE_ENV=production,
 * REALTIME_PUSH_INTERVAL_MS=50 as docs/contract.md measures the latency target), N graphql-ws subscribers in a separate process, and events recorded from
 * this process at a target rate in batches of 1000. Reported: the latency from sending a batch
 * (and from its answer, when the events are in the stream) to the first snapshot, on each
 * subscriber, whose count includes it; p50/p99 over every (batch, subscriber) pair; gateway
 * memory per subscriber; pushes per second; the rate actually reached.
 *
 * Options: --subscribers 1000 --rate 20000 --duration 20 --warmup 3 --interval 50 --roles split|all
 * --replicas 1 (API processes with --roles split: subscribers and batches spread over them in turn)
 * --channels 1 (subscriber i follows channel i mod N: all types, then one event type each)
 */
const { values } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '20000' },
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    interval: { type: 'string', default: '50' },
    roles: { type: 'string', default: 'split' },
    replicas: { type: 'string', default: '1' },
    channels: { type: 'string', default: '1' },
  },
});
const subscribers = Number(values.subscribers);
const rate = Number(values.rate);
const duration = Number(values.duration);
const warmup = Number(values.warmup);
const replicas = Number(values.replicas);
const channels = Number(values.channels);
const BATCH = 1000;
const MAX_IN_FLIGHT = 4;
const ADMIN = 'agk_bench-realtime-admin-00000000000000000000000000';
const now = () => performance.timeOrigin + performance.now();

const MUTATION = 'mutation($events: [EventInput!]!) { recordEvents(events: $events) { accepted } }';
// Shared with bench/realtime-subscribers.ts: event n has type TYPES[n % TYPES.length].
const TYPES = ['page_view', 'click', 'search', 'purchase', 'signup', 'error'];
if (!(replicas >= 1) || !(channels >= 1 && channels <= TYPES.length + 1)) {
  throw new Error(`--replicas must be >= 1 and --channels between 1 and ${TYPES.length + 1}`);
}
let sequence = 0;
function batchBody(): string {
  const events = Array.from({ length: BATCH }, () => {
    const n = sequence++;
    return {
      type: TYPES[n % TYPES.length],
      userId: `u${n % 5000}`,
      sessionId: `s${n % 20000}`,
      messageId: `rt-${n}`,
      value: (n % 997) / 10,
    };
  });
  return JSON.stringify({ query: MUTATION, variables: { events } });
}

function post(url: string, agent: Agent, body: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL('/graphql', url),
      { method: 'POST', agent, headers: { 'content-type': 'application/json', authorization: `Bearer ${ADMIN}` } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const answer = JSON.parse(Buffer.concat(chunks).toString()) as {
            data?: { recordEvents: { accepted: number } };
            errors?: unknown;
          };
          if (!answer.data) reject(new Error(JSON.stringify(answer.errors)));
          else resolve(answer.data.recordEvents.accepted);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

function percentile(sorted: number[], p: number): number {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]! : NaN;
}

const isolation = isolatedEnv('bench_realtime');
const env = isolation.env({
  NODE_ENV: 'production',
  LOG_LEVEL: 'info',
  BOOTSTRAP_API_KEY: ADMIN,
  REALTIME_PUSH_INTERVAL_MS: values.interval,
  WS_MAX_SUBSCRIPTIONS_PER_KEY: String(subscribers + 10),
  // One key for every subscriber and batch: a cost budget this load cannot exhaust.
  COST_BUDGET_CAPACITY: '1000000000',
  COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
  STREAM_MAX_LENGTH: '50000000',
});
// --roles all: one process does everything; split (default): an API process (ingestion,
// subscriptions) and a worker process (persist and aggregate consumers), as deployed at scale.
const split = values.roles !== 'all';
if (!split && replicas > 1) throw new Error('--replicas needs --roles split');
const gateways = split
  ? [
      await spawnGateway({ ...env, ROLE: 'api' }, 60_000),
      ...(await Promise.all(
        Array.from({ length: replicas - 1 }, () =>
          spawnGateway({ ...env, ROLE: 'api', MIGRATE_ON_START: 'false' }, 60_000),
        ),
      )),
      await spawnGateway({ ...env, ROLE: 'worker', MIGRATE_ON_START: 'false' }, 60_000),
    ]
  : [await spawnGateway({ ...env, ROLE: 'all' }, 60_000)];
const gateway = gateways[0]!;
const apis = split ? gateways.slice(0, replicas) : gateways;
const worker = gateways.at(-1)!;
const redis = new Redis(REDIS_URL);
const pool = testPool(isolation.databaseUrl, 2);
try {
  const reader = (
    await new ApiKeyService(pool, redis, isolation.redisKeyPrefix, pino({ level: 'silent' })).createKey({
      tenantSlug: 'demo',
      name: 'dashboards',
      scopes: ['analytics:read'],
    })
  ).plaintext;
  console.log(
    `bench:realtime  ${subscribers} subscribers (separate process), ${rate} events/s target in batches of ${BATCH}, ` +
      `${duration} s after ${warmup} s warm-up; push interval ${values.interval} ms; ` +
      `${split ? `${replicas} ROLE=api and one ROLE=worker process` : 'one ROLE=all process'}, ` +
      `${channels} channel${channels === 1 ? '' : 's'}, NODE_ENV=production\n`,
  );
  const rssBefore = await scrapeMetric(gateway.url, 'process_resident_memory_bytes');
  const child = fork(fileURLToPath(new URL('./realtime-subscribers.js', import.meta.url)), [
    apis.map((g) => g.url).join(','),
    reader,
    String(subscribers),
    String(channels),
  ]);
  const ready = new Promise<void>((resolve) => child.once('message', () => resolve()));
  const t0 = now();
  await ready;
  const connectSeconds = (now() - t0) / 1000;
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  const rssAfter = await scrapeMetric(gateway.url, 'process_resident_memory_bytes');

  // Paced load: a batch every BATCH / rate seconds, at most MAX_IN_FLIGHT at once.
  const agents = apis.map(() => new Agent({ keepAlive: true, maxSockets: MAX_IN_FLIGHT }));
  let turn = 0;
  const pushesOf = async () =>
    (
      await Promise.all(apis.map((g) => scrapeMetric(g.url, 'subscription_pushes_total{field="metricUpdated"}')))
    ).reduce((a, b) => a + b, 0);
  const batches: { cum: number; sentAt: number; answeredAt: number }[] = [];
  let acknowledged = 0;
  let inFlight = 0;
  let skipped = 0;
  const gapMs = (BATCH / rate) * 1000;
  const loadStart = now();
  const measureFrom = loadStart + warmup * 1000;
  const loadEnd = measureFrom + duration * 1000;
  const pushesBefore = { at: 0, n: 0 };
  const pending: Promise<void>[] = [];
  let next = loadStart;
  while (now() < loadEnd) {
    if (pushesBefore.at === 0 && now() >= measureFrom) {
      pushesBefore.at = now();
      pushesBefore.n = await pushesOf();
    }
    if (inFlight >= MAX_IN_FLIGHT) {
      skipped++;
    } else {
      inFlight++;
      const sentAt = now();
      const body = batchBody();
      const target = turn++ % apis.length;
      pending.push(
        post(apis[target]!.url, agents[target]!, body).then((accepted) => {
          inFlight--;
          acknowledged += accepted;
          if (sentAt >= measureFrom) batches.push({ cum: acknowledged, sentAt, answeredAt: now() });
        }),
      );
    }
    next += gapMs;
    const wait = next - now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  const loadSeconds = (now() - measureFrom) / 1000;
  const pushesAfter = await pushesOf();
  const pushSeconds = (now() - pushesBefore.at) / 1000;
  await Promise.all(pending);
  const sentInWindow = batches.length * BATCH;
  // Let the last snapshots arrive.
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  const lagged = await scrapeMetric(worker.url, 'aggregate_lag_seconds{window="ONE_MINUTE"}');
  const report = new Promise<{
    fromSent: number[];
    fromAnswer: number[];
    missed: number;
    windowReceived: number;
  }>((resolve) => child.once('message', (m) => resolve(m as never)));
  child.send({ report: true, since: measureFrom, batches });
  const r = await report;
  child.disconnect();
  const fromSent = r.fromSent.sort((a, b) => a - b);
  const fromAnswer = r.fromAnswer.sort((a, b) => a - b);

  console.log(`  subscribers connected and served their first snapshot in ${connectSeconds.toFixed(1)} s`);
  console.log(
    `  gateway memory: ${(rssBefore / 1e6).toFixed(0)} MB before, ${(rssAfter / 1e6).toFixed(0)} MB with ${subscribers} subscribers: ` +
      `${((rssAfter - rssBefore) / Math.ceil(subscribers / apis.length) / 1024).toFixed(1)} KiB per subscriber` +
      (apis.length > 1 ? ' (the first replica, which holds every replicas-th subscriber)' : ''),
  );
  console.log(
    `  load: ${Math.round(sentInWindow / loadSeconds).toLocaleString()} events/s acknowledged of ${rate.toLocaleString()} targeted ` +
      `(${skipped} batch slots skipped with ${MAX_IN_FLIGHT} requests in flight)`,
  );
  console.log(
    `  pushes: ${Math.round((pushesAfter - pushesBefore.n) / pushSeconds).toLocaleString()}/s sent by the gateway, ` +
      `${Math.round(r.windowReceived / loadSeconds).toLocaleString()}/s received`,
  );
  console.log(
    `  latency, batch sent -> first snapshot that includes it (${fromSent.length.toLocaleString()} batch x subscriber pairs, ${r.missed} never seen): ` +
      `p50 ${percentile(fromSent, 50).toFixed(1)} ms, p99 ${percentile(fromSent, 99).toFixed(1)} ms, max ${(fromSent.at(-1) ?? NaN).toFixed(1)} ms`,
  );
  console.log(
    `  latency, batch answered (events in the stream) -> first snapshot: p50 ${percentile(fromAnswer, 50).toFixed(1)} ms, ` +
      `p99 ${percentile(fromAnswer, 99).toFixed(1)} ms`,
  );
  console.log(`  aggregate lag at the end: ${(lagged * 1000).toFixed(0)} ms`);
} finally {
  await stopGateways(gateways);
  redis.disconnect();
  await pool.end();
  await isolation.cleanup();
}
