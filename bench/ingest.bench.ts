import { loadConfig } from '../src/config/config.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import pg from 'pg';
import { v7 as uuidv7 } from 'uuid';
import { encodeStreamEvent, type StreamEvent } from '../src/ingest/stream-event.js';
import { closedPort } from '../test/helpers/tcp-proxy.js';
import { isolatedEnv, REDIS_URL } from '../test/helpers/test-env.js';

/**
 * bench:ingest — how many events per second recordEvents accepts (into the Redis stream) and how
 * many reach Postgres end to end, with batches of 100 and of 1000, against two ceilings measured in
 * the same run on the same machine: raw pipelined XADD from Node, and raw 1000-row
 * `INSERT ... SELECT FROM unnest(...)` into a scratch copy of `events`.
 *
 * The gateway runs as a child process (ROLE=all: API and persist worker in one process, as
 * deployed by default), one fresh process per batch size so a `--profile` CPU profile covers the
 * 1000-event phase only. Load comes from this process.
 */
const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '3' },
    clients: { type: 'string', default: '8' },
    'baseline-seconds': { type: 'string', default: '3' },
    profile: { type: 'boolean', default: false },
    // The gateway's PERSIST_MODE: how the persist worker writes a batch (copy or unnest).
    'persist-mode': { type: 'string', default: 'copy' },
    // all: one ROLE=all process, as `npm start` runs it; split: a ROLE=api and a ROLE=worker
    // process, so the CPU per event of accepting and of the workers is each process's own.
    roles: { type: 'string', default: 'all' },
  },
});

function numberOption(name: string, raw: string, min: number): number {
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min) throw new Error(`--${name} must be a number >= ${min}, got "${raw}"`);
  return n;
}
const duration = numberOption('duration', values.duration, 1);
const warmup = numberOption('warmup', values.warmup, 0);
const clients = Math.floor(numberOption('clients', values.clients, 1));
const baselineSeconds = numberOption('baseline-seconds', values['baseline-seconds'], 0.5);
const profile = values.profile;
const persistMode = values['persist-mode'];
if (persistMode !== 'copy' && persistMode !== 'unnest') throw new Error(`--persist-mode must be copy or unnest`);
const roles = values.roles;
if (roles !== 'all' && roles !== 'split') throw new Error('--roles must be all or split');

const KEY = 'agk_bench-ingest-key-000000000000000000000000000000';
const TARGET_EVENTS_PER_S = 50_000;
/** How often the persist-lag sampler and the drain check look; it is also their resolution. */
const POLL_MS = 50;
/** Linux USER_HZ: the unit of utime/stime in /proc/<pid>/stat (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_S = 100;
const RUN_TAG = randomBytes(4).toString('hex');

const MUTATION =
  'mutation Ingest($events: [EventInput!]!, $sentAt: DateTime) { recordEvents(events: $events, sentAt: $sentAt) { accepted duplicates errors { index code message } } }';

// ---------------------------------------------------------------------------------------------
// Events: what a browser/mobile SDK sends (Segment/PostHog-like), every messageId unique so each
// event is accepted, never answered as a duplicate.

const EVENT_TYPES = [
  'page_view',
  'screen_view',
  'click',
  'search',
  'signup',
  'login',
  'add_to_cart',
  'remove_from_cart',
  'checkout_started',
  'purchase',
  'video_play',
  'error',
] as const;
const PATHS = ['/', '/pricing', '/docs/getting-started', '/blog/launch', '/signup', '/checkout', '/account', '/search'];
const COUNTRIES = ['US', 'DE', 'FR', 'GB', 'IN', 'BR', 'JP', 'CA'];
const DEVICES = ['desktop', 'mobile', 'tablet'];
const PLANS = ['free', 'pro', 'team'];
const pick = <T>(list: readonly T[]): T => list[Math.floor(Math.random() * list.length)]!;

let messageSequence = 0;

interface EventFields {
  type: string;
  userId: string;
  sessionId: string;
  messageId: string;
  value: number;
  properties: Record<string, string | number>;
}

function eventFields(now: number): EventFields {
  const user = Math.floor(Math.random() * 50_000);
  const type = pick(EVENT_TYPES);
  return {
    type,
    userId: `user-${user}`,
    // A session per user and half hour, as SDKs roll them.
    sessionId: `sess-${user}-${Math.floor(now / 1_800_000)}`,
    messageId: `${RUN_TAG}-${++messageSequence}`,
    value: type === 'purchase' ? Math.round(Math.random() * 20_000) / 100 : 1,
    properties: { path: pick(PATHS), country: pick(COUNTRIES), device: pick(DEVICES), plan: pick(PLANS) },
  };
}

interface Batch {
  readonly body: string;
  /** The batch's last event: appended to the stream last, so persisted no earlier than the others. */
  readonly lastMessageId: string;
}

function makeBatch(size: number): Batch {
  const now = Date.now();
  const events: (EventFields & { timestamp: string })[] = [];
  for (let i = 0; i < size; i++) {
    // Client clocks stamp events a little before sending; sentAt lets the gateway correct skew.
    events.push({ ...eventFields(now), timestamp: new Date(now - Math.floor(Math.random() * 5_000)).toISOString() });
  }
  const body = JSON.stringify({
    query: MUTATION,
    operationName: 'Ingest',
    variables: { events, sentAt: new Date(now).toISOString() },
  });
  return { body, lastMessageId: events.at(-1)!.messageId };
}

