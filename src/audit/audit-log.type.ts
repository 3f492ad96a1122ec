import { Field, ID, ObjectType } from 'type-graphql';
import { PageInfo } from '../analytics/page-info.type.js';
import { DateTimeScalar, JSONScalar } from '../graphql/scalars.js';

// simpleResolvers: plain properties, read directly by graphql-js (why: analytics/stats.type.ts).
@ObjectType('AuditEntry', {
  simpleResolvers: true,
  description: 'One audit row: who did what, with which outcome. Rows are never changed or deleted.',
})
export class AuditEntryType {
  @Field(() => ID)
  id!: string;

  @Field(() => DateTimeScalar)
  occurredAt!: Date;

  @Field(() => String, {
    description: 'The root field (recordEvents, createApiKey…), authenticate, subscribe or request.',
  })
  action!: string;

  @Field(() => String, { nullable: true, description: "The GraphQL operation's name, as the client sent it." })
  operationName!: string | null;

  @Field(() => String, { description: 'success, partial, error, denied, rejected or unauthenticated.' })
  result!: string;

  @Field(() => ID, { nullable: true, description: 'The API key that made the call, when it was verified.' })
  keyId!: string | null;

  @Field(() => String, { nullable: true, description: "The key's public prefix (its first 12 characters)." })
  keyPrefix!: string | null;

  @Field(() => String, { nullable: true })
  ip!: string | null;

  @Field(() => String, { nullable: true })
  userAgent!: string | null;

  @Field(() => String, { nullable: true, description: 'OpenTelemetry trace id, when tracing is on.' })
  traceId!: string | null;

  @Field(() => String, { nullable: true, description: 'The x-request-id of the call, also in the logs.' })
  requestId!: string | null;

  @Field(() => JSONScalar, {
    description: 'What the action did (counts, names, ids), with personal data masked as in the logs.',
  })
  details!: Record<string, unknown>;
}

@ObjectType('AuditEdge', { simpleResolvers: true })
export class AuditEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => AuditEntryType)
  node!: AuditEntryType;
}

@ObjectType('AuditConnection', {
  simpleResolvers: true,
  description: "A page of the tenant's audit rows, newest first.",
})
export class AuditConnection {
  @Field(() => [AuditEdge])
  edges!: AuditEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
