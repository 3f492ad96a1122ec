import type { StreamEvent } from '../ingest/stream-event.js';
import type { StreamPosition } from './event-replay.js';
import type { PositionedEvent } from './realtime.service.js';
import type { WindowStore } from './window-store.js';

/**
 * The aggregate group tells its listener which events a batch counted, but not where they are in
 * the stream, which eventRecorded's cursors need. This store hands the aggregate worker the same
 * windows and remembers, for each event it is given, its partition and entry id; `positioned`
 * then pairs the events the worker reports with those positions. Held weakly: an event that is
 * gone is forgotten.
 */
export function withStreamPositions(store: WindowStore) {
  const positions = new WeakMap<StreamEvent, StreamPosition>();
  const tracking: WindowStore = {
    ...store,
    apply: (partition, group, consumer, entries) => {
      for (const { entryId, event } of entries) if (event) positions.set(event, { partition, entryId });
      return store.apply(partition, group, consumer, entries);
    },
  };
  return {
    store: tracking,
    positioned: (events: readonly StreamEvent[]): PositionedEvent[] =>
      events.map((event) => ({ event, position: positions.get(event) })),
  };
}