/** The same kind of event as the gateway writes it to the stream and to Postgres. */
function streamEvent(tenantId: string): StreamEvent {
  const now = Date.now();
  const f = eventFields(now);
  return {
    tenantId,
    id: uuidv7(),
    type: f.type,
    userId: f.userId,
    sessionId: f.sessionId,
    messageId: f.messageId,
    occurredAt: now - Math.floor(Math.random() * 5_000),
    receivedAt: now,
    value: f.value,
    properties: JSON.stringify(f.properties),
  };
}

// ---------------------------------------------------------------------------------------------
// The gateway child process.

/** One gateway process: the API (ROLE=all or api), and with --roles split its ROLE=worker beside it. */
interface Process {
  readonly child: ChildProcess;
  readonly port: number;
  readonly exited: Promise<void>;
}
interface Gateway extends Process {
  readonly worker?: Process;
}

const children = new Set<ChildProcess>();
const isolation = isolatedEnv('bench_ingest');

function gatewayEnv(port: number, role: 'all' | 'api' | 'worker' = 'all') {
  return isolation.env({
    NODE_ENV: 'production',
    // Request logs are 'info': off, so logging costs nothing on the hot path.
    LOG_LEVEL: 'warn',
    ROLE: role,
    PORT: String(port),
    BOOTSTRAP_API_KEY: KEY,
    // One key sends everything: a cost budget this load cannot exhaust.
    COST_BUDGET_CAPACITY: '1000000000',
    COST_BUDGET_RESTORE_PER_MINUTE: '1000000000',
    PERSIST_MODE: persistMode,
  });
}

/** The gateway's own reading of that environment: how many persist loops it runs. */
const gatewayConfig = loadConfig(gatewayEnv(0));
const persistLoops = `${gatewayConfig.streams.partitions * gatewayConfig.persist.concurrency} loops (STREAM_PARTITIONS=${gatewayConfig.streams.partitions} × PERSIST_CONCURRENCY=${gatewayConfig.persist.concurrency}, PERSIST_MODE=${gatewayConfig.persist.mode})`;

