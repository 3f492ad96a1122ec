import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Config } from '../config/config.js';
import { EventRepository } from './event.repository.js';
import { decodeStreamEvent, type StreamEvent } from './stream-event.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { consumerName, runConsumerLoop } from '../streams/consumer-loop.js';
import { CONSUMER_GROUPS, type StreamKeys } from '../redis/keys.js';
import { ensureGroup, fieldsOf, type StreamEntry } from '../streams/stream-entries.js';
import { deadLetter, type DeadLetter } from '../streams/dead-letter.js';

const GROUP = CONSUMER_GROUPS.persist;
/** How long an idle read blocks: bounds how long stop() waits for a loop to notice. */
const IDLE_BLOCK_MS = 500;

export interface PersistWorkerDeps {
  readonly pool: pg.Pool;
  /** Makes the dedicated connection each loop blocks on (partitions × PERSIST_CONCURRENCY of them). */
  readonly connect: (name: string) => Redis;
  readonly keys: StreamKeys;
  readonly config: Pick<Config, 'persist'>;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

interface Parsed {
  readonly entryId: string;
  readonly tenant: string;
  readonly payload: string;
  readonly event: StreamEvent;
}

/** Postgres refused the data itself (bad value, constraint, trigger): retrying the same row cannot help. */
function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' && (code.startsWith('22') || code.startsWith('23') || code.startsWith('P0'));
}

class Stopping extends Error {}

/**
 * The "persist" consumer group: moves events from the stream into Postgres.
 *
 * Ordering is the whole contract: a batch is written in one statement, and its entries are
 * acknowledged (XACK) only after that statement has committed. A crash before the XACK leaves
 * them pending; this or another process reclaims them (XAUTOCLAIM after PERSIST_CLAIM_IDLE_MS)
 * and writes them again, and the repository's keys skip what the first attempt had stored.
 * While Postgres fails, the batch is retried with capped exponential backoff and nothing is
 * acknowledged. An entry that cannot be parsed, that Postgres refuses, or that has been delivered
 * more than PERSIST_MAX_DELIVERIES times goes to the partition's dead-letter stream instead.
 */
