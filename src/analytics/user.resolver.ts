import { Arg, Args, Authorized, Ctx, FieldResolver, ID, Int, Query, Resolver, Root } from 'type-graphql';
import type { AnalyticsContext } from './analytics-scope.js';
import { SafeIntScalar } from '../graphql/scalars.js';
import { analyticsScope } from './analytics-scope.js';
import type { UserPage } from './analytics.service.js';
import { Event } from './event.type.js';
import { UsersArgs } from './user.args.js';
import type { UserRow } from './user.repository.js';
import { AnalyticsUser, UserConnection } from './user.type.js';

@Resolver(() => AnalyticsUser)
export class UserResolver {
  @Authorized('analytics:read')
  @Query(() => AnalyticsUser, { nullable: true, description: "One user by the tenant's userId." })
  user(@Arg('id', () => ID) id: string, @Ctx() ctx: AnalyticsContext): Promise<UserRow | null> {
    return ctx.services.analytics.user(analyticsScope(ctx), id);
  }

  @Authorized('analytics:read')
  @Query(() => UserConnection, {
    description: 'Users, most recently seen (or most active) first, in pages of up to 100.',
  })
  users(@Args(() => UsersArgs) args: UsersArgs, @Ctx() ctx: AnalyticsContext): Promise<UserPage> {
    return ctx.services.analytics.userPage(
      analyticsScope(ctx),
      args.filter ?? null,
      args.orderBy ?? null,
      args.first ?? null,
      args.after ?? null,
    );
  }

  @FieldResolver(() => [Event], { description: "The user's latest events, newest first (first: 1..100, default 10)." })
  events(
    @Root() user: UserRow,
    @Arg('first', () => Int, { nullable: true }) first: number | null,
    @Arg('type', () => String, { nullable: true }) type: string | null,
    @Ctx() ctx: AnalyticsContext,
  ) {
    return ctx.services.analytics.userEvents(analyticsScope(ctx), user, first, type);
  }
}

@Resolver(() => UserConnection)
export class UserConnectionResolver {
  @FieldResolver(() => SafeIntScalar, { description: 'Users matching the filter (counted only when asked for).' })
  totalCount(@Root() page: UserPage, @Ctx() ctx: AnalyticsContext): Promise<number> {
    return ctx.services.analytics.userCount(analyticsScope(ctx), page.filter);
  }
}
