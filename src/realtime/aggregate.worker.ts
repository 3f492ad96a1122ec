import { decodeStreamEvent, type StreamEvent } from '../ingest/stream-event.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { createConsumerGroup, type ConsumerBatch } from '../streams/consumer-group.js';
import { fieldsOf } from '../streams/stream-entries.js';
import { CONSUMER_GROUPS, type StreamKeys } from '../redis/keys.js';
import type { AggregateEntry, TouchedWindow, WindowStore } from './window-store.js';

const GROUP = CONSUMER_GROUPS.aggregate;
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
  const { store, metrics } = deps;
  let lastAppliedAt: number | undefined;
  // One consumer per partition, each batch applied in one read: the script's cost grows with the
  // windows a batch touches, not its events, so waiting to fill a batch would only add latency.
  const group = createConsumerGroup(deps, {
    group: GROUP,
    batchSize: BATCH_SIZE,
    batchWaitMs: 0,
    claimIdleMs: options.claimIdleMs,
    // No dead-lettering here: the batch script acknowledges entries it cannot count, and replaying
    // a dead letter would count it twice (the persist group dead-letters poison events).
    concurrency: 1,
    // A failed script counted and acknowledged nothing: the entries stay pending.
    backoffMs: (failures) => Math.min(5_000, 100 * 2 ** Math.min(failures, 6)),
    handle: (batch) => applyBatch(batch),
  });

  async function applyBatch({ partition, consumer: me, entries }: ConsumerBatch): Promise<void> {
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

  return {
    start: () => group.start(),
    stop: () => group.stop(),
    readiness: () => ({ consumer: group.consumer, lastAppliedAt }),
  };
}

export type AggregateWorker = ReturnType<typeof createAggregateWorker>;
