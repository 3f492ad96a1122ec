import type pg from 'pg';
import { EventPartitionRepository } from '../ingest/event-partition.repository.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { type DirtyHour, RollupRepository, ROLLUP_SOURCES } from './rollup.repository.js';

/**
 * Any fixed number: the session-level advisory lock that makes one replica the refresher. Also
 * taken by rollup rebuilds and user erasures (src/analytics/rollup-rebuild.service.ts), so no two
 * recomputes of one tenant's rollups ever interleave.
 */
export const REFRESH_LOCK = 0x726f6c6c; // "roll"
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

export interface RollupRefresherOptions {
  /** Time between refresh rounds. Default 15 s: a quarter of the default 60 s staleness bound. */
  readonly intervalMs?: number;
  /** Staleness past which every round logs an error. Default 60 s (ROLLUP_MAX_STALENESS_MS). */
  readonly maxStalenessMs?: number;
  /** Dirty hours of one tenant folded in per round; the rest wait for the next. Default 168 (a week). */
  readonly maxHoursPerTenant?: number;
  /** Days of events kept (EVENT_RETENTION_DAYS); 0 keeps everything. Default 0. */
  readonly retentionDays?: number;
  /** How often the refreshing replica applies retention. Default one hour. */
  readonly retentionEveryMs?: number;
  /** Called after a tenant's new rollup rows have committed (the query cache drops its answers). */
  readonly onTenantRefreshed?: (tenantId: string) => Promise<void> | void;
}

export interface RefreshRound {
  /** false when another replica holds the refresh lock and this one did nothing. */
  readonly leader: boolean;
  readonly tenants: number;
  readonly hours: number;
  /** Dirty hours left for a later round (a tenant over maxHoursPerTenant, or a failed tenant). */
  readonly pending: boolean;
  readonly durationMs: number;
}

/**
 * Step 2 of a round for one tenant (see createRollupRefresher), in one transaction on `client`.
 * Also called by rollup rebuilds under the same lock.
 */
