import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';
import { fieldsOf, type StreamEntry } from '../streams/stream-entries.js';

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
