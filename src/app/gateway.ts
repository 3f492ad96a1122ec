import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify from 'fastify';
import { AnalyticsService } from '../analytics/analytics.service.js';
import { createQueryCache } from '../analytics/query-cache.js';
import { createRollupRebuilder } from '../analytics/rollup-rebuild.service.js';
import { AuditLogService } from '../audit/audit-log.service.js';
import { createAuditRetentionWorker } from '../audit/audit-retention.worker.js';
import { createAuditLogWriter, type AuditLogWriter } from '../audit/audit-log.writer.js';
import { ApiKeyService } from '../auth/api-key.service.js';
import { createAuthThrottle } from '../auth/auth-throttle.js';
import { createKeyVerifier } from '../auth/key-verifier.js';
import type { Config } from '../config/config.js';
import { prepareDatabase } from '../db/prepare-database.js';
import { registerDashboardRoutes } from '../http/dashboard.routes.js';
import { registerOperationsRoutes } from '../http/operations.routes.js';
import { registerRequestLog } from '../http/request-log.js';
import { requestIdOf } from '../http/request-id.js';
import { createEventPartitionsWorker } from '../ingest/event-partitions.worker.js';
import { IngestService } from '../ingest/ingest.service.js';
import type { Logger } from '../observability/logger.js';
import { createUserErasureService } from '../privacy/user-erasure.service.js';
import { createMetrics, type Metrics } from '../observability/metrics.js';
import { createReadiness, type Readiness } from '../observability/readiness.js';
import { createCostBudget } from '../plugins/cost/cost-budget.js';
import { createLiveFeed } from '../realtime/live-feed.js';
import { createRealtimeService } from '../realtime/realtime.service.js';
import { createEventReplay } from '../realtime/event-replay.js';
import { createWindowStore } from '../realtime/window-store.js';
import { createSystemStatusService } from '../ops/system-status.service.js';
import { loadDashboardAssets } from '../web/dashboard-assets.js';
import { createDeadLetterService } from '../ingest/dead-letter-replay.js';
import { createEventStream } from '../ingest/event-stream.js';
import { createStreamKeys } from '../redis/keys.js';
import { createStreamMaintenanceWorker } from '../streams/stream-maintenance.worker.js';
import { createApi, type Api } from './api.js';
import { createContextBuilder, type Services } from './context.js';
import { connectStores, type Stores } from './stores.js';
import { createStreamWorkers, type Worker } from './worker.js';

export interface App {
  /** The HTTP server, exposed so tests can reach its sockets. */
  readonly httpServer: Server;
  listen(): Promise<AddressInfo>;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to SHUTDOWN_GRACE_MS), then
   * stops workers and closes Postgres and Redis. Safe to call more than once.
   */
  stop(): Promise<void>;
}

const ROUTES = ['/graphql', '/health', '/ready', '/metrics', '/dashboard'];

/**
 * The gateway of one process: storage clients and services shared by both roles, then the API
 * (api.ts) for ROLE=api|all and the stream workers (worker.ts) for ROLE=worker|all. Every
 * dependency is created here and handed down; nothing below reads config from anywhere else.
 * Start-up order matters: the database is migrated before anything queries it, and the HTTP port
 * opens last, once every dependency of a request exists.
 */
