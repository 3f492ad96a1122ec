import { ArgsType, Field, ID, InputType } from 'type-graphql';
import { DateTimeScalar } from '../graphql/scalars.js';
import { PageArgs } from '../analytics/page.args.js';

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
export class AuditLogArgs extends PageArgs {
  @Field(() => AuditFilter, { nullable: true })
  filter?: AuditFilter | null;
}
