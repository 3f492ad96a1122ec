import type { EventRow } from '../analytics/event-read.repository.js';
import type { StreamEvent } from '../ingest/stream-event.js';
import type { Metrics } from '../observability/metrics.js';
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

/** The subscriptions' side of the live windows: what a subscriber of this replica receives. */
export function createRealtimeService(deps: { store: WindowStore; feed: LiveFeed; metrics: Metrics }) {
  const { store, feed, metrics } = deps;
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

    /** Every event of the tenant (of one type, or all), as the aggregate group counts them. */
    events(tenantId: string, type: string | null): AsyncIterableIterator<EventRow> {
      const source = feed.iterate<EventRow>(feed.channels.events(tenantId, type), {
        keep: MAX_HELD_EVENT_BYTES,
      });
      return tracked(metrics, 'eventRecorded', source);
    },

    /** Worker side: one message per (tenant, type) and per tenant for a counted batch. */
    async publishEvents(events: readonly StreamEvent[]): Promise<void> {
      const groups = new Map<string, EventRow[]>();
      for (const e of events) {
        const row: EventRow = {
          id: e.id,
          type: e.type,
          userId: e.userId,
          sessionId: e.sessionId,
          timestamp: new Date(e.occurredAt),
          receivedAt: new Date(e.receivedAt),
          value: e.value,
          properties: e.properties === null ? null : (JSON.parse(e.properties) as Record<string, unknown>),
          timeUs: String(e.occurredAt * 1000),
        };
        for (const channel of [feed.channels.events(e.tenantId, e.type), feed.channels.events(e.tenantId, null)]) {
          const list = groups.get(channel);
          if (list) list.push(row);
          else groups.set(channel, [row]);
        }
      }
      await Promise.all([...groups].map(([channel, rows]) => feed.publish(channel, rows)));
    },
  };
}

export type RealtimeService = ReturnType<typeof createRealtimeService>;