export async function createApp(config: Config, logger: Logger): Promise<App> {
  const runsApi = config.role !== 'worker';
  const runsWorkers = config.role !== 'api';
  const metrics = createMetrics();
  await prepareDatabase(config, logger, { migrate: config.database.migrateOnStart });

  const stores = connectStores(config, logger, metrics);
  const { pool, eventReadPool, readPool, pools, redis, authSubscriber, liveSubscriber } = stores;

  const keys = createStreamKeys(config.redis.keyPrefix, config.streams.partitions);
  const stream = createEventStream(redis, keys, {
    dedupeWindowS: config.ingest.dedupeWindowS,
    maxLength: config.streams.maxLength,
  });
  const ingest = new IngestService({ pool, redis, stream, config, metrics, logger });
  // The live windows, merged in Redis over partitions and replicas, and the channels to subscribers.
  const windows = createWindowStore(redis, keys, { graceMs: config.realtime.graceMs });
  const feed = createLiveFeed({
    publisher: redis,
    subscriber: liveSubscriber,
    keyPrefix: config.redis.keyPrefix,
    metrics,
  });
  // eventRecorded(after:) replays the stream from the cursor (event-replay.ts).
  const realtime = createRealtimeService({ store: windows, feed, metrics, replay: createEventReplay({ redis, keys }) });
  const queryCache = createQueryCache({ redis, keyPrefix: config.redis.keyPrefix, metrics, logger }, config.queryCache);
  const costBudget = createCostBudget(redis, config.redis.keyPrefix, {
    capacity: config.cost.budgetCapacity,
    restorePerMinute: config.cost.restorePerMinute,
    maxPerOperation: config.cost.maxPerOperation,
    leasePoints: config.cost.leasePoints,
    leaseMs: config.cost.leaseMs,
  });
  // Rebuilds and erasures recompute rollups under the refresher's lock (README, "Data lifecycle").
  const rollupRebuild = createRollupRebuilder({
    pool,
    onTenantRefreshed: (tenantId) => queryCache.invalidate(tenantId),
  });
  const userErasure = createUserErasureService({
    pool,
    redis,
    keys,
    rollups: rollupRebuild,
    invalidate: (tenantId) => queryCache.invalidate(tenantId),
    logger,
  });
  const services: Services = {
    apiKeys: new ApiKeyService(pool, redis, config.redis.keyPrefix, logger),
    ingest,
    deadLetters: createDeadLetterService(redis, keys, logger),
    analytics: new AnalyticsService({ pool, eventReadPool, readPool }, queryCache),
    realtime,
    auditLog: new AuditLogService(pool),
    userErasure,
    rollupRebuild,
    // The stream maintenance is created below; it exists before any request can arrive.
    systemStatus: createSystemStatusService({
      pool,
      inspectStreams: () => maintenance.inspectAll(),
      metrics,
      pools,
      logger,
    }),
    ...(config.cost.mode === 'off' ? {} : { costBudget }),
  };
  // Rows are queued by the request path and written in batches; stopping writes the rest.
  const audit = createAuditLogWriter({ pool, logger, metrics }, config.audit);
  const keyVerifier = createKeyVerifier({ pool, subscriber: authSubscriber, config, logger, metrics });
  const partitions = createEventPartitionsWorker(
    { pool, logger },
    { messageIdRetentionS: config.ingest.dedupeWindowS + 86_400 },
  );

  // Trims the stream and forgets gone consumers (worker roles); every role's /ready inspects with it.
  const maintenance = createStreamMaintenanceWorker({
    redis,
    keys,
    metrics,
    logger,
    intervalMs: config.streams.trimIntervalMs,
    // Kept for eventRecorded(after:) replays (event-replay.ts).
    replayRetentionMs: config.streams.replayRetentionMs,
    replayMaxLength: Math.floor(config.streams.maxLength / 2),
  });

  // Every background part of this process, started in this order and stopped together.
  const workers: Worker[] = [
    { name: 'event-partitions', start: () => partitions.start(), stop: () => partitions.stop() },
    ...(runsApi
      ? [
          { name: 'key-verifier', start: () => keyVerifier.start(), stop: () => keyVerifier.stop() },
          // Gives back leased budget points nobody used (cost-budget.ts).
          { name: 'cost-budget-leases', start: () => costBudget.start(), stop: () => costBudget.stop() },
        ]
      : []),
    ...(runsWorkers
      ? createStreamWorkers({
          config,
          logger,
          metrics,
          pool,
          redis,
          keys,
          windows,
          feed,
          realtime,
          queryCache,
          maintenance,
        })
      : []),
    // Deletes audit rows past AUDIT_RETENTION_DAYS (a no-op at 0), on worker roles.
    ...(runsWorkers ? [retentionOfAudit(createAuditRetentionWorker({ pool, logger, metrics }, config.audit))] : []),
    // Stopped after the API has drained (see stop below), so in-flight requests' rows are written.
    { name: 'audit', start: () => audit.start(), stop: () => audit.stop(), readiness: audit.readiness },
  ];

  const readiness = readinessOf({ config, metrics, stores, workers, ingest, maintenance, audit, runsApi });

  if (config.auth.bootstrapApiKey) await services.apiKeys.ensureBootstrapKey(config.auth.bootstrapApiKey);
  for (const worker of workers) await worker.start();

  const http = Fastify({
    logger: false,
    genReqId: requestIdOf,
    // A forwarded-for header is not believed: audit rows record the peer address (audit-entry.ts).
    trustProxy: false,
    bodyLimit: config.http.maxBodyBytes,
  });
  registerRequestLog(http, { logger, metrics }, { routes: ROUTES, tracingEnabled: config.tracing.enabled });
  registerOperationsRoutes(http, { readiness, metrics });
  // The live dashboard page (web/, bundled into dist/web), served where GraphQL is.
  if (runsApi) registerDashboardRoutes(http, loadDashboardAssets());
  // Only the API role serves GraphQL; a worker answers probes and metrics alone.
  const api: Api | undefined = runsApi
    ? await createApi({
        config,
        logger,
        metrics,
        http,
        contexts: createContextBuilder({
          keyVerifier,
          services,
          audit,
          // Failed authentications per address and key prefix, shared through Redis; HTTP and WebSocket.
          authThrottle: createAuthThrottle(
            { redis, keyPrefix: config.redis.keyPrefix, metrics, logger },
            config.auth.throttle,
          ),
        }),
        audit,
        costBudget,
        feed,
        redis,
        queryCache,
      })
    : undefined;
  await http.ready();

  let stopping: Promise<void> | undefined;
  return {
    httpServer: http.server,
    listen: async () => {
      await http.listen({ port: config.http.port, host: config.http.host });
      return http.server.address() as AddressInfo;
    },
    stop: () =>
      (stopping ??= (async () => {
        // Apollo's drain plugin closes the listener and waits for in-flight HTTP requests.
        if (api) await api.stop();
        else await closeHttpServer(http.server, config.http.shutdownGraceMs);
        await Promise.all(workers.map((w) => w.stop()));
        await stores.close();
      })()),
  };
}

