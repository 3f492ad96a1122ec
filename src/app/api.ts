import type { Server } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginDrainHttpServer } from '@apollo/server/plugin/drainHttpServer';
import {
  ApolloServerPluginCacheControlDisabled,
  ApolloServerPluginLandingPageDisabled,
} from '@apollo/server/plugin/disabled';
import { ApolloServerPluginLandingPageLocalDefault } from '@apollo/server/plugin/landingPage/default';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { auditEntry, requestClient } from '../audit/audit-entry.js';
import type { AuditLogWriter } from '../audit/audit-log.writer.js';
import type { Config } from '../config/config.js';
import { formatError } from '../graphql/format-error.js';
import { registerGraphqlRoute } from '../http/graphql.route.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { serializedData } from '../graphql/serialized-data.js';
import { auditLogPlugin } from '../plugins/audit-log.plugin.js';
import { costLimitPlugin } from '../plugins/cost-limit.plugin.js';
import type { CostBudget } from '../plugins/cost/cost-budget.js';
import { createCostLimits } from '../plugins/cost/cost-limits.js';
import { errorLoggingPlugin } from '../plugins/error-logging.plugin.js';
import { loggingPlugin } from '../plugins/logging.plugin.js';
import { operationGuardPlugin } from '../plugins/operation-guard.plugin.js';
import { tracingPlugin } from '../plugins/tracing.plugin.js';
import { responseCachePlugin } from '../plugins/response-cache.plugin.js';
import type { QueryCache } from '../analytics/query-cache.js';
import { statsResponseCacheFields } from '../analytics/stats.response-cache.js';
import type { LiveFeed } from '../realtime/live-feed.js';
import { createRedisKeyValueCache } from '../redis/redis-key-value-cache.js';
import type { Redis } from '../redis/create-redis.js';
import { createWebSocketServer } from '../realtime/websocket.server.js';
import type { ContextBuilder, GatewayContext } from './context.js';
import { buildGatewaySchema } from './schema.js';

export interface ApiDeps {
  readonly config: Config;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** The HTTP server the probes already live on (gateway.ts); GraphQL and graphql-ws join it. */
  readonly http: FastifyInstance;
  readonly contexts: ContextBuilder;
  readonly audit: AuditLogWriter;
  readonly costBudget: CostBudget;
  readonly feed: LiveFeed;
  readonly redis: Redis;
  readonly queryCache: QueryCache;
}

export interface Api {
  /**
   * Stops accepting, lets in-flight requests finish (up to SHUTDOWN_GRACE_MS) and closes the
   * WebSocket connections; after it, no resolver runs.
   */
  stop(): Promise<void>;
}

/**
 * The GraphQL API of ROLE=api and ROLE=all: the schema, Apollo Server with its plugins on
 * `/graphql`, and graphql-ws on the same port and path. The plugins' limits and observers are
 * built once and shared by both transports, since Apollo's plugins never see a subscription.
 */
