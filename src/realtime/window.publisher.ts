import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import type { LiveFeed } from './live-feed.js';
import { windowPublishKeys } from '../redis/keys.js';
import { WINDOW_MS } from './window.js';
import type { TouchedWindow, WindowStore } from './window-store.js';

export interface WindowPublisherOptions {
  /** At most one snapshot per channel per this many ms, across replicas (REALTIME_PUSH_INTERVAL_MS). */
  readonly intervalMs: number;
  /** The windows' grace period: the final snapshot goes out once it has passed. */
  readonly graceMs: number;
}

interface ChannelState {
  readonly window: TouchedWindow;
  timer: NodeJS.Timeout | undefined;
  dirty: boolean;
}

/**
 * Publishes the windows a batch changed, throttled per channel (tenant, type, window) across all
 * replicas: a replica publishes at once when `SET NX PX interval` on the channel's throttle key
 * succeeds (leading edge), and otherwise tries again when the interval is over. A snapshot is
 * read from Redis after the throttle key was taken, so it holds every batch applied before; a
 * replica that lost the race for a key therefore needs no push of its own once another replica
 * has taken the key after its batch. Each push carries the merged state of all partitions.
 *
 * When a window's grace period has passed, one replica (again SET NX) pushes its final snapshot.
 */
export function createWindowPublisher(
  deps: { redis: Redis; store: WindowStore; feed: LiveFeed; logger: Logger; metrics: Metrics },
  options: WindowPublisherOptions,
) {
  const { redis, store, feed, metrics } = deps;
  const log = deps.logger.child({ component: 'window-publisher' });
  const channels = new Map<string, ChannelState>();
  const finals = new Map<string, NodeJS.Timeout>();
  let stopped = false;

  const channelOf = (w: TouchedWindow) => feed.channels.window(w.tenantId, w.window, w.type);

  async function publish(channel: string, w: TouchedWindow, final: boolean): Promise<boolean> {
    // Named after the channel, which carries the key prefix and the tenant's hash tag.
    const lock = final ? windowPublishKeys.final(channel, w.start) : windowPublishKeys.throttle(channel);
    const taken = await redis.set(lock, '1', 'PX', final ? 3_600_000 : options.intervalMs, 'NX');
    if (taken !== 'OK') return false;
    const snapshot = await store.read(w.tenantId, w.type, w.window, w.start);
    await feed.publish(channel, snapshot);
    metrics.windowSnapshotsPublished.inc();
    return true;
  }

  function attempt(channel: string, state: ChannelState): void {
    state.dirty = false;
    publish(channel, state.window, false)
      .then((published) => {
        // Lost the race: the winner's read may predate this batch; try again after the interval.
        if (!published) state.dirty = true;
      })
      .catch((err: unknown) => {
        state.dirty = true;
        log.warn({ err, channel }, 'publishing a window snapshot failed');
      });
    state.timer = setTimeout(() => {
      state.timer = undefined;
      if (stopped) return;
      if (state.dirty) attempt(channel, state);
      else channels.delete(channel);
    }, options.intervalMs);
  }

  return {
    /** Called after each applied batch with the windows it changed. */
    touched(windows: readonly TouchedWindow[]): void {
      if (stopped) return;
      for (const w of windows) {
        const channel = channelOf(w);
        const state = channels.get(channel);
        if (state && state.window.start === w.start) {
          if (state.timer) state.dirty = true;
          else attempt(channel, state);
        } else {
          if (state?.timer) clearTimeout(state.timer);
          const fresh: ChannelState = { window: w, timer: undefined, dirty: false };
          channels.set(channel, fresh);
          attempt(channel, fresh);
        }
        const finalKey = `${channel}:${w.start}`;
        if (!finals.has(finalKey)) {
          const due = w.start + WINDOW_MS[w.window] + options.graceMs - Date.now();
          finals.set(
            finalKey,
            setTimeout(
              () => {
                finals.delete(finalKey);
                publish(channel, w, true).catch((err: unknown) =>
                  log.warn({ err, channel }, 'publishing a final window snapshot failed'),
                );
              },
              Math.max(0, due),
            ),
          );
        }
      }
    },
    stop(): void {
      stopped = true;
      for (const state of channels.values()) if (state.timer) clearTimeout(state.timer);
      for (const timer of finals.values()) clearTimeout(timer);
      channels.clear();
      finals.clear();
    },
  };
}

export type WindowPublisher = ReturnType<typeof createWindowPublisher>;
