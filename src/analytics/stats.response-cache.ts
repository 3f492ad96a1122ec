import type { CacheableField } from '../plugins/response-cache.plugin.js';
import { statsTier } from './analytics.service.js';
import type { Interval } from './interval.enum.js';
import type { CacheTier } from './query-cache.js';

type StatsField = 'eventTypes' | 'dailyStats' | 'timeseries';

/**
 * The root fields of stats.resolver.ts whose whole answer is a function of the tenant's rollups
 * and the arguments, with the scope their `@Authorized` asks for and the query cache's tier as
 * their max age (so a whole answer lives no longer than the per-field answers inside it).
 * `freshness` is left out on purpose: its `stalenessMs` grows with the clock.
 */
export function statsResponseCacheFields(
  ttlS: Readonly<Record<CacheTier, number>>,
): Record<StatsField, CacheableField> {
  const field = (name: StatsField): CacheableField => ({
    scope: 'analytics:read',
    maxAgeS: (args, now) => ttlS[statsTier(name, args as { from?: Date; to?: Date; interval?: Interval }, now)],
  });
  return { eventTypes: field('eventTypes'), dailyStats: field('dailyStats'), timeseries: field('timeseries') };
}
