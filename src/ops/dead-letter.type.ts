import { Field, ID, Int, ObjectType } from 'type-graphql';
import { PageInfo } from '../analytics/page-info.type.js';
import { DateTimeScalar, JSONScalar } from '../graphql/scalars.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('DeadLetter', {
  simpleResolvers: true,
  description: 'An event the persister could not store, kept until replayDeadLetters puts it back on the stream.',
})
export class DeadLetterType {
  @Field(() => ID, { description: '<partition>:<entry id> of the dead-letter stream.' })
  id!: string;

  @Field(() => String, {
    description: 'Why it was set aside: unparseable, rejected by Postgres, or delivered too often.',
  })
  reason!: string;

  @Field(() => Int, {
    nullable: true,
    description: 'Deliveries to the persister before it gave up; null when not recorded.',
  })
  deliveries!: number | null;

  @Field(() => DateTimeScalar, { nullable: true })
  failedAt!: Date | null;

  @Field(() => JSONScalar, {
    description:
      'The event as it was recorded (id, type, userId, sessionId, messageId, timestamp, receivedAt, value, properties), or { raw } when it cannot be read.',
  })
  event!: unknown;
}

@ObjectType('DeadLetterEdge', { simpleResolvers: true })
export class DeadLetterEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => DeadLetterType)
  node!: DeadLetterType;
}

@ObjectType('DeadLetterConnection', {
  simpleResolvers: true,
  description: "A page of the tenant's dead letters, newest first.",
})
export class DeadLetterConnection {
  @Field(() => [DeadLetterEdge])
  edges!: DeadLetterEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;

  @Field(() => Int, { description: "The tenant's dead letters in all." })
  totalCount!: number;
}
