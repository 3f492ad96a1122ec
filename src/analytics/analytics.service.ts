import type pg from 'pg';
import { BadUserInputError } from '../graphql/errors.js';
import { type AnalyticsLoaders, createAnalyticsLoaders } from './analytics.loaders.js';
import { createReplicaLag, type ReplicaLag } from '../db/replica-lag.js';
import { type RequestDeadline, withinDeadline } from '../db/request-deadline.js';
import { decodeCursor, encodeCursor, pageSize } from './cursor.js';
import type { EventFilter } from './event.args.js';
import { EventReadRepository, type EventRow, isEventId } from './event-read.repository.js';
import type { CacheTier, QueryCache } from './query-cache.js';
import { type BucketUnit, type Freshness, RollupRepository } from './rollup.repository.js';
import { type BucketRow, StatsRepository, type TypeStatsRow } from './stats.repository.js';
import { Interval } from './interval.enum.js';
import type { UserFilter } from './user.args.js';
import { UserOrder } from './user-order.enum.js';
import { UserRepository, type UserRow } from './user.repository.js';

/** What one request may ask of the analytics API: its tenant and its own DataLoaders. */
export interface AnalyticsScope {
  readonly tenantId: string;
  readonly loaders: AnalyticsLoaders;
  /** The repositories this request's statements go through: bound to its deadline when it has one. */
  readonly repositories: AnalyticsRepositories;
}

interface AnalyticsRepositories {
  readonly events: EventReadRepository;
  readonly users: UserRepository;
  readonly stats: StatsRepository;
  readonly rollups: RollupRepository;
}

/** The query API's repositories over `reads`, event pages over `eventReads` (generic plans). */
function repositoriesOver(reads: Pick<pg.Pool, 'query'>, eventReads: Pick<pg.Pool, 'query'>): AnalyticsRepositories {
  return {
    events: new EventReadRepository(reads, eventReads),
    users: new UserRepository(reads),
    stats: new StatsRepository(reads),
    rollups: new RollupRepository(reads),
  };
}

export interface Page<T> {
  readonly edges: { cursor: string; node: T }[];
  readonly pageInfo: { hasNextPage: boolean; endCursor: string | null };
}

export interface UserPage extends Page<UserRow> {
  /** Kept for totalCount, which is counted only when asked for. */
  readonly filter: UserFilter | null;
}

export interface Stats<T> {
  readonly rows: T[];
  readonly asOf: Date | null;
}

const UNIT: Record<Interval, BucketUnit> = {
  [Interval.MINUTE]: 'minute',
  [Interval.HOUR]: 'hour',
  [Interval.DAY]: 'day',
};
const UNIT_MS: Record<BucketUnit, number> = { minute: 60_000, hour: 3_600_000, day: 86_400_000 };
/** Most points one timeseries returns: a week of minutes. */
export const MAX_POINTS = 10_080;
/** Most days one dailyStats call returns: ten years. */
export const MAX_DAYS = 3_660;
const MAX_USER_EVENTS = 100;
/** The `freshness` source of the read replica's replay lag (present only with DATABASE_READ_URL). */
export const REPLICA_SOURCE = 'replica';
const SOURCE: Record<BucketUnit, string> = { minute: 'rollup_minute', hour: 'rollup_hour', day: 'rollup_day' };

/**
 * The query API over events and rollups. Shared by all requests; everything per request (tenant,
 * DataLoaders) comes in the scope. Statistics go through the Redis result cache; events and users
 * through the request's DataLoaders.
 */
export class AnalyticsService {
  private readonly repositories: AnalyticsRepositories;
  private readonly reads: pg.Pool;
  private readonly eventReadPool: pg.Pool;

  private readonly replicaLag: ReplicaLag | null;

  /**
   * `eventReadPool`, a pool with generic plans (src/db/pool.ts), serves the event reads that gain
   * from them. `readPool`, when given, serves every other read: both may be connected to a
   * streaming replica (DATABASE_READ_URL), whose replay lag `freshness` then reports against
   * `pool`, the primary. Nothing here writes.
   */
  constructor(
    pools: { readonly pool: pg.Pool; readonly eventReadPool: pg.Pool; readonly readPool?: pg.Pool },
    private readonly cache: QueryCache,
  ) {
    this.reads = pools.readPool ?? pools.pool;
    this.eventReadPool = pools.eventReadPool;
    this.repositories = repositoriesOver(this.reads, this.eventReadPool);
    this.replicaLag = pools.readPool ? createReplicaLag({ primary: pools.pool, replica: pools.readPool }) : null;
  }

