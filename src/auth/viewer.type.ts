import { Field, ObjectType } from 'type-graphql';

@ObjectType('Viewer', {
  simpleResolvers: true,
  description: 'The caller, as identified by its API key.',
})
export class ViewerType {
  @Field(() => String, { description: "The tenant's slug; every answer is scoped to it." })
  tenant!: string;

  @Field(() => String, { description: 'The name given to the API key when it was created.' })
  keyName!: string;

  @Field(() => [String], { description: 'Scopes the key holds: events:write, analytics:read, admin.' })
  scopes!: string[];
}
