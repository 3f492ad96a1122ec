import type pg from 'pg';
import type { Config } from '../config/config.js';
import { closePool, createPool } from '../db/pool.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { closeRedis, createRedis, type Redis } from '../redis/create-redis.js';

/** The connections to Postgres and Redis of one process, and how they close. */
export interface Stores {
  /** Writes and everything but the query API's reads. */
  readonly pool: pg.Pool;
  /** Event reads with generic plans (db/pool.ts), on DATABASE_READ_URL when set. */
  readonly eventReadPool: pg.Pool;
  /** The query API's other reads, on DATABASE_READ_URL; absent without one (they use `pool`). */
  readonly readPool?: pg.Pool;
  /** Every pool by the name the db_* metrics and systemStatus give it. */
  readonly pools: Readonly<Record<string, pg.Pool>>;
  readonly redis: Redis;
  /** Dedicated connections: once subscribed, a connection can run no other command. */
  readonly authSubscriber: Redis;
  readonly liveSubscriber: Redis;
  /** After the drain: what still holds a connection served a request the drain has cut, so not waited for long. */
  close(): Promise<void>;
}

/** Connections open on first use, so a worker-only process never opens the read pools. */
export function connectStores(config: Config, logger: Logger, metrics: Metrics): Stores {
  const pool = createPool(config, logger, { metrics, label: 'main' });
  // The query API's reads (src/analytics/analytics.service.ts) go to DATABASE_READ_URL when set.
  const readUrl = config.database.readUrl;
  const eventReadPool = createPool(config, logger, {
    name: 'analytics-gateway-event-reads',
    label: 'event_reads',
    genericPlans: true,
    url: readUrl,
    metrics,
  });
  const readPool = readUrl
    ? createPool(config, logger, { name: 'analytics-gateway-reads', label: 'reads', url: readUrl, metrics })
    : undefined;
  const redis = createRedis(config, logger, { name: 'commands' });
  const authSubscriber = createRedis(config, logger, { name: 'auth-subscriber', queueWhileDisconnected: true });
  const liveSubscriber = createRedis(config, logger, { name: 'live-subscriber', queueWhileDisconnected: true });
  const pools = { main: pool, event_reads: eventReadPool, ...(readPool ? { reads: readPool } : {}) };
  return {
    pool,
    eventReadPool,
    readPool,
    pools,
    redis,
    authSubscriber,
    liveSubscriber,
    async close() {
      await Promise.all([
        closeRedis(redis),
        closeRedis(authSubscriber),
        closeRedis(liveSubscriber),
        ...Object.values(pools).map((p) => closePool(p, { forceAfterMs: 1_000 })),
      ]);
    },
  };
}
