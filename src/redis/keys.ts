/**
 * Every Redis key and channel name of the gateway, built in one place (README "Redis key layout").
 *
 * All names start with REDIS_KEY_PREFIX. Names that one command or script uses together share a
 * hash tag (`{...}`), so on a Redis Cluster they live on one slot:
 * - `{events:N}`: a stream partition, its dead letters, its dedupe keys and the live windows its
 *   aggregate consumers counted, so one script appends and deduplicates, and one script counts a
 *   batch into its windows and acknowledges it (src/realtime/window-store.ts);
 * - `{<tenant>}`: a tenant's query cache entries and generation, its live channels and their
 *   publish throttles, and the unique users of its live windows (one HyperLogLog per window over
 *   every partition, so one PFCOUNT of one key reads them).
 * Keys under different tags are never named by one command, script, MULTI or pipeline, so on a
 * Redis Cluster nothing spans two slots.
 */

/** The consumer groups of every stream partition. */
export const CONSUMER_GROUPS = { persist: 'persist', aggregate: 'aggregate' } as const;
export type ConsumerGroup = (typeof CONSUMER_GROUPS)[keyof typeof CONSUMER_GROUPS];

/** The keys of one live window as one partition's aggregate consumers counted it. */
export interface WindowKeys {
  /**
   * Hash: c count, r revision, vc values counted, s sum, mn min, mx max, z values in the zero
   * bucket, and the rare histogram buckets beyond the counter strings' range (`p<i>`, `n<i>`).
   */
  readonly hash: string;
  /**
   * Strings of big-endian u32 counters (BITFIELD), one per log-scale histogram bucket
   * (src/realtime/log-histogram.ts) of the positive / negative values; the slot layout is in
   * src/realtime/window-store.ts.
   */
  readonly positive: string;
  readonly negative: string;
}

/** Names of the event streams, partitioned by (tenant, routing key). */
export interface StreamKeys {
  readonly partitions: number;
  stream(partition: number): string;
  deadLetters(partition: number): string;
  dedupe(partition: number, tenantId: string, messageId: string): string;
  /**
   * A live window's state as this partition's aggregate consumers counted it, under the
   * partition's hash tag, so one script updates the windows and acknowledges the entries
   * atomically; readers merge the partitions. `type` null: all of the tenant's events (`*`,
   * which no event type can be).
   */
  window(partition: number, tenantId: string, window: string, start: number, type: string | null): WindowKeys;
  /**
   * HyperLogLog of a live window's user ids, counted by every partition: under the tenant's hash
   * tag, not a partition's, since the union of per-partition HyperLogLogs would be a PFCOUNT over
   * several slots. Written outside the partition's atomic script (src/realtime/window-store.ts).
   */
  windowUsers(tenantId: string, window: string, start: number, type: string | null): string;
  /** The partition of an event: stable per (tenant, routing key), so a messageId always meets its dedupe key. */
  partitionOf(tenantId: string, routingKey: string): number;
}

export function createStreamKeys(prefix: string, partitions: number): StreamKeys {
  const tag = (partition: number) => `${prefix}{events:${partition}}`;
  return {
    partitions,
    stream: (partition) => tag(partition),
    deadLetters: (partition) => `${tag(partition)}:dead`,
    dedupe: (partition, tenantId, messageId) => `${tag(partition)}:dedupe:${tenantId}:${messageId}`,
    window: (partition, tenantId, window, start, type) => {
      const hash = `${tag(partition)}:window:${tenantId}:${window}:${start}:${type ?? '*'}`;
      return { hash, positive: `${hash}:hp`, negative: `${hash}:hn` };
    },
    windowUsers: (tenantId, window, start, type) => `${prefix}window:{${tenantId}}:${window}:${start}:${type ?? '*'}:u`,
    partitionOf: (tenantId, routingKey) => (partitions === 1 ? 0 : fnv1a(`${tenantId}:${routingKey}`) % partitions),
  };
}

/** 32-bit FNV-1a: fast, well spread, and the same in every replica (no per-process seed). */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}

/** The pub/sub channels of metricUpdated and eventRecorded (src/realtime/live-feed.ts). */
export const liveChannels = (prefix: string) => ({
  window: (tenantId: string, window: string, type: string | null) =>
    `${prefix}live:{${tenantId}}:window:${window}:${type ?? '*'}`,
  events: (tenantId: string, type: string | null) => `${prefix}live:{${tenantId}}:events:${type ?? '*'}`,
});

/**
 * The locks of src/realtime/window.publisher.ts, named after a channel of `liveChannels` (which
 * already carries the prefix and the tenant's tag): one push per interval, one final push.
 */
export const windowPublishKeys = {
  throttle: (channel: string) => `${channel}:throttle`,
  final: (channel: string, start: number) => `${channel}:final:${start}`,
};

/** src/analytics/query-cache.ts: an answer, and the tenant's generation that invalidates them all. */
export const queryCacheKeys = (prefix: string) => ({
  generation: (tenantId: string) => `${prefix}qc:{${tenantId}}:gen`,
  entry: (tenantId: string, field: string, argsDigest: string) => `${prefix}qc:{${tenantId}}:${field}:${argsDigest}`,
});

/**
 * src/plugins/response-cache.plugin.ts: whole answers of statistics-only operations. The `{tenant}`
 * hash tag keeps a tenant's keys, its generation included, on one cluster slot.
 */
export const responseCacheKeys = (prefix: string) => ({
  entry: (tenantId: string, operationHash: string) => `${prefix}rc:{${tenantId}}:${operationHash}`,
});

/**
 * src/redis/redis-key-value-cache.ts: Apollo Server's own keys (automatic persisted queries are
 * `apq:<sha256>`), behind the gateway's prefix.
 */
export const apolloCacheKey = (prefix: string, key: string) => `${prefix}${key}`;

/** src/plugins/cost/cost-budget.ts: one token bucket per API key. */
export const costBudgetKey = (prefix: string, keyId: string) => `${prefix}cost:budget:${keyId}`;

/**
 * src/auth/auth-throttle.ts: failed authentications in the current window, one counter per client
 * address and per presented key prefix (one key per script, so no hash tag is needed).
 */
export const authThrottleKeys = (prefix: string) => ({
  address: (ip: string) => `${prefix}auth:fail:ip:${ip}`,
  keyPrefix: (keyPrefix: string) => `${prefix}auth:fail:key:${keyPrefix}`,
});

/** The channel on which every replica hears of revoked keys (src/auth/key-verifier.ts). */
export const revocationChannel = (prefix: string) => `${prefix}auth:revoked`;
