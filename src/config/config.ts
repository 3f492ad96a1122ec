import { z } from 'zod';

/**
 * Every setting the gateway reads, with its default. This is the only place that looks at the
 * environment: `loadConfig(process.env)` runs once in each entry point and the frozen result is
 * passed down, so tests build a config from a plain object instead of mutating `process.env`.
 */
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', 'on', 'off'], {
    error: 'expected one of true, false, 1, 0, yes, no, on, off',
  })
  .transform((v) => ['true', '1', 'yes', 'on'].includes(v));

// zod 4 defaults are output values: they skip the transform above.
const flag = (fallback: boolean) => bool.default(fallback);

const int = (fallback: number, min: number, max: number) => z.coerce.number().int().min(min).max(max).default(fallback);

const postgresUrl = z
  .url({ protocol: /^postgres(ql)?$/, error: 'expected a postgres:// or postgresql:// URL' })
  .refine((u) => URL.canParse(u) && new URL(u).pathname.length > 1, 'the URL must name a database');

const redisUrl = z.url({ protocol: /^rediss?$/, error: 'expected a redis:// or rediss:// URL' });

// "host:port,host:port,…": a few masters of a Redis Cluster to learn the rest of it from.
const clusterNodes = z
  .string()
  .regex(/^[^\s,:]+:\d{1,5}(,[^\s,:]+:\d{1,5})*$/, 'expected host:port[,host:port…]')
  .transform((list) =>
    list.split(',').map((node) => {
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at), port: Number(node.slice(at + 1)) };
    }),
  )
  .refine((nodes) => nodes.every((n) => n.port >= 1 && n.port <= 65535), 'a port must be 1..65535');

const environmentSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: int(4000, 0, 65535),
  DATABASE_URL: postgresUrl.default('postgres://postgres@127.0.0.1:5432/analytics'),
  DATABASE_READ_URL: postgresUrl.optional(),
  DATABASE_POOL_MAX: int(10, 1, 1000),
  DATABASE_CREATE_IF_MISSING: flag(true),
  MIGRATE_ON_START: flag(true),
  DATABASE_STARTUP_TIMEOUT_MS: int(30_000, 0, 600_000),
  // Postgres cancels any statement of the gateway's pools running longer (SQLSTATE 57014), which
  // answers SERVICE_UNAVAILABLE and frees the connection; 0 turns it off. The rollup refresh,
  // which may legitimately run longer, lifts it for its own connection.
  DB_STATEMENT_TIMEOUT_MS: int(5_000, 0, 3_600_000),
  REDIS_URL: redisUrl.default('redis://127.0.0.1:6379'),
  // Set: Redis is a Redis Cluster reached through these nodes (REDIS_URL then gives only the
  // credentials and TLS of every node); unset: the single server of REDIS_URL.
  REDIS_CLUSTER_NODES: clusterNodes.optional(),
  REDIS_KEY_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9:_.{}-]{1,64}$/, 'expected 1..64 characters of [A-Za-z0-9:_.{}-]')
    .default('agw:'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  BOOTSTRAP_API_KEY: z.string().min(1).max(256).optional(),
  // Each replica trusts a verified key for this long without asking Postgres. Revocations are also
  // broadcast through Redis; the cap keeps the "revoked within 5 s everywhere" promise when that
  // broadcast is lost (Redis unreachable), since a lookup itself takes well under a second.
  AUTH_CACHE_TTL_MS: int(3_000, 0, 4_000),
  AUTH_CACHE_MAX_KEYS: int(10_000, 1, 1_000_000),
  // Failed authentications counted per client address and per presented key prefix, shared by the
  // replicas through Redis; past the maximum within the window, RATE_LIMITED until it ends.
  AUTH_THROTTLE_ENABLED: flag(true),
  AUTH_THROTTLE_WINDOW_MS: int(60_000, 1_000, 3_600_000),
  AUTH_THROTTLE_MAX_PER_ADDRESS: int(20, 1, 1_000_000),
  AUTH_THROTTLE_MAX_PER_KEY_PREFIX: int(10, 1, 1_000_000),
  AUTH_THROTTLE_CLEAN_MS: int(1_000, 0, 60_000),
  INTROSPECTION: bool.optional(),
  MAX_BODY_BYTES: int(5 * 1024 * 1024, 1024, 64 * 1024 * 1024),
  SHUTDOWN_GRACE_MS: int(10_000, 0, 120_000),
  // The time a GraphQL request over HTTP may take: past it, SERVICE_UNAVAILABLE and no further
  // statement or pool connection (db/request-deadline.ts); 0 turns it off.
  REQUEST_TIMEOUT_MS: int(10_000, 0, 600_000),
  READY_CHECK_TIMEOUT_MS: int(1_000, 50, 30_000),
  // api: GraphQL only; worker: stream consumers only (with /health, /ready, /metrics); all: both.
  ROLE: z.enum(['api', 'worker', 'all']).default('all'),
  // stream: a mutation answers once its events are in the Redis stream; postgres: once committed.
  INGEST_ACK: z.enum(['stream', 'postgres']).default('stream'),
  INGEST_MAX_BATCH: int(1_000, 1, 10_000),
  DEDUPE_WINDOW_S: int(86_400, 60, 30 * 86_400),
  STREAM_PARTITIONS: int(1, 1, 64),
  // Backpressure instead of loss: past this many entries in a partition, recordEvents answers
  // SERVICE_UNAVAILABLE rather than trimming events nobody has persisted yet.
  STREAM_MAX_LENGTH: int(5_000_000, 1_000, 1_000_000_000),
  STREAM_TRIM_INTERVAL_MS: int(1_000, 100, 600_000),
  // eventRecorded(after:) replays what the stream holds: entries are kept this long after every
  // group is done with them (0: trimmed as soon as they are), unless that would fill half of STREAM_MAX_LENGTH.
  STREAM_REPLAY_RETENTION_MS: int(0, 0, 86_400_000),
  PERSIST_BATCH_SIZE: int(1_000, 1, 10_000),
  PERSIST_BATCH_WAIT_MS: int(50, 1, 10_000),
  PERSIST_CLAIM_IDLE_MS: int(30_000, 100, 3_600_000),
  PERSIST_MAX_DELIVERIES: int(5, 1, 1_000),
  PERSIST_RETRY_MAX_MS: int(10_000, 10, 600_000),
  // Consumer loops per partition in each worker process: overlapping round trips raises throughput.
  PERSIST_CONCURRENCY: int(2, 1, 16),
  // How a batch reaches Postgres: COPY into a staging table, or one INSERT of unnest(arrays).
  PERSIST_MODE: z.enum(['copy', 'unnest']).default('copy'),
  // Rollups are refreshed every ROLLUP_REFRESH_INTERVAL_MS by one replica; staleness beyond
  // ROLLUP_MAX_STALENESS_MS is logged as an error on every round until it recovers.
  ROLLUP_REFRESH_INTERVAL_MS: int(15_000, 100, 3_600_000),
  ROLLUP_MAX_STALENESS_MS: int(60_000, 1_000, 86_400_000),
  // Days of events kept; older day partitions and their rollup rows are dropped. 0 keeps all.
  EVENT_RETENTION_DAYS: int(0, 0, 36_500),
  // Days of audit rows kept; older rows are deleted by purge_audit_log (the only delete the
  // audit log allows). 0 keeps everything.
  AUDIT_RETENTION_DAYS: int(0, 0, 36_500),
  // Live windows: events count in a window until it has been closed this long; later ones are
  // persisted and counted in late_events_total instead.
  REALTIME_WINDOW_GRACE_MS: int(30_000, 0, 3_600_000),
  AGGREGATE_CLAIM_IDLE_MS: int(10_000, 100, 3_600_000),
  // At most one live push per channel per interval, across replicas; it bounds update latency.
  REALTIME_PUSH_INTERVAL_MS: int(250, 10, 60_000),
  WS_CONNECTION_INIT_TIMEOUT_MS: int(5_000, 100, 60_000),
  WS_KEEPALIVE_MS: int(12_000, 1_000, 300_000),
  WS_MAX_SUBSCRIPTIONS_PER_CONNECTION: int(20, 1, 1_000),
  WS_MAX_SUBSCRIPTIONS_PER_KEY: int(200, 1, 100_000),
  QUERY_CACHE_ENABLED: flag(true),
  QUERY_CACHE_TTL_REALTIME_S: int(5, 1, 86_400),
  QUERY_CACHE_TTL_AGGREGATE_S: int(300, 1, 86_400),
  QUERY_CACHE_TTL_CLOSED_S: int(3_600, 1, 7 * 86_400),
  // Whole answers of operations made only of statistics fields, kept for the QUERY_CACHE_TTL_* tiers.
  RESPONSE_CACHE: flag(true),
  // Automatic persisted queries, shared by the replicas through Redis.
  PERSISTED_QUERY_TTL_S: int(86_400, 1, 30 * 86_400),
  // Audit rows are queued in memory and written in batches off the request path; past
  // AUDIT_MAX_QUEUE waiting rows (Postgres down for long), new ones are dropped and counted.
  AUDIT_LOG_ENABLED: flag(true),
  AUDIT_BATCH_SIZE: int(200, 1, 10_000),
  AUDIT_FLUSH_INTERVAL_MS: int(1_000, 10, 600_000),
  AUDIT_MAX_QUEUE: int(10_000, 1, 1_000_000),
  // enforce: refuse over-limit operations; measure: run them, but report and count what would have
  // been refused (to tune limits before enforcing them); off: no cost analysis or budget at all.
  COST_MODE: z.enum(['enforce', 'measure', 'off']).default('enforce'),
  COST_MAX_PER_OPERATION: int(1_000, 1, 10_000_000),
  COST_BUDGET_CAPACITY: int(20_000, 1, 1_000_000_000),
  COST_BUDGET_RESTORE_PER_MINUTE: int(20_000, 1, 1_000_000_000),
  // Each replica takes this many points beyond an operation's cost from the shared bucket and
  // answers the key's next operations from them without a Redis round trip (at most a tenth of
  // the capacity); unused points go back after COST_BUDGET_LEASE_MS. 0: a round trip per charge.
  COST_BUDGET_LEASE_POINTS: int(200, 0, 1_000_000_000),
  COST_BUDGET_LEASE_MS: int(1_000, 50, 60_000),
  MAX_QUERY_DEPTH: int(12, 1, 1_000),
  MAX_ALIASES: int(30, 0, 100_000),
  MAX_DIRECTIVES: int(50, 0, 100_000),
  MAX_TOKENS: int(10_000, 100, 10_000_000),
  MAX_BATCH_OPERATIONS: int(10, 1, 1_000),
  // Off: no OpenTelemetry SDK and no instrumentation at all (no spans, no trace ids in logs).
  TRACING_ENABLED: flag(true),
  // Base URL of an OTLP/HTTP collector (spans go to <url>/v1/traces); unset, nothing is exported.
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).max(128).default('analytics-gateway'),
  // Share of new traces recorded; a caller's sampled flag in traceparent is followed either way.
  TRACE_SAMPLE_RATIO: z.coerce.number().min(0).max(1).default(1),
  LOG_OPERATIONS: flag(true),
});

