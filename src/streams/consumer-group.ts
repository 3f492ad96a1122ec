import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';
import { consumerName, runConsumerLoop } from './consumer-loop.js';
import { deadLetter, type DeadLetter } from './dead-letter.js';
import { ensureGroup, fieldsOf, type StreamEntry } from './stream-entries.js';

/** How long an idle read blocks: bounds how long stop() waits for a loop to notice. */
const IDLE_BLOCK_MS = 500;

/** A batch one consumer read (or reclaimed) from one partition. */
export interface ConsumerBatch {
  readonly partition: number;
  /** The stream's name, for the handler's XACK. */
  readonly stream: string;
  /** The consumer's name in the group, for a handler that checks it still holds the entries. */
  readonly consumer: string;
  /** The loop's own connection. */
  readonly redis: Redis;
  readonly entries: StreamEntry[];
}

export interface ConsumerGroupDeps {
  /** Makes the dedicated connection each loop blocks on (partitions × concurrency of them). */
  readonly connect: (name: string) => Redis;
  readonly keys: StreamKeys;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

export interface ConsumerGroupOptions {
  readonly group: string;
  /** Entries per read (and per reclaim). */
  readonly batchSize: number;
  /** Once a first entry is read, keep reading for up to this long to fill the batch. 0: one read per batch. */
  readonly batchWaitMs: number;
  /** How long an entry may stay unacknowledged before another consumer takes it over. */
  readonly claimIdleMs: number;
  /**
   * Reclaimed entries delivered more often than this go to the partition's dead-letter stream
   * instead of the handler. Absent: never (a group whose handler acknowledges what it cannot use).
   */
  readonly maxDeliveries?: number;
  /** Consumers per partition in this process, each with its own name and connection. */
  readonly concurrency: number;
  readonly backoffMs: (failures: number) => number;
  /** Thrown by the handler to end its loop at once (the worker is stopping). */
  readonly isStop?: (err: unknown) => boolean;
  /**
   * Settles a batch: acknowledges what it handled, after making it durable. What it leaves
   * unacknowledged (by throwing, or by crashing) is delivered again, to this or another consumer.
   */
  readonly handle: (batch: ConsumerBatch) => Promise<void>;
}

/**
 * One consumer group over every partition of the event stream, the scaffold shared by the
 * persist and aggregate workers: per partition `concurrency` loops, each on its own connection,
 * that make sure the group exists, take over what dead consumers left pending (XAUTOCLAIM after
 * `claimIdleMs`, dead-lettering entries past `maxDeliveries`), and read new entries in batches
 * (XREADGROUP) for `handle`. Acknowledging is the handler's: only it knows when a batch is safe.
 */
export function createConsumerGroup(deps: ConsumerGroupDeps, options: ConsumerGroupOptions) {
  const { group, batchSize, batchWaitMs, handle } = options;
  const consumer = consumerName();
  const log = deps.logger.child({ worker: group, consumer });
  const connections: Redis[] = [];
  let running = false;
  let loops: Promise<void>[] = [];

  async function readBatch(redis: Redis, stream: string, me: string): Promise<StreamEntry[]> {
    const batch: StreamEntry[] = [];
    let deadline: number | undefined;
    // Wait up to IDLE_BLOCK_MS for a first entry, then fill the batch for at most batchWaitMs.
    while (running && batch.length < batchSize) {
      const block = deadline === undefined ? IDLE_BLOCK_MS : deadline - Date.now();
      if (block <= 0) break;
      const reply = (await redis.xreadgroup(
        'GROUP',
        group,
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
      if (batchWaitMs === 0) break;
      deadline ??= Date.now() + batchWaitMs;
    }
    return batch;
  }

  /** Takes over entries another consumer left pending for longer than claimIdleMs. */
  async function reclaim(redis: Redis, partition: number, me: string): Promise<void> {
    const stream = deps.keys.stream(partition);
    let cursor = '0-0';
    do {
      const [next, entries] = (await redis.xautoclaim(
        stream,
        group,
        me,
        options.claimIdleMs,
        cursor,
        'COUNT',
        batchSize,
      )) as [string, StreamEntry[], string[]];
      cursor = next;
      if (entries.length === 0) continue;
      log.info({ partition, entries: entries.length }, 'reclaimed pending entries of another consumer');
      let retry = entries;
      if (options.maxDeliveries !== undefined) {
        // XAUTOCLAIM counts as a delivery; XPENDING tells how many this entry has had in all.
        const pending = (await redis.xpending(
          stream,
          group,
          entries[0]![0],
          entries.at(-1)![0],
          entries.length,
          me,
        )) as [string, string, number, number][];
        const deliveries = new Map(pending.map(([id, , , count]) => [id, count]));
        const tooMany: DeadLetter[] = [];
        retry = [];
        for (const entry of entries) {
          const count = deliveries.get(entry[0]) ?? 1;
          if (count > options.maxDeliveries) {
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
        if (tooMany.length) await deadLetter(redis, deps.keys, partition, group, tooMany, deps.metrics);
      }
      if (retry.length) await handle({ partition, stream, consumer: me, redis, entries: retry });
    } while (running && cursor !== '0-0');
  }

  async function loop(partition: number, slot: number): Promise<void> {
    const me = `${consumer}-${partition}.${slot}`;
    const redis = deps.connect(`${group}-${partition}.${slot}`);
    connections.push(redis);
    const stream = deps.keys.stream(partition);
    await runConsumerLoop({
      redis,
      running: () => running,
      idleBlockMs: IDLE_BLOCK_MS,
      maintainEveryMs: Math.max(100, Math.min(options.claimIdleMs / 2, 5_000)),
      maintain: async () => {
        await ensureGroup(redis, stream, group);
        await reclaim(redis, partition, me);
      },
      step: async () => {
        const entries = await readBatch(redis, stream, me);
        if (entries.length) await handle({ partition, stream, consumer: me, redis, entries });
      },
      backoffMs: options.backoffMs,
      ...(options.isStop ? { isStop: options.isStop } : {}),
      // Redis unreachable, or the handler failed: it acknowledged nothing; back off and read again.
      log: log.child({ partition }),
      failureMessage: `${group} loop failed; retrying`,
    });
  }

  return {
    consumer,
    log,
    isRunning: () => running,
    async start(): Promise<void> {
      running = true;
      loops = Array.from({ length: deps.keys.partitions * options.concurrency }, (_, i) =>
        loop(i % deps.keys.partitions, Math.floor(i / deps.keys.partitions)),
      );
    },
    /** Lets each loop finish (and acknowledge) the batch it holds, then closes the connections. */
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      for (const redis of connections) redis.disconnect();
    },
  };
}

export type ConsumerGroup = ReturnType<typeof createConsumerGroup>;
