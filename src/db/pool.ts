import pg from 'pg';
import type { Config } from '../config/config.js';
import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export type Pool = pg.Pool;

export interface PoolOptions {
  /** Shown in pg_stat_activity.application_name, and the `pool` label of the db_* metrics. Default `analytics-gateway`. */
  readonly name?: string;
  /**
   * Plan every prepared statement once per connection, for any parameters (plan_cache_mode =
   * force_generic_plan). For statements over the partitioned events table, planning costs more
   * than running: with ~100 day partitions and their indexes Postgres spends 6–9 ms planning a
   * query that then runs in under 1 ms, and its own choice stays with custom plans because a
   * generic plan's estimate counts every partition. A generic plan prunes partitions when it
   * starts (parameters) and per rescan (LATERAL values) instead. Only for a pool whose callers
   * name their statements and pass parameters that do not change which plan is right. Default off.
   */
  readonly genericPlans?: boolean;
  /** The server to connect to, when not `config.database.url` (a read replica). */
  readonly url?: string;
  /**
   * Where the pool's gauges and the per-statement durations go (db_pool_connections,
   * db_query_duration_seconds, db_statement_timeouts_total). Default none: a CLI or a test pool
   * measures nothing.
   */
  readonly metrics?: Metrics;
  /** The `pool` label of the db_* metrics (and systemStatus' pool name). Default the name. */
  readonly label?: string;
}

/** Postgres cancelled the statement at statement_timeout: the client may retry, nothing is held. */
export class StatementTimeoutError extends ServiceUnavailableError {
  readonly sqlState = '57014';
  constructor(timeoutMs: number, cause: unknown) {
    super(`The request took longer than the database allows (${timeoutMs} ms) and was cancelled; retry shortly`);
    this.cause = cause;
  }
}

/** Distinct statement labels per pool before the rest share `other` (the histogram's cardinality). */
const MAX_STATEMENT_LABELS = 200;

export function createPool(config: Pick<Config, 'database'>, logger: Logger, options: PoolOptions = {}): pg.Pool {
  const name = options.name ?? 'analytics-gateway';
  const timeoutMs = config.database.statementTimeoutMs ?? 0;
  const pool = new pg.Pool({
    connectionString: options.url ?? config.database.url,
    max: config.database.poolMax,
    // Fail fast when Postgres is unreachable so callers can answer SERVICE_UNAVAILABLE (or fall
    // back) instead of queueing requests behind a dead connection attempt.
    connectionTimeoutMillis: 5_000,
    idleTimeoutMillis: 30_000,
    application_name: name,
    // Postgres ends a statement past the timeout, even one waiting for a lock, so no statement
    // holds a connection of the pool longer than that (set per session at connect: a caller that
    // needs longer, like the rollup refresh, lifts it for its own connection and resets it).
    ...(timeoutMs > 0 ? { statement_timeout: timeoutMs } : {}),
    // Day arithmetic in SQL (interval '1 day', generate_series) follows the session time zone;
    // buckets and partitions are UTC days whatever the server's default.
    options: `-c timezone=UTC${options.genericPlans ? ' -c plan_cache_mode=force_generic_plan' : ''}`,
  });
  // An idle client losing its connection emits here; without a listener it would crash the process.
  pool.on('error', (err) => logger.warn({ err }, 'idle postgres connection failed'));
  const metrics = options.metrics;
  const label = options.label ?? name;
  if (metrics) metrics.observePool(label, pool);
  const labels = new Set<string>();
  const labelOf = (statement: string) => {
    if (labels.has(statement)) return statement;
    if (labels.size >= MAX_STATEMENT_LABELS) return 'other';
    labels.add(statement);
    return statement;
  };
  // Lent-out connections, so closePool can cut those that a cut request left waiting.
  const lent = new Set<pg.PoolClient>();
  lentClients.set(pool, lent);
  pool.on('acquire', (client) => lent.add(client));
  pool.on('release', (_err, client) => lent.delete(client));
  pool.on('remove', (client) => lent.delete(client as pg.PoolClient));
  // Every statement goes through a client's query, pool.query included: wrapped once per connection.
  pool.on('connect', (client) => {
    // pg-pool listens for errors only on idle clients. A connection lost while lent out between two
    // statements (a worker's transaction around a COPY, say) emits 'error' on the client with no
    // query to fail, and an 'error' nobody listens to ends the process. The holder learns of it
    // from its next statement, which fails, and releases the client as broken.
    client.on('error', (err) => logger.warn({ err }, 'postgres connection failed while in use'));
    instrumentClient(client, (statement, seconds, err) => {
      const timedOut = (err as { code?: unknown } | undefined)?.code === '57014';
      if (timedOut) metrics?.dbStatementTimeouts.inc({ pool: label });
      metrics?.dbQueryDuration.observe(
        { pool: label, statement: labelOf(statement), outcome: err ? (timedOut ? 'timeout' : 'error') : 'ok' },
        seconds,
      );
      return timedOut ? new StatementTimeoutError(timeoutMs, err) : err;
    });
  });
  return pool;
}

