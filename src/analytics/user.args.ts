import { ArgsType, Field, InputType } from 'type-graphql';
import { UserOrder } from './user-order.enum.js';
import { DateTimeScalar } from '../graphql/scalars.js';
import { PageArgs } from './page.args.js';

@InputType('UserFilter')
export class UserFilter {
  @Field(() => DateTimeScalar, { nullable: true, description: 'Users whose last event is at or after this time.' })
  seenSince?: Date | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Users whose first event is before this time.' })
  seenBefore?: Date | null;
}

@ArgsType()
export class UsersArgs extends PageArgs {
  @Field(() => UserFilter, { nullable: true })
  filter?: UserFilter | null;

  @Field(() => UserOrder, { nullable: true, description: 'Default LAST_SEEN.' })
  orderBy?: UserOrder | null;
}
