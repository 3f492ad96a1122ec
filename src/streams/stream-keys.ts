/**
 * Redis key names of the event streams. Each partition's keys share a hash tag (`{events:N}`), so
 * in a Redis Cluster a partition's stream, its dead letters and its dedupe keys live on one slot
 * and one script can touch them atomically; different partitions spread over the cluster.
 */
export interface StreamKeys {
  readonly partitions: number;
  stream(partition: number): string;
  deadLetters(partition: number): string;
  dedupe(partition: number, tenantId: string, messageId: string): string;
  /**
   * A live window's state as this partition's aggregate consumers counted it (a hash; its unique
   * users are the HyperLogLog at `<key>:u`, its value histogram the hash at `<key>:h`). Under the partition's hash tag, so one script updates
   * the windows and acknowledges the entries atomically; readers merge the partitions.
   * `type` null: all of the tenant's events (`*`, which no event type can be).
   */
  window(partition: number, tenantId: string, window: string, start: number, type: string | null): string;
  /** The partition of an event: stable per (tenant, routing key), so a messageId always meets its dedupe key. */
  partitionOf(tenantId: string, routingKey: string): number;
}

export const CONSUMER_GROUPS = { persist: 'persist', aggregate: 'aggregate' } as const;

export function createStreamKeys(prefix: string, partitions: number): StreamKeys {
  const tag = (partition: number) => `${prefix}{events:${partition}}`;
  return {
    partitions,
    stream: (partition) => tag(partition),
    deadLetters: (partition) => `${tag(partition)}:dead`,
    dedupe: (partition, tenantId, messageId) => `${tag(partition)}:dedupe:${tenantId}:${messageId}`,
    window: (partition, tenantId, window, start, type) =>
      `${tag(partition)}:window:${tenantId}:${window}:${start}:${type ?? '*'}`,
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