const lentClients = new WeakMap<pg.Pool, Set<pg.PoolClient>>();

/**
 * Ends the pool, waiting at most `forceAfterMs` for lent-out connections to come back; then cuts
 * their sockets, so their statements fail at once. pool.end() alone waits for every one of them:
 * a statement stuck on a lock (with DB_STATEMENT_TIMEOUT_MS off, or longer than what is left)
 * would hold the process past SHUTDOWN_GRACE_MS, though the request it served was cut already.
 */
export async function closePool(pool: pg.Pool, { forceAfterMs }: { forceAfterMs: number }): Promise<void> {
  const ended = pool.end();
  let timer: NodeJS.Timeout | undefined;
  const late = await Promise.race([
    ended.then(() => false),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), forceAfterMs))),
  ]);
  clearTimeout(timer);
  if (!late) return;
  for (const client of lentClients.get(pool) ?? []) {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
  }
  await ended;
}

/** Observes one statement; returns the error to hand on (undefined after a success). */
type Settle = (statement: string, seconds: number, err: unknown) => unknown;

/**
 * Times each statement of one client and passes its error through `settle`, which may replace it
 * (a statement timeout becomes SERVICE_UNAVAILABLE). Streams (COPY, cursors: anything with
 * `submit`) pass untouched; they time themselves.
 */
function instrumentClient(client: pg.PoolClient, settle: Settle): void {
  const original = client.query.bind(client) as (...args: unknown[]) => unknown;
  const wrapped = (...args: unknown[]): unknown => {
    const first = args[0];
    if (first && typeof (first as { submit?: unknown }).submit === 'function') return original(...args);
    const statement = statementName(first);
    const started = performance.now();
    const seconds = () => (performance.now() - started) / 1000;
    const last = args[args.length - 1];
    if (typeof last === 'function') {
      // pool.query calls client.query with a callback.
      args[args.length - 1] = (err: unknown, result: unknown) =>
        (last as (e: unknown, r: unknown) => void)(settle(statement, seconds(), err), result);
      return original(...args);
    }
    return (original(...args) as Promise<unknown>).then(
      (result) => {
        settle(statement, seconds(), undefined);
        return result;
      },
      (err: unknown) => {
        throw settle(statement, seconds(), err);
      },
    );
  };
  (client as unknown as { query: typeof wrapped }).query = wrapped;
}

const VERB = /^\s*(?:\/\*[\s\S]*?\*\/\s*)*(\w+)/;
const TABLE = /\b(?:FROM|INTO|UPDATE|JOIN|TABLE)\s+(?:ONLY\s+)?("?[\w.]+"?)/i;

/**
 * The statement's label: the name its repository gave it (a prepared statement's `name`), else
 * its verb and first table (`select events`, `insert audit_log`), which are as many as the
 * repositories' statements at most.
 */
export function statementName(query: unknown): string {
  const config = typeof query === 'string' ? { text: query } : (query as { text?: unknown; name?: unknown } | null);
  if (typeof config?.name === 'string' && config.name) return config.name.slice(0, 64);
  const text = typeof config?.text === 'string' ? config.text : '';
  const verb = VERB.exec(text)?.[1]?.toLowerCase() ?? 'unknown';
  const table = TABLE.exec(text)?.[1]?.replace(/"/g, '').toLowerCase();
  return (table ? `${verb} ${table}` : verb).slice(0, 64);
}
