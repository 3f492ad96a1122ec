import { HeaderMap } from '@apollo/server';
import type pg from 'pg';
import type { RollupRebuilder } from '../analytics/rollup-rebuild.service.js';
import { RollupRepository } from '../analytics/rollup.repository.js';
import { BadUserInputError, RateLimitedError, ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Redis } from '../redis/create-redis.js';
import { eraseUserStreamEntries } from '../ingest/stream-erasure.js';
import type { StreamKeys } from '../redis/keys.js';
import { UserErasureRepository } from './user-erasure.repository.js';

const HOUR_MS = 3_600_000;
const MAX_USER_ID = 256;

export interface UserErasureOptions {
  /** Events deleted per statement (each its own transaction). Default 10,000. */
  readonly batchSize?: number;
  /** How long the tombstone may wait for in-flight event writes. Default 5 s. */
  readonly lockTimeoutMs?: number;
}

export interface UserErasure {
  readonly userId: string;
  readonly eventsDeleted: number;
  /** Also the tombstone's erased_at: events of the user received from then on are stored. */
  readonly completedAt: Date;
  readonly streamEntriesDeleted: number;
  readonly deadLettersDeleted: number;
}

/** An erasure takes seconds; asking again after one is a fair first guess. */
const ERASURE_RETRY_AFTER_S = 1;

/**
 * Another erasure of the same user holds its lock: the client sent the same request twice at
 * once, which is no fault of the server, so it gets 429 and a Retry-After rather than a 5xx.
 */
export class ErasureRunningError extends RateLimitedError {
  constructor() {
    super('An erasure of this user is already running; retry when it is done', {
      limit: 'erasure',
      retryAfter: ERASURE_RETRY_AFTER_S,
    });
    // Apollo takes an error's `http` status and headers into the response (auth-throttle.ts does the same).
    (this.extensions.http as { headers?: HeaderMap }).headers = new HeaderMap([
      ['retry-after', String(ERASURE_RETRY_AFTER_S)],
    ]);
  }
}

/**
 * Erases one user's events everywhere the gateway keeps them. In order:
 *
 * 1. the tombstone (erased_users) goes up as 'infinity': from its COMMIT on, the event writer
 *    stores no event of the user, whichever path it comes by (stream, reclaimed entry, replayed
 *    dead letter, degraded mode, INGEST_ACK=postgres), and every write that missed it has
 *    committed (UserErasureRepository.beginTombstone);
 * 2. the user's events go from every partition, `batchSize` at a time, each batch committing on
 *    its own and marking its hours dirty; then once more over a fresh partition list, for rows a
 *    new day partition moved out of the default one meanwhile;
 * 3. every dirty hour of the range the user's events covered is recomputed (minute, hour, day,
 *    per-user day), then, under the refresher's lock and in one transaction, the user leaves the
 *    distinct sets and per-user rollups and the tenant's types are recounted;
 * 4. the tombstone becomes final at the completion time T: an event of the user received before
 *    T is never stored, one received at or after T is (README, "Data lifecycle");
 * 5. stream entries and dead letters of the user received before T are deleted, and the tenant's
 *    cached answers are retired.
 * A failed erasure leaves the tombstone at 'infinity' (nothing of the user is stored): running
 * it again completes it.
 */
export function createUserErasureService(
  deps: {
    pool: pg.Pool;
    redis: Redis;
    keys: StreamKeys;
    rollups: RollupRebuilder;
    invalidate: (tenantId: string) => Promise<void>;
    logger: Logger;
  },
  { batchSize = 10_000, lockTimeoutMs = 5_000 }: UserErasureOptions = {},
) {
  const repository = new UserErasureRepository(deps.pool);
  const log = deps.logger.child({ component: 'user-erasure' });

  async function deleteEvents(tenantId: string, userId: string) {
    let deleted = 0;
    let first: Date | null = null;
    let last: Date | null = null;
    for (let pass = 0; pass < 2; pass++) {
      for (const partition of await repository.partitions()) {
        for (;;) {
          const batch = await repository.deleteBatch(partition, tenantId, userId, batchSize);
          deleted += batch.deleted;
          if (batch.first && (!first || batch.first < first)) first = batch.first;
          if (batch.last && (!last || batch.last > last)) last = batch.last;
          if (batch.deleted < batchSize) break;
        }
      }
    }
    return { deleted, first, last };
  }

  return {
    async erase(tenantId: string, userId: string): Promise<UserErasure> {
      if (userId.length === 0 || userId.length > MAX_USER_ID) {
        throw new BadUserInputError(`userId must be 1..${MAX_USER_ID} characters`, { argument: 'userId' });
      }
      const lock = await repository.lockUser(tenantId, userId).catch((err: unknown) => {
        log.error({ err }, 'could not take the erasure lock');
        throw new ServiceUnavailableError('The erasure cannot start right now; retry shortly');
      });
      if (!lock) throw new ErasureRunningError();
      try {
        return await eraseLocked(tenantId, userId);
      } finally {
        await lock.release();
      }
    },
  };

  async function eraseLocked(tenantId: string, userId: string): Promise<UserErasure> {
    const started = performance.now();
    await repository.beginTombstone(tenantId, userId, lockTimeoutMs).catch((err: unknown) => {
      log.error({ err }, 'could not set the erasure tombstone');
      throw new ServiceUnavailableError('The erasure cannot start right now; retry shortly');
    });
    const { deleted, first, last } = await deleteEvents(tenantId, userId);
    if (first && last) {
      const from = new Date(Math.floor(first.getTime() / HOUR_MS) * HOUR_MS);
      const to = new Date(Math.floor(last.getTime() / HOUR_MS) * HOUR_MS + HOUR_MS);
      await deps.rollups.recomputeDirty(tenantId, from, to);
    }
    // After the buckets: a refresh round may have folded the dirty hours in first, and counted the
    // user's pairs that were still in the sets then; the types are recounted without them here.
    await deps.rollups.withRefreshLock(async (client) => {
      const rollups = new RollupRepository(client);
      await client.query('BEGIN');
      try {
        await rollups.forgetUser(tenantId, userId);
        await rollups.recomputeTypes(tenantId);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    });
    // Millisecond precision, like received_at: "before T" means the same thing on both sides.
    const completedAt = new Date(Date.now());
    await repository.completeTombstone(tenantId, userId, completedAt);
    let streams = { streamEntries: 0, deadLetters: 0 };
    try {
      streams = await eraseUserStreamEntries(deps.redis, deps.keys, tenantId, userId, completedAt.getTime());
    } catch (err) {
      // Their events received before completedAt can no longer be stored, but these entries are still readable.
      log.error({ err }, 'could not delete the user from the streams');
      throw new ServiceUnavailableError('The user was erased from the database but not yet from the streams; retry');
    }
    await deps.invalidate(tenantId).catch((err: unknown) => log.warn({ err }, 'could not retire cached answers'));
    log.info(
      { tenantId, eventsDeleted: deleted, ...streams, durationMs: Math.round(performance.now() - started) },
      'user erased',
    );
    return {
      userId,
      eventsDeleted: deleted,
      completedAt,
      streamEntriesDeleted: streams.streamEntries,
      deadLettersDeleted: streams.deadLetters,
    };
  }
}

export type UserErasureService = ReturnType<typeof createUserErasureService>;
