import type pg from 'pg';
import { BadUserInputError } from '../graphql/errors.js';
import { RollupRepository } from './rollup.repository.js';
import { REFRESH_LOCK, refreshTenantHours } from './rollup.refresher.js';

const HOUR_MS = 3_600_000;

export interface RollupRebuilderOptions {
  /** Hours recomputed per transaction (and per hold of the refresh lock). Default 24. */
  readonly hoursPerStep?: number;
  /** Longest range one rebuild accepts, in days. Default 400. */
  readonly maxDays?: number;
}

export interface RebuildProgress {
  readonly hoursDone: number;
  readonly hoursTotal: number;
}

export interface RollupRebuild {
  readonly hours: number;
  readonly completedAt: Date;
}

/**
 * Recomputes a tenant's rollups of a time range from the events table, so events that reached it
 * without the event writer (a bulk COPY, a repair) are counted, and rollups recomputed after the
 * user erasure (src/privacy/user-erasure.service.ts).
 *
 * How it stays safe beside ingestion and the refresher (src/analytics/rollup.refresher.ts):
 * - it first marks every hour of the range dirty, committed on its own: if the process dies,
 *   the refresher finishes the job;
 * - it then folds those hours in with the refresher's own per-tenant step, holding the
 *   refresher's advisory lock for one step at a time (a day), so a refresh round and a rebuild
 *   step never run at once and the refresher gets the lock back between steps;
 * - a marker is cleared only if its version did not move since it was read, so an hour that
 *   ingestion wrote to meanwhile stays dirty and the next refresh round recomputes it again.
 *   Ingestion itself takes no lock a rebuild holds for longer than a row's marker update.
 */
export function createRollupRebuilder(
  deps: { pool: pg.Pool; onTenantRefreshed?: (tenantId: string) => Promise<void> | void },
  { hoursPerStep = 24, maxDays = 400 }: RollupRebuilderOptions = {},
) {
  const { pool } = deps;

  /** Runs `fn` holding the refresh lock (waiting for a round in progress to finish). */
  async function withRefreshLock<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('SELECT pg_advisory_lock($1)', [REFRESH_LOCK]);
      try {
        return await fn(client);
      } finally {
        await client.query('SELECT pg_advisory_unlock($1)', [REFRESH_LOCK]);
      }
    } catch (err) {
      broken = err as Error;
      throw err;
    } finally {
      // A connection that failed may still hold the lock or a transaction: discard it.
      client.release(broken);
    }
  }

  /**
   * Folds in the tenant's dirty hours inside [from, to), oldest first, one step at a time. The
   * walk only moves forward: an hour marked again while the walk runs is left to the refresher.
   */
  async function recomputeDirty(
    tenantId: string,
    from: Date,
    to: Date,
    onProgress?: (progress: RebuildProgress) => void,
  ): Promise<void> {
    const hoursTotal = Math.max(0, Math.round((to.getTime() - from.getTime()) / HOUR_MS));
    let cursor = from;
    onProgress?.({ hoursDone: 0, hoursTotal });
    while (cursor < to) {
      const dirty = await withRefreshLock(async (client) => {
        const hours = await new RollupRepository(client).dirtyHoursOf(tenantId, cursor, to, hoursPerStep);
        if (hours.length) await refreshTenantHours(client, tenantId, hours);
        return hours;
      });
      cursor = dirty.length < hoursPerStep ? to : new Date(dirty.at(-1)!.hour.getTime() + HOUR_MS);
      onProgress?.({ hoursDone: Math.round((cursor.getTime() - from.getTime()) / HOUR_MS), hoursTotal });
    }
    await deps.onTenantRefreshed?.(tenantId);
  }

  return {
    recomputeDirty,
    withRefreshLock,

    /** Recomputes every UTC hour touching [from, to); answers how many hours that was. */
    async rebuild(
      tenantId: string,
      from: Date,
      to: Date,
      onProgress?: (progress: RebuildProgress) => void,
    ): Promise<RollupRebuild> {
      if (!(from.getTime() < to.getTime())) throw new BadUserInputError('`from` must be before `to`');
      if (to.getTime() - from.getTime() > maxDays * 24 * HOUR_MS) {
        throw new BadUserInputError(`a rebuild covers at most ${maxDays} days`, { maxDays });
      }
      const first = new Date(Math.floor(from.getTime() / HOUR_MS) * HOUR_MS);
      const end = new Date(Math.ceil(to.getTime() / HOUR_MS) * HOUR_MS);
      const hours = await new RollupRepository(pool).markDirty(tenantId, first, end);
      await recomputeDirty(tenantId, first, end, onProgress);
      return { hours, completedAt: new Date() };
    },
  };
}

export type RollupRebuilder = ReturnType<typeof createRollupRebuilder>;
