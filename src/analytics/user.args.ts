import { ArgsType, Field, InputType, Int } from 'type-graphql';
import { UserOrder } from './user-order.enum.js';
import { DateTimeScalar } from '../graphql/scalars.js';

@InputType('UserFilter')
export class UserFilter {
  @Field(() => DateTimeScalar, { nullable: true, description: 'Users whose last event is at or after this time.' })
  seenSince?: Date | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Users whose first event is before this time.' })
  seenBefore?: Date | null;
}

@ArgsType()
export class UsersArgs {
  @Field(() => UserFilter, { nullable: true })
  filter?: UserFilter | null;

  @Field(() => UserOrder, { nullable: true, description: 'Default LAST_SEEN.' })
  orderBy?: UserOrder | null;

  @Field(() => Int, { nullable: true, description: 'Page size, 1..100; default 20.' })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page.' })
  after?: string | null;
}