  /**
   * With a deadline, the request's repositories go through views of the pools that stop at it
   * (src/db/request-deadline.ts): a few small objects per request, and no timer until a
   * statement runs. The replica-lag probe of `freshness` stays on the shared pools: two
   * statements, each under statement_timeout.
   */
  scope(tenantId: string, deadline?: RequestDeadline): AnalyticsScope {
    let repositories = this.repositories;
    if (deadline) {
      const reads = withinDeadline(this.reads, deadline);
      const eventReads = this.eventReadPool === this.reads ? reads : withinDeadline(this.eventReadPool, deadline);
      repositories = repositoriesOver(reads, eventReads);
    }
    return { tenantId, repositories, loaders: createAnalyticsLoaders(repositories, tenantId) };
  }

  async event(scope: AnalyticsScope, id: string): Promise<EventRow | null> {
    return isEventId(id) ? scope.loaders.event.load(id.toLowerCase()) : null;
  }

  async eventPage(scope: AnalyticsScope, filter: EventFilter | null, first: number | null, after: string | null) {
    const limit = pageSize(first);
    checkRange(filter?.from, filter?.to, 'filter.from', 'filter.to');
    let before: { timeUs: string; id: string } | null = null;
    if (after) {
      const [timeUs, id] = decodeCursor(after, 2) as [string, string];
      if (!/^-?\d{1,17}$/.test(timeUs) || !isEventId(id))
        throw new BadUserInputError('`after` is not a cursor returned by this field');
      before = { timeUs, id };
    }
    const rows = await scope.repositories.events.page(scope.tenantId, { ...filter, before, limit: limit + 1 });
    return toPage(rows, limit, (e) => encodeCursor([e.timeUs, e.id]));
  }

  async user(scope: AnalyticsScope, id: string): Promise<UserRow | null> {
    return scope.loaders.user.load(id);
  }

  async userPage(
    scope: AnalyticsScope,
    filter: UserFilter | null,
    orderBy: UserOrder | null,
    first: number | null,
    after: string | null,
  ): Promise<UserPage> {
    const limit = pageSize(first);
    const order = orderBy ?? UserOrder.LAST_SEEN;
    let position: { sortKey: string; id: string } | null = null;
    if (after) {
      const [cursorOrder, sortKey, id] = decodeCursor(after, 3) as [string, string, string];
      if (cursorOrder !== order || !/^-?\d{1,19}$/.test(sortKey)) {
        throw new BadUserInputError('`after` is not a cursor returned by this field with this orderBy');
      }
      position = { sortKey, id };
    }
    const rows = await scope.repositories.users.page(scope.tenantId, {
      ...filter,
      order,
      after: position,
      limit: limit + 1,
    });
    // The page's users are the ones Event.user will ask for next: no second lookup.
    for (const row of rows) scope.loaders.user.prime(row.id, row);
    return { ...toPage(rows, limit, (u) => encodeCursor([order, u.sortKey, u.id])), filter };
  }

  async userCount(scope: AnalyticsScope, filter: UserFilter | null): Promise<number> {
    return scope.repositories.users.count(scope.tenantId, filter ?? {});
  }

  async userEvents(
    scope: AnalyticsScope,
    user: UserRow,
    first: number | null,
    type: string | null,
  ): Promise<EventRow[]> {
    return scope.loaders.latestEvents.load({
      userId: user.id,
      seen: { first: user.firstSeen, last: user.lastSeen, events: user.eventCount },
      first: pageSize(first, 10, MAX_USER_EVENTS),
      type,
    });
  }

  async eventUser(scope: AnalyticsScope, event: EventRow): Promise<UserRow | null> {
    return event.userId === null ? null : scope.loaders.user.load(event.userId);
  }

  async eventTypes(scope: AnalyticsScope, first: number | null): Promise<Stats<TypeStatsRow>> {
    const limit = pageSize(first, 50);
    return this.cached(scope, 'eventTypes', { limit }, 'aggregate', 'rollup_type', () =>
      scope.repositories.stats.eventTypes(scope.tenantId, limit),
    );
  }

  /** Per UTC day; `type` null gives all of the tenant's events together. */
  async dailyStats(scope: AnalyticsScope, from: Date, to: Date, type: string | null): Promise<Stats<BucketRow>> {
    const range = alignedRange(from, to, 'day', MAX_DAYS);
    return this.cached(scope, 'dailyStats', { ...range, type }, tierFor(range.to), SOURCE.day, () =>
      scope.repositories.stats.buckets(scope.tenantId, 'day', type, range.from, range.to),
    );
  }

  async timeseries(
    scope: AnalyticsScope,
    type: string | null,
    interval: Interval,
    from: Date,
    to: Date,
  ): Promise<Stats<BucketRow>> {
    const unit = UNIT[interval];
    const range = alignedRange(from, to, unit, MAX_POINTS);
    return this.cached(scope, 'timeseries', { ...range, type, unit }, tierFor(range.to), SOURCE[unit], () =>
      scope.repositories.stats.buckets(scope.tenantId, unit, type, range.from, range.to),
    );
  }

