import { pino } from 'pino';
import type { App } from './app/gateway.js';
import { ConfigError, loadConfig, type Config } from './config/config.js';
import { createLogger } from './observability/logger.js';
import { startTelemetry } from './observability/telemetry.js';

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  // Before the logger exists: print every invalid variable in plain words and refuse to start.
  console.error(err instanceof ConfigError ? err.message : err);
  process.exit(1);
}

// Asynchronous, buffered writes: lines are gathered up to 8 KiB, or for at most 100 ms, and go out
// in one write, instead of a write (a round trip through libuv's thread pool) per line, which cost
// a third of the throughput of a small query. pino flushes what is buffered when the process exits
// (process.exit included).
const destination = pino.destination({ dest: 1, sync: false, minLength: 8 * 1024 });
setInterval(() => destination.flush(), 100).unref();
const logger = createLogger(config, destination);
process.on('unhandledRejection', (reason) => {
  logger.fatal({ err: reason }, 'unhandled promise rejection');
  process.exit(1);
});

// Before the app is imported: the instrumentations patch pg, ioredis, graphql and node:http as
// they load, so nothing imported above this line may load them (app/gateway.js is imported dynamically).
const telemetry = startTelemetry(config.tracing, { logger });

let app: App | undefined;
let shuttingDown = false;

/**
 * Registered before anything starts: until Node has a handler, SIGTERM kills the process outright
 * (no drain, exit code null). A signal during start-up stops whatever has started so far.
 */
async function shutdown(signal: NodeJS.Signals): Promise<void> {
  if (shuttingDown) return;
  shuttingDown = true;
  logger.info({ signal, graceMs: config.http.shutdownGraceMs }, 'shutting down');
  // The drain itself is bounded by SHUTDOWN_GRACE_MS; this only guards against a close that hangs.
  const hardStop = setTimeout(() => {
    logger.error('shutdown did not finish in time; exiting');
    process.exit(1);
  }, config.http.shutdownGraceMs + 5_000);
  hardStop.unref();
  try {
    await app?.stop();
    // After the drain, so the spans of the last requests are exported too.
    await telemetry.shutdown();
    logger.info('shutdown complete');
    process.exit(0);
  } catch (err) {
    logger.error({ err }, 'shutdown failed');
    process.exit(1);
  }
}
process.once('SIGTERM', shutdown);
process.once('SIGINT', shutdown);

try {
  const { createApp } = await import('./app/gateway.js');
  const created = await createApp(config, logger);
  app = created;
  if (shuttingDown) {
    await created.stop();
  } else {
    const address = await created.listen();
    logger.info({ host: address.address, port: address.port, env: config.env }, 'gateway listening');
  }
} catch (err) {
  logger.fatal({ err }, 'gateway failed to start');
  process.exit(1);
}
