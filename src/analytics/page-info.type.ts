import { Field, ObjectType } from 'type-graphql';

// simpleResolvers: the fields below are plain properties with no guard or middleware, so
// graphql-js reads them directly rather than through type-graphql's per-field wrapper (a
// week of hourly points is ~1,300 fields). Relations stay resolvers (user.resolver.ts, event.resolver.ts).
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
