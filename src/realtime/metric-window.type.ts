import { Field, Float, ObjectType } from 'type-graphql';
import { DateTimeScalar, SafeIntScalar } from '../graphql/scalars.js';
import { Window } from './window.enum.js';

// simpleResolvers: plain properties of a snapshot, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('MetricWindow', {
  simpleResolvers: true,
  description:
    "One live window of the tenant's events (one type, or all when type is null), merged over every replica and stream partition.",
})
export class MetricWindow {
  @Field(() => String, { nullable: true })
  type!: string | null;

  @Field(() => Window)
  window!: Window;

  @Field(() => DateTimeScalar)
  start!: Date;

  @Field(() => DateTimeScalar)
  end!: Date;

  @Field(() => SafeIntScalar)
  count!: number;

  @Field(() => Float, {
    nullable: true,
    description: 'Aggregates of `value` are null while no event of the window has one.',
  })
  sum!: number | null;

  @Field(() => Float, { nullable: true })
  min!: number | null;

  @Field(() => Float, { nullable: true })
  max!: number | null;

  @Field(() => Float, { nullable: true })
  avg!: number | null;

  @Field(() => Float, { nullable: true, description: 'Within 0.5% of the exact percentile (log-scale buckets).' })
  p50!: number | null;

  @Field(() => Float, { nullable: true })
  p95!: number | null;

  @Field(() => Float, { nullable: true })
  p99!: number | null;

  @Field(() => SafeIntScalar, { description: 'Distinct userIds (HyperLogLog, about 0.8% standard error).' })
  uniqueUsers!: number;

  @Field(() => SafeIntScalar, { description: 'Increases with every change to the window.' })
  revision!: number;

  @Field(() => Boolean, {
    description: 'The window has closed and its grace period passed: this is its last snapshot.',
  })
  final!: boolean;
}
