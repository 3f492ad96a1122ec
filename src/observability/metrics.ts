import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Every metric the gateway exports, in one place. Each app instance gets its own registry so two
 * gateways in one process (tests, or API and worker roles side by side) never collide.
 * Names follow the public contract in docs/contract.md; label sets are bounded.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  // Staleness is computed at scrape time, so it keeps growing while no refresh succeeds.
  const rollupRefreshedAt = new Map<string, number>();
  // Read at scrape time too: pg keeps the counts, nothing has to be updated on checkout.
  const pools = new Map<string, PoolCounts>();

  return {
    registry,

    httpRequestDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'Time from receiving an HTTP request to finishing its response; observed once per response, by matched route (unmatched paths share one label) and status.',
      labelNames: ['method', 'route', 'status_code'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),

    authLookups: new Counter({
      name: 'auth_key_lookups_total',
      help: 'API key checks by outcome: cached (answered from the in-process cache), verified (looked up in Postgres), rejected (unknown or revoked key), stale (Postgres failed, a recently verified entry was used), error (Postgres failed, nothing cached).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),

    authRevocationsReceived: new Counter({
      name: 'auth_revocations_received_total',
      help: "Key revocations received over Redis from any replica (including this one); each evicts the key from this replica's cache at once.",
      registers: [registry],
    }),

    dependencyUp: new Gauge({
      name: 'dependency_up',
      help: 'Result of the last readiness check of a dependency: 1 reachable, 0 not. Updated on every /ready probe.',
      labelNames: ['dependency'] as const,
      registers: [registry],
    }),

    dependencyCheckDuration: new Histogram({
      name: 'dependency_check_duration_seconds',
      help: 'Round trip of the readiness check of a dependency (SELECT 1, PING); observed on every /ready probe.',
      labelNames: ['dependency'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
      registers: [registry],
    }),

    eventsIngested: new Counter({
      name: 'events_ingested_total',
      help: 'Events answered by recordEvent(s), by outcome: accepted (new, durable in the stream or Postgres), duplicate (messageId seen within the dedupe window), rejected (invalid input).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),

    ingestDegraded: new Gauge({
      name: 'ingest_degraded',
      help: '1 while recordEvents writes to Postgres directly because Redis cannot be reached (degraded mode), else 0. Set on every ingest request.',
      registers: [registry],
    }),

    streamLength: new Gauge({
      name: 'stream_length',
      help: 'Entries in an event stream partition (XLEN), sampled by the stream maintenance loop.',
      labelNames: ['partition'] as const,
      registers: [registry],
    }),

    streamGroupLag: new Gauge({
      name: 'stream_group_lag',
      help: 'Entries of a partition not yet delivered to a consumer group (XINFO GROUPS lag), sampled by the stream maintenance loop.',
      labelNames: ['group', 'partition'] as const,
      registers: [registry],
    }),

    streamGroupPending: new Gauge({
      name: 'stream_group_pending',
      help: 'Entries delivered to a consumer group but not acknowledged yet (in flight, or held by a dead consumer until reclaimed).',
      labelNames: ['group', 'partition'] as const,
      registers: [registry],
    }),

    persistBatchSize: new Histogram({
      name: 'persist_batch_size',
      help: 'Events per batch written to Postgres by the persist consumer; observed once per committed batch.',
      buckets: [1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers: [registry],
    }),

    persistBatchDuration: new Histogram({
      name: 'persist_batch_duration_seconds',
      help: 'Time to write one batch to Postgres and acknowledge it in Redis; observed once per committed batch.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),

    eventsPersisted: new Counter({
      name: 'events_persisted_total',
      help: 'Stream entries the persist consumer has committed to Postgres and acknowledged, by outcome: stored (new row) or skipped (already stored: a redelivery or a repeated messageId).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),

    persistRetries: new Counter({
      name: 'persist_retries_total',
      help: 'Batches the persist consumer had to retry because Postgres failed (it backs off exponentially and acknowledges nothing meanwhile).',
      registers: [registry],
    }),

    deadLetters: new Counter({
      name: 'dead_letters_total',
      help: 'Stream entries moved to the dead-letter stream, by reason: unparseable, rejected (Postgres refused the row), max_deliveries (delivered too often without being acknowledged).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),

    deadLetterLength: new Gauge({
      name: 'dead_letter_length',
      help: 'Entries waiting in the dead-letter streams (all partitions), sampled by the stream maintenance loop.',
      registers: [registry],
    }),

    rollupRefreshDuration: new Histogram({
      name: 'rollup_refresh_duration_seconds',
      help: 'Duration of one rollup refresh round on the replica holding the refresh lock (all dirty hours of all tenants, up to the per-round cap); observed once per round.',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers: [registry],
    }),

    rollupRefreshFailures: new Counter({
      name: 'rollup_refresh_failures_total',
      help: "Rollup refresh rounds, or one tenant's part of a round, that failed and left their hours dirty for the next round.",
      registers: [registry],
    }),

    rollupDirtyHours: new Gauge({
      name: 'rollup_dirty_hours',
      help: '(tenant, hour) pairs with events not yet in the rollups, as read at the start of the last refresh round on this replica.',
      registers: [registry],
    }),

    rollupStaleness: new Gauge({
      name: 'rollup_staleness_seconds',
      help: 'Age of the data in each rollup: seconds since the start of the last refresh round that caught up with every committed event. Computed at scrape time from the last refresh any replica recorded.',
      labelNames: ['source'] as const,
      registers: [registry],
      collect() {
        for (const [source, at] of rollupRefreshedAt) this.set({ source }, (Date.now() - at) / 1000);
      },
    }),

    setRollupRefreshedAt(source: string, at: Date): void {
      rollupRefreshedAt.set(source, at.getTime());
    },

    dbPoolConnections: new Gauge({
      name: 'db_pool_connections',
      help: 'Connections of a Postgres pool of this process, read at scrape time, by state: total (open), idle (open, not checked out), waiting (callers queued for a connection; above 0 the pool is the bottleneck).',
      labelNames: ['pool', 'state'] as const,
      registers: [registry],
      collect() {
        for (const [pool, counts] of pools) {
          this.set({ pool, state: 'total' }, counts.totalCount);
          this.set({ pool, state: 'idle' }, counts.idleCount);
          this.set({ pool, state: 'waiting' }, counts.waitingCount);
        }
      },
    }),

    /** Reports a pool under `name` in db_pool_connections from now on. */
    observePool(name: string, pool: PoolCounts): void {
      pools.set(name, pool);
    },

    queryCacheRequests: new Counter({
      name: 'query_cache_requests_total',
      help: 'Statistics answers looked up in the Redis result cache, by query field and result: hit, miss (computed and stored), error (Redis failed; computed without the cache).',
      labelNames: ['field', 'result'] as const,
      registers: [registry],
    }),

    responseCacheRequests: new Counter({
      name: 'response_cache_requests_total',
      help: 'Operations made only of cacheable fields, looked up in the whole-response cache before execution, by result: hit (answered without executing), miss (executed; stored when free of errors), error (Redis failed on read or write; executed or not stored).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),

    responseCacheNotModified: new Counter({
      name: 'response_cache_not_modified_total',
      help: "GET answers sent as 304 Not Modified because If-None-Match named the answer's ETag.",
      registers: [registry],
    }),

    eventsAggregated: new Counter({
      name: 'events_aggregated_total',
      help: 'Stream entries the aggregate consumer group counted into the live windows and acknowledged, in one script per batch.',
      registers: [registry],
    }),

    lateEvents: new Counter({
      name: 'late_events_total',
      help: 'Events that arrived after their window (by length) had closed and its grace period had passed: persisted, but not counted in that live window.',
      labelNames: ['window'] as const,
      registers: [registry],
    }),

    aggregateBatchDuration: new Histogram({
      name: 'aggregate_batch_duration_seconds',
      help: 'Time to count one batch of stream entries into the live windows (decode, script, acknowledge); observed once per batch.',
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),

    aggregateLag: new Gauge({
      name: 'aggregate_lag_seconds',
      help: 'Per window length: seconds from the receipt of the newest event of the last batch counted in such windows until that batch was in them; set once per batch.',
      labelNames: ['window'] as const,
      registers: [registry],
    }),

    windowSnapshotsPublished: new Counter({
      name: 'window_snapshots_published_total',
      help: 'Live window snapshots published to the subscription channels (at most one per channel per REALTIME_PUSH_INTERVAL_MS across all replicas, plus one final snapshot per window).',
      registers: [registry],
    }),

    wsConnections: new Gauge({
      name: 'ws_connections',
      help: 'Open graphql-ws connections on this replica (initialised or not).',
      registers: [registry],
    }),

    subscriptionsActive: new Gauge({
      name: 'subscriptions_active',
      help: 'Running subscriptions on this replica, by field.',
      labelNames: ['field'] as const,
      registers: [registry],
    }),

    subscriptionPushes: new Counter({
      name: 'subscription_pushes_total',
      help: 'Messages handed to subscribers on this replica (each written to its socket before the next one is taken).',
      labelNames: ['field'] as const,
      registers: [registry],
    }),

    subscriptionExecutions: new Counter({
      name: 'subscription_executions_total',
      help: "Executions of a subscription's selection set on this replica, by field: one per pushed message and distinct selection (tenant, scopes, document, variables), shared by every subscriber of that channel with that selection, plus one per subscriber for its first snapshot. Compare with subscription_pushes_total.",
      labelNames: ['field'] as const,
      registers: [registry],
    }),

    subscriptionPushesCoalesced: new Counter({
      name: 'subscription_pushes_coalesced_total',
      help: 'Window snapshots replaced by a newer one before a slow subscriber took them.',
      registers: [registry],
    }),

    subscriptionPushesDropped: new Counter({
      name: 'subscription_pushes_dropped_total',
      help: 'Events dropped (oldest first) for an eventRecorded subscriber that held its maximum undelivered.',
      registers: [registry],
    }),

    subscriptionsRefused: new Counter({
      name: 'subscriptions_refused_total',
      help: 'WebSocket connections or subscriptions refused, by reason: unauthenticated, forbidden, connection_limit, key_limit.',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),

    auditEntries: new Counter({
      name: 'audit_entries_total',
      help: 'Audit rows by fate: written (committed to audit_log by a batch), dropped (refused because AUDIT_MAX_QUEUE rows were already waiting, or a row Postgres rejected as invalid, or left unwritten when shutdown gave up).',
      labelNames: ['result'] as const,
      registers: [registry],
    }),

    auditFlushFailures: new Counter({
      name: 'audit_flush_failures_total',
      help: 'Audit batches whose INSERT failed (Postgres unreachable or failing); the rows stay queued and are retried with backoff.',
      registers: [registry],
    }),

    auditQueueLength: new Gauge({
      name: 'audit_queue_length',
      help: 'Audit rows waiting in memory to be written; set whenever a row is queued or a batch is written.',
      registers: [registry],
    }),

    auditRowsPurged: new Counter({
      name: 'audit_rows_purged_total',
      help: 'Audit rows deleted by the retention job because they were older than AUDIT_RETENTION_DAYS; moves once per purge batch.',
      registers: [registry],
    }),

    auditFlushDuration: new Histogram({
      name: 'audit_flush_duration_seconds',
      help: 'Time to write one batch of audit rows (masking and INSERT); observed once per successful batch.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),

    operationCost: new Histogram({
      name: 'graphql_operation_cost',
      help: 'Requested (static) cost of each GraphQL operation the cost limits examined, HTTP and WebSocket, by operation type; observed before execution, whether it then ran or not.',
      labelNames: ['operation'] as const,
      buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000],
      registers: [registry],
    }),

    costRejections: new Counter({
      name: 'graphql_cost_rejections_total',
      help: 'Operations refused by a limit (mode enforce) or that a limit would have refused (mode measure, where they ran), by reason: operation_limit, budget, depth, aliases, directives, tokens, batch.',
      labelNames: ['reason', 'mode'] as const,
      registers: [registry],
    }),

    costBudgetErrors: new Counter({
      name: 'cost_budget_errors_total',
      help: 'Budget charges, refunds or reads that failed because Redis could not be reached; the operation was served without a budget (fail-open).',
      registers: [registry],
    }),

    dbQueryDuration: new Histogram({
      name: 'db_query_duration_seconds',
      help: 'Time of one Postgres statement, from sending it to its result or error, by pool and statement (the name a repository gives it, or its verb and first table; at most 200 distinct, later ones share other); observed once per statement.',
      labelNames: ['pool', 'statement', 'outcome'] as const,
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),

    requestDeadlinesExceeded: new Counter({
      name: 'request_deadlines_exceeded_total',
      help: 'Requests that ran past REQUEST_TIMEOUT_MS and were stopped there (answered SERVICE_UNAVAILABLE, no further pool connection or statement), by transport; counted when the answer has gone out.',
      labelNames: ['transport'] as const,
      registers: [registry],
    }),

    dbStatementTimeouts: new Counter({
      name: 'db_statement_timeouts_total',
      help: 'Statements Postgres cancelled at DB_STATEMENT_TIMEOUT_MS (SQLSTATE 57014), by pool; each was answered SERVICE_UNAVAILABLE and its connection went back to the pool.',
      labelNames: ['pool'] as const,
      registers: [registry],
    }),

    authFailures: new Counter({
      name: 'auth_failures_total',
      help: 'Presented credentials refused (malformed, unknown, wrong secret, revoked), counted once per refused request or WebSocket connection, before throttling looks at them.',
      registers: [registry],
    }),

    authThrottled: new Counter({
      name: 'auth_throttled_total',
      help: 'Requests or WebSocket connections refused with RATE_LIMITED before their key was checked, because their client address or key prefix failed authentication too often in the window (AUTH_THROTTLE_*), by subject: address or key_prefix.',
      labelNames: ['subject'] as const,
      registers: [registry],
    }),

    graphqlResolverDuration: new Histogram({
      name: 'graphql_resolver_duration_seconds',
      help: 'Time of one call of a non-trivial field resolver (query and mutation fields, field resolvers; plain property reads are not timed), until its value or promise settles; labelled by the schema coordinates parent_type.field, never by aliases.',
      labelNames: ['parent_type', 'field'] as const,
      buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),

    graphqlOperationDuration: new Histogram({
      name: 'graphql_operation_duration_seconds',
      help: 'Time from the start of a GraphQL operation (over HTTP, or a subscription being set up over WebSocket) to its response; observed once per operation. outcome: success, error (executed with errors), rejected (refused before execution: parse, validation, limits). operation_name: the name from the document, for the first 100 distinct names of operations that passed validation; later names share other, unnamed operations anonymous.',
      labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** What db_pool_connections reads from a pool (pg.Pool has these). */
export interface PoolCounts {
  readonly totalCount: number;
  readonly idleCount: number;
  readonly waitingCount: number;
}
