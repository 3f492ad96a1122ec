import type { Redis } from '../redis/create-redis.js';

/** An entry as ioredis returns it: its id and a flat [field, value, field, value, ...] list. */
export type StreamEntry = [id: string, fields: string[]];

/** Redis answers maps as flat [key, value, key, value, ...] lists (entry fields, XINFO replies). */
export function pairsToRecord<T>(flat: readonly T[]): Record<string, T> {
  const out: Record<string, T> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1]!;
  return out;
}

export const fieldsOf = (flat: readonly string[]): Record<string, string> => pairsToRecord(flat);

/**
 * Creates the consumer group at the start of the stream (id 0, never "$"): a group created after
 * events were appended must still see them. Creating an existing group is a no-op.
 */
export async function ensureGroup(redis: Redis, stream: string, group: string): Promise<void> {
  try {
    await redis.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
  } catch (err) {
    if (!(err instanceof Error) || !err.message.startsWith('BUSYGROUP')) throw err;
  }
}

/** The smallest id greater than `id` ("ms-seq"): MINID trimming keeps ids at or above it. */
export function nextStreamId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq ?? '0') + 1n}`;
}

/** Orders stream ids ("ms-seq") numerically. */
export function compareStreamIds(a: string, b: string): number {
  const [am, as] = a.split('-').map((x) => BigInt(x));
  const [bm, bs] = b.split('-').map((x) => BigInt(x));
  if (am! !== bm!) return am! < bm! ? -1 : 1;
  if (as! === bs!) return 0;
  return as! < bs! ? -1 : 1;
}
