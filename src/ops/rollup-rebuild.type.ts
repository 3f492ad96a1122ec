import { Field, Int, ObjectType } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('RollupRebuild', {
  simpleResolvers: true,
  description: 'The outcome of rebuildRollups: the rollups of the range were recomputed from the events table.',
})
export class RollupRebuildType {
  @Field(() => Int, { description: 'UTC hours recomputed (every hour touching the range).' })
  hours!: number;

  @Field(() => DateTimeScalar)
  completedAt!: Date;
}
