import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import express from 'express';
import { pinoHttp } from 'pino-http';
import { AnalyticsService } from './analytics/analytics.service.js';
import { createQueryCache } from './analytics/query-cache.js';
import { createRollupRefresher } from './analytics/rollup.refresher.js';
import { AuditLogService } from './audit/audit-log.service.js';
import { createAuditLogWriter } from './audit/audit-log.writer.js';
import { ApiKeyService } from './auth/api-key.service.js';
import { createAuthThrottle } from './auth/auth-throttle.js';
import { createKeyVerifier } from './auth/key-verifier.js';
import type { Config } from './config/config.js';
import { closePool, createPool } from './db/pool.js';
import { prepareDatabase } from './db/prepare-database.js';
import type { GatewayContext, Services } from './graphql/context.js';
import { formatError } from './graphql/format-error.js';
import { buildGatewaySchema } from './graphql/schema.js';
import { graphqlMiddleware } from './http/graphql.middleware.js';
import { httpMetricsMiddleware } from './http/http-metrics.middleware.js';
import { mountOperationsRoutes } from './http/operations.routes.js';
import { assignRequestId } from './http/request-id.js';
import { createEventPartitionsWorker } from './ingest/event-partitions.worker.js';
import { IngestService } from './ingest/ingest.service.js';
import { createDeadLetterService } from './streams/dead-letters.js';
import { createEventStream } from './streams/event-stream.js';
import { createPersistWorker } from './streams/persist.worker.js';
import { createStreamMaintenanceWorker } from './streams/stream-maintenance.worker.js';
import { createAggregateWorker } from './realtime/aggregate.worker.js';
import { createWindowStore } from './realtime/window-store.js';
import { createLiveFeed } from './realtime/live-feed.js';
import { createRealtimeService } from './realtime/realtime.service.js';
import { createWindowPublisher } from './realtime/window.publisher.js';
import { createWebSocketServer } from './realtime/websocket.server.js';
import { createStreamKeys } from './streams/stream-keys.js';
import type { Logger } from './observability/logger.js';
import { createMetrics } from './observability/metrics.js';
import { createReadiness } from './observability/readiness.js';
import { assignRequestTraceIds, requestTraceIds } from './observability/request-trace-ids.js';
import { auditLogPlugin } from './plugins/audit-log.plugin.js';
import { errorLoggingPlugin } from './plugins/error-logging.plugin.js';
import { costLimitPlugin } from './plugins/cost-limit.plugin.js';
import { createCostBudget } from './plugins/cost/cost-budget.js';
import { createCostLimits } from './plugins/cost/cost-limits.js';
import { loggingPlugin } from './plugins/logging.plugin.js';
import { operationGuardPlugin } from './plugins/operation-guard.plugin.js';
import { tracingPlugin } from './plugins/tracing.plugin.js';
import { closeRedis, createRedis } from './redis/create-redis.js';

export interface App {
  /** The HTTP server, exposed so the WebSocket server can share its port. */
  readonly httpServer: Server;
  listen(): Promise<AddressInfo>;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to SHUTDOWN_GRACE_MS), then
   * stops workers and closes Postgres and Redis. Safe to call more than once.
   */
  stop(): Promise<void>;
}

const ROUTES = ['/graphql', '/health', '/ready', '/metrics'];

/**
 * Wires the whole gateway in one place: storage clients, workers, schema, Apollo Server and the
 * HTTP routes. Every dependency is created here and handed down; nothing below reads config
 * from anywhere else. Start-up order matters: the database is migrated before anything queries it,
 * and the HTTP port opens last, once every dependency of a request exists.
 */