export function createPersistWorker(deps: PersistWorkerDeps) {
  const { keys, config, metrics } = deps;
  const repository = new EventRepository(deps.pool);
  const consumer = consumerName();
  const log = deps.logger.child({ worker: 'persist', consumer });
  const connections: Redis[] = [];
  let running = false;
  let loops: Promise<void>[] = [];
  let lastCommitAt: number | undefined;
  let failingSince: number | undefined;

  /** Capped exponential backoff: 100 ms, 200 ms, … up to PERSIST_RETRY_MAX_MS. */
  const backoffMs = (attempt: number) => Math.min(config.persist.retryMaxMs, 100 * 2 ** Math.min(attempt, 20));

  async function readBatch(redis: Redis, stream: string, me: string): Promise<StreamEntry[]> {
    const { batchSize, batchWaitMs } = config.persist;
    const batch: StreamEntry[] = [];
    let deadline: number | undefined;
    // Wait up to IDLE_BLOCK_MS for a first entry, then fill the batch for at most PERSIST_BATCH_WAIT_MS.
    while (running && batch.length < batchSize) {
      const block = deadline === undefined ? IDLE_BLOCK_MS : deadline - Date.now();
      if (block <= 0) break;
      const reply = (await redis.xreadgroup(
        'GROUP',
        GROUP,
        me,
        'COUNT',
        batchSize - batch.length,
        'BLOCK',
        block,
        'STREAMS',
        stream,
        '>',
      )) as [string, StreamEntry[]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      // Nothing new: return, even empty, so the caller gets to reclaim other consumers' entries.
      if (entries.length === 0) break;
      batch.push(...entries);
      deadline ??= Date.now() + batchWaitMs;
    }
    return batch;
  }

  /** Writes what can be written; returns the entries Postgres refused, each with its reason. */
  async function insertIsolatingRejects(items: Parsed[]): Promise<{ stored: number; rejected: DeadLetter[] }> {
    try {
      return { stored: await repository.insertCount(items.map((i) => i.event)), rejected: [] };
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (items.length === 1) {
        const item = items[0]!;
        const reason = `rejected: ${(err as Error).message}`;
        return {
          stored: 0,
          rejected: [{ entryId: item.entryId, tenant: item.tenant, payload: item.payload, reason, kind: 'rejected' }],
        };
      }
      // Halve until the refused rows are alone; the others are stored on the way.
      const middle = Math.ceil(items.length / 2);
      const left = await insertIsolatingRejects(items.slice(0, middle));
      const right = await insertIsolatingRejects(items.slice(middle));
      return { stored: left.stored + right.stored, rejected: [...left.rejected, ...right.rejected] };
    }
  }

  async function insertWithRetry(items: Parsed[]): Promise<{ stored: number; rejected: DeadLetter[] }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await insertIsolatingRejects(items);
        if (failingSince !== undefined) log.info('postgres writes succeed again');
        failingSince = undefined;
        return result;
      } catch (err) {
        failingSince ??= Date.now();
        metrics.persistRetries.inc();
        const delay = backoffMs(attempt);
        log.warn(
          { err, attempt, retryInMs: delay, events: items.length },
          'writing events to postgres failed; retrying',
        );
        // Full jitter, so replicas recovering together do not hit Postgres in lockstep.
        await sleep(delay / 2 + Math.random() * (delay / 2));
        if (!running) throw new Stopping();
      }
    }
  }

  async function processBatch(redis: Redis, partition: number, entries: StreamEntry[]): Promise<void> {
    const started = performance.now();
    const stream = keys.stream(partition);
    const parsed: Parsed[] = [];
    const dead: DeadLetter[] = [];
    const ackOnly: string[] = [];
    for (const [entryId, raw] of entries) {
      const fields = fieldsOf(raw);
      const payload = fields.e ?? '';
      if (fields.p === '1') {
        ackOnly.push(entryId); // INGEST_ACK=postgres: already committed before it was published
        continue;
      }
      try {
        parsed.push({ entryId, tenant: fields.t ?? '', payload, event: decodeStreamEvent(payload) });
      } catch (err) {
        dead.push({
          entryId,
          tenant: fields.t ?? '',
          payload,
          reason: `unparseable: ${(err as Error).message}`,
          kind: 'unparseable',
        });
      }
    }
    const { stored, rejected } = parsed.length ? await insertWithRetry(parsed) : { stored: 0, rejected: [] };
    dead.push(...rejected);
    // Only now, after COMMIT: acknowledge everything this batch settled.
    const rejectedIds = new Set(rejected.map((r) => r.entryId));
    const ids = [...ackOnly, ...parsed.filter((p) => !rejectedIds.has(p.entryId)).map((p) => p.entryId)];
    if (dead.length) await deadLetter(redis, keys, partition, GROUP, dead, metrics);
    if (ids.length) await redis.xack(stream, GROUP, ...ids);
    lastCommitAt = Date.now();
    const settled = parsed.length - rejected.length;
    metrics.eventsPersisted.inc({ outcome: 'stored' }, stored);
    if (settled > stored) metrics.eventsPersisted.inc({ outcome: 'skipped' }, settled - stored);
    metrics.persistBatchSize.observe(entries.length);
    metrics.persistBatchDuration.observe((performance.now() - started) / 1000);
  }

  /** Takes over entries another consumer left pending for longer than PERSIST_CLAIM_IDLE_MS. */
  async function reclaim(redis: Redis, partition: number, me: string): Promise<void> {
    const stream = keys.stream(partition);
    let cursor = '0-0';
    do {
      const [next, entries] = (await redis.xautoclaim(
        stream,
        GROUP,
        me,
        config.persist.claimIdleMs,
        cursor,
        'COUNT',
        config.persist.batchSize,
      )) as [string, StreamEntry[], string[]];
      cursor = next;
      if (entries.length === 0) continue;
      log.info({ partition, entries: entries.length }, 'reclaimed pending entries of another consumer');
      // XAUTOCLAIM counts as a delivery; XPENDING tells how many this entry has had in all.
      const pending = (await redis.xpending(stream, GROUP, entries[0]![0], entries.at(-1)![0], entries.length, me)) as [
        string,
        string,
        number,
        number,
      ][];
      const deliveries = new Map(pending.map(([id, , , count]) => [id, count]));
      const tooMany: DeadLetter[] = [];
      const retry: StreamEntry[] = [];
      for (const entry of entries) {
        const count = deliveries.get(entry[0]) ?? 1;
        if (count > config.persist.maxDeliveries) {
          const fields = fieldsOf(entry[1]);
          tooMany.push({
            entryId: entry[0],
            tenant: fields.t ?? '',
            payload: fields.e ?? '',
            reason: `delivered ${count} times without being acknowledged`,
            kind: 'max_deliveries',
          });
        } else {
          retry.push(entry);
        }
      }
      if (tooMany.length) await deadLetter(redis, keys, partition, GROUP, tooMany, metrics);
      if (retry.length) await processBatch(redis, partition, retry);
    } while (running && cursor !== '0-0');
  }

  /**
   * One consumer of the group reading one partition. With PERSIST_CONCURRENCY > 1, several run per
   * partition (distinct consumer names): while one waits for its INSERT to commit, another reads
   * and writes the next batch, so Postgres and Redis round trips overlap.
   */
  async function loop(partition: number, slot: number): Promise<void> {
    const me = `${consumer}-${partition}.${slot}`;
    const redis = deps.connect(`persist-${partition}.${slot}`);
    connections.push(redis);
    const stream = keys.stream(partition);
    await runConsumerLoop({
      redis,
      running: () => running,
      idleBlockMs: IDLE_BLOCK_MS,
      maintainEveryMs: Math.max(100, Math.min(config.persist.claimIdleMs / 2, 5_000)),
      maintain: async () => {
        await ensureGroup(redis, stream, GROUP);
        await reclaim(redis, partition, me);
      },
      step: async () => {
        const batch = await readBatch(redis, stream, me);
        if (batch.length) await processBatch(redis, partition, batch);
      },
      backoffMs,
      isStop: (err) => err instanceof Stopping,
      // Redis unreachable (or a bug): nothing was acknowledged; back off and read again.
      log: log.child({ partition }),
      failureMessage: 'persist loop failed; retrying',
    });
  }

  return {
    async start(): Promise<void> {
      running = true;
      loops = Array.from({ length: keys.partitions * config.persist.concurrency }, (_, i) =>
        loop(i % keys.partitions, Math.floor(i / keys.partitions)),
      );
    },
    /**
     * Lets each loop finish (and acknowledge) the batch it holds; a batch Postgres cannot take is
     * abandoned at the next retry and stays pending, to be reclaimed.
     */
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      for (const redis of connections) redis.disconnect();
    },
    readiness: () => ({ consumer, lastCommitAt, failingSince }),
  };
}

export type PersistWorker = ReturnType<typeof createPersistWorker>;
