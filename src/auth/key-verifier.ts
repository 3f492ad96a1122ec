import { timingSafeEqual } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type pg from 'pg';
import type { Config } from '../config/config.js';
import { ServiceUnavailableError, UnauthenticatedError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { Redis } from '../redis/create-redis.js';
import { apiKeyPrefix, hashApiKey } from './api-key.js';
import { ApiKeyRepository } from './api-key.repository.js';
import { revocationChannel } from '../redis/keys.js';
import type { Viewer } from './viewer.js';

/** The key a refused credential names, when its prefix belongs to exactly one key (wrong secret, or revoked). */
export interface KeyOwner {
  readonly tenantId: string;
  readonly keyId: string;
  readonly keyPrefix: string;
}

type Entry =
  | { readonly kind: 'valid'; readonly viewer: Viewer; readonly verifiedAt: number }
  | {
      readonly kind: 'rejected';
      readonly reason: 'unknown' | 'revoked';
      readonly verifiedAt: number;
      readonly owner?: KeyOwner;
    };

/**
 * UNAUTHENTICATED for a presented key, with the key it names when that is known: its tenant should
 * see in its audit log that someone holds its (revoked or leaked) key prefix.
 */
export class RefusedKeyError extends UnauthenticatedError {
  constructor(
    message: string,
    readonly owner: KeyOwner | undefined,
  ) {
    super(message);
  }
}

/**
 * How long a key verified before may keep working while Postgres cannot be reached. Ingestion
 * only needs Redis, so a Postgres outage must not turn into an authentication outage; revocations
 * still arrive over Redis meanwhile and evict the key.
 */
const STALE_IF_ERROR_MS = 10 * 60_000;
const LAST_USED_RESOLUTION_MS = 60_000;

export interface KeyVerifierDeps {
  readonly pool: pg.Pool;
  /** A dedicated connection: once subscribed it can run no other command. */
  readonly subscriber: Redis;
  readonly config: Pick<Config, 'auth' | 'redis'>;
  readonly logger: Logger;
  readonly metrics: Metrics;
}

/**
 * Turns a presented API key into a Viewer without a Postgres round trip per request: results
 * (including rejections) are cached per key hash for AUTH_CACHE_TTL_MS, concurrent lookups of
 * one key share a single query, and revocations published by any replica evict at once.
 */
export function createKeyVerifier({ pool, subscriber, config, logger, metrics }: KeyVerifierDeps) {
  const repository = new ApiKeyRepository(pool);
  const channel = revocationChannel(config.redis.keyPrefix);
  const log = logger.child({ component: 'key-verifier' });

  interface FetchContext {
    readonly plaintext: string;
    usedStale: boolean;
  }

  const cache = new LRUCache<string, Entry, FetchContext>({
    max: config.auth.cacheMaxKeys,
    ttl: Math.max(config.auth.cacheTtlMs, 1),
    // Keep expired entries until replaced: they are the fallback while Postgres is unreachable.
    allowStale: false,
    noDeleteOnStaleGet: true,
    fetchMethod: async (_hashHex, previous, { context }) => {
      try {
        return await lookUp(context.plaintext);
      } catch (err) {
        if (previous && Date.now() - previous.verifiedAt < STALE_IF_ERROR_MS) {
          context.usedStale = true;
          log.warn({ err }, 'api key lookup failed; using the last verified result');
          // Returned as is: verifiedAt is unchanged, so the stale window does not slide.
          return previous;
        }
        log.error({ err }, 'api key lookup failed');
        throw new ServiceUnavailableError('Authentication is temporarily unavailable; retry shortly');
      }
    },
  });

  async function lookUp(plaintext: string): Promise<Entry> {
    const hash = hashApiKey(plaintext);
    const candidates = await repository.findCandidates(apiKeyPrefix(plaintext));
    const match = candidates.find((c) => c.hash.length === hash.length && timingSafeEqual(c.hash, hash));
    const verifiedAt = Date.now();
    if (!match) {
      // A wrong secret for a real key's prefix; with several keys under one prefix, none is named.
      const only = candidates.length === 1 ? candidates[0]! : undefined;
      const owner = only ? { tenantId: only.tenantId, keyId: only.id, keyPrefix: only.prefix } : undefined;
      return { kind: 'rejected', reason: 'unknown', verifiedAt, ...(owner ? { owner } : {}) };
    }
    if (match.revokedAt) {
      const owner = { tenantId: match.tenantId, keyId: match.id, keyPrefix: match.prefix };
      return { kind: 'rejected', reason: 'revoked', verifiedAt, owner };
    }
    if (!match.lastUsedAt || verifiedAt - match.lastUsedAt.getTime() > LAST_USED_RESOLUTION_MS) {
      repository.touchLastUsed(match.id).catch((err: unknown) => log.warn({ err }, 'could not record key use'));
    }
    return {
      kind: 'valid',
      verifiedAt,
      viewer: {
        tenantId: match.tenantId,
        tenantSlug: match.tenantSlug,
        keyId: match.id,
        keyName: match.name,
        keyPrefix: match.prefix,
        scopes: match.scopes,
        maxOperationCost: match.maxOperationCost,
      },
    };
  }

  function evict(keyId: string): void {
    for (const [hashHex, entry] of cache.entries()) {
      if (entry.kind === 'valid' && entry.viewer.keyId === keyId) cache.delete(hashHex);
    }
  }

  const onMessage = (from: string, keyId: string) => {
    if (from !== channel) return;
    metrics.authRevocationsReceived.inc();
    evict(keyId);
  };

  return {
    /** Resolves the viewer for a key, or throws UNAUTHENTICATED (unknown, revoked) / SERVICE_UNAVAILABLE. */
    async verify(plaintext: string): Promise<Viewer> {
      const status: LRUCache.Status<string, Entry, FetchContext> = {};
      const context: FetchContext = { plaintext, usedStale: false };
      let entry: Entry | undefined;
      try {
        entry = await cache.fetch(hashApiKey(plaintext).toString('hex'), { context, status });
      } catch (err) {
        metrics.authLookups.inc({ outcome: 'error' });
        throw err;
      }
      if (entry?.kind !== 'valid') {
        metrics.authLookups.inc({ outcome: 'rejected' });
        throw new RefusedKeyError(
          entry?.reason === 'revoked' ? 'This API key has been revoked' : 'Invalid API key',
          entry?.kind === 'rejected' ? entry.owner : undefined,
        );
      }
      const fromCache = status.fetch === 'hit' || status.fetch === 'inflight';
      metrics.authLookups.inc({ outcome: fromCache ? 'cached' : context.usedStale ? 'stale' : 'verified' });
      return entry.viewer;
    },

    async start(): Promise<void> {
      subscriber.on('message', onMessage);
      // Resolves once subscribed; if Redis is down ioredis subscribes when it connects, and the
      // cache TTL alone bounds how long a revoked key lives meanwhile.
      subscriber.subscribe(channel).catch((err: unknown) => log.warn({ err }, 'revocation subscription pending'));
    },

    async stop(): Promise<void> {
      subscriber.off('message', onMessage);
      cache.clear();
    },
  };
}

export type KeyVerifier = ReturnType<typeof createKeyVerifier>;
