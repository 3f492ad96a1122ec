import { decodeCursor } from '../analytics/cursor.js';
import type { EventRow } from '../analytics/event-read.repository.js';
import type { StreamEvent } from '../ingest/stream-event.js';
import type { Metrics } from '../observability/metrics.js';
import { compareStreamIds } from '../streams/stream-entries.js';
import { comparePositions, encodeEventCursor, type EventReplay, type StreamPosition } from './event-replay.js';
import type { LiveFeed } from './live-feed.js';
import type { WindowName } from './window.js';
import type { WindowSnapshot, WindowStore } from './window-store.js';

/**
 * Bytes of events an eventRecorded subscriber may hold undelivered before the oldest are dropped:
 * a batch of 1,000 small events fits, a client that stops reading costs at most this.
 */
const MAX_HELD_EVENT_BYTES = 1 << 20;

/**
 * Counts a subscription while it runs and each message it hands out, skipping what `accept`
 * refuses. A plain iterator, not an async generator: a generator's return() waits for a pending
 * next(), so a subscription ended on a quiet channel would linger until its next message.
 */
function tracked<T>(
  metrics: Metrics,
  field: string,
  source: AsyncIterableIterator<T>,
  accept: (value: T) => boolean = () => true,
): AsyncIterableIterator<T> {
  metrics.subscriptionsActive.inc({ field });
  let closed = false;
  const close = async (): Promise<IteratorResult<T>> => {
    if (!closed) {
      closed = true;
      metrics.subscriptionsActive.dec({ field });
      await source.return?.();
    }
    return { value: undefined, done: true };
  };
  return {
    async next() {
      for (;;) {
        const result = await source.next();
        if (result.done) return close();
        if (!accept(result.value)) continue;
        metrics.subscriptionPushes.inc({ field });
        return result;
      }
    },
    return: close,
    throw: async (err: unknown) => {
      await close();
      throw err;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}

/** An event as eventRecorded pushes it: with the cursor to resume after it. */
export interface LiveEventRow extends EventRow {
  /** Its stream position (event-replay.ts); null when the publisher did not know it. */
  readonly cursor: string | null;
}

/** A counted event and where it is in the stream (the aggregate group's batch tells both). */
export interface PositionedEvent {
  readonly event: StreamEvent;
  readonly position: StreamPosition | undefined;
}

function liveRow(e: StreamEvent, position: StreamPosition | undefined): LiveEventRow {
  return {
    id: e.id,
    type: e.type,
    userId: e.userId,
    sessionId: e.sessionId,
    timestamp: new Date(e.occurredAt),
    receivedAt: new Date(e.receivedAt),
    value: e.value,
    properties: e.properties === null ? null : (JSON.parse(e.properties) as Record<string, unknown>),
    timeUs: String(e.occurredAt * 1000),
    cursor: position ? encodeEventCursor(position) : null,
  };
}

/** The subscriptions' side of the live windows: what a subscriber of this replica receives. */
export function createRealtimeService(deps: {
  store: WindowStore;
  feed: LiveFeed;
  metrics: Metrics;
  /** Reads the stream for eventRecorded(after:); without it, `after` is refused. */
  replay?: EventReplay;
}) {
  const { store, feed, metrics, replay } = deps;
  return {
    /**
     * The current window at once, then every newer snapshot (never an older one: a snapshot is
     * skipped unless its window is newer, its revision higher, or it is the window's final one).
     */
    windowUpdates(tenantId: string, type: string | null, window: WindowName): AsyncIterableIterator<WindowSnapshot> {
      const source = feed.iterate<WindowSnapshot>(feed.channels.window(tenantId, window, type), {
        keep: 'latest',
        first: () => store.read(tenantId, type, window, Date.now()),
      });
      let last: WindowSnapshot | undefined;
      return tracked(metrics, 'metricUpdated', source, (snapshot) => {
        const newer =
          !last ||
          snapshot.start.getTime() > last.start.getTime() ||
          (snapshot.start.getTime() === last.start.getTime() &&
            (snapshot.revision > last.revision || (snapshot.final && !last.final)));
        if (newer) last = snapshot;
        return newer;
      });
    },

    /**
     * Every event of the tenant (of one type, or all), as the aggregate group counts them. With
     * `after` (a cursor an event carried), first what the stream still holds after it, then live,
     * with no gap and no repeat between the two: the live channel is subscribed first and buffers
     * while the stream is read to its end; then live events the replay already covered (at or
     * before the cursor, or at or before the last entry read of their partition) are skipped.
     * A malformed cursor, or one older than the stream retains, is BAD_USER_INPUT.
     */
    async events(
      tenantId: string,
      type: string | null,
      after?: string | null,
    ): Promise<AsyncIterableIterator<LiveEventRow>> {
      const channel = feed.channels.events(tenantId, type);
      if (after === null || after === undefined) {
        return tracked(metrics, 'eventRecorded', feed.iterate<LiveEventRow>(channel, { keep: MAX_HELD_EVENT_BYTES }));
      }
      if (!replay) throw new Error('eventRecorded(after:) needs the event replay');
      const cursor = replay.parse(after);
      const live = feed.iterate<LiveEventRow>(channel, { keep: MAX_HELD_EVENT_BYTES });
      const readUpTo = new Map<number, string>();
      const replayed = replay.replay(tenantId, type, cursor, readUpTo);
      // Subscribed before the stream is read; the first page (and the trim check) before the
      // subscription is answered, so a refused cursor is the subscription's error.
      let head: IteratorResult<{ event: StreamEvent; position: StreamPosition }>;
      try {
        await live.subscribed;
        head = await replayed.next();
      } catch (err) {
        await Promise.all([live.return?.(), replayed.return(undefined)]);
        throw err;
      }
      const covered = (row: LiveEventRow): boolean => {
        if (row.cursor === null) return false;
        const [partition, entryId] = decodeCursor(row.cursor, 2) as [string, string];
        const position = { partition: Number(partition), entryId };
        if (comparePositions(position, cursor) <= 0) return true;
        const upTo = readUpTo.get(position.partition);
        return upTo !== undefined && compareStreamIds(entryId, upTo) <= 0;
      };
      let replaying = true;
      const resumed: AsyncIterableIterator<LiveEventRow> = {
        async next() {
          if (replaying) {
            const r = head.done ? head : await replayed.next();
            if (!head.done) {
              const first = head.value;
              head = r;
              return { value: liveRow(first.event, first.position), done: false };
            }
            replaying = false;
          }
          for (;;) {
            const r = await live.next();
            if (r.done || !covered(r.value)) return r;
          }
        },
        return: async () => {
          replaying = false;
          await Promise.all([replayed.return(undefined), live.return?.()]);
          return { value: undefined, done: true };
        },
        throw: async (err: unknown) => {
          await resumed.return!();
          throw err;
        },
        [Symbol.asyncIterator]() {
          return resumed;
        },
      };
      return tracked(metrics, 'eventRecorded', resumed);
    },

    /** Worker side: one message per (tenant, type) and per tenant for a counted batch. */
    async publishEvents(events: readonly PositionedEvent[]): Promise<void> {
      // Each event goes to two channels (its type's and all types'): serialized once, and each
      // channel's message joined from the texts (this was a fifth of the worker's JavaScript).
      const groups = new Map<string, string[]>();
      for (const { event: e, position } of events) {
        const row = JSON.stringify(liveRow(e, position));
        for (const channel of [feed.channels.events(e.tenantId, e.type), feed.channels.events(e.tenantId, null)]) {
          const list = groups.get(channel);
          if (list) list.push(row);
          else groups.set(channel, [row]);
        }
      }
      await Promise.all([...groups].map(([channel, rows]) => feed.publishJson(channel, `[${rows.join(',')}]`)));
    },
  };
}

export type RealtimeService = ReturnType<typeof createRealtimeService>;
