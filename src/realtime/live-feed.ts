import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { PubSub } from 'type-graphql';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { liveChannels } from '../redis/keys.js';
import type { WindowName } from './window.js';

const DATE_KEYS = new Set(['start', 'end', 'timestamp', 'receivedAt']);

interface Received {
  readonly size: number;
  readonly payload: unknown;
}

/**
 * Live messages between replicas, over graphql-redis-subscriptions (its own publisher and
 * subscriber connections: a subscribed Redis connection can do nothing else). Channels carry the
 * tenant, so a subscriber can only ever be attached to its own tenant's channels.
 *
 * What a subscriber gets is bounded whatever the client does: graphql-ws sends the next message
 * only once the last one was written to the socket, so a client that stops reading stops pulling
 * from its iterator. A window subscription then holds just the latest snapshot (newer ones
 * replace it: "coalesced"); an event subscription holds a bounded number of bytes of events and
 * drops the oldest beyond that ("dropped"). Both are counted.
 */
export function createLiveFeed(deps: { publisher: Redis; subscriber: Redis; keyPrefix: string; metrics: Metrics }) {
  const pubsub = new RedisPubSub({
    publisher: deps.publisher,
    subscriber: deps.subscriber,
    // Messages are JSON: the times become Dates again for the DateTime scalar, and each message
    // keeps its size, which bounds what a subscriber may hold.
    deserializer: (source: string | Buffer): Received => ({
      size: source.length,
      payload: JSON.parse(String(source), (key: string, value: unknown) =>
        typeof value === 'string' && DATE_KEYS.has(key) ? new Date(value) : value,
      ) as unknown,
    }),
  });
  const { metrics } = deps;

  const names = liveChannels(deps.keyPrefix);
  const channels = {
    window: (tenantId: string, window: WindowName, type: string | null) => names.window(tenantId, window, type),
    events: (tenantId: string, type: string | null) => names.events(tenantId, type),
  };

  /**
   * An async iterator over a channel. `keep: 'latest'` holds one undelivered message, a newer one
   * replacing it; `keep: bytes` holds messages (an array message counts as its elements, each with
   * its share of the bytes) up to that many bytes, dropping the oldest beyond. `first` is delivered
   * before anything from the channel.
   */
  function iterate<T>(
    channel: string,
    options: { keep: 'latest' | number; first?: () => Promise<T | null> },
  ): LiveIterator<T> {
    const held: { value: T; size: number }[] = [];
    let heldBytes = 0;
    let waiting: ((r: IteratorResult<T>) => void) | undefined;
    let done = false;
    const deliver = (value: T, size: number) => {
      if (done) return;
      if (waiting) {
        const resolve = waiting;
        waiting = undefined;
        resolve({ value, done: false });
        return;
      }
      held.push({ value, size });
      heldBytes += size;
      if (options.keep === 'latest') {
        while (held.length > 1) {
          heldBytes -= held.shift()!.size;
          metrics.subscriptionPushesCoalesced.inc();
        }
      } else {
        while (heldBytes > options.keep && held.length > 1) {
          heldBytes -= held.shift()!.size;
          metrics.subscriptionPushesDropped.inc();
        }
      }
    };
    const subscription = pubsub.subscribe<Received>(channel, ({ size, payload }) => {
      if (!Array.isArray(payload)) return deliver(payload as T, size);
      const each = size / Math.max(1, payload.length);
      for (const m of payload) deliver(m as T, each);
    });
    const initial = options.first?.().then((value) => {
      // Ahead of anything the channel delivered meanwhile.
      if (value !== null && value !== undefined && !done) held.unshift({ value, size: 0 });
    });
    // Failures (Redis unreachable) surface from next(); a subscription ended before its first
    // next() must not leave them unhandled, which would end the process.
    subscription.catch(() => undefined);
    initial?.catch(() => undefined);
    const finish = async (): Promise<IteratorResult<T>> => {
      if (!done) {
        done = true;
        held.length = 0;
        heldBytes = 0;
        waiting?.({ value: undefined, done: true });
        const id = await subscription.catch(() => undefined);
        if (id !== undefined) pubsub.unsubscribe(id);
      }
      return { value: undefined, done: true };
    };
    return {
      // A getter: a promise made here and never awaited would reject unhandled with Redis down.
      get subscribed() {
        return subscription.then(() => undefined);
      },
      async next() {
        // Together: a read that fails (Redis down) answers at once, even while the subscribe waits.
        await Promise.all([subscription, initial]);
        if (done) return { value: undefined, done: true };
        const next = held.shift();
        if (next !== undefined) {
          heldBytes -= next.size;
          return { value: next.value, done: false };
        }
        return new Promise((resolve) => (waiting = resolve));
      },
      return: finish,
      throw: async (err: unknown) => {
        await finish();
        throw err;
      },
      [Symbol.asyncIterator]() {
        return this;
      },
    };
  }

  return {
    channels,
    publish: (channel: string, payload: unknown) => pubsub.publish(channel, payload),
    /** A message already serialized as JSON (the same text `publish` would have sent). */
    publishJson: (channel: string, json: string) => deps.publisher.publish(channel, json).then(() => undefined),
    iterate,
    /** type-graphql's PubSub shape; this API's subscriptions bring their own iterators (see resolvers). */
    typeGraphqlPubSub: (): PubSub => ({
      publish: (routingKey: string, payload: unknown) => void pubsub.publish(routingKey, payload),
      subscribe: (routingKey: string) => iterate(routingKey, { keep: 1 << 20 }),
    }),
    close: () => pubsub.close(),
  };
}

export type LiveFeed = ReturnType<typeof createLiveFeed>;

/** A channel's messages; `subscribed` settles once Redis has confirmed the subscription. */
export interface LiveIterator<T> extends AsyncIterableIterator<T> {
  readonly subscribed: Promise<void>;
}
