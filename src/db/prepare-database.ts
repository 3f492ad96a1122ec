import pg from 'pg';
import type { Config } from '../config/config.js';
import type { Logger } from '../observability/logger.js';
import { ensureDatabase, retryUntil } from './ensure-database.js';
import { runMigrations } from './migrate.js';

/**
 * Start-up step shared by the gateway, `npm run migrate` and the CLI. Only reaching Postgres is
 * retried (it may still be starting); a failing migration is a bug and stops the start at once.
 */
export async function prepareDatabase(
  config: Pick<Config, 'database'>,
  logger: Logger,
  options: { migrate: boolean },
): Promise<void> {
  const { url, createIfMissing, startupTimeoutMs } = config.database;
  await retryUntil('connecting to postgres', startupTimeoutMs, logger, () =>
    createIfMissing ? ensureDatabase(url, logger) : probe(url),
  );
  if (options.migrate) await runMigrations(url, logger);
}

async function probe(url: string): Promise<void> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5_000 });
  await client.connect();
  await client.end();
}
