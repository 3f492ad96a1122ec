import { decodeCursor, encodeCursor } from '../analytics/cursor.js';
import { BadUserInputError } from '../graphql/errors.js';
import { decodeStreamEvent, type StreamEvent } from '../ingest/stream-event.js';
import type { Redis } from '../redis/create-redis.js';
import {
  compareStreamIds,
  fieldsOf,
  nextStreamId,
  pairsToRecord,
  type StreamEntry,
} from '../streams/stream-entries.js';
import type { StreamKeys } from '../redis/keys.js';

/** Where an event is in the event stream: its partition and its entry id there. */
export interface StreamPosition {
  readonly partition: number;
  readonly entryId: string;
}

/** Entries read per XRANGE while replaying. */
const PAGE = 500;
const ENTRY_ID = /^\d{1,20}-\d{1,20}$/;

/**
 * eventRecorded's cursor: the event's stream position, opaque (base64url JSON, the form of every
 * cursor of this API, analytics/cursor.ts).
 */
export const encodeEventCursor = (p: StreamPosition): string => encodeCursor([String(p.partition), p.entryId]);

/**
 * The feed's order: stream entry id, then partition. Entry ids of all partitions come from the
 * same Redis clock (one ms part), so this is arrival order across partitions up to ties.
 */
export function comparePositions(a: StreamPosition, b: StreamPosition): number {
  return compareStreamIds(a.entryId, b.entryId) || a.partition - b.partition;
}

/**
 * Replays the event stream after a cursor: what eventRecorded(after:) sends before going live.
 * Every partition is read from the cursor on (XRANGE), filtered to the tenant and the type, and
 * the partitions are merged in the feed's order (comparePositions). A cursor older than what a
 * partition retains (an entry after it was trimmed or deleted) is refused: events would be missing.
 */
export function createEventReplay(deps: { redis: Redis; keys: StreamKeys }) {
  const { redis, keys } = deps;

  function parse(after: string): StreamPosition {
    const [partition, entryId] = decodeCursor(after, 2) as [string, string];
    const p = Number(partition);
    if (!/^\d{1,3}$/.test(partition) || p >= keys.partitions || !ENTRY_ID.test(entryId)) {
      throw new BadUserInputError('`after` is not a cursor returned by eventRecorded', { argument: 'after' });
    }
    return { partition: p, entryId };
  }

  /**
   * Entries of one partition after `from` (exclusive), a page at a time. Each page is read together
   * with the stream's max-deleted-entry-id, which the maintenance loop raises to what it trims
   * (src/streams/stream-maintenance.worker.ts) and XDEL raises too: past the position read from,
   * entries are gone, and the replay would have a hole, so it is refused.
   */
  async function* partitionEntries(partition: number, from: string) {
    const stream = keys.stream(partition);
    let after = from;
    for (;;) {
      // Checked and read in one transaction: a trim in between would pass the check and lose entries.
      const [info, read] = ((await redis
        .multi()
        .xinfo('STREAM', stream)
        .xrange(stream, `(${after}`, '+', 'COUNT', PAGE)
        .exec()) ?? []) as [Error | null, unknown][];
      if (info?.[0]) {
        // A stream that does not exist has lost nothing.
        if (!info[0].message.includes('no such key')) throw info[0];
      } else if (info) {
        const maxDeleted = String(pairsToRecord(info[1] as unknown[])['max-deleted-entry-id'] ?? '0-0');
        if (compareStreamIds(maxDeleted, after) > 0) {
          throw new BadUserInputError(
            '`after` is older than the retained event stream: events after it were trimmed; subscribe without `after` to go live, and read older events with the events query',
            { argument: 'after' },
          );
        }
      }
      if (read?.[0]) throw read[0];
      const page = (read?.[1] ?? []) as StreamEntry[];
      yield page;
      if (page.length < PAGE) return;
      after = page.at(-1)![0];
    }
  }

  return {
    parse,

    /**
     * The tenant's events (of one type, or all) after the cursor, in the feed's order, each with its
     * position; and, per partition, the last entry id read (filtered or not): the live feed skips
     * what is at or before it. Ends when every partition has been read to its end.
     */
    async *replay(
      tenantId: string,
      type: string | null,
      cursor: StreamPosition,
      readUpTo: Map<number, string>,
    ): AsyncGenerator<{ event: StreamEvent; position: StreamPosition }> {
      interface Head {
        readonly partition: number;
        readonly pages: AsyncGenerator<StreamEntry[]>;
        entries: StreamEntry[];
        index: number;
      }
      const heads: Head[] = [];
      // Started together: every partition's first page (and trim check) before anything is sent.
      const starts = Array.from({ length: keys.partitions }, async (_, partition) => {
        // A tie with the cursor's id is after it only on a later partition (comparePositions).
        const from = partition > cursor.partition ? previousStreamId(cursor.entryId) : cursor.entryId;
        const pages = partitionEntries(partition, from);
        const page = await pages.next();
        return { partition, pages, entries: page.done ? [] : page.value, index: 0 };
      });
      const settled = await Promise.allSettled(starts);
      for (const s of settled) if (s.status === 'fulfilled') heads.push(s.value);
      const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
      if (failed) {
        await Promise.all(heads.map((h) => h.pages.return(undefined)));
        throw failed.reason;
      }
      try {
        for (;;) {
          let best: Head | undefined;
          for (const h of heads) {
            if (h.index >= h.entries.length) {
              if (h.entries.length === 0) continue;
              const next = await h.pages.next();
              h.entries = next.done ? [] : next.value;
              h.index = 0;
              if (h.entries.length === 0) continue;
            }
            if (!best || compareStreamIds(h.entries[h.index]![0], best.entries[best.index]![0]) < 0) best = h;
          }
          if (!best) return;
          const [entryId, raw] = best.entries[best.index++]!;
          readUpTo.set(best.partition, entryId);
          const fields = fieldsOf(raw);
          if (fields.t !== tenantId) continue;
          let event: StreamEvent;
          try {
            event = decodeStreamEvent(fields.e ?? '');
          } catch {
            // Poison entries are never pushed live either (the persist group dead-letters them).
            continue;
          }
          if (event.tenantId !== tenantId || (type !== null && event.type !== type)) continue;
          yield { event, position: { partition: best.partition, entryId } };
        }
      } finally {
        await Promise.all(heads.map((h) => h.pages.return(undefined)));
      }
    },
  };
}

export type EventReplay = ReturnType<typeof createEventReplay>;

/** The greatest id smaller than `id`, so an exclusive range from it includes `id` itself. */
function previousStreamId(id: string): string {
  const [ms, seq] = id.split('-') as [string, string];
  if (BigInt(seq) > 0n) return `${ms}-${BigInt(seq) - 1n}`;
  if (BigInt(ms) === 0n) return '0-0';
  return `${BigInt(ms) - 1n}-18446744073709551615`;
}
