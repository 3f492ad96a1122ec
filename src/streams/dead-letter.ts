import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';

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