function spawnProcess(role: 'all' | 'api' | 'worker', port: number, profileDir?: string): Process {
  // The flags `npm start` and the Dockerfile run the gateway with, so the figures are production's.
  const nodeOptions = [
    '--max-semi-space-size=64',
    ...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}/${role}`] : []),
  ];
  const child = spawn(process.execPath, [...nodeOptions, fileURLToPath(new URL('../src/main.js', import.meta.url))], {
    env: {
      PATH: process.env.PATH,
      ...gatewayEnv(port, role),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  children.add(child);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return { child, port, exited };
}

async function waitUntil(process: Process, path: string, body: string | undefined): Promise<void> {
  const started = Date.now();
  for (;;) {
    if (process.child.exitCode !== null || process.child.signalCode !== null) {
      throw new Error(
        `the gateway exited during start-up (code ${process.child.exitCode}, signal ${process.child.signalCode})`,
      );
    }
    const answer = await (body === undefined ? get(process, path) : post(process, path, body)).catch(() => undefined);
    if (answer?.status === 200) return;
    if (Date.now() - started > 60_000) throw new Error('the gateway did not become ready within 60 s');
    await sleep(100);
  }
}

async function startGateway(profileDir?: string): Promise<Gateway> {
  const api = spawnProcess(roles === 'all' ? 'all' : 'api', await closedPort(), profileDir);
  // Ready once an authenticated query answers: database migrated, bootstrap key stored, port open.
  await waitUntil(api, '/graphql', JSON.stringify({ query: '{ viewer { tenant } }' }));
  if (roles === 'all') return api;
  const worker = spawnProcess('worker', await closedPort(), profileDir);
  await waitUntil(worker, '/ready', undefined);
  return { ...api, worker };
}

async function stopGateway(gateway: Gateway): Promise<void> {
  await Promise.all(
    [gateway, gateway.worker].map(async (p) => {
      if (!p) return;
      p.child.kill('SIGTERM');
      // A graceful exit is what makes --cpu-prof write its profile; SIGKILL only if it hangs.
      const timer = setTimeout(() => p.child.kill('SIGKILL'), 20_000);
      await p.exited;
      clearTimeout(timer);
      children.delete(p.child);
    }),
  );
}

function get(process: Process, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port: process.port, path, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    })
      .on('error', reject)
      .end();
  });
}

/**
 * node:http rather than fetch: the lighter client, and this process shares two cores with the
 * gateway, Redis and Postgres. `agent` is a keep-alive agent of one load run; without one (probes,
 * scrapes) each call has a connection of its own. Idle keep-alive connections are never reused
 * across the pauses between runs: the gateway closes them after 5 s (Node's keepAliveTimeout), and
 * a request sent as that happens fails with "socket hang up".
 */
function post(gateway: Process, path: string, body: string, agent?: Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: gateway.port,
        path,
        method: 'POST',
        agent: agent ?? false,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${KEY}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(30_000, () => req.destroy(new Error('no answer within 30 s')));
    req.end(body);
  });
}

/**
 * Prometheus text → series (name plus labels, as printed) → value, summed over the gateway's
 * processes: with --roles split the API counts accepted events and the worker persisted ones.
 */
async function scrape(gateway: Gateway): Promise<Map<string, number>> {
  const series = new Map<string, number>();
  for (const p of [gateway, gateway.worker]) {
    if (!p) continue;
    const { body: text } = await get(p, '/metrics');
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('#')) continue;
      const space = line.lastIndexOf(' ');
      const key = line.slice(0, space);
      series.set(key, (series.get(key) ?? 0) + Number(line.slice(space + 1)));
    }
  }
  return series;
}

/** A metric summed over its label sets (0 before it is first incremented). */
function metric(series: Map<string, number>, name: string): number {
  let total = 0;
  for (const [key, value] of series) if (key === name || key.startsWith(`${name}{`)) total += value;
  return total;
}

const acceptedOf = (m: Map<string, number>) => m.get('events_ingested_total{outcome="accepted"}') ?? 0;
// stored + skipped: both are settled (committed, acknowledged); skipped would mean a redelivery.
const persistedOf = (m: Map<string, number>) => metric(m, 'events_persisted_total');

/**
 * Waits until the persist worker has settled every event the gateway accepted. Returns when that
 * was first seen: an upper bound on the real moment, by at most one poll (50 ms) plus a scrape.
 */
async function waitDrained(
  gateway: Gateway,
  timeoutMs = 180_000,
): Promise<{ at: number; metrics: Map<string, number> }> {
  const started = performance.now();
  for (;;) {
    const metrics = await scrape(gateway);
    const at = performance.now();
    if (persistedOf(metrics) >= acceptedOf(metrics)) return { at, metrics };
    if (at - started > timeoutMs) {
      throw new Error(
        `persisting did not catch up within ${timeoutMs / 1000} s: ${persistedOf(metrics)} of ${acceptedOf(metrics)} accepted events`,
      );
    }
    await sleep(POLL_MS);
  }
}

// ---------------------------------------------------------------------------------------------
// Load. Each client sends one request at a time and, past the deadline, finishes the request it
// has in flight instead of abandoning it (as autocannon does at the end of its duration): every
// request the gateway accepted is counted here, so "accepted" matches what must reach Postgres.

interface LoadResult {
  readonly batchSize: number;
  readonly seconds: number;
  readonly requests: number;
  readonly accepted: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly failures: number;
  readonly firstFailure: string | undefined;
}

interface RecordEventsAnswer {
  data?: { recordEvents?: { accepted: number; duplicates: number; errors: { index: number; message: string }[] } };
  errors?: { message: string; extensions?: { code?: string } }[];
}

/** Why this answer makes the figures invalid, or undefined when it accepted the whole batch. */
function problemWith(answer: { status: number; body: string }, batchSize: number): string | undefined {
  if (answer.status !== 200) return `HTTP ${answer.status}: ${answer.body.slice(0, 300)}`;
  const parsed = JSON.parse(answer.body) as RecordEventsAnswer;
  const error = parsed.errors?.[0];
  if (error) return `GraphQL error ${error.extensions?.code ?? ''}: ${error.message}`;
  const result = parsed.data?.recordEvents;
  if (!result) return `no recordEvents in the answer: ${answer.body.slice(0, 300)}`;
  const rejected = result.errors[0];
  if (rejected) return `event ${rejected.index} rejected: ${rejected.message}`;
  if (result.duplicates) return `${result.duplicates} events answered as duplicates (every messageId is unique)`;
  if (result.accepted !== batchSize) return `${result.accepted} of ${batchSize} events accepted`;
  return undefined;
}

async function drive(
  gateway: Gateway,
  batchSize: number,
  seconds: number,
  onAccepted?: (lastMessageId: string, at: number) => void,
): Promise<LoadResult> {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const latency = createHistogram();
  let requests = 0;
  let accepted = 0;
  let failures = 0;
  let firstFailure: string | undefined;
  const started = performance.now();
  const deadline = started + seconds * 1000;
  await Promise.all(
    Array.from({ length: clients }, async () => {
      // One failure invalidates the run: stop early rather than hammer a broken gateway.
      while (performance.now() < deadline && failures === 0) {
        const batch = makeBatch(batchSize);
        const sent = performance.now();
        let problem: string | undefined;
        try {
          const answer = await post(gateway, '/graphql', batch.body, agent);
          const at = performance.now();
          latency.record(Math.max(1, Math.round((at - sent) * 1e6)));
          problem = problemWith(answer, batchSize);
          if (problem === undefined) {
            accepted += batchSize;
            onAccepted?.(batch.lastMessageId, at);
          }
        } catch (err) {
          problem = `request failed: ${(err as Error).message}`;
        }
        requests++;
        if (problem !== undefined) {
          failures++;
          firstFailure ??= problem;
        }
      }
    }),
  );
  agent.destroy();
  return {
    batchSize,
    seconds: (performance.now() - started) / 1000,
    requests,
    accepted,
    p50Ms: latency.percentile(50) / 1e6,
    p99Ms: latency.percentile(99) / 1e6,
    failures,
    firstFailure,
  };
}

/**
 * Persist lag, measured on events rather than inferred: for the last event of every accepted
 * request, the time from the mutation's answer (the client learns the event is accepted) until
 * its row is visible in Postgres. Visibility is polled every 50 ms by messageId in
 * event_message_ids, which the persist statement writes in the same transaction as the events
 * row, through its primary key (a cheap probe that does not disturb what it measures). A lag is
 * taken at the start of the poll that first sees the row, so each figure overstates the true lag
 * by up to one poll interval (plus the poll's own queueing under load) and understates it by at most
 * the time the query takes to reach Postgres.
 */
function startLagSampler(db: pg.Client, tenantId: string) {
  const pending = new Map<string, number>();
  const lags: number[] = [];
  let draining = false;
  let giveUpAt = Infinity;
  const loop = (async () => {
    while (!draining || pending.size > 0) {
      const pollAt = performance.now();
      if (pollAt > giveUpAt) throw new Error(`${pending.size} sampled events never became visible in Postgres`);
      if (pending.size > 0) {
        const { rows } = await db.query<{ message_id: string }>(
          'SELECT message_id FROM event_message_ids WHERE tenant_id = $1 AND message_id = ANY($2::text[])',
          [tenantId, [...pending.keys()]],
        );
        for (const { message_id } of rows) {
          lags.push(pollAt - pending.get(message_id)!);
          pending.delete(message_id);
        }
      }
      await sleep(Math.max(0, POLL_MS - (performance.now() - pollAt)));
    }
  })();
  // Surfaced by finish(); without this, a failed query would be an unhandled rejection first.
  loop.catch(() => undefined);
  return {
    add(messageId: string, acceptedAt: number): void {
      pending.set(messageId, acceptedAt);
    },
    /** Stops taking samples and waits until every sample so far has been seen. */
    async finish(timeoutMs = 30_000): Promise<number[]> {
      draining = true;
      giveUpAt = performance.now() + timeoutMs;
      await loop;
      return lags.sort((a, b) => a - b);
    },
  };
}

const quantile = (sorted: readonly number[], q: number): number =>
  sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;

// ---------------------------------------------------------------------------------------------
// CPU accounting from /proc, so the output says which process the cores were spent in.

interface CpuSnapshot {
  readonly at: number;
  readonly machineBusy: number;
  readonly machineTotal: number;
  readonly byGroup: Map<string, Map<number, number>>;
}

function processTicks(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after "(comm)" start at field 3 (state); utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[11]) + Number(fields[12]);
  } catch {
    return undefined; // the process has exited meanwhile
  }
}

function cpuSnapshot(gateway: Gateway): CpuSnapshot {
  const byGroup = new Map<string, Map<number, number>>([
    [gateway.worker ? 'gateway api' : 'gateway', new Map()],
    ...(gateway.worker ? [['gateway worker', new Map<number, number>()] as const] : []),
    ['postgres', new Map()],
    ['redis', new Map()],
    ['load generator (this process)', new Map()],
  ]);
  const add = (group: string, pid: number) => {
    const ticks = processTicks(pid);
    if (ticks !== undefined) byGroup.get(group)!.set(pid, ticks);
  };
  add(gateway.worker ? 'gateway api' : 'gateway', gateway.child.pid!);
  if (gateway.worker) add('gateway worker', gateway.worker.child.pid!);
  add('load generator (this process)', process.pid);
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let comm: string;
    try {
      comm = readFileSync(`/proc/${entry}/comm`, 'utf8').trim();
    } catch {
      continue;
    }
    if (comm === 'postgres') add('postgres', Number(entry));
    else if (comm === 'redis-server') add('redis', Number(entry));
  }
  const [, ...counters] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  // user nice system idle iowait irq softirq steal (guest time is already in user).
  const ticks = counters.slice(0, 8).map(Number);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { at: performance.now(), machineBusy: total - ticks[3]! - ticks[4]!, machineTotal: total, byGroup };
}

interface CpuUse {
  /** Per group, in % of one core. */
  readonly groups: [string, number][];
  readonly machineBusyPct: number;
  readonly otherPct: number;
}

function cpuBetween(before: CpuSnapshot, after: CpuSnapshot): CpuUse {
  const seconds = (after.at - before.at) / 1000;
  const cores = availableParallelism();
  const groups: [string, number][] = [];
  for (const [group, pids] of after.byGroup) {
    let ticks = 0;
    // Processes started during the window count from zero (Postgres backends are long-lived here).
    for (const [pid, t] of pids) ticks += t - (before.byGroup.get(group)!.get(pid) ?? 0);
    groups.push([group, (ticks / CLOCK_TICKS_PER_S / seconds) * 100]);
  }
  const busyShare = (after.machineBusy - before.machineBusy) / (after.machineTotal - before.machineTotal);
  const machineBusyPct = busyShare * cores * 100;
  const otherPct = Math.max(0, machineBusyPct - groups.reduce((a, [, pct]) => a + pct, 0));
  return { groups, machineBusyPct, otherPct };
}

/** CPU per event of each group from the first request until the last event was persisted. */
function cpuPerEvent(before: CpuSnapshot, after: CpuSnapshot, events: number): [string, number][] {
  const perEvent: [string, number][] = [];
  for (const [group, pids] of after.byGroup) {
    let ticks = 0;
    for (const [pid, t] of pids) ticks += t - (before.byGroup.get(group)!.get(pid) ?? 0);
    perEvent.push([group, ((ticks / CLOCK_TICKS_PER_S) * 1e6) / Math.max(1, events)]);
  }
  return perEvent;
}

// ---------------------------------------------------------------------------------------------
// One batch size, measured.

interface PhaseResult {
  readonly load: LoadResult;
  /** Events accepted by the gateway during the measured window (server side, = load.accepted). */
  readonly serverAccepted: number;
  readonly persistedPerS: number;
  readonly drainSeconds: number;
  readonly backlogAtLoadEnd: number;
  /** The persist rate once requests stopped: the worker alone, with the backlog to work through. */
  readonly drainPerS: number;
  readonly lags: number[];
  readonly cpu: CpuUse;
  /** µs of CPU per accepted event, by process group, from the first request until drained. */
  readonly cpuPerEventUs: [string, number][];
  readonly persistBatches: number;
  readonly persistMeanBatch: number;
  readonly persistMeanBatchMs: number;
  readonly persistRetries: number;
  readonly deadLetters: number;
  /** Monotonic clock (µs, the clock V8's profiler uses): first request, load stopped, drained. */
  readonly windowUs: readonly [start: number, loadEnd: number, end: number];
}

const monotonicUs = () => Number(process.hrtime.bigint() / 1000n);

async function runPhase(gateway: Gateway, lagDb: pg.Client, tenantId: string, batchSize: number): Promise<PhaseResult> {
  if (warmup > 0) {
    const warm = await drive(gateway, batchSize, warmup);
    if (warm.failures) throw new Error(`warm-up with batches of ${batchSize} failed: ${warm.firstFailure}`);
  }
  // Start from an empty backlog, so the persisted rate is this phase's events and nothing else.
  const { metrics: before } = await waitDrained(gateway);
  const cpuBefore = cpuSnapshot(gateway);
  const lag = startLagSampler(lagDb, tenantId);
  const startedUs = monotonicUs();
  const started = performance.now();
  const load = await drive(gateway, batchSize, duration, (id, at) => lag.add(id, at));
  const loadEndUs = monotonicUs();
  const cpuAfter = cpuSnapshot(gateway);
  const atLoadEnd = await scrape(gateway);
  const loadEndAt = performance.now();
  const drained = await waitDrained(gateway);
  const cpuDrained = cpuSnapshot(gateway);
  const endedUs = monotonicUs();
  const lags = await lag.finish();
  const after = drained.metrics;

  const serverAccepted = acceptedOf(after) - acceptedOf(before);
  const delta = (name: string) => metric(after, name) - metric(before, name);
  const batches = delta('persist_batch_size_count');
  return {
    load,
    serverAccepted,
    persistedPerS: serverAccepted / ((drained.at - started) / 1000),
    drainSeconds: (drained.at - started) / 1000 - load.seconds,
    backlogAtLoadEnd: acceptedOf(atLoadEnd) - persistedOf(atLoadEnd),
    drainPerS: (acceptedOf(after) - persistedOf(atLoadEnd)) / ((drained.at - loadEndAt) / 1000),
    lags,
    cpu: cpuBetween(cpuBefore, cpuAfter),
    cpuPerEventUs: cpuPerEvent(cpuBefore, cpuDrained, serverAccepted),
    persistBatches: batches,
    persistMeanBatch: batches ? delta('persist_batch_size_sum') / batches : 0,
    persistMeanBatchMs: batches ? (delta('persist_batch_duration_seconds_sum') / batches) * 1000 : 0,
    persistRetries: metric(after, 'persist_retries_total'),
    deadLetters: metric(after, 'dead_letters_total'),
    windowUs: [startedUs, loadEndUs, endedUs],
  };
}

// ---------------------------------------------------------------------------------------------
// Baselines: the same work with nothing of the gateway in between. Generating the data is left
// out of the timed part; the client library's own work (encoding commands, parameters) is in.

async function rawXadd(redis: Redis, key: string, tenantId: string): Promise<{ perS: number; payloadBytes: number }> {
  const payloads = Array.from({ length: 1000 }, () => encodeStreamEvent(streamEvent(tenantId)));
  const round = async () => {
    const pipeline = redis.pipeline();
    // The gateway's entry shape: tenant and encoded event.
    for (const payload of payloads) pipeline.xadd(key, '*', 't', tenantId, 'e', payload);
    const replies = (await pipeline.exec()) ?? [];
    const failed = replies.find(([err]) => err);
    if (failed) throw failed[0];
  };
  for (let i = 0; i < 3; i++) await round();
  let entries = 0;
  let busyMs = 0;
  for (let rounds = 1; busyMs < baselineSeconds * 1000; rounds++) {
    const started = performance.now();
    await round();
    busyMs += performance.now() - started;
    entries += payloads.length;
    // Keep the stream about as short as the gateway's (trimmed once acknowledged), untimed.
    if (rounds % 20 === 0) await redis.del(key);
  }
  await redis.del(key);
  const payloadBytes = payloads.reduce((a, p) => a + Buffer.byteLength(p), 0) / payloads.length;
  return { perS: entries / (busyMs / 1000), payloadBytes };
}

/**
 * pg-copy-streams is not installed (and not to be added), so no COPY: the ceiling is the same
 * one-statement `unnest` insert the repository uses, minus what the gateway adds on top of it (the
 * event_message_ids claim, ON CONFLICT, RETURNING). One connection, one batch at a time, as the
 * persist worker runs with one stream partition.
 */
async function rawInsert(db: pg.Client, tenantId: string): Promise<number> {
  await db.query(
    'CREATE TABLE bench_raw_events (LIKE events INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING INDEXES)',
  );
  const sql = `INSERT INTO bench_raw_events
      (tenant_id, id, type, user_id, session_id, message_id, occurred_at, received_at, value, properties)
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::timestamptz[], $9::float8[], $10::jsonb[])`;
  const columns = () => {
    const events = Array.from({ length: 1000 }, () => streamEvent(tenantId));
    return [
      events.map((e) => e.tenantId),
      events.map((e) => e.id),
      events.map((e) => e.type),
      events.map((e) => e.userId),
      events.map((e) => e.sessionId),
      events.map((e) => e.messageId),
      events.map((e) => new Date(e.occurredAt).toISOString()),
      events.map((e) => new Date(e.receivedAt).toISOString()),
      events.map((e) => e.value),
      events.map((e) => e.properties),
    ];
  };
  for (let i = 0; i < 3; i++) await db.query(sql, columns());
  let rows = 0;
  let busyMs = 0;
  while (busyMs < baselineSeconds * 1000) {
    const params = columns();
    const started = performance.now();
    await db.query(sql, params);
    busyMs += performance.now() - started;
    rows += 1000;
  }
  await db.query('DROP TABLE bench_raw_events');
  return rows / (busyMs / 1000);
}

// ---------------------------------------------------------------------------------------------
// --profile: self time per function from the V8 .cpuprofile the gateway writes when it exits.

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number } }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

function packageOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? 'v8' : 'v8 builtins / native';
  if (url.startsWith('node:')) return 'node core';
  const at = url.lastIndexOf('/node_modules/');
  if (at >= 0) {
    const [first, second] = url.slice(at + '/node_modules/'.length).split('/');
    return first?.startsWith('@') ? `${first}/${second}` : (first ?? url);
  }
  if (url.includes('/dist/src/')) return 'gateway (src)';
  return url.slice(url.lastIndexOf('/') + 1);
}

async function summarizeProfile(dir: string, windowUs: PhaseResult['windowUs']): Promise<string[]> {
  const file = (await readdir(dir)).find((f) => f.endsWith('.cpuprofile'));
  if (!file) return ['(no .cpuprofile was written: did the gateway exit gracefully?)'];
  const profile = JSON.parse(await readFile(join(dir, file), 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const isIdle = (name: string) => name === '(idle)' || name === '(program)' || name === '(root)';
  // V8 and process.hrtime read the same monotonic clock on Linux; if they ever disagree, fall back
  // to the whole profile (start-up is then a second or so of the total).
  const aligned = windowUs[0] < profile.endTime && windowUs[2] > profile.startTime;
  const [from, loadEnd, to] = aligned ? windowUs : [-Infinity, Infinity, Infinity];
  const selfUs = new Map<number, number>();
  // JS-thread busy time while requests came in, and while the worker drained the backlog alone.
  const busy = { load: 0, loadAll: 0, drain: 0, drainAll: 0 };
  let t = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    // As DevTools does: the interval up to the next sample belongs to this sample's function.
    const weight = profile.timeDeltas[i + 1] ?? 0;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + weight);
    const working = isIdle(nodes.get(id)!.callFrame.functionName) ? 0 : weight;
    if (t <= loadEnd) {
      busy.load += working;
      busy.loadAll += weight;
    } else {
      busy.drain += working;
      busy.drainAll += weight;
    }
  }
  const byFunction = new Map<string, { name: string; pkg: string; where: string; us: number }>();
  const byPackage = new Map<string, number>();
  let idleUs = 0;
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = nodes.get(id)!.callFrame;
    if (isIdle(functionName)) {
      idleUs += us;
      continue;
    }
    totalUs += us;
    const pkg = packageOf(url, functionName);
    const where = url ? `${url.slice(url.lastIndexOf('/') + 1)}:${lineNumber + 1}` : '';
    const key = `${functionName}\0${url}\0${lineNumber}`;
    const entry = byFunction.get(key) ?? { name: functionName || '(anonymous)', pkg, where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
  }
  const pct = (us: number) => `${((us / totalUs) * 100).toFixed(1).padStart(5)}%`;
  const ms = (us: number) => `${(us / 1000).toFixed(0).padStart(6)} ms`;
  const share = (part: number, all: number) => (all ? `${((part / all) * 100).toFixed(0)}%` : 'n/a');
  const lines = [
    `gateway CPU profile (--cpu-prof), ${aligned ? 'measured 1000-batch window' : 'whole process (clocks not aligned)'}:` +
      ` JS thread busy ${(totalUs / 1e6).toFixed(1)} s, idle/(program) ${(idleUs / 1e6).toFixed(1)} s (excluded below);` +
      ` busy ${share(busy.load, busy.loadAll)} of the time under load, ${share(busy.drain, busy.drainAll)} while draining`,
    '  self time by package (% of busy):',
  ];
  for (const [pkg, us] of [...byPackage].sort((a, b) => b[1] - a[1]).slice(0, 10)) {
    lines.push(`    ${pct(us)} ${ms(us)}  ${pkg}`);
  }
  lines.push('  top 10 functions by self time:');
  for (const f of [...byFunction.values()].sort((a, b) => b.us - a.us).slice(0, 10)) {
    lines.push(`    ${pct(f.us)} ${ms(f.us)}  ${f.pkg.padEnd(24)} ${f.name}${f.where ? `  (${f.where})` : ''}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------

const fmt = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString('en-US') : 'n/a');
const pad = (s: string, n: number) => s.padEnd(n);