export async function createApi(deps: ApiDeps): Promise<Api> {
  const { config, logger, metrics, http, contexts, audit } = deps;
  const httpServer: Server = http.server;
  const schema = await buildGatewaySchema(deps.feed.typeGraphqlPubSub());
  // Depth, alias, directive and cost limits and the budgets: the same for HTTP and WebSocket.
  const costLimits = createCostLimits(
    { schema, budget: deps.costBudget, metrics, logger },
    {
      mode: config.cost.mode,
      maxDepth: config.requestLimits.maxDepth,
      maxAliases: config.requestLimits.maxAliases,
      maxDirectives: config.requestLimits.maxDirectives,
    },
  );
  // Over HTTP as Apollo plugins; over WebSocket called by the subscription server.
  const tracing = tracingPlugin({ metrics });
  const operationLog = loggingPlugin({ enabled: config.operationLog.enabled });

  const webSockets = createWebSocketServer(
    {
      httpServer,
      schema,
      authenticate: (caller) => contexts.authenticate(caller),
      context: (viewer, fields) => contexts.forSubscription(viewer, fields),
      logger,
      metrics,
      audit,
      costLimits,
      operationObservers: [tracing, operationLog],
    },
    { ...config.websocket, maxTokens: config.requestLimits.maxTokens, requestTimeoutMs: config.http.requestTimeoutMs },
  );

  const apollo = new ApolloServer<GatewayContext>({
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
    // Automatic persisted queries in Redis, so a hash registered on one replica works on all.
    persistedQueries: {
      cache: createRedisKeyValueCache(deps.redis, { prefix: config.redis.keyPrefix }),
      ttl: config.persistedQueries.ttlS,
    },
    logger: logger.child({ component: 'apollo' }),
    plugins: [
      // First: refuses what no other plugin's didResolveOperation should see (no operation, a
      // subscription over HTTP, text Postgres cannot store).
      operationGuardPlugin(),
      ApolloServerPluginDrainHttpServer({ httpServer, stopGracePeriodMillis: config.http.shutdownGraceMs }),
      // Apollo drains HTTP only; the WebSocket connections are closed with it.
      { serverWillStart: async () => ({ drainServer: async () => webSockets.dispose() }) },
      config.graphql.landingPage
        ? ApolloServerPluginLandingPageLocalDefault({ embed: true, includeCookies: false })
        : ApolloServerPluginLandingPageDisabled(),
      errorLoggingPlugin(logger),
      tracing,
      operationLog,
      costLimitPlugin({ limits: costLimits }),
      auditLogPlugin({ writer: audit }),
      // Whole answers of statistics-only operations, before execution (after the cost admission).
      responseCachePlugin(
        { redis: deps.redis, metrics, logger, generationKey: deps.queryCache.generationKey },
        {
          enabled: config.responseCache.enabled,
          keyPrefix: config.redis.keyPrefix,
          fields: statsResponseCacheFields(config.queryCache.ttlS),
        },
      ),
      // GET cache headers come from the response cache above, and the built-in cache-control
      // plugin wraps every field resolver: about 10% of a list query's CPU.
      ApolloServerPluginCacheControlDisabled(),
    ],
  });
  await apollo.start();

  const callerOf = (request: FastifyRequest) => ({
    transport: 'http' as const,
    authorization: request.headers.authorization,
    client: requestClient(request.raw),
    requestId: request.id,
  });

  await registerGraphqlRoute(
    http,
    {
      apollo,
      metrics,
      logger,
      // Authentication before any resolver runs: a bad key refuses the whole request with 401; no
      // key gives a null viewer, and fields that need one answer UNAUTHENTICATED (so
      // introspection works without a key in development).
      context: async (request) => {
        const caller = callerOf(request);
        const viewer = await contexts.authenticate(caller);
        return contexts.forRequest(viewer, {
          requestId: request.id,
          client: caller.client,
          logger: () => logger.child({ reqId: request.id, ...request.gatewayLog?.traceIds }),
          operationLog: config.operationLog.enabled ? request.gatewayLog?.operations : undefined,
          serializeData: (json) => {
            const piece = serializedData(json);
            (request.serializedData ??= []).push(piece);
            return piece.placeholder;
          },
          deadline: request.deadline,
        });
      },
      // A request refused before Apollo runs is a limit rejection: audited under the sender's
      // tenant when its key checks out, while the answer goes out at once.
      onRefused: (request, details) => {
        const caller = callerOf(request);
        void contexts.identify(caller).then((viewer) =>
          audit.record(
            auditEntry({
              action: 'request',
              result: 'rejected',
              viewer,
              client: caller.client,
              requestId: request.id,
              details,
            }),
          ),
        );
      },
    },
    {
      maxBodyBytes: config.http.maxBodyBytes,
      maxBatchOperations: config.requestLimits.maxBatchOperations,
      costMode: config.cost.mode,
      requestTimeoutMs: config.http.requestTimeoutMs,
    },
  );

  return { stop: () => apollo.stop() };
}