export async function createApp(config: Config, logger: Logger): Promise<App> {
  const metrics = createMetrics();
  await prepareDatabase(config, logger, { migrate: config.database.migrateOnStart });

  const pool = createPool(config, logger, { metrics });
  // Connections open on first use, so a worker-only process never opens one.
  const eventReadPool = createPool(config, logger, {
    name: 'analytics-gateway-event-reads',
    genericPlans: true,
    metrics,
  });
  const redis = createRedis(config, logger, { name: 'commands' });
  const authSubscriber = createRedis(config, logger, { name: 'auth-subscriber', queueWhileDisconnected: true });

  const keys = createStreamKeys(config.redis.keyPrefix, config.streams.partitions);
  const stream = createEventStream(redis, keys, {
    dedupeWindowS: config.ingest.dedupeWindowS,
    maxLength: config.streams.maxLength,
  });
  const ingest = new IngestService({ pool, redis, stream, config, metrics, logger });
  // The live windows, merged in Redis over partitions and replicas, and the channels to subscribers.
  const windows = createWindowStore(redis, keys, { graceMs: config.realtime.graceMs });
  const liveSubscriber = createRedis(config, logger, { name: 'live-subscriber', queueWhileDisconnected: true });
  const feed = createLiveFeed({
    publisher: redis,
    subscriber: liveSubscriber,
    keyPrefix: config.redis.keyPrefix,
    metrics,
  });
  const realtime = createRealtimeService({ store: windows, feed, metrics });
  const queryCache = createQueryCache({ redis, keyPrefix: config.redis.keyPrefix, metrics, logger }, config.queryCache);
  const costBudget = createCostBudget(redis, config.redis.keyPrefix, {
    capacity: config.cost.budgetCapacity,
    restorePerMinute: config.cost.restorePerMinute,
    maxPerOperation: config.cost.maxPerOperation,
  });
  const services: Services = {
    apiKeys: new ApiKeyService(pool, redis, config.redis.keyPrefix, logger),
    ingest,
    deadLetters: createDeadLetterService(redis, keys, logger),
    analytics: new AnalyticsService({ pool, eventReadPool }, queryCache),
    realtime,
    auditLog: new AuditLogService(pool),
    ...(config.cost.mode === 'off' ? {} : { costBudget }),
  };
  // Rows are queued by the request path and written in batches; stop() below writes the rest.
  const audit = createAuditLogWriter({ pool, logger, metrics }, config.audit);
  const keyVerifier = createKeyVerifier({ pool, subscriber: authSubscriber, config, logger, metrics });
  // Failed authentications per address and key prefix, shared through Redis; HTTP and WebSocket.
  const authThrottle = createAuthThrottle(
    { redis, keyPrefix: config.redis.keyPrefix, metrics, logger },
    config.auth.throttle,
  );
  const partitions = createEventPartitionsWorker(
    { pool, logger },
    { messageIdRetentionS: config.ingest.dedupeWindowS + 86_400 },
  );
  const maintenance = createStreamMaintenanceWorker({
    redis,
    keys,
    metrics,
    logger,
    intervalMs: config.streams.trimIntervalMs,
  });
  const runsWorkers = config.role !== 'api';
  const runsApi = config.role !== 'worker';
  const persist = runsWorkers
    ? createPersistWorker({
        pool,
        connect: (name) => createRedis(config, logger, { name }),
        keys,
        config,
        logger,
        metrics,
      })
    : undefined;

  // Counted by every worker replica, published throttled across replicas; what the worker counts
  // goes out as window snapshots and as events.
  const publisher = runsWorkers
    ? createWindowPublisher(
        { redis, store: windows, feed, logger, metrics },
        {
          intervalMs: config.realtime.pushIntervalMs,
          graceMs: config.realtime.graceMs,
          keyPrefix: config.redis.keyPrefix,
        },
      )
    : undefined;
  const aggregate = runsWorkers
    ? createAggregateWorker(
        {
          connect: (name) => createRedis(config, logger, { name }),
          keys,
          store: windows,
          onApplied: ({ touched, events }) => {
            publisher!.touched(touched);
            realtime.publishEvents(events).catch((err: unknown) => logger.warn({ err }, 'publishing events failed'));
          },
          logger,
          metrics,
        },
        { claimIdleMs: config.realtime.claimIdleMs },
      )
    : undefined;

  // Every replica runs it; the advisory lock inside picks the one that refreshes.
  const rollups = runsWorkers
    ? createRollupRefresher(
        { pool, logger, metrics },
        {
          intervalMs: config.rollups.refreshIntervalMs,
          maxStalenessMs: config.rollups.maxStalenessMs,
          retentionDays: config.rollups.retentionDays,
          onTenantRefreshed: (tenantId) => queryCache.invalidate(tenantId),
        },
      )
    : undefined;

  const readiness = createReadiness({
    pool,
    redis,
    metrics,
    timeoutMs: config.http.readyCheckTimeoutMs,
    // A replica serving the API degrades without Redis; one that only consumes streams cannot work.
    essential: runsApi ? ['postgres'] : ['postgres', 'redis'],
  });
  // Reports rather than judges: with Redis down the "redis" check fails, and this one says what
  // that means for ingestion (degraded mode since when) instead of failing a second time.
  readiness.register('streams', async () => ({
    ingestDegradedSince: ingest.degradedSinceDate() ?? null,
    persist: persist?.readiness() ?? null,
    aggregate: aggregate?.readiness() ?? null,
    partitions: redis.status === 'ready' ? await maintenance.inspectAll() : 'unknown: redis is unreachable',
  }));
  if (rollups) readiness.register('rollups', async () => rollups.readiness());
  readiness.register('audit', async () => audit.readiness());

  if (config.auth.bootstrapApiKey) await services.apiKeys.ensureBootstrapKey(config.auth.bootstrapApiKey);
  if (runsApi) await keyVerifier.start();
  await partitions.start();
  if (persist) {
    await persist.start();
    await aggregate?.start();
    await maintenance.start();
  }
  await rollups?.start();
  await audit.start();

  const expressApp = express();
  const httpServer = createServer(expressApp);
  // Only the API role serves GraphQL; a worker answers probes and metrics alone.
  const schema = runsApi ? await buildGatewaySchema(feed.typeGraphqlPubSub()) : undefined;
  // Depth, alias, directive and cost limits and the budgets: the same for HTTP and WebSocket.
  const costLimits = schema
    ? createCostLimits(
        { schema, budget: costBudget, metrics, logger },
        {
          mode: config.cost.mode,
          maxDepth: config.requestLimits.maxDepth,
          maxAliases: config.requestLimits.maxAliases,
          maxDirectives: config.requestLimits.maxDirectives,
        },
      )
    : undefined;
  // Over HTTP as Apollo plugins; over WebSocket called by the subscription server.
  const tracing = tracingPlugin({ metrics });
  const operationLog = loggingPlugin({ enabled: config.operationLog.enabled });
  // Subscriptions: graphql-ws on the same port and path, with its own auth and limits.
  const webSockets = schema
    ? createWebSocketServer(
        {
          httpServer,
          schema,
          keyVerifier,
          services,
          logger,
          metrics,
          audit,
          costLimits,
          authThrottle,
          operationObservers: [tracing, operationLog],
        },
        { ...config.websocket, maxTokens: config.requestLimits.maxTokens },
      )
    : undefined;
  const apollo = schema
    ? new ApolloServer<GatewayContext>({
        schema,
        nodeEnv: config.env,
        introspection: config.graphql.introspection,
        csrfPrevention: true,
        includeStacktraceInErrorResponses: false,
        // Signals are handled by main.ts, which also closes pools after Apollo has drained.
        stopOnTerminationSignals: false,
        formatError,
        // Each operation of a batch is costed and charged on its own; MAX_BATCH_OPERATIONS bounds them.
        allowBatchedHttpRequests: true,
        // The parser stops at the limit, before a huge document costs any parsing or validation.
        parseOptions: { maxTokens: config.requestLimits.maxTokens },
        logger: logger.child({ component: 'apollo' }),
        plugins: [
          // First: refuses what no other plugin's didResolveOperation should see (no operation, a
          // subscription over HTTP, text Postgres cannot store).
          operationGuardPlugin(),
          ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: config.http.shutdownGraceMs }),
          // Apollo drains HTTP only; the WebSocket connections are closed with it.
          { serverWillStart: async () => ({ drainServer: async () => webSockets?.dispose() }) },
          config.graphql.landingPage
            ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
            : ApolloServerPluginLandingPageDisabled(),
          errorLoggingPlugin(logger),
          tracing,
          operationLog,
          costLimitPlugin({ limits: costLimits! }),
          auditLogPlugin({ writer: audit }),
          // No HTTP cache hints are served (answers are cached in Redis per tenant instead), and the
          // built-in cache-control plugin wraps every field resolver: about 10% of a list query's CPU.
          ApolloServerPluginCacheControlDisabled(),
        ],
      })
    : undefined;
  await apollo?.start();

  expressApp.disable('x-powered-by');
  expressApp.set('trust proxy', false);
  expressApp.use(
    pinoHttp({
      logger,
      genReqId: assignRequestId,
      // Without the OpenTelemetry SDK (nothing exported), the request's trace ids come from its
      // traceparent; with it, the logger's mixin reads them from the active span.
      customProps: config.tracing.enabled ? (req) => assignRequestTraceIds(req) ?? {} : undefined,
      // Resolver logs carry only the request id; the request itself is logged once, on completion.
      quietReqLogger: true,
      serializers: {
        req: (req: {
          id: unknown;
          method: string;
          url: string;
          remoteAddress?: string;
          headers: Record<string, unknown>;
        }) => ({
          id: req.id,
          method: req.method,
          url: req.url,
          remoteAddress: req.remoteAddress,
          userAgent: req.headers['user-agent'],
        }),
        res: (res: { statusCode: number }) => ({ statusCode: res.statusCode }),
      },
      // Probes and scrapes arrive every few seconds; logging them would drown real traffic.
      autoLogging: { ignore: (req) => req.url === '/health' || req.url === '/metrics' },
      customLogLevel: (_req, res, err) =>
        err || res.statusCode >= 500 ? 'error' : res.statusCode >= 400 ? 'warn' : 'info',
    }),
  );
  if (config.tracing.enabled) {
    // pino-http's quiet request logger carries the request id only; resolvers log through it.
    expressApp.use((req, _res, next) => {
      const ids = requestTraceIds(req);
      if (ids) req.log = req.log.child(ids);
      next();
    });
  }
  expressApp.use(httpMetricsMiddleware(metrics, ROUTES));
  mountOperationsRoutes(expressApp, { readiness, metrics });
  if (apollo) {
    expressApp.use(
      '/graphql',
      graphqlMiddleware({
        apollo,
        keyVerifier,
        services,
        maxBodyBytes: config.http.maxBodyBytes,
        audit,
        authThrottle,
        batchLimit: { metrics, maxOperations: config.requestLimits.maxBatchOperations, mode: config.cost.mode },
      }),
    );
  }

  let stopping: Promise<void> | undefined;
  return {
    httpServer,
    listen: () =>
      new Promise<AddressInfo>((resolve, reject) => {
        httpServer.once('error', reject);
        httpServer.listen(config.http.port, config.http.host, () => {
          httpServer.off('error', reject);
          resolve(httpServer.address() as AddressInfo);
        });
      }),
    stop: () =>
      (stopping ??= (async () => {
        // Apollo's drain plugin closes the listener and waits for in-flight HTTP requests.
        if (apollo) await apollo.stop();
        else await closeHttpServer(httpServer, config.http.shutdownGraceMs);
        // The persister finishes and acknowledges the batch it holds; the rest stays pending.
        await Promise.all([
          partitions.stop(),
          keyVerifier.stop(),
          persist?.stop(),
          aggregate?.stop().then(() => publisher?.stop()),
          maintenance.stop(),
          rollups?.stop(),
          // After Apollo's drain, so the rows of requests that were in flight are written too.
          audit.stop(),
        ]);
        await Promise.all([
          closeRedis(redis),
          closeRedis(authSubscriber),
          closeRedis(liveSubscriber),
          // What still holds a connection now served a request the drain has cut: not waited for long.
          closePool(pool, { forceAfterMs: 1_000 }),
          closePool(eventReadPool, { forceAfterMs: 1_000 }),
        ]);
      })()),
  };
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