  /**
   * Each rollup's refresh time as the reads see it. On a replica that is the replica's copy of
   * rollup_refresh, so a replica behind shows its rollups older: its lag is already in their
   * stalenessMs. The lag itself is the `replica` entry (src/db/replica-lag.ts), which also covers
   * what no rollup does: the events `events` and `event` read.
   */
  async freshness(scope: AnalyticsScope): Promise<(Freshness & { stalenessMs: number })[]> {
    const [rollups, lagMs] = await Promise.all([scope.loaders.freshness(), this.replicaLag?.lagMs()]);
    const now = Date.now();
    const sources = rollups.map((f) => ({
      ...f,
      stalenessMs: Math.max(0, now - f.refreshedAt.getTime()),
    }));
    if (lagMs === undefined) return sources;
    return [
      ...sources,
      { source: REPLICA_SOURCE, refreshedAt: new Date(now - lagMs), durationMs: 0, stalenessMs: lagMs },
    ];
  }

  /**
   * An answer with the refresh time of the rollup it came from, through the result cache. The
   * refresh time is read before the rows, so `asOf` never claims more than the rows contain.
   */
  private cached<T extends object>(
    scope: AnalyticsScope,
    field: string,
    args: Record<string, unknown>,
    tier: CacheTier,
    source: string,
    load: () => Promise<T[]>,
  ): Promise<Stats<T>> {
    return this.cache.get<Stats<T>>(
      scope.tenantId,
      field,
      args,
      tier,
      async () => {
        const asOf = (await scope.loaders.freshness()).find((f) => f.source === source)?.refreshedAt ?? null;
        return { rows: await load(), asOf };
      },
      reviveDates,
    );
  }
}

function toPage<T>(rows: T[], limit: number, cursor: (row: T) => string): Page<T> {
  const edges = rows.slice(0, limit).map((node) => ({ cursor: cursor(node), node }));
  return { edges, pageInfo: { hasNextPage: rows.length > limit, endCursor: edges.at(-1)?.cursor ?? null } };
}

function checkRange(
  from: Date | null | undefined,
  to: Date | null | undefined,
  fromName: string,
  toName: string,
): void {
  if (from && to && from.getTime() >= to.getTime()) throw new BadUserInputError(`${fromName} must be before ${toName}`);
}

/**
 * [from, to) widened to whole buckets: the answer covers every bucket the range touches, and
 * ranges that touch the same buckets share one cache entry (a dashboard asking "until now"
 * every second asks the same question for a whole bucket).
 */
function alignedRange(from: Date, to: Date, unit: BucketUnit, maxBuckets: number): { from: Date; to: Date } {
  checkRange(from, to, 'from', 'to');
  const width = UNIT_MS[unit];
  const start = Math.floor(from.getTime() / width) * width;
  const end = Math.ceil(to.getTime() / width) * width;
  if ((end - start) / width > maxBuckets) {
    throw new BadUserInputError(`the range from..to spans more than ${maxBuckets} ${unit} buckets`, { maxBuckets });
  }
  return { from: new Date(start), to: new Date(end) };
}

/**
 * The cache tier of a statistics answer, as the service picks it for the query cache: by the end
 * of its range widened to whole buckets. Throws the field's own error when the range is invalid.
 */
export function statsTier(
  field: 'eventTypes' | 'dailyStats' | 'timeseries',
  args: { from?: Date; to?: Date; interval?: Interval },
  now = Date.now(),
): CacheTier {
  if (field === 'eventTypes') return 'aggregate';
  const unit = field === 'dailyStats' ? 'day' : UNIT[args.interval!];
  return tierFor(alignedRange(args.from!, args.to!, unit, field === 'dailyStats' ? MAX_DAYS : MAX_POINTS).to, now);
}

/** Current minute: real-time; ended before today (UTC): closed days; otherwise aggregates. */
function tierFor(to: Date, now = Date.now()): CacheTier {
  if (to.getTime() > now - 60_000) return 'realtime';
  if (to.getTime() <= Math.floor(now / 86_400_000) * 86_400_000) return 'closed';
  return 'aggregate';
}

const DATE_FIELDS = ['bucket', 'firstSeen', 'lastSeen'] as const;

/** Cached answers come back as JSON: turn their timestamps into Dates again. */
function reviveDates<T extends object>(stored: Stats<T>): Stats<T> {
  const rows = stored.rows.map((row) => {
    const copy = { ...row } as Record<string, unknown>;
    for (const field of DATE_FIELDS) if (typeof copy[field] === 'string') copy[field] = new Date(copy[field]);
    return copy as T;
  });
  return { rows, asOf: stored.asOf === null ? null : new Date(stored.asOf) };
}