/** Every variable the gateway reads (the README's configuration table lists each of them). */
export const ENVIRONMENT_VARIABLES: readonly string[] = Object.keys(environmentSchema.shape);

export const configSchema = environmentSchema.transform((env) => ({
  env: env.NODE_ENV,
  http: {
    host: env.HOST,
    port: env.PORT,
    maxBodyBytes: env.MAX_BODY_BYTES,
    shutdownGraceMs: env.SHUTDOWN_GRACE_MS,
    requestTimeoutMs: env.REQUEST_TIMEOUT_MS,
    readyCheckTimeoutMs: env.READY_CHECK_TIMEOUT_MS,
  },
  graphql: {
    // Sandbox and introspection are for developers; production opts in explicitly.
    introspection: env.INTROSPECTION ?? env.NODE_ENV !== 'production',
    landingPage: env.NODE_ENV !== 'production',
  },
  database: {
    url: env.DATABASE_URL,
    /** A streaming replica for the query API's reads (src/analytics/analytics.service.ts); unset: the primary. */
    readUrl: env.DATABASE_READ_URL,
    poolMax: env.DATABASE_POOL_MAX,
    createIfMissing: env.DATABASE_CREATE_IF_MISSING,
    migrateOnStart: env.MIGRATE_ON_START,
    startupTimeoutMs: env.DATABASE_STARTUP_TIMEOUT_MS,
    statementTimeoutMs: env.DB_STATEMENT_TIMEOUT_MS,
  },
  redis: { url: env.REDIS_URL, clusterNodes: env.REDIS_CLUSTER_NODES, keyPrefix: env.REDIS_KEY_PREFIX },
  log: { level: env.LOG_LEVEL },
  auth: {
    bootstrapApiKey: env.BOOTSTRAP_API_KEY,
    cacheTtlMs: env.AUTH_CACHE_TTL_MS,
    cacheMaxKeys: env.AUTH_CACHE_MAX_KEYS,
    throttle: {
      enabled: env.AUTH_THROTTLE_ENABLED,
      windowMs: env.AUTH_THROTTLE_WINDOW_MS,
      maxPerAddress: env.AUTH_THROTTLE_MAX_PER_ADDRESS,
      maxPerKeyPrefix: env.AUTH_THROTTLE_MAX_PER_KEY_PREFIX,
      cleanMs: env.AUTH_THROTTLE_CLEAN_MS,
    },
  },
  role: env.ROLE,
  ingest: { ack: env.INGEST_ACK, maxBatch: env.INGEST_MAX_BATCH, dedupeWindowS: env.DEDUPE_WINDOW_S },
  streams: {
    partitions: env.STREAM_PARTITIONS,
    maxLength: env.STREAM_MAX_LENGTH,
    trimIntervalMs: env.STREAM_TRIM_INTERVAL_MS,
    replayRetentionMs: env.STREAM_REPLAY_RETENTION_MS,
  },
  persist: {
    batchSize: env.PERSIST_BATCH_SIZE,
    batchWaitMs: env.PERSIST_BATCH_WAIT_MS,
    claimIdleMs: env.PERSIST_CLAIM_IDLE_MS,
    maxDeliveries: env.PERSIST_MAX_DELIVERIES,
    retryMaxMs: env.PERSIST_RETRY_MAX_MS,
    concurrency: env.PERSIST_CONCURRENCY,
    mode: env.PERSIST_MODE,
  },
  rollups: {
    refreshIntervalMs: env.ROLLUP_REFRESH_INTERVAL_MS,
    maxStalenessMs: env.ROLLUP_MAX_STALENESS_MS,
    retentionDays: env.EVENT_RETENTION_DAYS,
  },
  realtime: {
    graceMs: env.REALTIME_WINDOW_GRACE_MS,
    claimIdleMs: env.AGGREGATE_CLAIM_IDLE_MS,
    pushIntervalMs: env.REALTIME_PUSH_INTERVAL_MS,
  },
  websocket: {
    connectionInitTimeoutMs: env.WS_CONNECTION_INIT_TIMEOUT_MS,
    keepAliveMs: env.WS_KEEPALIVE_MS,
    maxPerConnection: env.WS_MAX_SUBSCRIPTIONS_PER_CONNECTION,
    maxPerKey: env.WS_MAX_SUBSCRIPTIONS_PER_KEY,
  },
  cost: {
    mode: env.COST_MODE,
    maxPerOperation: env.COST_MAX_PER_OPERATION,
    budgetCapacity: env.COST_BUDGET_CAPACITY,
    restorePerMinute: env.COST_BUDGET_RESTORE_PER_MINUTE,
    leasePoints: env.COST_BUDGET_LEASE_POINTS,
    leaseMs: env.COST_BUDGET_LEASE_MS,
  },
  requestLimits: {
    maxDepth: env.MAX_QUERY_DEPTH,
    maxAliases: env.MAX_ALIASES,
    maxDirectives: env.MAX_DIRECTIVES,
    maxTokens: env.MAX_TOKENS,
    maxBatchOperations: env.MAX_BATCH_OPERATIONS,
  },
  queryCache: {
    enabled: env.QUERY_CACHE_ENABLED,
    ttlS: {
      realtime: env.QUERY_CACHE_TTL_REALTIME_S,
      aggregate: env.QUERY_CACHE_TTL_AGGREGATE_S,
      closed: env.QUERY_CACHE_TTL_CLOSED_S,
    },
  },
  responseCache: { enabled: env.RESPONSE_CACHE },
  persistedQueries: { ttlS: env.PERSISTED_QUERY_TTL_S },
  audit: {
    enabled: env.AUDIT_LOG_ENABLED,
    batchSize: env.AUDIT_BATCH_SIZE,
    flushIntervalMs: env.AUDIT_FLUSH_INTERVAL_MS,
    maxQueue: env.AUDIT_MAX_QUEUE,
    retentionDays: env.AUDIT_RETENTION_DAYS,
  },
  // One log line per GraphQL operation (logging.plugin.ts).
  operationLog: { enabled: env.LOG_OPERATIONS },
  tracing: {
    enabled: env.TRACING_ENABLED,
    otlpEndpoint: env.OTEL_EXPORTER_OTLP_ENDPOINT,
    serviceName: env.OTEL_SERVICE_NAME,
    sampleRatio: env.TRACE_SAMPLE_RATIO,
  },
}));

export type Config = Readonly<z.output<typeof configSchema>>;
export type Environment = Readonly<Record<string, string | undefined>>;

/** Thrown with every invalid variable at once, so an operator fixes them in one pass. */
export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** An empty variable means "unset": shells and compose files often export `FOO=` for defaults. */
function withoutEmpty(env: Environment): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) {
    if (value !== undefined && value !== '') out[name] = value;
  }
  return out;
}

export function loadConfig(env: Environment): Config {
  const parsed = configSchema.safeParse(withoutEmpty(env));
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const variable = issue.path.join('.') || '(environment)';
        // Never echo a rejected value: it may be a secret such as BOOTSTRAP_API_KEY.
        return `${variable}: ${issue.message}`;
      }),
    );
  }
  return deepFreeze(parsed.data);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}
