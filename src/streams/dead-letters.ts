import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from './stream-keys.js';
import { compareStreamIds, fieldsOf, type StreamEntry } from './stream-entries.js';

export interface DeadLetter {
  readonly entryId: string;
  readonly tenant: string;
  readonly payload: string;
  readonly reason: string;
  readonly kind: 'unparseable' | 'rejected' | 'max_deliveries';
}

/** Dead letters kept per partition; beyond it the oldest go (approximately), and the metric shows the rate. */
const DEAD_LETTER_MAX_LENGTH = 1_000_000;

/**
 * Moves entries to the partition's dead-letter stream and acknowledges them in the source group,
 * in one MULTI (same hash tag, same slot): an entry is never both lost and acknowledged, and a
 * crash between the two steps cannot happen.
 */
export async function deadLetter(
  redis: Redis,
  keys: StreamKeys,
  partition: number,
  group: string,
  letters: readonly DeadLetter[],
  metrics: Metrics,
): Promise<void> {
  // How many times each entry was delivered, for deadLetters(): read before the XACK below drops
  // the entry from the group's pending list (one extra round trip, on the failure path only).
  const pending = await redis
    .pipeline(letters.map((l) => ['xpending', keys.stream(partition), group, l.entryId, l.entryId, '1']))
    .exec();
  const deliveries = (pending ?? []).map(([err, reply]) => {
    const first = !err && Array.isArray(reply) ? (reply[0] as unknown[] | undefined) : undefined;
    return first ? String(first[3]) : '';
  });
  const multi = redis.multi();
  for (const [i, l] of letters.entries()) {
    multi.xadd(
      keys.deadLetters(partition),
      'MAXLEN',
      '~',
      DEAD_LETTER_MAX_LENGTH,
      '*',
      'reason',
      l.reason,
      'source',
      l.entryId,
      't',
      l.tenant,
      'e',
      l.payload,
      'at',
      new Date().toISOString(),
      'n',
      deliveries[i] ?? '',
    );
  }
  multi.xack(keys.stream(partition), group, ...letters.map((l) => l.entryId));
  const results = await multi.exec();
  const failed = results?.find(([err]) => err);
  if (!results || failed) throw failed?.[0] ?? new Error('dead-letter transaction was aborted');
  for (const l of letters) metrics.deadLetters.inc({ reason: l.kind });
}

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
