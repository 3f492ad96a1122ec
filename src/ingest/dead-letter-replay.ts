import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';
import { compareStreamIds, fieldsOf, type StreamEntry } from '../streams/stream-entries.js';

/**
 * Puts up to `limit` of a tenant's dead letters back on their partition's stream (oldest first),
 * each append and removal in one MULTI. The payload keeps its event id and time, so a replayed
 * event that was in fact stored is skipped by the persister, not stored twice.
 */
export async function replayDeadLetters(
  redis: Redis,
  keys: StreamKeys,
  tenantId: string,
  limit: number,
): Promise<number> {
  let replayed = 0;
  for (let partition = 0; partition < keys.partitions && replayed < limit; partition++) {
    let start = '-';
    while (replayed < limit) {
      const page = (await redis.xrange(keys.deadLetters(partition), start, '+', 'COUNT', 500)) as StreamEntry[];
      if (page.length === 0) break;
      for (const [id, flat] of page) {
        const fields = fieldsOf(flat);
        if (fields.t !== tenantId) continue;
        const result = await redis
          .multi()
          .xadd(keys.stream(partition), '*', 't', tenantId, 'e', fields.e ?? '')
          .xdel(keys.deadLetters(partition), id)
          .exec();
        if (result?.some(([err]) => err)) throw new Error('replaying a dead letter failed');
        if (++replayed >= limit) break;
      }
      start = `(${page.at(-1)![0]}`;
    }
  }
  return replayed;
}

/** One dead letter as deadLetters() lists it; `id` is `<partition>:<entry id>` of the dead-letter stream. */
export interface DeadLetterRecord {
  readonly id: string;
  readonly partition: number;
  readonly entryId: string;
  readonly reason: string;
  /** Deliveries to the persist group before it gave up; null for letters written before it was recorded. */
  readonly deliveries: number | null;
  readonly failedAt: Date | null;
  /** The stream payload as it was dead-lettered (src/ingest/stream-event.ts encodes it). */
  readonly payload: string;
}

const PAGE_SCAN = 500;

function recordOf(partition: number, [entryId, flat]: StreamEntry): DeadLetterRecord {
  const f = fieldsOf(flat);
  const at = f.at ? new Date(f.at) : null;
  return {
    id: `${partition}:${entryId}`,
    partition,
    entryId,
    reason: f.reason ?? '',
    deliveries: f.n && /^\d+$/.test(f.n) ? Number(f.n) : null,
    failedAt: at && !Number.isNaN(at.getTime()) ? at : null,
    payload: f.e ?? '',
  };
}

/** Newest first: by entry id, then partition (ids of two partitions can be equal). */
function newerFirst(a: DeadLetterRecord, b: DeadLetterRecord): number {
  return compareStreamIds(b.entryId, a.entryId) || b.partition - a.partition;
}

/**
 * Up to `limit` of a tenant's dead letters older than `before` (a record's partition and entry id),
 * newest first, across partitions. Each partition is walked backwards (XREVRANGE) only until it
 * has given `limit` of the tenant's letters; reading removes nothing, so replayDeadLetters still
 * finds every listed letter.
 */
export async function listDeadLetters(
  redis: Redis,
  keys: StreamKeys,
  tenantId: string,
  limit: number,
  before: { partition: number; entryId: string } | null,
): Promise<DeadLetterRecord[]> {
  const found: DeadLetterRecord[] = [];
  for (let partition = 0; partition < keys.partitions; partition++) {
    // Same id as the cursor: only partitions ordered after it (lower numbers) still hold it.
    let end = before ? (partition < before.partition ? before.entryId : `(${before.entryId}`) : '+';
    let mine = 0;
    while (mine < limit) {
      const page = (await redis.xrevrange(keys.deadLetters(partition), end, '-', 'COUNT', PAGE_SCAN)) as StreamEntry[];
      for (const entry of page) {
        if (fieldsOf(entry[1]).t !== tenantId) continue;
        found.push(recordOf(partition, entry));
        if (++mine >= limit) break;
      }
      if (page.length < PAGE_SCAN) break;
      end = `(${page.at(-1)![0]}`;
    }
  }
  return found.sort(newerFirst).slice(0, limit);
}

/** How many dead letters the tenant has: a walk over every partition's dead-letter stream. */
export async function countDeadLetters(redis: Redis, keys: StreamKeys, tenantId: string): Promise<number> {
  let count = 0;
  for (let partition = 0; partition < keys.partitions; partition++) {
    let start = '-';
    for (;;) {
      const page = (await redis.xrange(keys.deadLetters(partition), start, '+', 'COUNT', 2_000)) as StreamEntry[];
      for (const [, flat] of page) if (fieldsOf(flat).t === tenantId) count++;
      if (page.length < 2_000) break;
      start = `(${page.at(-1)![0]}`;
    }
  }
  return count;
}

/** replayDeadLetters and deadLetters for resolvers: a Redis failure answers SERVICE_UNAVAILABLE, not a masked error. */
export function createDeadLetterService(redis: Redis, keys: StreamKeys, logger: Logger) {
  return {
    /** A page of the tenant's dead letters, newest first, and how many it has in all. */
    async list(
      tenantId: string,
      limit: number,
      before: { partition: number; entryId: string } | null,
    ): Promise<{ records: DeadLetterRecord[]; hasMore: boolean; totalCount: number }> {
      try {
        const [records, totalCount] = await Promise.all([
          listDeadLetters(redis, keys, tenantId, limit + 1, before),
          countDeadLetters(redis, keys, tenantId),
        ]);
        return { records: records.slice(0, limit), hasMore: records.length > limit, totalCount };
      } catch (err) {
        logger.error({ err }, 'reading dead letters failed');
        throw new ServiceUnavailableError('Dead letters cannot be read right now; retry shortly');
      }
    },
    async replay(tenantId: string, limit: number): Promise<number> {
      try {
        return await replayDeadLetters(redis, keys, tenantId, limit);
      } catch (err) {
        logger.error({ err }, 'replaying dead letters failed');
        throw new ServiceUnavailableError('Dead letters cannot be replayed right now; retry shortly');
      }
    },
  };
}

export type DeadLetterService = ReturnType<typeof createDeadLetterService>;
