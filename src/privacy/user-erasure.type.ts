import { Field, ObjectType } from 'type-graphql';
import { DateTimeScalar, SafeIntScalar } from '../graphql/scalars.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('UserErasure', {
  simpleResolvers: true,
  description:
    "The outcome of eraseUser: the user's events are gone from the tables, rollups, streams and dead letters.",
})
export class UserErasureType {
  @Field(() => String)
  userId!: string;

  @Field(() => SafeIntScalar, { description: 'Events deleted from Postgres.' })
  eventsDeleted!: number;

  @Field(() => DateTimeScalar, {
    description: "When the erasure completed: the user's events received from then on are recorded again.",
  })
  completedAt!: Date;
}
