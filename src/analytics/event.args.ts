import { ArgsType, Field, InputType } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';
import { PageArgs } from './page.args.js';

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
export class EventsArgs extends PageArgs {
  @Field(() => EventFilter, { nullable: true })
  filter?: EventFilter | null;
}
