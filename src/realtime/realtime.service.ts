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

/** Counts a subscription while it runs and each message it hands out. */
async function* counted<T>(metrics: Metrics, field: string, source: AsyncIterableIterator<T>): AsyncGenerator<T> {
  metrics.subscriptionsActive.inc({ field });
  try {
    for await (const value of source) {
      metrics.subscriptionPushes.inc({ field });
      yield value;
    }
  } finally {
    metrics.subscriptionsActive.dec({ field });
    await source.return?.();
  }
}

/** The subscriptions' side of the live windows: what a subscriber of this replica receives. */
export function createRealtimeService(deps: { store: WindowStore; feed: LiveFeed; metrics: Metrics }) {
  const { store, feed, metrics } = deps;
  return {
    /**
     * The current window at once, then every newer snapshot (never an older one: a snapshot is
     * skipped unless its window is newer, its revision higher, or it is the window's final one).
     */
    async *windowUpdates(tenantId: string, type: string | null, window: WindowName): AsyncGenerator<WindowSnapshot> {
      const source = feed.iterate<WindowSnapshot>(feed.channels.window(tenantId, window, type), {
        keep: 'latest',
        first: () => store.read(tenantId, type, window, Date.now()),
      });
      let last: WindowSnapshot | undefined;
      for await (const snapshot of counted(metrics, 'metricUpdated', source)) {
        const newer =
          !last ||
          snapshot.start.getTime() > last.start.getTime() ||
          (snapshot.start.getTime() === last.start.getTime() &&
            (snapshot.revision > last.revision || (snapshot.final && !last.final)));
        if (!newer) continue;
        last = snapshot;
        yield snapshot;
      }
    },

    /** Every event of the tenant (of one type, or all), as the aggregate group counts them. */
    events(tenantId: string, type: string | null): AsyncGenerator<EventRow> {
      const source = feed.iterate<EventRow>(feed.channels.events(tenantId, type), {
        keep: MAX_HELD_EVENT_BYTES,
      });
      return counted(metrics, 'eventRecorded', source);
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
