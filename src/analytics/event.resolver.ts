import { Args, Arg, Authorized, Ctx, FieldResolver, ID, Query, Resolver, Root } from 'type-graphql';
import type { AnalyticsContext } from './analytics-scope.js';
import { analyticsScope } from './analytics-scope.js';
import { EventsArgs } from './event.args.js';
import type { EventRow } from './event-read.repository.js';
import { Event, EventConnection } from './event.type.js';
import { AnalyticsUser } from './user.type.js';

@Resolver(() => Event)
export class EventResolver {
  @Authorized('analytics:read')
  @Query(() => Event, { nullable: true, description: 'One event by id; null when the tenant has no such event.' })
  event(@Arg('id', () => ID) id: string, @Ctx() ctx: AnalyticsContext): Promise<EventRow | null> {
    return ctx.services.analytics.event(analyticsScope(ctx), id);
  }

  @Authorized('analytics:read')
  @Query(() => EventConnection, { description: 'Events matching the filter, newest first, in pages of up to 100.' })
  events(@Args(() => EventsArgs) args: EventsArgs, @Ctx() ctx: AnalyticsContext) {
    return ctx.services.analytics.eventPage(
      analyticsScope(ctx),
      args.filter ?? null,
      args.first ?? null,
      args.after ?? null,
    );
  }

  @FieldResolver(() => AnalyticsUser, { nullable: true, description: 'The user, once the user rollup knows them.' })
  user(@Root() event: EventRow, @Ctx() ctx: AnalyticsContext) {
    return ctx.services.analytics.eventUser(analyticsScope(ctx), event);
  }
}
