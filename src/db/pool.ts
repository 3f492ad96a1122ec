import pg from 'pg';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';

export type Pool = pg.Pool;

export interface PoolOptions {
  /** Shown in pg_stat_activity.application_name. Default `analytics-gateway`. */
  readonly name?: string;
  /**
   * Plan every prepared statement once per connection, for any parameters (plan_cache_mode =
   * force_generic_plan). For statements over the partitioned events table, planning costs more
   * than running: with ~100 day partitions and their indexes Postgres spends 6–9 ms planning a
   * query that then runs in under 1 ms, and its own choice stays with custom plans because a
   * generic plan's estimate counts every partition. A generic plan prunes partitions when it
   * starts (parameters) and per rescan (LATERAL values) instead. Only for a pool whose callers
   * name their statements and pass parameters that do not change which plan is right. Default off.
   */
  readonly genericPlans?: boolean;
  /** The server to connect to, when not `config.database.url` (a read replica). */
  readonly url?: string;
}

export function createPool(config: Pick<Config, 'database'>, logger: Logger, options: PoolOptions = {}): pg.Pool {
  const pool = new pg.Pool({
    connectionString: options.url ?? config.database.url,
    max: config.database.poolMax,
    // Fail fast when Postgres is unreachable so callers can answer SERVICE_UNAVAILABLE (or fall
    // back) instead of queueing requests behind a dead connection attempt.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: options.name ?? 'analytics-gateway',
    // Day arithmetic in SQL (interval '1 day', generate_series) follows the session time zone;
    // buckets and partitions are UTC days whatever the server's default.
    options: `-c timezone=UTC${options.genericPlans ? ' -c plan_cache_mode=force_generic_plan' : ''}`,
  });
  // An idle client losing its connection emits here; without a listener it would crash the process.
  pool.on('error', (err) => logger.warn({ err }, 'idle postgres connection failed'));
  return pool;
}
