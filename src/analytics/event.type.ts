import { Field, Float, ID, ObjectType } from 'type-graphql';
import { DateTimeScalar, JSONScalar } from '../graphql/scalars.js';
import { PageInfo } from './page-info.type.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: stats.type.ts).
@ObjectType('Event', {
  simpleResolvers: true,
  description: 'One recorded event, as stored.',
})
export class Event {
  @Field(() => ID, { description: 'A UUIDv7 that carries the event time.' })
  id!: string;

  @Field(() => String)
  type!: string;

  @Field(() => String, { nullable: true })
  userId!: string | null;

  @Field(() => String, { nullable: true })
  sessionId!: string | null;

  @Field(() => DateTimeScalar, { description: 'When it happened: the client timestamp, skew-corrected.' })
  timestamp!: Date;

  @Field(() => DateTimeScalar, { description: 'When the gateway received it.' })
  receivedAt!: Date;

  @Field(() => Float, { nullable: true })
  value!: number | null;

  @Field(() => JSONScalar, { nullable: true })
  properties!: Record<string, unknown> | null;

  @Field(() => String, {
    nullable: true,
    description:
      'Where the event is in the live feed: pass it as eventRecorded(after:) to resume after it. Set on events eventRecorded pushes; null on events read by queries (their page cursor is the edge cursor).',
  })
  cursor?: string | null;
}

@ObjectType('EventEdge', { simpleResolvers: true })
export class EventEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => Event)
  node!: Event;
}

@ObjectType('EventConnection', {
  simpleResolvers: true,
  description: 'A page of events, newest first.',
})
export class EventConnection {
  @Field(() => [EventEdge])
  edges!: EventEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
