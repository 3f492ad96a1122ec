import type { Redis } from '../redis/create-redis.js';
import type { StreamKeys } from '../redis/keys.js';
import { fieldsOf, type StreamEntry } from '../streams/stream-entries.js';

const SCAN_PAGE = 1_000;

export interface ErasedEntries {
  /** Entries removed from the event streams (not yet trimmed, persisted or not). */
  readonly streamEntries: number;
  /** Entries removed from the dead-letter streams. */
  readonly deadLetters: number;
}

/**
 * Whether a stream payload is an event of this user received before `receivedBefore` (ms). Reads
 * the positional encoding of src/ingest/stream-event.ts without validating the rest, so a dead
 * letter refused for another field is still recognised as the user's.
 */
function isUsersEvent(payload: string | undefined, tenantId: string, userId: string, receivedBefore: number): boolean {
  if (!payload) return false;
  let v: unknown;
  try {
    v = JSON.parse(payload);
  } catch {
    return false;
  }
  if (!Array.isArray(v) || v[1] !== tenantId || v[4] !== userId) return false;
  return typeof v[8] !== 'number' || v[8] < receivedBefore;
}

async function eraseFrom(
  redis: Redis,
  key: string,
  tenantId: string,
  userId: string,
  receivedBefore: number,
): Promise<number> {
  let removed = 0;
  let start = '-';
  for (;;) {
    const page = (await redis.xrange(key, start, '+', 'COUNT', SCAN_PAGE)) as StreamEntry[];
    const doomed = page
      .filter(([, flat]) => {
        const f = fieldsOf(flat);
        return f.t === tenantId && isUsersEvent(f.e, tenantId, userId, receivedBefore);
      })
      .map(([id]) => id);
    if (doomed.length) removed += await redis.xdel(key, ...doomed);
    if (page.length < SCAN_PAGE) return removed;
    start = `(${page.at(-1)![0]}`;
  }
}

/**
 * Removes a user's events received before `receivedBefore` from every partition's event stream
 * and dead-letter stream (XDEL). Safe while consumers run: an entry a consumer already holds is
 * refused by the persister's tombstone check (src/ingest/event.repository.ts), an XDEL'd entry
 * still pending in a group is dropped from it by the next XAUTOCLAIM, and an entry not yet read is
 * never delivered. Live windows that counted the entry keep their count until they expire.
 */
export async function eraseUserStreamEntries(
  redis: Redis,
  keys: StreamKeys,
  tenantId: string,
  userId: string,
  receivedBefore: number,
): Promise<ErasedEntries> {
  let streamEntries = 0;
  let deadLetters = 0;
  for (let partition = 0; partition < keys.partitions; partition++) {
    streamEntries += await eraseFrom(redis, keys.stream(partition), tenantId, userId, receivedBefore);
    deadLetters += await eraseFrom(redis, keys.deadLetters(partition), tenantId, userId, receivedBefore);
  }
  return { streamEntries, deadLetters };
}
