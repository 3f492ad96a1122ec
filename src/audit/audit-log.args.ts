import { ArgsType, Field, ID, InputType, Int } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';

@InputType('AuditFilter', { description: 'Every field optional; given ones must all match.' })
export class AuditFilter {
  @Field(() => String, {
    nullable: true,
    description:
      'A root field (recordEvents, createApiKey, revokeApiKey, replayDeadLetters, auditLog…), authenticate, subscribe or request.',
  })
  action?: string | null;

  @Field(() => String, {
    nullable: true,
    description: 'success, partial, error, denied, rejected or unauthenticated.',
  })
  result?: string | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Rows at or after this time.' })
  from?: Date | null;

  @Field(() => DateTimeScalar, { nullable: true, description: 'Rows before this time.' })
  to?: Date | null;

  @Field(() => ID, { nullable: true, description: 'Rows of this API key.' })
  keyId?: string | null;
}

@ArgsType()
export class AuditLogArgs {
  @Field(() => AuditFilter, { nullable: true })
  filter?: AuditFilter | null;

  @Field(() => Int, { nullable: true, description: 'Page size, 1..100; default 20.' })
  first?: number | null;

  @Field(() => String, { nullable: true, description: 'The endCursor of the previous page.' })
  after?: string | null;
}
