import { Arg, Authorized, Ctx, Int, Query, Resolver } from 'type-graphql';
import type { AnalyticsContext } from './analytics-scope.js';
import { DateTimeScalar } from '../graphql/scalars.js';
import { analyticsScope } from './analytics-scope.js';
import { Interval } from './interval.enum.js';
import { DailyStats, EventTypeStats, MetricPoint, ViewFreshness } from './stats.type.js';

@Resolver()
export class StatsResolver {
  @Authorized('analytics:read')
  @Query(() => [EventTypeStats], { description: 'Event types, most frequent first (first: 1..100, default 50).' })
  async eventTypes(
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Ctx() ctx: AnalyticsContext,
  ): Promise<EventTypeStats[]> {
    const { rows, asOf } = await ctx.services.analytics.eventTypes(analyticsScope(ctx), first);
    return rows.map((r) => ({ ...r, asOf }));
  }

  @Authorized('analytics:read')
  @Query(() => [DailyStats], {
    description: 'One row per UTC day touching [from, to), empty days included; type null counts all types.',
  })
  async dailyStats(
    @Arg('from', () => DateTimeScalar) from: Date,
    @Arg('to', () => DateTimeScalar) to: Date,
    @Arg('type', () => String, { nullable: true }) type: string | null,
    @Ctx() ctx: AnalyticsContext,
  ): Promise<DailyStats[]> {
    const { rows, asOf } = await ctx.services.analytics.dailyStats(analyticsScope(ctx), from, to, type);
    return rows.map((r) => ({
      day: r.bucket,
      type,
      totalEvents: r.count,
      uniqueUsers: r.uniqueUsers,
      avgValue: r.avg,
      asOf,
    }));
  }

  @Authorized('analytics:read')
  @Query(() => [MetricPoint], {
    description: 'One point per bucket touching [from, to), empty buckets included (at most 10,080 points).',
  })
  async timeseries(
    @Arg('type', () => String, { nullable: true }) type: string | null,
    @Arg('interval', () => Interval) interval: Interval,
    @Arg('from', () => DateTimeScalar) from: Date,
    @Arg('to', () => DateTimeScalar) to: Date,
    @Ctx() ctx: AnalyticsContext,
  ): Promise<MetricPoint[]> {
    const { rows, asOf } = await ctx.services.analytics.timeseries(analyticsScope(ctx), type, interval, from, to);
    return rows.map((r) => ({ ...r, asOf }));
  }

  @Authorized('analytics:read')
  @Query(() => [ViewFreshness], { description: 'When each rollup was last brought up to date, and how stale it is.' })
  freshness(@Ctx() ctx: AnalyticsContext): Promise<ViewFreshness[]> {
    return ctx.services.analytics.freshness(analyticsScope(ctx));
  }
}