export async function refreshTenantHours(
  client: pg.PoolClient,
  tenantId: string,
  dirty: readonly DirtyHour[],
): Promise<void> {
  const repository = new RollupRepository(client);
  const byDay = new Map<number, Date[]>();
  for (const { hour } of dirty) {
    const day = Math.floor(hour.getTime() / DAY_MS) * DAY_MS;
    byDay.set(day, [...(byDay.get(day) ?? []), hour]);
  }
  await client.query('BEGIN');
  try {
    const touched = new Set<string>();
    for (const [dayMs, hours] of byDay) {
      const day = new Date(dayMs);
      const from = hours[0]!;
      const to = new Date(hours[hours.length - 1]!.getTime() + HOUR_MS);
      await repository.recomputeBuckets('minute', tenantId, from, to, hours);
      await repository.recomputeBuckets('hour', tenantId, from, to, hours);
      await repository.recomputeBuckets('day', tenantId, day, new Date(dayMs + DAY_MS), null);
      await repository.recomputeUserDay(tenantId, day);
      for (const user of await repository.addPairs(tenantId, from, to, hours)) touched.add(user);
    }
    await repository.recomputeUsers(tenantId, [...touched]);
    await repository.recomputeTypes(tenantId);
    await repository.clearDirty(tenantId, dirty);
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

/**
 * Keeps the rollup tables in step with the events table. Every replica runs this worker; a
 * session-level advisory lock lets exactly one of them refresh at a time, and the lock goes with
 * the connection if that replica dies. Each round:
 *
 * 1. notes the time, then reads the dirty markers. Events and their marker commit together
 *    (EventRepository), so every event committed before that time is covered by a marker read here;
 * 2. per tenant, in one transaction, recomputes the dirty hours' minute and hour buckets, their
 *    whole days (day buckets, per-user days), adds the hours' pairs to the distinct sets, then
 *    the touched users and the tenant's types, and deletes the markers it folded in (unless
 *    written again meanwhile). Readers see the old rows until COMMIT, never a half-done round;
 * 3. if no tenant was left with markers, records the noted time as every source's `refreshed_at`:
 *    from then on, staleness is the age of that time.
 */
export function createRollupRefresher(
  deps: { pool: pg.Pool; logger: Logger; metrics?: Metrics },
  {
    intervalMs = 15_000,
    maxStalenessMs = 60_000,
    maxHoursPerTenant = 168,
    retentionDays = 0,
    retentionEveryMs = 3_600_000,
    onTenantRefreshed,
  }: RollupRefresherOptions = {},
) {
  const { pool, metrics } = deps;
  const log = deps.logger.child({ worker: 'rollup-refresher' });
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<unknown> | undefined;
  let stopped = false;
  let lastRound: RefreshRound | undefined;
  let refreshedAt: Date | undefined;
  let retainedAt = 0;

  /**
   * Drops the day partitions older than the retention and forgets their rollup rows. Runs under
   * the refresh lock, so no round recomputes a tenant's users while their old days go.
   */
  async function applyRetention(client: pg.PoolClient): Promise<void> {
    const cutoff = new Date(Math.floor(Date.now() / DAY_MS) * DAY_MS - retentionDays * DAY_MS);
    const dropped = await new EventPartitionRepository(pool).dropBefore(cutoff);
    const repository = new RollupRepository(client);
    for (const tenantId of await repository.tenants()) {
      await client.query('BEGIN');
      try {
        await repository.forgetBefore(tenantId, cutoff);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
      await onTenantRefreshed?.(tenantId);
    }
    retainedAt = Date.now();
    if (dropped.length > 0) log.info({ dropped, cutoff }, 'dropped event partitions past EVENT_RETENTION_DAYS');
  }

  async function round(client: pg.PoolClient): Promise<RefreshRound> {
    const started = performance.now();
    const { rows } = await client.query<{ now: Date }>('SELECT clock_timestamp() AS now');
    const snapshotAt = rows[0]!.now;
    const repository = new RollupRepository(client);
    const { hours, truncated } = await repository.dirtyHours(maxHoursPerTenant);
    const byTenant = new Map<string, DirtyHour[]>();
    for (const h of hours) byTenant.set(h.tenantId, [...(byTenant.get(h.tenantId) ?? []), h]);

    let failed = false;
    for (const [tenantId, dirty] of byTenant) {
      if (stopped) return { leader: true, tenants: 0, hours: 0, pending: true, durationMs: 0 };
      try {
        await refreshTenantHours(client, tenantId, dirty);
      } catch (err) {
        failed = true;
        metrics?.rollupRefreshFailures.inc();
        log.error({ err, tenantId, hours: dirty.length }, 'rollup refresh failed for a tenant; its hours stay dirty');
        continue;
      }
      await Promise.resolve(onTenantRefreshed?.(tenantId)).catch((err: unknown) =>
        log.warn({ err, tenantId }, 'could not invalidate cached answers after a refresh'),
      );
    }
    if (retentionDays > 0 && Date.now() - retainedAt >= retentionEveryMs) await applyRetention(client);
    const durationMs = performance.now() - started;
    const pending = failed || truncated.size > 0;
    if (!pending) {
      await repository.recordRefresh(snapshotAt, durationMs);
      refreshedAt = snapshotAt;
    }
    metrics?.rollupRefreshDuration.observe(durationMs / 1000);
    metrics?.rollupDirtyHours.set(hours.length);
    return { leader: true, tenants: byTenant.size, hours: hours.length, pending, durationMs };
  }

  /** One round if this replica gets the lock; otherwise only reads how fresh the rollups are. */
  async function runOnce(): Promise<RefreshRound> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      // A round over many dirty hours may run past DB_STATEMENT_TIMEOUT_MS (db/pool.ts), which
      // bounds request statements; reset below before the connection goes back to the pool.
      await client.query('SET statement_timeout = 0');
      const { rows } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
        REFRESH_LOCK,
      ]);
      let result: RefreshRound = { leader: false, tenants: 0, hours: 0, pending: false, durationMs: 0 };
      if (rows[0]?.locked) {
        try {
          result = await round(client);
        } finally {
          await client.query('SELECT pg_advisory_unlock($1)', [REFRESH_LOCK]);
        }
      } else {
        const latest = await new RollupRepository(client).freshness();
        refreshedAt = latest[0]?.refreshedAt ?? refreshedAt;
      }
      if (refreshedAt) for (const source of ROLLUP_SOURCES) metrics?.setRollupRefreshedAt(source, refreshedAt);
      lastRound = result;
      return result;
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      if (!broken) await client.query('RESET statement_timeout').catch((err: unknown) => (broken = err as Error));
      // A connection that failed mid-round may still hold the lock or a transaction: discard it.
      client.release(broken);
    }
  }

  /** Runs rounds until nothing is dirty (after a bulk load); waits for the lock if another replica has it. */
  async function catchUp(): Promise<void> {
    for (;;) {
      const result = await runOnce();
      if (result.leader && !result.pending) return;
      if (!result.leader) await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  async function tick(): Promise<void> {
    try {
      const result = await runOnce();
      if (result.leader && result.hours > 0) log.debug(result, 'rollups refreshed');
    } catch (err) {
      metrics?.rollupRefreshFailures.inc();
      log.warn({ err }, 'rollup refresh round failed; will retry');
    }
    const staleness = stalenessMs();
    if (staleness !== undefined && staleness > maxStalenessMs) {
      log.error({ stalenessMs: staleness, maxStalenessMs }, 'rollups are staler than ROLLUP_MAX_STALENESS_MS');
    }
  }

  function stalenessMs(): number | undefined {
    return refreshedAt ? Date.now() - refreshedAt.getTime() : undefined;
  }

  function schedule(): void {
    if (stopped) return;
    timer = setTimeout(() => {
      running = tick().finally(schedule);
    }, intervalMs);
    timer.unref();
  }

  return {
    runOnce,
    catchUp,
    async start(): Promise<void> {
      stopped = false;
      running = tick();
      await running;
      schedule();
    },
    async stop(): Promise<void> {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
    readiness: () => ({
      lastRound: lastRound ?? null,
      refreshedAt: refreshedAt ?? null,
      stalenessMs: stalenessMs() ?? null,
    }),
  };
}

export type RollupRefresher = ReturnType<typeof createRollupRefresher>;
