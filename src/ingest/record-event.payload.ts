import { Field, ID, Int, ObjectType } from 'type-graphql';

@ObjectType('RecordEventPayload', { simpleResolvers: true })
export class RecordEventPayload {
  @Field(() => ID, {
    description: "The event's id; for a duplicate, the id of the event first recorded with its messageId.",
  })
  id!: string;

  @Field(() => Boolean, { description: 'True when the messageId was already recorded within the dedupe window.' })
  duplicate!: boolean;
}

@ObjectType('EventError', {
  simpleResolvers: true,
  description: 'Why one event of a batch was rejected; the others are unaffected.',
})
export class EventError {
  @Field(() => Int, { description: "The event's position in the request's list." })
  index!: number;

  @Field(() => String)
  code!: string;

  @Field(() => String)
  message!: string;
}

@ObjectType('RecordEventsPayload', { simpleResolvers: true })
export class RecordEventsPayload {
  @Field(() => Int, { description: 'Events newly accepted.' })
  accepted!: number;

  @Field(() => Int, { description: 'Events whose messageId had already been recorded.' })
  duplicates!: number;

  @Field(() => [ID], {
    nullable: 'items',
    description: 'Per input position, the event id (the first id for a duplicate); null where the event was rejected.',
  })
  ids!: (string | null)[];

  @Field(() => [EventError])
  errors!: EventError[];
}
