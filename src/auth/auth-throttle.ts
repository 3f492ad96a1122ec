import { HeaderMap } from '@apollo/server';
import { LRUCache } from 'lru-cache';
import { RateLimitedError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { authThrottleKeys } from '../redis/keys.js';

export interface AuthThrottleOptions {
  /** AUTH_THROTTLE_ENABLED, true. Off, nothing is counted or refused. */
  readonly enabled: boolean;
  /** AUTH_THROTTLE_WINDOW_MS, 60,000: the fixed window failures are counted in, from the first one. */
  readonly windowMs: number;
  /** AUTH_THROTTLE_MAX_PER_ADDRESS, 20: failures one client address may have in a window. */
  readonly maxPerAddress: number;
  /** AUTH_THROTTLE_MAX_PER_KEY_PREFIX, 10: failures with one presented key prefix in a window. */
  readonly maxPerKeyPrefix: number;
  /**
   * AUTH_THROTTLE_CLEAN_MS, 1,000: how long a replica trusts that a subject it found under its
   * maximum still is, without asking Redis again. A failure this replica counts ends that trust at
   * once; a block that only other replicas counted reaches this one within this time.
   */
  readonly cleanMs?: number;
}

export type ThrottleSubject = 'address' | 'key_prefix';

/** Refused before the key was looked at: too many failures from this address or for this key prefix. */
export class AuthThrottledError extends RateLimitedError {
  constructor(
    readonly subject: ThrottleSubject,
    retryAfterMs: number,
  ) {
    const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(
      `Too many failed authentications from this ${subject === 'address' ? 'address' : 'key prefix'}; retry in ${retryAfter} s`,
      { retryAfterMs, retryAfter, limit: 'authentication' },
    );
    // Apollo answers an error thrown by the context function with its `http` status and headers.
    (this.extensions.http as { headers?: HeaderMap }).headers = new HeaderMap([['retry-after', String(retryAfter)]]);
  }
}

// One key per subject, so no call spans two Redis Cluster slots. The window starts at the first
// failure and the key expires with it: a fixed window, one round trip per failure.
const FAIL_LUA = `
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n`;
const READ_LUA = `
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
return { n, redis.call('PTTL', KEYS[1]) }`;

interface WithThrottle {
  agwAuthFail(key: string, windowMs: string): Promise<number>;
  agwAuthRead(key: string): Promise<[number, number]>;
}

/**
 * Slows down a client that tries keys: failed authentications are counted per client address and
 * per presented key prefix (the public part of a key shaped like ours, auth/api-key.ts) in Redis,
 * so every replica sees the same counts; past a maximum, `check` refuses with RATE_LIMITED and
 * Retry-After until the window ends, before the key costs a Postgres lookup. A valid key from a
 * throttled address is refused too: the address is what is suspect. With Redis unreachable it
 * fails open (nothing counted, nothing refused), as the cost budget does, and says so in the log.
 */
export function createAuthThrottle(
  deps: { redis: Redis; keyPrefix: string; metrics: Metrics; logger: Logger },
  options: AuthThrottleOptions,
) {
  const { redis, metrics } = deps;
  const log = deps.logger.child({ component: 'auth-throttle' });
  redis.defineCommand('agwAuthFail', { numberOfKeys: 1, lua: FAIL_LUA });
  redis.defineCommand('agwAuthRead', { numberOfKeys: 1, lua: READ_LUA });
  const client = redis as Redis & WithThrottle;
  const keys = authThrottleKeys(deps.keyPrefix);

  const subjects = (ip: string | null, keyPrefix: string | null) => {
    const out: Array<{ subject: ThrottleSubject; key: string; max: number }> = [];
    if (ip) out.push({ subject: 'address', key: keys.address(ip), max: options.maxPerAddress });
    if (keyPrefix) out.push({ subject: 'key_prefix', key: keys.keyPrefix(keyPrefix), max: options.maxPerKeyPrefix });
    return out;
  };
  // A disconnected client would fail each call after a retry; skip at once instead.
  const usable = () => options.enabled && redis.status === 'ready';
  // Subjects found under their maximum lately: the request path of a client that does not fail
  // makes no round trip for the throttle (one per subject and replica per cleanMs at most).
  const clean = new LRUCache<string, true>({ max: 100_000, ttl: Math.max(options.cleanMs ?? 1_000, 1) });

  return {
    /** Throws AuthThrottledError when the address or the key prefix is over its maximum. */
    async check(ip: string | null, keyPrefix: string | null): Promise<void> {
      if (!usable()) return;
      let counts: Array<[number, number]>;
      const checked = subjects(ip, keyPrefix).filter(({ key }) => !clean.has(key));
      if (checked.length === 0) return;
      try {
        counts = await Promise.all(checked.map(({ key }) => client.agwAuthRead(key)));
      } catch (err) {
        log.warn({ err }, 'auth throttle read failed; not throttling');
        return;
      }
      checked.forEach(({ subject, key, max }, i) => {
        const [n, ttl] = counts[i]!;
        if (n >= max) {
          metrics.authThrottled.inc({ subject });
          throw new AuthThrottledError(subject, ttl > 0 ? ttl : options.windowMs);
        }
        clean.set(key, true);
      });
    },

    /** Counts one refused credential against its address and key prefix. Never throws. */
    async recordFailure(ip: string | null, keyPrefix: string | null): Promise<void> {
      metrics.authFailures.inc();
      if (!usable()) return;
      const failed = subjects(ip, keyPrefix);
      for (const { key } of failed) clean.delete(key);
      try {
        await Promise.all(failed.map(({ key }) => client.agwAuthFail(key, String(options.windowMs))));
      } catch (err) {
        log.warn({ err }, 'auth throttle count failed');
      }
    },
  };
}

export type AuthThrottle = ReturnType<typeof createAuthThrottle>;
