import pg from 'pg';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from '../observability/logger.js';

const DUPLICATE_DATABASE = '42P04';
const UNIQUE_VIOLATION = '23505';

/**
 * Creates the database named in `databaseUrl` when it does not exist, by connecting to the
 * server's `postgres` maintenance database. Safe when several replicas start at once: the loser
 * of the CREATE race sees "already exists" and carries on.
 */
export async function ensureDatabase(databaseUrl: string, logger: Logger): Promise<void> {
  const target = new URL(databaseUrl);
  const name = decodeURIComponent(target.pathname.slice(1));
  const maintenance = new URL(databaseUrl);
  maintenance.pathname = '/postgres';

  const client = new pg.Client({ connectionString: maintenance.toString(), connectionTimeoutMillis: 5_000 });
  await client.connect();
  try {
    const { rowCount } = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount) return;
    await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
    logger.info({ database: name }, 'created database');
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code !== DUPLICATE_DATABASE && code !== UNIQUE_VIOLATION) throw err;
  } finally {
    await client.end();
  }
}

/**
 * Retries `attempt` with capped exponential backoff until it succeeds or `timeoutMs` has passed,
 * so a gateway started alongside its database (compose, CI) waits for it instead of exiting.
 */
export async function retryUntil<T>(
  what: string,
  timeoutMs: number,
  logger: Logger,
  attempt: () => Promise<T>,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let delay = 200;
  for (;;) {
    try {
      return await attempt();
    } catch (err) {
      if (Date.now() + delay > deadline) throw err;
      logger.warn({ err, retryInMs: delay }, `${what} failed; retrying`);
      await sleep(delay);
      delay = Math.min(delay * 2, 5_000);
    }
  }
}
