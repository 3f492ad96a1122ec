import { ConfigError, loadConfig } from '../config/config.js';
import { createLogger } from '../observability/logger.js';
import { prepareDatabase } from './prepare-database.js';

// `npm run migrate`: create the database if allowed and apply pending migrations, then exit.
try {
  const config = loadConfig(process.env);
  const logger = createLogger(config);
  await prepareDatabase(config, logger, { migrate: true });
  logger.info('database is up to date');
} catch (err) {
  console.error(err instanceof ConfigError ? err.message : err);
  process.exitCode = 1;
}
