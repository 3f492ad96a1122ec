import { RollupRepository } from '../analytics/rollup.repository.js';
import type { Pool } from '../db/pool.js';
import { ServiceUnavailableError } from '../graphql/errors.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics, PoolCounts } from '../observability/metrics.js';
import type { PartitionState } from '../streams/stream-maintenance.worker.js';
import type { SystemStatus } from './system-status.type.js';

export interface SystemStatusDeps {
  /** Reads rollup_refresh (through the rollup repository). */
  readonly pool: Pool;
  /** Live state of every partition: the stream maintenance worker's inspectAll. */
  readonly inspectStreams: () => Promise<PartitionState[]>;
  /** The counters of the caches (query_cache_requests_total, response_cache_requests_total). */
  readonly metrics: Pick<Metrics, 'queryCacheRequests' | 'responseCacheRequests'>;
  /** The replica's Postgres pools by name. */
  readonly pools: Readonly<Record<string, PoolCounts>>;
  readonly logger: Logger;
}

/**
 * systemStatus: the state /ready and /metrics spread over several places, in one answer. Streams
 * come from Redis and rollups from Postgres, read in parallel; cache and pool figures are this
 * replica's own (a load balancer picks the replica; /metrics has every replica's).
 */
export function createSystemStatusService(deps: SystemStatusDeps) {
  const rollups = new RollupRepository(deps.pool);

  async function cacheCounts(): Promise<SystemStatus['cache']> {
    let hits = 0;
    let misses = 0;
    for (const { labels, value } of (await deps.metrics.queryCacheRequests.get()).values) {
      if (labels.result === 'hit') hits += value;
      else misses += value;
    }
    // A whole answer from the response cache is a hit too; its misses go on to the per-field
    // cache above, which counts them once there.
    for (const { labels, value } of (await deps.metrics.responseCacheRequests.get()).values) {
      if (labels.result === 'hit') hits += value;
    }
    return { hits, misses, hitRatio: hits + misses > 0 ? hits / (hits + misses) : null };
  }

  return {
    async status(): Promise<SystemStatus> {
      const now = Date.now();
      const [partitions, freshness, cache] = await Promise.all([
        deps.inspectStreams().catch((err: unknown) => {
          deps.logger.warn({ err }, 'systemStatus: reading the streams failed');
          throw new ServiceUnavailableError('the event streams cannot be read (Redis is unreachable)');
        }),
        rollups.freshness().catch((err: unknown) => {
          deps.logger.warn({ err }, 'systemStatus: reading rollup freshness failed');
          throw new ServiceUnavailableError('rollup freshness cannot be read (Postgres is unreachable)');
        }),
        cacheCounts(),
      ]);
      return {
        streams: partitions.map((p, partition) => ({
          partition,
          length: p.length,
          deadLetters: p.deadLetters,
          groups: Object.entries(p.groups)
            .map(([name, g]) => ({ name, pending: g.pending, lag: g.lag }))
            .sort((a, b) => a.name.localeCompare(b.name)),
        })),
        rollups: freshness.map((f) => ({ source: f.source, stalenessMs: Math.max(0, now - f.refreshedAt.getTime()) })),
        cache,
        pools: Object.entries(deps.pools).map(([name, p]) => ({
          name,
          total: p.totalCount,
          idle: p.idleCount,
          waiting: p.waitingCount,
        })),
      };
    },
  };
}

export type SystemStatusService = ReturnType<typeof createSystemStatusService>;
