import { createHash } from 'node:crypto';
import type { Redis } from '../redis/create-redis.js';
import { queryCacheKeys } from '../redis/keys.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

/** How long an answer may be served from the cache, by how much the data behind it still moves. */
export type CacheTier = 'realtime' | 'aggregate' | 'closed';

export interface QueryCacheOptions {
  /** Off: every answer is computed. QUERY_CACHE_ENABLED, default on. */
  readonly enabled: boolean;
  /** Seconds per tier: data of the current minute (default 5), other aggregates (300), closed days (3600). */
  readonly ttlS: Readonly<Record<CacheTier, number>>;
}

/**
 * The Redis result cache of the statistics queries. A key names the tenant, the field and a hash
 * of the normalized arguments, and every key of a tenant shares the hash tag `{<tenant>}`, so
 * the same arguments from two tenants never meet and a tenant's keys stay on one cluster slot.
 *
 * Invalidation is a per-tenant generation number: each stored answer carries the generation it
 * was computed under, and the rollup refresher increments the tenant's generation after it has
 * committed new rows for that tenant, which retires all its answers at once without scanning
 * keys. The generation and the answer are read in one MGET. Since the increment follows the
 * COMMIT, an answer stored under the current generation was computed from the current rollups.
 *
 * Redis failures never fail a query: the answer is computed and the error counted.
 */
export function createQueryCache(
  deps: { redis: Redis; keyPrefix: string; metrics: Metrics; logger: Logger },
  options: QueryCacheOptions,
) {
  const { redis, keyPrefix, metrics } = deps;
  const log = deps.logger.child({ component: 'query-cache' });
  const cacheKeys = queryCacheKeys(keyPrefix);
  const generationKey = cacheKeys.generation;

  async function get<T>(
    tenantId: string,
    field: string,
    args: unknown,
    tier: CacheTier,
    compute: () => Promise<T>,
    revive: (stored: T) => T,
  ): Promise<T> {
    if (!options.enabled) return compute();
    const key = cacheKeys.entry(tenantId, field, createHash('sha256').update(stableJson(args)).digest('base64url'));
    let generation: string;
    try {
      const [gen, stored] = await redis.mget(generationKey(tenantId), key);
      generation = gen ?? '0';
      if (stored) {
        const entry = JSON.parse(stored) as { g: string; v: T };
        if (entry.g === generation) {
          metrics.queryCacheRequests.inc({ field, result: 'hit' });
          return revive(entry.v);
        }
      }
    } catch (err) {
      metrics.queryCacheRequests.inc({ field, result: 'error' });
      log.warn({ err, field }, 'query cache read failed; answering without it');
      return compute();
    }
    metrics.queryCacheRequests.inc({ field, result: 'miss' });
    const value = await compute();
    redis.set(key, JSON.stringify({ g: generation, v: value }), 'EX', options.ttlS[tier]).catch((err: unknown) => {
      log.warn({ err, field }, 'query cache write failed');
    });
    return value;
  }

  return {
    get,
    /**
     * Retires every cached answer of the tenant (called after its rollups changed). Bumped even
     * with this cache off: the whole-response cache (plugins/response-cache.plugin.ts) reads it too.
     */
    async invalidate(tenantId: string): Promise<void> {
      await redis.incr(generationKey(tenantId));
    },
    /** The Redis key of the tenant's data generation. */
    generationKey,
  };
}

export type QueryCache = ReturnType<typeof createQueryCache>;

/** JSON with object keys sorted and dates as ISO strings: equal arguments give equal keys. */
export function stableJson(value: unknown): string {
  if (value instanceof Date) return JSON.stringify(value.toISOString());
  if (Array.isArray(value)) return `[${value.map(stableJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stableJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value ?? null);
}
