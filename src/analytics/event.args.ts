import { ArgsType, Field, InputType, Int } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';

@InputType('EventFilter')
export class EventFilter {
  @Field(() => String, { nullable: true })
  type?: string | null;

  @Field(() => String, { nullable: true })
  userId?: string | null;

  @Field(() => String, { nullable: true })
  sessionId?: string | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Events at or after this time.' })
  from?: Date | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Events before this time.' })
  to?: Date | null;
}

@ArgsType()
export class EventsArgs {
  @Field(() => EventFilter, { nullable: true })
  filter?: EventFilter | null;

  @Field(() => Int, { nullable: true, description: 'Page size, 1..100; default 20.' })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page.' })
  after?: string | null;
}
