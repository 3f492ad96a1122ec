import { setTimeout as sleep } from 'node:timers/promises';
import type pg from 'pg';
import type { Config } from '../config/config.js';
import { EventRepository } from './event.repository.js';
import { decodeStreamEvent, type StreamEvent } from './stream-event.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { createConsumerGroup, type ConsumerBatch } from '../streams/consumer-group.js';
import { CONSUMER_GROUPS, type StreamKeys } from '../redis/keys.js';
import { fieldsOf } from '../streams/stream-entries.js';
import { deadLetter, type DeadLetter } from '../streams/dead-letter.js';

const GROUP = CONSUMER_GROUPS.persist;

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
 * Ordering is the whole contract: a batch is written in one transaction (PERSIST_MODE: COPY into
 * a staging table and one INSERT from it, or one INSERT of unnest(arrays)), and its entries are
 * acknowledged (XACK) only after that transaction has committed. A crash before the XACK leaves
 * them pending; this or another process reclaims them (XAUTOCLAIM after PERSIST_CLAIM_IDLE_MS)
 * and writes them again, and the repository's keys skip what the first attempt had stored.
 * While Postgres fails, the batch is retried with capped exponential backoff and nothing is
 * acknowledged. An entry that cannot be parsed, that Postgres refuses, or that has been delivered
 * more than PERSIST_MAX_DELIVERIES times goes to the partition's dead-letter stream instead.
 */
export function createPersistWorker(deps: PersistWorkerDeps) {
  const { keys, config, metrics } = deps;
  const repository = new EventRepository(deps.pool);
  let lastCommitAt: number | undefined;
  let failingSince: number | undefined;

  /** Capped exponential backoff: 100 ms, 200 ms, … up to PERSIST_RETRY_MAX_MS. */
  const backoffMs = (attempt: number) => Math.min(config.persist.retryMaxMs, 100 * 2 ** Math.min(attempt, 20));

  // PERSIST_CONCURRENCY consumers per partition (distinct names): while one waits for its INSERT
  // to commit, another reads and writes the next batch, so Postgres and Redis round trips overlap.
  const group = createConsumerGroup(deps, {
    group: GROUP,
    batchSize: config.persist.batchSize,
    batchWaitMs: config.persist.batchWaitMs,
    claimIdleMs: config.persist.claimIdleMs,
    maxDeliveries: config.persist.maxDeliveries,
    concurrency: config.persist.concurrency,
    backoffMs,
    isStop: (err) => err instanceof Stopping,
    handle: (batch) => processBatch(batch),
  });
  const log = group.log;

  /** Writes what can be written; returns the entries Postgres refused, each with its reason. */
  async function insertIsolatingRejects(items: Parsed[]): Promise<{ stored: number; rejected: DeadLetter[] }> {
    try {
      const events = items.map((i) => i.event);
      const stored =
        config.persist.mode === 'copy'
          ? await repository.insertCountByCopy(events)
          : await repository.insertCount(events);
      return { stored, rejected: [] };
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

  /**
   * `hold` runs every third of PERSIST_CLAIM_IDLE_MS from the first failure on: the batch stays
   * this consumer's while it retries, instead of passing to every other consumer in turn (each
   * XAUTOCLAIM a delivery) and into the dead letters after PERSIST_MAX_DELIVERIES of them, though
   * nothing is wrong with it but Postgres being down.
   */
  async function insertWithRetry(
    items: Parsed[],
    hold: () => Promise<unknown>,
  ): Promise<{ stored: number; rejected: DeadLetter[] }> {
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      return await retrying(items, () => {
        if (heartbeat) return;
        void hold();
        heartbeat = setInterval(() => void hold(), Math.max(50, config.persist.claimIdleMs / 3));
      });
    } finally {
      clearInterval(heartbeat);
    }
  }

  async function retrying(items: Parsed[], onFailure: () => void): Promise<{ stored: number; rejected: DeadLetter[] }> {
    for (let attempt = 0; ; attempt++) {
      try {
        const result = await insertIsolatingRejects(items);
        if (failingSince !== undefined) log.info('postgres writes succeed again');
        failingSince = undefined;
        return result;
      } catch (err) {
        onFailure();
        failingSince ??= Date.now();
        metrics.persistRetries.inc();
        const delay = backoffMs(attempt);
        log.warn(
          { err, attempt, retryInMs: delay, events: items.length },
          'writing events to postgres failed; retrying',
        );
        // Full jitter, so replicas recovering together do not hit Postgres in lockstep.
        await sleep(delay / 2 + Math.random() * (delay / 2));
        if (!group.isRunning()) throw new Stopping();
      }
    }
  }

  async function processBatch({ redis, partition, stream, consumer, entries }: ConsumerBatch): Promise<void> {
    const started = performance.now();
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
    // XCLAIM to itself with JUSTID resets the entries' idle time without counting a delivery; if
    // this process dies, they go idle again and are reclaimed as before.
    const hold = () =>
      redis.xclaim(stream, GROUP, consumer, 0, ...parsed.map((p) => p.entryId), 'JUSTID').catch(() => undefined);
    const { stored, rejected } = parsed.length ? await insertWithRetry(parsed, hold) : { stored: 0, rejected: [] };
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

  return {
    start: () => group.start(),
    /**
     * Lets each loop finish (and acknowledge) the batch it holds; a batch Postgres cannot take is
     * abandoned at the next retry and stays pending, to be reclaimed.
     */
    stop: () => group.stop(),
    readiness: () => ({ consumer: group.consumer, lastCommitAt, failingSince }),
  };
}

export type PersistWorker = ReturnType<typeof createPersistWorker>;
