import pg from 'pg';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';

export type Pool = pg.Pool;

export function createPool(config: Pick<Config, 'database'>, logger: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: config.database.url,
    max: config.database.poolMax,
    // Fail fast when Postgres is unreachable so callers can answer SERVICE_UNAVAILABLE (or fall
    // back) instead of queueing requests behind a dead connection attempt.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: 'analytics-gateway',
    // Day arithmetic in SQL (interval '1 day', generate_series) follows the session time zone;
    // buckets and partitions are UTC days whatever the server's default.
    options: '-c timezone=UTC',
  });
  // An idle client losing its connection emits here; without a listener it would crash the process.
  pool.on('error', (err) => logger.warn({ err }, 'idle postgres connection failed'));
  return pool;
}
