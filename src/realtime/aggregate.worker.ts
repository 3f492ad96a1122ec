import { decodeStreamEvent, type StreamEvent } from '../ingest/stream-event.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { consumerName, runConsumerLoop } from '../streams/consumer-loop.js';
import { ensureGroup, fieldsOf, type StreamEntry } from '../streams/stream-entries.js';
import { CONSUMER_GROUPS, type StreamKeys } from '../redis/keys.js';
import type { AggregateEntry, TouchedWindow, WindowStore } from './window-store.js';

const GROUP = CONSUMER_GROUPS.aggregate;
/** How long an idle read blocks: bounds how long stop() waits for a loop to notice. */
const IDLE_BLOCK_MS = 500;
const BATCH_SIZE = 1_000;

export interface AggregateWorkerOptions {
  /** How long an entry may stay unacknowledged before another consumer takes it over (AGGREGATE_CLAIM_IDLE_MS). */
  readonly claimIdleMs: number;
}

/**
 * The "aggregate" consumer group: keeps the live windows of every tenant in Redis. Each batch is
 * counted and acknowledged in one script (window-store.ts), so the windows hold every entry
 * exactly once on any number of replicas; entries a dead consumer held are taken over with
 * XAUTOCLAIM. Events later than a window's grace period count in the `late_events_total` metric
 * instead (they are still persisted by the persist group).
 */
export function createAggregateWorker(
  deps: {
    readonly connect: (name: string) => Redis;
    readonly keys: StreamKeys;
    readonly store: WindowStore;
    /** Told of the windows each batch changed, and of its events (eventRecorded). */
    readonly onApplied?: (result: { touched: TouchedWindow[]; events: StreamEvent[] }) => void;
    readonly logger: Logger;
    readonly metrics: Metrics;
  },
  options: AggregateWorkerOptions,
) {
  const { keys, store, metrics } = deps;
  const consumer = consumerName();
  const log = deps.logger.child({ worker: 'aggregate', consumer });
  const connections: Redis[] = [];
  let running = false;
  let loops: Promise<void>[] = [];
  let lastAppliedAt: number | undefined;

  async function applyBatch(partition: number, me: string, entries: StreamEntry[]): Promise<void> {
    const started = performance.now();
    const parsed: AggregateEntry[] = entries.map(([entryId, raw]) => {
      try {
        return { entryId, event: decodeStreamEvent(fieldsOf(raw).e ?? '') };
      } catch {
        return { entryId, event: null };
      }
    });
    const result = await store.apply(partition, GROUP, me, parsed);
    const { late, applied } = result;
    for (const [window, n] of late) metrics.lateEvents.inc({ window }, n);
    const done = Date.now();
    for (const [window, receivedAt] of result.newest) metrics.aggregateLag.set({ window }, (done - receivedAt) / 1000);
    deps.onApplied?.(result);
    metrics.eventsAggregated.inc(applied);
    metrics.aggregateBatchDuration.observe((performance.now() - started) / 1000);
    lastAppliedAt = Date.now();
  }

  async function loop(partition: number): Promise<void> {
    const me = `${consumer}-${partition}`;
    const redis = deps.connect(`aggregate-${partition}`);
    connections.push(redis);
    const stream = keys.stream(partition);
    await runConsumerLoop({
      redis,
      running: () => running,
      idleBlockMs: IDLE_BLOCK_MS,
      maintainEveryMs: Math.max(100, Math.min(options.claimIdleMs / 2, 5_000)),
      maintain: async () => {
        await ensureGroup(redis, stream, GROUP);
        let cursor = '0-0';
        do {
          const [next, claimed] = (await redis.xautoclaim(
            stream,
            GROUP,
            me,
            options.claimIdleMs,
            cursor,
            'COUNT',
            BATCH_SIZE,
          )) as [string, StreamEntry[]];
          cursor = next;
          if (claimed.length) await applyBatch(partition, me, claimed);
        } while (running && cursor !== '0-0');
      },
      step: async () => {
        const reply = (await redis.xreadgroup(
          'GROUP',
          GROUP,
          me,
          'COUNT',
          BATCH_SIZE,
          'BLOCK',
          IDLE_BLOCK_MS,
          'STREAMS',
          stream,
          '>',
        )) as [string, StreamEntry[]][] | null;
        const entries = reply?.[0]?.[1] ?? [];
        if (entries.length) await applyBatch(partition, me, entries);
      },
      // A failed script counted and acknowledged nothing: the entries stay pending.
      backoffMs: (failures) => Math.min(5_000, 100 * 2 ** Math.min(failures, 6)),
      log: log.child({ partition }),
      failureMessage: 'aggregate loop failed; retrying',
    });
  }

  return {
    async start(): Promise<void> {
      running = true;
      loops = Array.from({ length: keys.partitions }, (_, partition) => loop(partition));
    },
    async stop(): Promise<void> {
      running = false;
      await Promise.all(loops);
      for (const redis of connections) redis.disconnect();
    },
    readiness: () => ({ consumer, lastAppliedAt }),
  };
}

export type AggregateWorker = ReturnType<typeof createAggregateWorker>;