const profileDir = profile ? await mkdtemp(join(tmpdir(), 'bench-ingest-prof-')) : undefined;
let redis: Redis | undefined;
const db = new pg.Client({ connectionString: isolation.databaseUrl });
const lagDb = new pg.Client({ connectionString: isolation.databaseUrl });
const connected: pg.Client[] = [];
try {
  console.log(
    `bench:ingest  recordEvents with ${clients} concurrent clients, ${duration} s per phase after ${warmup} s warm-up; ` +
      `gateway ${roles === 'all' ? 'ROLE=all, one process' : 'ROLE=api and ROLE=worker, two processes'} NODE_ENV=production LOG_LEVEL=warn; ${availableParallelism()} CPU cores\n`,
  );

  // Phase 1: batches of 100 (the first gateway also creates and migrates the isolated database).
  let gateway = await startGateway();
  for (const client of [db, lagDb]) {
    await client.connect();
    connected.push(client);
  }
  const { rows } = await db.query<{ tenant_id: string }>(
    "SELECT tenant_id FROM api_keys WHERE name = 'bootstrap' LIMIT 1",
  );
  const tenantId = rows[0]!.tenant_id;

  // Baselines first, while the gateway idles: the machine is as quiet as it gets.
  redis = new Redis(REDIS_URL);
  const xadd = await rawXadd(redis, `${isolation.redisKeyPrefix}bench:raw-xadd`, tenantId);
  const insertPerS = await rawInsert(db, tenantId);

  let totalAccepted = 0;
  const phases: PhaseResult[] = [];
  for (const batchSize of [100, 1000]) {
    if (batchSize === 1000) {
      // A fresh process, so that with --profile the CPU profile is this phase's alone.
      gateway = await startGateway(profileDir);
    }
    const phase = await runPhase(gateway, lagDb, tenantId, batchSize);
    phases.push(phase);
    totalAccepted += acceptedOf(await scrape(gateway));
    await stopGateway(gateway);
  }
  const [p100, p1000] = phases as [PhaseResult, PhaseResult];

  // Every event any gateway acknowledged must be a row: otherwise "persisted" would be a lie.
  const stored = Number((await db.query<{ n: string }>('SELECT count(*) AS n FROM events')).rows[0]!.n);

  console.log('baselines (same run, gateway idle)');
  console.log(
    `  raw XADD, ioredis pipeline of 1000 (${fmt(xadd.payloadBytes)}-byte payload), 1 connection`.padEnd(92),
    `${fmt(xadd.perS).padStart(10)} entries/s`,
  );
  console.log(
    '  raw INSERT ... SELECT FROM unnest, 1000-row batches, 1 connection (no pg-copy-streams)'.padEnd(92),
    `${fmt(insertPerS).padStart(10)} rows/s`,
  );
  console.log('');
  const widths = [12, 7, 14, 8, 8, 15, 11, 10, 24];
  const row = (cells: string[]) =>
    console.log(cells.map((c, i) => (i < widths.length ? pad(c, widths[i]!) : c)).join(' '));
  row([
    'recordEvents',
    'req/s',
    'accepted ev/s',
    'p50 ms',
    'p99 ms',
    'persisted ev/s',
    'drain ev/s',
    'backlog',
    'lag p50/p99/max ms',
    'samples',
  ]);
  for (const p of phases) {
    row([
      `batch ${p.load.batchSize}`,
      fmt(p.load.requests / p.load.seconds),
      fmt(p.load.accepted / p.load.seconds),
      p.load.p50Ms.toFixed(1),
      p.load.p99Ms.toFixed(1),
      fmt(p.persistedPerS),
      fmt(p.drainPerS),
      fmt(p.backlogAtLoadEnd),
      [0.5, 0.99, 1].map((q) => fmt(quantile(p.lags, q))).join(' / '),
      String(p.lags.length),
    ]);
  }
  console.log(
    [
      '  accepted ev/s: events acknowledged by recordEvents ÷ load time (every request checked: 200, no errors, all accepted).',
      '  persisted ev/s: the same events ÷ time from the first request until events_persisted_total reached them (end to end).',
      '  backlog: accepted but not yet persisted when the load stopped; drain ev/s: persist rate from then on (worker alone).',
      `  lag: mutation answer → row visible in Postgres, last event of every request, polled (+0..${POLL_MS} ms).`,
    ].join('\n'),
  );

  console.log('\nCPU during the load (% of one core)');
  for (const p of phases) {
    const parts = p.cpu.groups.map(([group, pct]) => `${group} ${pct.toFixed(0)}%`);
    console.log(
      `  batch ${String(p.load.batchSize).padEnd(5)} ${parts.join(', ')}, other ${p.cpu.otherPct.toFixed(0)}%; ` +
        `machine busy ${p.cpu.machineBusyPct.toFixed(0)}% of ${availableParallelism() * 100}%`,
    );
  }
  console.log('CPU per accepted event, first request until persisted (µs; the load generator builds the batches)');
  for (const p of phases) {
    const parts = p.cpuPerEventUs.map(([group, us]) => `${group} ${us.toFixed(1)}`);
    console.log(`  batch ${String(p.load.batchSize).padEnd(5)} ${parts.join(', ')}`);
  }
  console.log('persist worker');
  for (const p of phases) {
    console.log(
      `  batch ${String(p.load.batchSize).padEnd(5)} ${fmt(p.persistBatches)} batches, mean ${fmt(p.persistMeanBatch)} events, ` +
        `mean ${p.persistMeanBatchMs.toFixed(1)} ms per batch (insert + XACK) → ${fmt((p.persistMeanBatch / p.persistMeanBatchMs) * 1000)} ev/s per loop while writing, ${persistLoops}`,
    );
  }

  const accepted1000 = p1000.load.accepted / p1000.load.seconds;
  console.log('\nratios');
  console.log(`  accepted ev/s (batch 1000) ÷ raw XADD entries/s:  ${(accepted1000 / xadd.perS).toFixed(3)}`);
  console.log(
    `  accepted ev/s (batch 100)  ÷ raw XADD entries/s:  ${(p100.load.accepted / p100.load.seconds / xadd.perS).toFixed(3)}`,
  );
  console.log(`  persisted ev/s (batch 1000) ÷ raw insert rows/s:  ${(p1000.persistedPerS / insertPerS).toFixed(3)}`);

  const met = accepted1000 >= TARGET_EVENTS_PER_S && p1000.persistedPerS >= TARGET_EVENTS_PER_S;
  console.log(
    `\ntarget >= ${fmt(TARGET_EVENTS_PER_S)} ev/s accepted AND persisted with batches of 1000: ${met ? 'MET' : 'MISSED'} ` +
      `(accepted ${fmt(accepted1000)}, persisted ${fmt(p1000.persistedPerS)})`,
  );
  if (!met) {
    const cpu = new Map(p1000.cpu.groups);
    const gatewayCpu = (cpu.get('gateway') ?? 0) + (cpu.get('gateway api') ?? 0);
    const capacity = availableParallelism() * 100;
    console.log('where the time goes (batch 1000):');
    console.log(
      `  CPU: gateway ${gatewayCpu.toFixed(0)}% of one core (its JavaScript runs on one thread` +
        (roles === 'all'
          ? ', shared by request handling and the persist worker)'
          : `; the worker process ${(cpu.get('gateway worker') ?? 0).toFixed(0)}%)`) +
        `, machine ${p1000.cpu.machineBusyPct.toFixed(0)}% of ${capacity}%` +
        (p1000.cpu.machineBusyPct >= capacity * 0.85
          ? ': the cores are saturated, Postgres, Redis and the load generator compete with the gateway for them.'
          : '.'),
    );
    console.log(
      `  accept path: one 1000-event request every ${((p1000.load.seconds * 1000) / p1000.load.requests).toFixed(1)} ms` +
        ` with ${clients} in flight (HTTP and JSON parse, GraphQL validation and coercion of 1000 inputs,` +
        ` normalizeEvent, the enqueue script), interleaved on the thread with the persist worker.`,
    );
    console.log(
      `  persist path: ${p1000.persistMeanBatchMs.toFixed(1)} ms per ${fmt(p1000.persistMeanBatch)}-event batch` +
        ` (decode, insert with the messageId claim, XACK) on ${persistLoops}, under load;` +
        ` ${fmt(p1000.drainPerS)} ev/s once requests stop; raw insert: ${((1000 / insertPerS) * 1000).toFixed(1)} ms` +
        ` per 1000 rows (${fmt(insertPerS)} rows/s).`,
    );
    if (profileDir) {
      for (const role of roles === 'all' ? ['all'] : ['api', 'worker']) {
        if (roles === 'split') console.log(`  ROLE=${role}:`);
        for (const line of await summarizeProfile(join(profileDir, role), p1000.windowUs)) console.log(`  ${line}`);
      }
      console.log('  (figures of a --profile run are a little lower than without: sampling costs the gateway CPU)');
    } else {
      console.log(
        '  rerun with --profile for the gateway CPU profile of the 1000-batch phase (top self-time functions).',
      );
    }
  }

  const problems: string[] = [];
  for (const p of phases) {
    if (p.load.failures) {
      problems.push(`batch ${p.load.batchSize}: ${p.load.failures} failed requests, first: ${p.load.firstFailure}`);
    }
    if (p.serverAccepted !== p.load.accepted) {
      problems.push(
        `batch ${p.load.batchSize}: the gateway counted ${p.serverAccepted} accepted events, the clients ${p.load.accepted}`,
      );
    }
    if (p.deadLetters) problems.push(`batch ${p.load.batchSize}: ${p.deadLetters} events dead-lettered`);
    if (p.persistRetries) problems.push(`batch ${p.load.batchSize}: ${p.persistRetries} persist batches retried`);
  }
  if (stored !== totalAccepted) {
    problems.push(`${stored} rows in events, but the gateways accepted ${totalAccepted} events`);
  }
  if (problems.length) {
    console.error(`\nINVALID RUN, the figures above do not hold:\n  ${problems.join('\n  ')}`);
    process.exitCode = 1;
  } else {
    console.log(`\nchecked: no failed request, ${fmt(stored)} accepted events = ${fmt(stored)} rows in events.`);
  }
} finally {
  for (const child of children) child.kill('SIGTERM');
  await Promise.all(
    [...children].map((c) =>
      c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)),
    ),
  );
  redis?.disconnect();
  await Promise.all(connected.map((c) => c.end()));
  await isolation.cleanup();
  if (profileDir) await rm(profileDir, { recursive: true, force: true });
}
