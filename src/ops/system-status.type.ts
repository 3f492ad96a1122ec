import { Field, Float, Int, ObjectType } from 'type-graphql';
import { SafeIntScalar } from '../graphql/scalars.js';

@ObjectType('ConsumerGroupStatus', { simpleResolvers: true, description: 'One consumer group of a stream partition.' })
export class ConsumerGroupStatus {
  @Field(() => String, { description: 'persist (to Postgres) or aggregate (the live windows).' })
  name!: string;

  @Field(() => SafeIntScalar, { description: 'Entries delivered to the group and not acknowledged yet.' })
  pending!: number;

  @Field(() => SafeIntScalar, {
    nullable: true,
    description: 'Entries not yet delivered to the group; null when Redis cannot tell (after a trim past them).',
  })
  lag!: number | null;
}

@ObjectType('StreamPartitionStatus', { simpleResolvers: true, description: 'One partition of the event stream.' })
export class StreamPartitionStatus {
  @Field(() => Int)
  partition!: number;

  @Field(() => SafeIntScalar, { description: 'Entries in the stream (XLEN), all tenants.' })
  length!: number;

  @Field(() => SafeIntScalar, { description: "Entries in the partition's dead-letter stream, all tenants." })
  deadLetters!: number;

  @Field(() => [ConsumerGroupStatus])
  groups!: ConsumerGroupStatus[];
}

@ObjectType('RollupStatus', { simpleResolvers: true })
export class RollupStatus {
  @Field(() => String, { description: 'The rollup table.' })
  source!: string;

  @Field(() => SafeIntScalar, { description: 'Milliseconds since the last refresh round that caught up with it.' })
  stalenessMs!: number;
}

@ObjectType('CacheStatus', {
  simpleResolvers: true,
  description:
    'The result caches (whole answers, then per field), as seen by the replica that answers (since it started): a whole answer served is a hit, a field computed from Postgres a miss.',
})
export class CacheStatus {
  @Field(() => SafeIntScalar)
  hits!: number;

  @Field(() => SafeIntScalar, { description: 'Lookups that missed (computed and stored) or failed (Redis errors).' })
  misses!: number;

  @Field(() => Float, { nullable: true, description: 'hits / (hits + misses); null before the first lookup.' })
  hitRatio!: number | null;
}

@ObjectType('PoolStatus', { simpleResolvers: true, description: 'A Postgres pool of the replica that answers.' })
export class PoolStatus {
  @Field(() => String)
  name!: string;

  @Field(() => Int, { description: 'Open connections.' })
  total!: number;

  @Field(() => Int, { description: 'Open connections not checked out.' })
  idle!: number;

  @Field(() => Int, { description: 'Callers waiting for a connection; above 0 the pool is the bottleneck.' })
  waiting!: number;
}

@ObjectType('SystemStatus', {
  simpleResolvers: true,
  description: 'What an operator checks first: streams, rollups, cache and pools. Counts only, no tenant data.',
})
export class SystemStatus {
  @Field(() => [StreamPartitionStatus])
  streams!: StreamPartitionStatus[];

  @Field(() => [RollupStatus])
  rollups!: RollupStatus[];

  @Field(() => CacheStatus)
  cache!: CacheStatus;

  @Field(() => [PoolStatus])
  pools!: PoolStatus[];
}
