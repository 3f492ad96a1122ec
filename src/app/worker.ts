import type pg from 'pg';
import { createRollupRefresher } from '../analytics/rollup.refresher.js';
import type { QueryCache } from '../analytics/query-cache.js';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { createAggregateWorker } from '../realtime/aggregate.worker.js';
import { withStreamPositions } from '../realtime/stream-positions.js';
import type { RealtimeService } from '../realtime/realtime.service.js';
import { createWindowPublisher } from '../realtime/window.publisher.js';
import type { WindowStore } from '../realtime/window-store.js';
import type { LiveFeed } from '../realtime/live-feed.js';
import { createRedis, type Redis } from '../redis/create-redis.js';
import { createPersistWorker } from '../ingest/persist.worker.js';
import type { createStreamMaintenanceWorker } from '../streams/stream-maintenance.worker.js';
import type { StreamKeys } from '../redis/keys.js';

type StreamMaintenance = ReturnType<typeof createStreamMaintenanceWorker>;

/**
 * A background part of a process: started in list order, stopped together, and asked for its
 * state by `/ready`. gateway.ts registers every one in a single loop.
 */
export interface Worker {
  readonly name: string;
  start(): Promise<void>;
  stop(): Promise<void>;
  /** What `/ready` shows of it; absent when it has nothing to say. */
  readiness?(): unknown;
}

export interface StreamWorkersDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly pool: pg.Pool;
  readonly redis: Redis;
  readonly keys: StreamKeys;
  readonly windows: WindowStore;
  readonly feed: LiveFeed;
  readonly realtime: RealtimeService;
  readonly queryCache: QueryCache;
  /** Created by gateway.ts, since every role's /ready inspects the stream with it. */
  readonly maintenance: StreamMaintenance;
}

/**
 * The workers of ROLE=worker and ROLE=all: the two consumer groups of the event stream (persist
 * to Postgres; aggregate live windows, published throttled across replicas), the stream's
 * maintenance (trim, stale consumers) and the rollup refresher, which every replica runs while
 * an advisory lock inside picks the one that refreshes.
 */
export function createStreamWorkers(deps: StreamWorkersDeps): Worker[] {
  const { config, logger, metrics, pool, redis, keys, windows, feed, realtime, queryCache, maintenance } = deps;
  const connect = (name: string) => createRedis(config, logger, { name });

  const persist = createPersistWorker({ pool, connect, keys, config, logger, metrics });
  const publisher = createWindowPublisher(
    { redis, store: windows, feed, logger, metrics },
    { intervalMs: config.realtime.pushIntervalMs, graceMs: config.realtime.graceMs },
  );
  // The aggregate worker reports counted events without their stream positions, which
  // eventRecorded's cursors carry: this store remembers them (stream-positions.ts).
  const positions = withStreamPositions(windows);
  // What the worker counts goes out as window snapshots (throttled) and as events.
  const aggregate = createAggregateWorker(
    {
      connect,
      keys,
      store: positions.store,
      onApplied: ({ touched, events }) => {
        publisher.touched(touched);
        realtime
          .publishEvents(positions.positioned(events))
          .catch((err: unknown) => logger.warn({ err }, 'publishing events failed'));
      },
      logger,
      metrics,
    },
    { claimIdleMs: config.realtime.claimIdleMs },
  );
  const rollups = createRollupRefresher(
    { pool, logger, metrics },
    {
      intervalMs: config.rollups.refreshIntervalMs,
      maxStalenessMs: config.rollups.maxStalenessMs,
      retentionDays: config.rollups.retentionDays,
      onTenantRefreshed: (tenantId) => queryCache.invalidate(tenantId),
    },
  );

  return [
    // The persister finishes and acknowledges the batch it holds on stop; the rest stays pending.
    { name: 'persist', start: () => persist.start(), stop: () => persist.stop(), readiness: persist.readiness },
    {
      name: 'aggregate',
      start: () => aggregate.start(),
      // The publisher last, so the final deltas of the aggregator still go out.
      stop: () => aggregate.stop().then(() => publisher.stop()),
      readiness: aggregate.readiness,
    },
    { name: 'stream-maintenance', start: () => maintenance.start(), stop: () => maintenance.stop() },
    { name: 'rollups', start: () => rollups.start(), stop: () => rollups.stop(), readiness: rollups.readiness },
  ];
}
