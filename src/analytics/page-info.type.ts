import { Field, ObjectType } from 'type-graphql';

// simpleResolvers: plain properties, read directly by graphql-js (why: stats.type.ts).
@ObjectType('PageInfo', {
  simpleResolvers: true,
  description: 'Relay page information: pass endCursor as `after` for the next page.',
})
export class PageInfo {
  @Field(() => Boolean)
  hasNextPage!: boolean;

  @Field(() => String, { nullable: true })
  endCursor!: string | null;
}
