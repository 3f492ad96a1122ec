import { ArgsType, Field, Int } from 'type-graphql';

/** The Relay page arguments every connection takes (events, users, auditLog); each service bounds `first`. */
@ArgsType()
export class PageArgs {
  @Field(() => Int, { nullable: true, description: 'Page size, 1..100; default 20.' })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page.' })
  after?: string | null;
}
