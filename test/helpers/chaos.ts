import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { print } from 'graphql';
import { decodeStreamEvent } from '../../src/ingest/stream-event.js';
import { createLogger } from '../../src/observability/logger.js';
import { createMetrics } from '../../src/observability/metrics.js';
import { WINDOW_MS } from '../../src/realtime/window.js';
import { createWindowStore, type WindowSnapshot } from '../../src/realtime/window-store.js';
import { CONSUMER_GROUPS, createStreamKeys, type StreamKeys } from '../../src/redis/keys.js';
import { createStreamMaintenanceWorker } from '../../src/streams/stream-maintenance.worker.js';
import { compareStreamIds, pairsToRecord } from '../../src/streams/stream-entries.js';
import { RecordEventsDocument } from '../generated/graphql.js';
import { scrapeMetric, spawnGateway, type SpawnedGateway } from './gateway.js';
import { assertStatisticsMatchEvents } from './statistics-check.js';
import { createTcpProxy, type TcpProxy } from './tcp-proxy.js';
import { REDIS_URL, isolatedEnv, testPool, waitFor } from './test-env.js';

/**
 * A chaos run with a ledger: two API and two worker processes (`node dist/src/main.js`), each
 * reaching Postgres and Redis through TCP proxies of the run's own; clients recording batches
 * with unique messageIds round-robin to both APIs and noting, per messageId, what they were told;
 * faults injected one after another while the load runs; then what every client would do (resend
 * what it was not sure of, with the same messageId) and the checks: every acknowledged messageId
 * in Postgres exactly once, the live windows equal to SQL over the persisted events, the rollups
 * equal to SQL, no dead letter left unexplained. Used by test/e2e/chaos.test.ts (short) and
 * bench/chaos.bench.ts (longer).
 */

export interface ChaosSettings {
  /** Concurrent load clients. */
  readonly clients: number;
  /** Events per recordEvents call. */
  readonly batchSize: number;
  /** Each client's pause between two calls, in ms. */
  readonly thinkMs: number;
  /** Load without faults before the first fault and between two. */
  readonly settleMs: number;
  readonly redisCutMs: number;
  readonly postgresCutMs: number;
  readonly pauseMs: number;
  /** How many times the whole sequence of faults runs. */
  readonly rounds: number;
  readonly streamPartitions: number;
  /** Progress lines (the bench prints them; the test keeps them for a failure message). */
  readonly log?: (line: string) => void;
}

export const SHORT_RUN: ChaosSettings = {
  clients: 4,
  batchSize: 25,
  thinkMs: 20,
  settleMs: 2_000,
  redisCutMs: 5_000,
  postgresCutMs: 15_000,
  pauseMs: 3_000,
  rounds: 1,
  streamPartitions: 2,
};

export interface FaultOutcome {
  readonly fault: string;
  /** Seconds since the load started, or the span it covers. */
  readonly when: string;
  /** Events acknowledged while the fault was on (for a fault that is a moment, its phase). */
  readonly acknowledged: number;
  readonly lost: number;
  readonly doubled: number;
  readonly outcome: string;
  /** What went against the promise, empty when nothing did. */
  readonly problems: string[];
}

export interface ChaosReport {
  readonly settings: ChaosSettings;
  readonly faults: FaultOutcome[];
  /** Over the whole run. */
  readonly totals: {
    readonly sent: number;
    readonly acknowledged: number;
    readonly refused: Record<string, number>;
    readonly unknown: number;
    readonly resent: number;
    readonly stored: number;
    readonly lost: number;
    readonly doubled: number;
    readonly windowsCompared: number;
    readonly deadLetters: number;
    readonly durationS: number;
  };
  /** Every problem of every fault, and those of the run as a whole. */
  readonly problems: string[];
  readonly table: string;
}

const KEY = 'agk_chaos-admin-key-0000000000000000000000000000000';
const RECORD_EVENTS = print(RecordEventsDocument);
const USERS = 40;

type Role = 'api' | 'worker';

/** One gateway process and the two proxies all its connections go through. */
interface Member {
  readonly name: string;
  readonly role: Role;
  readonly postgres: TcpProxy;
  readonly redis: TcpProxy;
  process?: SpawnedGateway;
  /** Called with every chunk the process sends to Postgres (the worker-kill fault arms it). */
  onPostgresChunk?: (chunk: Buffer) => void;
}

interface LoadEvent {
  readonly type: string;
  readonly userId: string;
  readonly value: number;
  readonly messageId: string;
}

interface LedgerEntry {
  readonly event: LoadEvent;
  readonly phase: string;
  state: 'acknowledged' | 'refused' | 'unknown';
  code?: string;
  /** The id the last acknowledging answer gave. */
  id?: string;
  resent: boolean;
}

