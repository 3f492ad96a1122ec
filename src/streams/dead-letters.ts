import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';
import { fieldsOf, type StreamEntry } from './stream-entries.js';

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
  const multi = redis.multi();
  for (const l of letters) {
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

/** replayDeadLetters for resolvers: a Redis failure answers SERVICE_UNAVAILABLE, not a masked error. */
export function createDeadLetterService(redis: Redis, keys: StreamKeys, logger: Logger) {
  return {
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
