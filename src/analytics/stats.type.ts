import { Field, Float, ObjectType } from 'type-graphql';
import { DateTimeScalar, SafeIntScalar } from '../graphql/scalars.js';

// simpleResolvers: the fields below are plain properties with no guard or middleware, so
// graphql-js reads them directly rather than through type-graphql's per-field wrapper (a
// week of hourly points is ~1,300 fields). Relations stay resolvers (user.resolver.ts, event.resolver.ts).
@ObjectType('EventTypeStats', {
  simpleResolvers: true,
  description: 'All-time totals of one event type (within retention).',
})
export class EventTypeStats {
  @Field(() => String)
  type!: string;

  @Field(() => SafeIntScalar)
  count!: number;

  @Field(() => SafeIntScalar)
  uniqueUsers!: number;

  @Field(() => Float, { nullable: true, description: 'Mean of `value` over the events that carry one.' })
  avgValue!: number | null;

  @Field(() => DateTimeScalar)
  firstSeen!: Date;

  @Field(() => DateTimeScalar)
  lastSeen!: Date;

  @Field(() => DateTimeScalar, {
    nullable: true,
    description: 'The rollup holds every event committed before this time; null until its first refresh.',
  })
  asOf!: Date | null;
}

@ObjectType('DailyStats', {
  simpleResolvers: true,
  description: 'One UTC day of one event type, or of all types when type is null.',
})
export class DailyStats {
  @Field(() => DateTimeScalar, { description: 'Start of the UTC day.' })
  day!: Date;

  @Field(() => String, { nullable: true })
  type!: string | null;

  @Field(() => SafeIntScalar)
  totalEvents!: number;

  @Field(() => SafeIntScalar)
  uniqueUsers!: number;

  @Field(() => Float, { nullable: true })
  avgValue!: number | null;

  @Field(() => DateTimeScalar, {
    nullable: true,
    description: 'The rollup holds every event committed before this time; null until its first refresh.',
  })
  asOf!: Date | null;
}

@ObjectType('MetricPoint', {
  simpleResolvers: true,
  description: 'One bucket of a time series. Aggregates of `value` are null when no event of the bucket has one.',
})
export class MetricPoint {
  @Field(() => DateTimeScalar, { description: 'Start of the bucket (UTC).' })
  bucket!: Date;

  @Field(() => SafeIntScalar)
  count!: number;

  @Field(() => SafeIntScalar)
  uniqueUsers!: number;

  @Field(() => Float, { nullable: true })
  sum!: number | null;

  @Field(() => Float, { nullable: true })
  avg!: number | null;

  @Field(() => Float, { nullable: true })
  min!: number | null;

  @Field(() => Float, { nullable: true })
  max!: number | null;

  @Field(() => Float, { nullable: true, description: 'Median of value (percentile_cont, exact).' })
  p50!: number | null;

  @Field(() => Float, { nullable: true })
  p95!: number | null;

  @Field(() => Float, { nullable: true })
  p99!: number | null;

  @Field(() => DateTimeScalar, {
    nullable: true,
    description: 'The rollup holds every event committed before this time; null until its first refresh.',
  })
  asOf!: Date | null;
}

@ObjectType('ViewFreshness', {
  simpleResolvers: true,
  description: 'How current one rollup is.',
})
export class ViewFreshness {
  @Field(() => String, {
    description: "The rollup table, or `replica`: the read replica's replay lag (with DATABASE_READ_URL).",
  })
  source!: string;

  @Field(() => DateTimeScalar, { description: 'Every event committed before this time is in the rollup.' })
  refreshedAt!: Date;

  @Field(() => SafeIntScalar, { description: 'Milliseconds since refreshedAt, at the time of the answer.' })
  stalenessMs!: number;
}
