import { apolloCacheKey } from './keys.js';
import type { KeyValueCache, KeyValueCacheSetOptions } from '@apollo/utils.keyvaluecache';
import type { Redis } from './create-redis.js';

export interface RedisKeyValueCacheOptions {
  /** Put before every key Apollo asks for (REDIS_KEY_PREFIX). Required: replicas share it. */
  readonly prefix: string;
  /** Seconds an entry lives when the caller gives no ttl. Default: none (kept until evicted). */
  readonly defaultTtlS?: number;
}

/**
 * Apollo's KeyValueCache over the gateway's own ioredis connection, so what one replica stores
 * (automatic persisted queries) every replica reads. Apollo prefixes its own keys (`apq:` for
 * persisted queries, requestPipeline.js' APQ_CACHE_PREFIX), after this prefix.
 */
export function createRedisKeyValueCache(redis: Redis, options: RedisKeyValueCacheOptions): KeyValueCache<string> {
  const key = (k: string) => apolloCacheKey(options.prefix, k);
  return {
    async get(k: string): Promise<string | undefined> {
      return (await redis.get(key(k))) ?? undefined;
    },
    async set(k: string, value: string, setOptions?: KeyValueCacheSetOptions): Promise<void> {
      const ttl = setOptions?.ttl ?? options.defaultTtlS;
      // Redis takes whole seconds above zero; Apollo's ttl is seconds and may be fractional.
      if (ttl) await redis.set(key(k), value, 'EX', Math.max(1, Math.ceil(ttl)));
      else await redis.set(key(k), value);
    },
    async delete(k: string): Promise<boolean> {
      return (await redis.del(key(k))) > 0;
    },
  };
}