/**
 * `/ready`: Postgres and Redis, and what the workers report. A replica serving the API degrades
 * without Redis; one that only consumes streams cannot work.
 */
function readinessOf(deps: {
  config: Config;
  metrics: Metrics;
  stores: Stores;
  workers: readonly Worker[];
  ingest: IngestService;
  maintenance: ReturnType<typeof createStreamMaintenanceWorker>;
  audit: AuditLogWriter;
  runsApi: boolean;
}): Readiness {
  const { stores, maintenance } = deps;
  const byName = new Map(deps.workers.map((w) => [w.name, w]));
  const readiness = createReadiness({
    pool: stores.pool,
    redis: stores.redis,
    metrics: deps.metrics,
    timeoutMs: deps.config.http.readyCheckTimeoutMs,
    essential: deps.runsApi ? ['postgres'] : ['postgres', 'redis'],
  });
  // Reports rather than judges: with Redis down the "redis" check fails, and this one says what
  // that means for ingestion (degraded mode since when) instead of failing a second time.
  readiness.register('streams', async () => ({
    ingestDegradedSince: deps.ingest.degradedSinceDate() ?? null,
    persist: byName.get('persist')?.readiness?.() ?? null,
    aggregate: byName.get('aggregate')?.readiness?.() ?? null,
    partitions: stores.redis.status === 'ready' ? await maintenance.inspectAll() : 'unknown: redis is unreachable',
  }));
  const rollups = byName.get('rollups');
  if (rollups?.readiness) readiness.register('rollups', async () => rollups.readiness!() as Record<string, unknown>);
  readiness.register('audit', async () => deps.audit.readiness());
  return readiness;
}

function retentionOfAudit(worker: ReturnType<typeof createAuditRetentionWorker>): Worker {
  return { name: 'audit-retention', start: () => worker.start(), stop: () => worker.stop() };
}

/**
 * What Apollo's drain plugin does for the API role: stop accepting, close idle keep-alive
 * connections, and cut the rest once the grace period is over.
 */
async function closeHttpServer(server: Server, graceMs: number): Promise<void> {
  if (!server.listening) return;
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const timer = setTimeout(() => server.closeAllConnections(), graceMs);
  await closed;
  clearTimeout(timer);
}
