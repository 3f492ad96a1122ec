import { Field, ID, Int, ObjectType } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';

@ObjectType('ApiKey', {
  simpleResolvers: true,
  description: 'An API key of the tenant. The key itself is never shown again after creation.',
})
export class ApiKeyType {
  @Field(() => ID)
  id!: string;

  @Field(() => String)
  name!: string;

  @Field(() => String, { description: 'The first characters of the key, to recognise it in lists and logs.' })
  prefix!: string;

  @Field(() => [String])
  scopes!: string[];

  @Field(() => DateTimeScalar)
  createdAt!: Date;

  @Field(() => DateTimeScalar, { nullable: true })
  revokedAt!: Date | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Recorded with a resolution of about a minute.' })
  lastUsedAt!: Date | null;

  @Field(() => Int, {
    nullable: true,
    description: "The key's own largest cost per operation; null: the gateway's default (COST_MAX_PER_OPERATION).",
  })
  maxOperationCost!: number | null;
}

@ObjectType('CreatedApiKey', { simpleResolvers: true })
export class CreatedApiKeyType {
  @Field(() => ApiKeyType)
  apiKey!: ApiKeyType;

  @Field(() => String, { description: 'The key to send as "Authorization: Bearer <key>". Shown this once only.' })
  key!: string;
}
