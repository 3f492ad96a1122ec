import { Field, ID, ObjectType } from 'type-graphql';
import { DateTimeScalar, SafeIntScalar } from '../graphql/scalars.js';
import { PageInfo } from './page-info.type.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: stats.type.ts).
@ObjectType('AnalyticsUser', {
  simpleResolvers: true,
  description: "One of the tenant's users (the userId events carry), with totals from the user rollup.",
})
export class AnalyticsUser {
  @Field(() => ID, { description: "The tenant's own userId." })
  id!: string;

  @Field(() => DateTimeScalar)
  firstSeen!: Date;

  @Field(() => DateTimeScalar)
  lastSeen!: Date;

  @Field(() => SafeIntScalar)
  eventCount!: number;

  @Field(() => SafeIntScalar, { description: 'Distinct sessionIds among the user’s events.' })
  sessionCount!: number;
}

@ObjectType('UserEdge', { simpleResolvers: true })
export class UserEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => AnalyticsUser)
  node!: AnalyticsUser;
}

@ObjectType('UserConnection', { simpleResolvers: true })
export class UserConnection {
  @Field(() => [UserEdge])
  edges!: UserEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