/** A span of the run during which one fault (or none) was on; events sent in it carry its name in their type. */
interface Phase {
  readonly name: string;
  readonly fault: string;
  startedAt: number;
  endedAt?: number;
  /** Message ids the fault is about beyond those sent in the phase (the dead worker's batch, the entries pending at a trim). */
  focus?: Set<string>;
  outcome: string[];
  problems: string[];
}

export async function runChaos(settings: ChaosSettings): Promise<ChaosReport> {
  const log = settings.log ?? (() => undefined);
  const isolation = isolatedEnv('chaos');
  const keys = createStreamKeys(isolation.redisKeyPrefix, settings.streamPartitions);
  const redis = new Redis(REDIS_URL);
  const pool = testPool(isolation.databaseUrl, 3);
  const members: Member[] = [];
  const startedAt = Date.now();
  const problems: string[] = [];
  const phases: Phase[] = [];
  const ledger = new Map<string, LedgerEntry>();
  let stopLoad = false;
  let stopping = false;
  let load: Promise<void> | undefined;
  try {
    for (const [name, role] of [
      ['api-1', 'api'],
      ['api-2', 'api'],
      ['worker-1', 'worker'],
      ['worker-2', 'worker'],
    ] as const) {
      // The Postgres proxy's tap reads the member's current handler, set once the member exists.
      let member: Member | undefined;
      const postgres = await createTcpProxy(5432, '127.0.0.1', () => (chunk) => member?.onPostgresChunk?.(chunk));
      member = { name, role, postgres, redis: await createTcpProxy(6379) };
      members.push(member);
    }
    const apis = members.filter((m) => m.role === 'api');
    const workers = members.filter((m) => m.role === 'worker');
    const envOf = (m: Member, first: boolean) => {
      const database = new URL(isolation.databaseUrl);
      database.port = String(m.postgres.port);
      return isolation.env({
        ROLE: m.role,
        LOG_LEVEL: 'info',
        LOG_OPERATIONS: 'false',
        TRACING_ENABLED: 'false',
        COST_MODE: 'off',
        BOOTSTRAP_API_KEY: KEY,
        DATABASE_URL: database.toString(),
        REDIS_URL: `redis://127.0.0.1:${m.redis.port}`,
        MIGRATE_ON_START: first ? 'true' : 'false',
        STREAM_PARTITIONS: String(settings.streamPartitions),
        STREAM_TRIM_INTERVAL_MS: '200',
        PERSIST_CLAIM_IDLE_MS: '2000',
        AGGREGATE_CLAIM_IDLE_MS: '2000',
        PERSIST_RETRY_MAX_MS: '1000',
        // Both workers try for the refresh lock ten times a second: "two refreshers racing".
        ROLLUP_REFRESH_INTERVAL_MS: '100',
        SHUTDOWN_GRACE_MS: '2000',
      });
    };
    const start = async (m: Member, first = false) => {
      const spawned = await spawnGateway(envOf(m, first), 60_000);
      m.process = spawned;
      void spawned.exited.then(({ code, signal }) => {
        if (signal === 'SIGKILL' || stopping) return;
        const tail = spawned.output().trim().split('\n').slice(-5).join('\n');
        problems.push(`${m.name} exited by itself (${code ?? signal}):\n${tail}`);
        log(`${m.name} exited by itself (${code ?? signal}):\n${tail}`);
      });
    };
    await start(apis[0]!, true);
    await Promise.all([...apis.slice(1), ...workers].map((m) => start(m)));
    const { rows: tenantRows } = await pool.query<{ id: string }>(
      "SELECT k.tenant_id AS id FROM api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE t.slug = 'demo' LIMIT 1",
    );
    const tenantId = tenantRows[0]!.id;
    log(`4 processes up in ${((Date.now() - startedAt) / 1000).toFixed(1)} s; load starts`);

    // ---- the load and its ledger
    let current: Phase = {
      name: 'baseline',
      fault: 'none (baseline)',
      startedAt: Date.now(),
      outcome: [],
      problems: [],
    };
    phases.push(current);
    const inFlight = new Map<string, number>();
    const inFlightByApi = new Map<Member, number>();
    let sequence = 0;
    let turn = 0;
    const loadStartedAt = Date.now();

    const send = async (api: Member, events: LoadEvent[]): Promise<void> => {
      const entries = events.map((e) => ledger.get(e.messageId)!);
      inFlightByApi.set(api, (inFlightByApi.get(api) ?? 0) + 1);
      try {
        const url = api.process?.url;
        if (!url) throw Object.assign(new Error('no process'), { cause: { code: 'ECONNREFUSED' } });
        const response = await fetch(`${url}/graphql`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` },
          body: JSON.stringify({ query: RECORD_EVENTS, variables: { events } }),
          signal: AbortSignal.timeout(30_000),
        });
        const body = (await response.json()) as {
          data?: { recordEvents: { ids: (string | null)[]; errors: { index: number; code: string }[] } } | null;
          errors?: { extensions?: { code?: string } }[];
        };
        const result = body.data?.recordEvents;
        if (!result) {
          const code = String(body.errors?.[0]?.extensions?.code ?? `HTTP_${response.status}`);
          for (const e of entries) Object.assign(e, { state: 'refused', code });
          return;
        }
        const refusedAt = new Map(result.errors.map((err) => [err.index, err.code]));
        entries.forEach((e, i) => {
          const id = result.ids[i];
          if (id) Object.assign(e, { state: 'acknowledged', id, code: undefined });
          else Object.assign(e, { state: 'refused', code: refusedAt.get(i) ?? 'NO_ID' });
        });
      } catch (err) {
        // Refused before anything was sent: certainly not stored. Anything else: the request may
        // have been handled, the answer lost.
        const code = (err as { cause?: { code?: string } }).cause?.code;
        for (const e of entries) {
          if (code === 'ECONNREFUSED') Object.assign(e, { state: 'refused', code });
          else Object.assign(e, { state: 'unknown', code: code ?? (err as Error).name });
        }
        // As a client would: not straight back at a replica that is not there.
        if (code === 'ECONNREFUSED') await sleep(200);
      } finally {
        inFlightByApi.set(api, inFlightByApi.get(api)! - 1);
      }
    };

    const client = async (c: number) => {
      while (!stopLoad) {
        const phase = current;
        inFlight.set(phase.name, (inFlight.get(phase.name) ?? 0) + 1);
        const batch: LoadEvent[] = [];
        const n = ++sequence;
        for (let i = 0; i < settings.batchSize; i++) {
          const event = {
            type: `chaos.${phase.name}`,
            userId: `u${(n * 7 + i * 13) % USERS}`,
            value: (n + i) % 100,
            messageId: `c${c}-${n}-${i}`,
          };
          batch.push(event);
          ledger.set(event.messageId, { event, phase: phase.name, state: 'unknown', resent: false });
        }
        await send(apis[turn++ % apis.length]!, batch);
        inFlight.set(phase.name, inFlight.get(phase.name)! - 1);
        await sleep(settings.thinkMs);
      }
    };
    load = Promise.all(Array.from({ length: settings.clients }, (_, c) => client(c))).then(() => undefined);

    /** Starts a phase once every call sent under the previous one has been answered. */
    const enter = async (name: string, fault: string): Promise<Phase> => {
      const previous = current;
      previous.endedAt = Date.now();
      current = { name, fault, startedAt: Date.now(), outcome: [], problems: [] };
      phases.push(current);
      await waitFor(async () => (inFlight.get(previous.name) ?? 0) === 0, 60_000, 10);
      log(`${((Date.now() - loadStartedAt) / 1000).toFixed(1)} s: ${fault}`);
      return current;
    };
    const settle = async (name: string) => {
      await enter(name, 'none (between faults)');
      await sleep(settings.settleMs);
    };
    const ready = async (m: Member) => {
      const response = await fetch(`${m.process!.url}/ready`).catch(() => undefined);
      return response
        ? ((await response.json()) as {
            status: string;
            checks: { streams?: { details?: { ingestDegradedSince?: string | null } } };
          })
        : undefined;
    };

    // The refreshers' race is watched over the whole run: each worker's last round, sampled.
    const refresherSeen = new Map<string, { led: number; refused: number }>();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const w of workers) {
          const state = await fetch(`${w.process?.url}/ready`)
            .then(
              (r) => r.json() as Promise<{ checks?: { rollups?: { details?: { lastRound?: { leader?: boolean } } } } }>,
            )
            .catch(() => undefined);
          const leader = state?.checks?.rollups?.details?.lastRound?.leader;
          if (leader === undefined) continue;
          const seen = refresherSeen.get(w.name) ?? { led: 0, refused: 0 };
          if (leader) seen.led++;
          else seen.refused++;
          refresherSeen.set(w.name, seen);
        }
        await sleep(50);
      }
    })();

    await sleep(settings.settleMs);
    for (let round = 1; round <= settings.rounds; round++) {
      const suffix = settings.rounds > 1 ? `-${round}` : '';

      // 1. A worker SIGKILLed mid-batch: the moment its next COPY reaches the proxy, that chunk
      //    is held (Postgres never sees it) and the process is killed.
      {
        const victim = workers[(round - 1) % workers.length]!;
        const phase = await enter(`worker-kill${suffix}`, `SIGKILL ${victim.name} mid-batch`);
        const pid = victim.process!.child.pid!;
        let killedAt = 0;
        const killed = new Promise<void>((resolve) => {
          victim.onPostgresChunk = (chunk) => {
            if (!chunk.includes('COPY event_copy_batch')) return;
            victim.onPostgresChunk = undefined;
            victim.postgres.pause();
            victim.process!.child.kill('SIGKILL');
            killedAt = Date.now();
            resolve();
          };
        });
        await Promise.race([killed, sleep(20_000).then(() => Promise.reject(new Error('no COPY within 20 s')))]);
        await victim.process!.exited;
        victim.postgres.resume();
        const held = await pendingOf(redis, keys, CONSUMER_GROUPS.persist, (consumer) => consumer.includes(`-${pid}-`));
        phase.focus = new Set(held.messageIds);
        phase.outcome.push(`${held.entries} persist entries pending for it`);
        const reclaimed = await waitFor(
          async () => (await pendingCount(redis, keys, CONSUMER_GROUPS.persist, `-${pid}-`)) === 0,
          30_000,
          100,
        ).then(
          () => true,
          () => false,
        );
        if (!reclaimed) phase.problems.push('the dead worker’s entries were not reclaimed in 30 s');
        else
          phase.outcome.push(
            `reclaimed by the other worker ${((Date.now() - killedAt) / 1000).toFixed(1)} s after the kill (claim idle 2 s)`,
          );
        await start(victim);
        phase.outcome.push('restarted');
      }
      await settle(`after-worker-kill${suffix}`);

      // 2. An API replica SIGKILLed with calls in flight: those answers are lost (unknown).
      {
        const victim = apis[(round - 1) % apis.length]!;
        const phase = await enter(`api-kill${suffix}`, `SIGKILL ${victim.name}`);
        await waitFor(async () => (inFlightByApi.get(victim) ?? 0) > 0, 10_000, 1);
        victim.process!.child.kill('SIGKILL');
        await victim.process!.exited;
        const gone = victim.process;
        victim.process = undefined;
        await sleep(1_000);
        await start(victim);
        phase.outcome.push(`killed with calls in flight, restarted (${gone ? 'pid ' + gone.child.pid : ''})`);
      }
      await settle(`after-api-kill${suffix}`);

      // 3. Redis unreachable for every process.
      {
        const phase = await enter(`redis-cut${suffix}`, `Redis cut ${settings.redisCutMs / 1000} s`);
        for (const m of members) m.redis.cut();
        await sleep(settings.redisCutMs);
        for (const m of members) m.redis.restore();
        // Degraded writes go on until each API has its connection back and has used it.
        const backIn = await waitFor(
          async () => {
            for (const api of apis) {
              const state = await ready(api);
              if (!state || state.status !== 'ok' || state.checks.streams?.details?.ingestDegradedSince) return false;
            }
            return true;
          },
          30_000,
          100,
        ).catch(() => undefined);
        if (backIn === undefined) phase.problems.push('the APIs did not leave degraded mode within 30 s');
        else phase.outcome.push(`APIs back on the stream ${(backIn / 1000).toFixed(1)} s after the restore`);
        // A client that did not trust its answers sends some of them again: they must come back
        // as duplicates with the ids first given, whichever API wrote them in degraded mode.
        const again = [...ledger.values()]
          .filter((e) => e.phase === phase.name && e.state === 'acknowledged')
          .slice(0, 10 * settings.batchSize);
        const firstIds = new Map(again.map((e) => [e.event.messageId, e.id]));
        for (let i = 0; i < again.length; i += settings.batchSize) {
          await send(
            apis[turn++ % apis.length]!,
            again.slice(i, i + settings.batchSize).map((e) => e.event),
          );
        }
        const renamed = again.filter((e) => e.state === 'acknowledged' && e.id !== firstIds.get(e.event.messageId));
        phase.outcome.push(
          `${again.length} acknowledged events sent again after it: ${again.length - renamed.length} answered as duplicates`,
        );
        if (renamed.length) phase.problems.push(`${renamed.length} retried events answered as new events`);
      }
      await settle(`after-redis-cut${suffix}`);

      // 4. Postgres unreachable for every process; meanwhile, a trim while the persist group
      //    has entries pending.
      {
        const phase = await enter(`postgres-cut${suffix}`, `Postgres cut ${settings.postgresCutMs / 1000} s`);
        const cutAt = Date.now();
        for (const m of members) m.postgres.cut();
        await sleep(Math.min(5_000, settings.postgresCutMs / 2));
        // A row of its own: no events are sent under it, it is about the entries pending now.
        const trimPhase: Phase = {
          name: `trim${suffix}`,
          fault: 'trim while entries are pending',
          startedAt: Date.now(),
          outcome: [],
          problems: [],
        };
        phases.push(trimPhase);
        const pending = await pendingOf(redis, keys, CONSUMER_GROUPS.persist, () => true);
        const before = await streamCounts(redis, keys);
        // The workers trim every 200 ms; wait for several of their rounds, then run one here too.
        await sleep(1_000);
        await trimOnce(redis, keys);
        const stillThere = await entriesPresent(redis, keys, pending.ids);
        const after = await streamCounts(redis, keys);
        trimPhase.focus = new Set(pending.messageIds);
        trimPhase.outcome.push(
          `${pending.entries} persist entries pending and ${after.unread} unread; ${after.trimmed - before.trimmed} ` +
            `entries trimmed meanwhile (${after.trimmed} in the run so far), all below the oldest pending one; ` +
            `${stillThere} of ${pending.entries} pending entries still in the stream`,
        );
        if (!after.floorKept) trimPhase.problems.push('entries at or after the oldest pending one were trimmed');
        if (pending.entries === 0) trimPhase.problems.push('nothing was pending: the trim was not tested');
        if (stillThere !== pending.entries)
          trimPhase.problems.push(`${pending.entries - stillThere} pending entries trimmed`);
        await sleep(Math.max(0, settings.postgresCutMs - (Date.now() - cutAt)));
        for (const m of members) m.postgres.restore();
        phase.outcome.push('persisting resumed');
      }
      await settle(`after-postgres-cut${suffix}`);

      // 5. Redis and Postgres frozen: traffic held, connections open.
      {
        const phase = await enter(`pause${suffix}`, `Redis and Postgres paused ${settings.pauseMs / 1000} s`);
        for (const m of members) {
          m.redis.pause();
          m.postgres.pause();
        }
        await sleep(settings.pauseMs);
        for (const m of members) {
          m.redis.resume();
          m.postgres.resume();
        }
        phase.outcome.push('traffic held, then delivered');
      }
      await settle(`after-pause${suffix}`);
    }

    // ---- the end: stop, resend what was not acknowledged, let everything drain
    const lastPhase = await enter('resend', 'none (resending)');
    stopLoad = true;
    await load;
    const notAcknowledged = [...ledger.values()].filter((e) => e.state !== 'acknowledged');
    const refused: Record<string, number> = {};
    let unknown = 0;
    for (const e of notAcknowledged) {
      if (e.state === 'unknown') unknown++;
      else refused[e.code ?? '?'] = (refused[e.code ?? '?'] ?? 0) + 1;
    }
    for (let attempt = 0; attempt < 20; attempt++) {
      const left = [...ledger.values()].filter((e) => e.state !== 'acknowledged');
      if (left.length === 0) break;
      for (let i = 0; i < left.length; i += settings.batchSize) {
        const chunk = left.slice(i, i + settings.batchSize);
        for (const e of chunk) e.resent = true;
        await send(
          apis[turn++ % apis.length]!,
          chunk.map((e) => e.event),
        );
      }
      if ([...ledger.values()].some((e) => e.state !== 'acknowledged')) await sleep(500);
    }
    lastPhase.endedAt = Date.now();
    const resent = [...ledger.values()].filter((e) => e.resent).length;
    const neverAcknowledged = [...ledger.values()].filter((e) => e.state !== 'acknowledged').length;
    if (neverAcknowledged) problems.push(`${neverAcknowledged} events never acknowledged, even resent`);
    log(`load stopped: ${ledger.size} events sent, ${notAcknowledged.length} resent; draining`);

    await waitFor(() => drained(redis, keys), 120_000, 200).catch(() =>
      problems.push('the stream groups did not drain within 120 s'),
    );
    await waitFor(
      async () => (await pool.query<{ n: number }>('SELECT count(*)::int AS n FROM rollup_dirty')).rows[0]!.n === 0,
      60_000,
      200,
    ).catch(() => problems.push('rollups still dirty after 60 s'));
    watching = false;
    await watcher;

    // ---- the checks
    const { rows: stored } = await pool.query<{ message_id: string; n: number }>(
      'SELECT message_id, count(*)::int AS n FROM events WHERE tenant_id = $1 GROUP BY message_id',
      [tenantId],
    );
    const storedCount = new Map(stored.map((r) => [r.message_id, r.n]));
    const extra = stored.filter((r) => !ledger.has(r.message_id));
    if (extra.length) problems.push(`${extra.length} stored messageIds nobody sent`);

    const windows = await compareLiveWindows(redis, keys, pool, tenantId, phases, loadStartedAt);
    const deadLetters = await explainDeadLetters(redis, keys, storedCount);
    problems.push(...deadLetters.problems);
    try {
      await assertStatisticsMatchEvents(
        apis[0]!.process!.url,
        KEY,
        pool,
        tenantId,
        new Date(startedAt - 3_600_000),
        new Date(Date.now() + 3_600_000),
      );
    } catch (err) {
      problems.push(`rollups differ from SQL: ${(err as Error).message.split('\n')[0]}`);
    }
    const lateEvents = (
      await Promise.all(
        workers.map(async (w) => {
          let n = 0;
          for (const window of Object.keys(WINDOW_MS))
            n += await scrapeMetric(w.process!.url, `late_events_total{window="${window}"}`);
          return n;
        }),
      )
    ).reduce((a, b) => a + b, 0);
    const leaderRounds = await Promise.all(
      workers.map(async (w) => scrapeMetric(w.process!.url, 'rollup_refresh_duration_seconds_count')),
    );

    // ---- per fault
    const countOf = (messageId: string) => storedCount.get(messageId) ?? 0;
    const faults: FaultOutcome[] = [];
    for (const phase of phases) {
      const sent = [...ledger.values()].filter((e) => e.phase === phase.name);
      const acknowledgedIds = new Set([
        ...sent.filter((e) => e.state === 'acknowledged').map((e) => e.event.messageId),
        ...(phase.focus ?? []),
      ]);
      let lost = 0;
      let doubled = 0;
      for (const id of acknowledgedIds) {
        const n = countOf(id);
        if (n === 0) lost++;
        if (n > 1) doubled++;
      }
      const w = windows.get(`chaos.${phase.name}`);
      const outcome = [...phase.outcome];
      const phaseProblems = [...phase.problems];
      const resentHere = sent.filter((e) => e.resent).length;
      if (resentHere) outcome.push(`${resentHere} not acknowledged at first, resent`);
      if (w) {
        if (w.differing.length === 0) outcome.push(`live windows = SQL (${w.compared})`);
        else if (phase.name.startsWith('redis-cut') && w.differing.every((d) => d.live <= d.sql)) {
          // README "Degraded mode": with Redis unreachable, events go to Postgres directly and
          // never through the stream, so the live windows cannot count them.
          const missing = w.differing.reduce((n, d) => n + d.sql - d.live, 0);
          outcome.push(`live windows = SQL less ${missing} events written in degraded mode (${w.compared})`);
          if (missing > sent.length) phaseProblems.push(`live windows miss ${missing} events, more than were sent`);
        } else {
          phaseProblems.push(
            `live windows differ from SQL: ${w.differing.map((d) => `${new Date(d.start).toISOString().slice(11, 16)} live ${d.live} sql ${d.sql}`).join(', ')}`,
          );
        }
      }
      if (lost) phaseProblems.push(`${lost} acknowledged events lost`);
      if (doubled) phaseProblems.push(`${doubled} acknowledged events stored twice`);
      faults.push({
        fault: phase.fault,
        when: `${((phase.startedAt - loadStartedAt) / 1000).toFixed(1)} s`,
        acknowledged: acknowledgedIds.size,
        lost,
        doubled,
        outcome: outcome.join('; '),
        problems: phaseProblems,
      });
    }
    const [a, b] = workers.map((w) => refresherSeen.get(w.name) ?? { led: 0, refused: 0 });
    const raced = {
      fault: 'two refreshers racing (both workers, every 100 ms)',
      when: 'whole run',
      acknowledged: 0,
      lost: 0,
      doubled: 0,
      outcome:
        `rounds led: ${leaderRounds.map((n, i) => `${workers[i]!.name} ${n}`).join(', ')} (since their last start); ` +
        `sampled last rounds: ${workers[0]!.name} led ${a!.led}/lock taken ${a!.refused}, ` +
        `${workers[1]!.name} led ${b!.led}/lock taken ${b!.refused}; rollups ${problems.some((p) => p.startsWith('rollups')) ? 'DIFFER from' : '='} SQL`,
      problems: problems.filter((p) => p.startsWith('rollups')),
    };
    faults.push(raced);

    const acknowledgedAll = [...ledger.values()].filter((e) => e.state === 'acknowledged');
    const lostAll = acknowledgedAll.filter((e) => countOf(e.event.messageId) === 0).length;
    const doubledAll = [...ledger.keys()].filter((id) => countOf(id) > 1).length;
    if (lostAll) problems.push(`${lostAll} acknowledged events lost`);
    if (doubledAll) problems.push(`${doubledAll} messageIds stored more than once`);
    if (lateEvents) problems.push(`${lateEvents} events came too late for their live windows`);
    const allProblems = [...faults.flatMap((f) => f.problems.map((p) => `${f.fault}: ${p}`)), ...problems];
    const totals = {
      sent: ledger.size,
      acknowledged: acknowledgedAll.length,
      refused,
      unknown,
      resent,
      stored: stored.reduce((n, r) => n + r.n, 0),
      lost: lostAll,
      doubled: doubledAll,
      windowsCompared: [...windows.values()].reduce((n, w) => n + w.compared, 0),
      deadLetters: deadLetters.count,
      durationS: Math.round((Date.now() - loadStartedAt) / 1000),
    };
    return { settings, faults, totals, problems: allProblems, table: formatTable(faults, totals, deadLetters.lines) };
  } finally {
    stopLoad = true;
    stopping = true;
    await load?.catch(() => undefined);
    for (const m of members) {
      m.redis.resume();
      m.postgres.resume();
      m.redis.restore();
      m.postgres.restore();
    }
    await Promise.all(
      members.map(async (m) => {
        if (!m.process || m.process.child.exitCode !== null || m.process.child.signalCode !== null) return;
        m.process.child.kill('SIGTERM');
        await Promise.race([m.process.exited, sleep(10_000)]);
        m.process.child.kill('SIGKILL');
      }),
    );
    await Promise.all(members.flatMap((m) => [m.redis.close(), m.postgres.close()]));
    redis.disconnect();
    await pool.end();
    await isolation.cleanup();
  }
}

const sum = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** Entries of a group pending for the matching consumers, with the messageIds they carry. */
async function pendingOf(
  redis: Redis,
  keys: StreamKeys,
  group: string,
  matches: (consumer: string) => boolean,
): Promise<{ entries: number; ids: [number, string][]; messageIds: string[] }> {
  const ids: [number, string][] = [];
  const messageIds: string[] = [];
  for (let p = 0; p < keys.partitions; p++) {
    const stream = keys.stream(p);
    const [, , , consumers] = (await redis.xpending(stream, group).catch(() => [0, null, null, null])) as [
      number,
      string | null,
      string | null,
      [string, string][] | null,
    ];
    for (const [consumer] of consumers ?? []) {
      if (!matches(consumer)) continue;
      const list = (await redis.xpending(stream, group, '-', '+', 100_000, consumer)) as [
        string,
        string,
        number,
        number,
      ][];
      for (const [id] of list) ids.push([p, id]);
      for (const [id] of list) {
        const entry = (await redis.xrange(stream, id, id))[0];
        const payload = entry ? pairsToRecord(entry[1]).e : undefined;
        if (payload) messageIds.push(decodeStreamEvent(String(payload)).messageId ?? '');
      }
    }
  }
  return { entries: ids.length, ids, messageIds };
}

/** Entries of a group pending for the consumers whose name contains `part`. */
async function pendingCount(redis: Redis, keys: StreamKeys, group: string, part: string): Promise<number> {
  let n = 0;
  for (let p = 0; p < keys.partitions; p++) {
    const [, , , consumers] = (await redis.xpending(keys.stream(p), group)) as [
      number,
      unknown,
      unknown,
      [string, string][] | null,
    ];
    for (const [consumer, count] of consumers ?? []) if (consumer.includes(part)) n += Number(count);
  }
  return n;
}

/** How many of these entries the streams still hold. */
async function entriesPresent(redis: Redis, keys: StreamKeys, ids: [number, string][]): Promise<number> {
  let present = 0;
  for (const [p, id] of ids) if ((await redis.xrange(keys.stream(p), id, id)).length === 1) present++;
  return present;
}

/**
 * Over the partitions: entries trimmed so far (added less still there), the persist group's unread
 * entries, and whether each stream still starts at or before its oldest pending persist entry.
 */
async function streamCounts(
  redis: Redis,
  keys: StreamKeys,
): Promise<{ trimmed: number; unread: number; floorKept: boolean }> {
  let trimmed = 0;
  let unread = 0;
  let floorKept = true;
  for (let p = 0; p < keys.partitions; p++) {
    const stream = keys.stream(p);
    const info = pairsToRecord((await redis.xinfo('STREAM', stream)) as unknown[]);
    trimmed += Number(info['entries-added']) - Number(info.length);
    const persist = ((await redis.xinfo('GROUPS', stream)) as unknown[][])
      .map((g) => pairsToRecord(g))
      .find((g) => g.name === CONSUMER_GROUPS.persist);
    unread += Number(persist?.lag ?? 0);
    const [, oldest] = (await redis.xpending(stream, CONSUMER_GROUPS.persist)) as [number, string | null];
    const first = (await redis.xrange(stream, '-', '+', 'COUNT', 1))[0]?.[0];
    if (oldest && (!first || compareStreamIds(first, oldest) > 0)) floorKept = false;
  }
  return { trimmed, unread, floorKept };
}

/** One round of the workers' own stream maintenance (trim included), run from here. */
async function trimOnce(redis: Redis, keys: StreamKeys): Promise<number> {
  const before = await Promise.all(Array.from({ length: keys.partitions }, (_, p) => redis.xlen(keys.stream(p))));
  const maintenance = createStreamMaintenanceWorker({
    redis,
    keys,
    metrics: createMetrics(),
    logger: createLogger({ log: { level: 'silent' } }),
    intervalMs: 60_000,
  });
  await maintenance.runOnce();
  const after = await Promise.all(Array.from({ length: keys.partitions }, (_, p) => redis.xlen(keys.stream(p))));
  return sum(before) - sum(after);
}

/** Every group of every partition has read and acknowledged everything. */
async function drained(redis: Redis, keys: StreamKeys): Promise<boolean> {
  for (let p = 0; p < keys.partitions; p++) {
    const stream = keys.stream(p);
    const info = pairsToRecord((await redis.xinfo('STREAM', stream)) as unknown[]);
    const groups = ((await redis.xinfo('GROUPS', stream)) as unknown[][]).map((g) => pairsToRecord(g));
    if (groups.length < Object.keys(CONSUMER_GROUPS).length) return false;
    for (const g of groups) {
      if (Number(g.pending) !== 0 || g['last-delivered-id'] !== info['last-generated-id']) return false;
    }
  }
  return true;
}

interface WindowComparison {
  compared: number;
  differing: { start: number; live: number; sql: number }[];
}

/**
 * Each phase's event type, per one-minute window of the run: the live window (count and sum,
 * merged over partitions, as metricUpdated reads it) against SQL over the persisted events.
 * Unique users are a HyperLogLog estimate, so they are compared within its error.
 */
async function compareLiveWindows(
  redis: Redis,
  keys: StreamKeys,
  pool: pg.Pool,
  tenantId: string,
  phases: Phase[],
  from: number,
): Promise<Map<string, WindowComparison>> {
  const store = createWindowStore(redis, keys, { graceMs: 30_000 });
  const out = new Map<string, WindowComparison>();
  const minute = WINDOW_MS.ONE_MINUTE;
  for (const phase of phases) {
    const type = `chaos.${phase.name}`;
    const { rows } = await pool.query<{ start: string; n: number; total: number | null; users: number }>(
      `SELECT (extract(epoch FROM date_trunc('minute', occurred_at)) * 1000)::bigint::text AS start,
              count(*)::int AS n, sum(value)::float8 AS total, count(DISTINCT user_id)::int AS users
       FROM events WHERE tenant_id = $1 AND type = $2 GROUP BY 1`,
      [tenantId, type],
    );
    const sql = new Map(rows.map((r) => [Number(r.start), r]));
    const comparison: WindowComparison = { compared: 0, differing: [] };
    for (let start = Math.floor(from / minute) * minute; start <= Date.now(); start += minute) {
      const live: WindowSnapshot = await store.read(tenantId, type, 'ONE_MINUTE', start);
      const expected = sql.get(start);
      if (live.count === 0 && !expected) continue;
      comparison.compared++;
      const sqlCount = expected?.n ?? 0;
      const sameSum = (live.sum ?? 0) === (expected?.total ?? 0);
      const users = expected?.users ?? 0;
      const sameUsers = Math.abs(live.uniqueUsers - users) <= Math.max(1, users * 0.02);
      if (live.count !== sqlCount || (live.count === sqlCount && (!sameSum || !sameUsers))) {
        comparison.differing.push({ start, live: live.count, sql: sqlCount });
      }
    }
    if (comparison.compared) out.set(type, comparison);
  }
  return out;
}

/** Dead letters, each explained when its event is stored once anyway; the rest are problems. */
async function explainDeadLetters(
  redis: Redis,
  keys: StreamKeys,
  storedCount: Map<string, number>,
): Promise<{ count: number; problems: string[]; lines: string[] }> {
  const problems: string[] = [];
  const lines: string[] = [];
  let count = 0;
  for (let p = 0; p < keys.partitions; p++) {
    for (const [, fields] of await redis.xrange(keys.deadLetters(p), '-', '+')) {
      count++;
      const letter = pairsToRecord(fields);
      let messageId = '';
      try {
        messageId = decodeStreamEvent(String(letter.e)).messageId ?? '';
      } catch {
        /* unparseable: stays unexplained */
      }
      const n = storedCount.get(messageId) ?? 0;
      if (n === 1) lines.push(`dead letter ${messageId}: ${String(letter.reason)}; stored once by another delivery`);
      else
        problems.push(`dead letter ${messageId || '(unparseable)'} (${String(letter.reason)}) and stored ${n} times`);
    }
  }
  return { count, problems, lines };
}

function formatTable(faults: FaultOutcome[], totals: ChaosReport['totals'], notes: string[]): string {
  const header = ['fault', 'when', 'acknowledged during', 'lost', 'doubled', 'outcome'];
  const rows = faults.map((f) => [
    f.fault,
    f.when,
    String(f.acknowledged),
    String(f.lost),
    String(f.doubled),
    f.outcome + (f.problems.length ? ` PROBLEMS: ${f.problems.join('; ')}` : ''),
  ]);
  const lines = [
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    `${totals.sent} events sent in ${totals.durationS} s, ${totals.acknowledged} acknowledged (after resending ` +
      `${totals.resent}: ${totals.unknown} unknown, refused ${JSON.stringify(totals.refused)}); ${totals.stored} rows stored; ` +
      `lost ${totals.lost}, doubled ${totals.doubled}; ${totals.windowsCompared} live windows compared; ` +
      `${totals.deadLetters} dead letters`,
    ...notes,
  ];
  return lines.join('\n');
}
