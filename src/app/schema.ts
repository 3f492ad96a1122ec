import 'reflect-metadata';
import { GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { fileURLToPath } from 'node:url';
import { buildSchema, type PubSub } from 'type-graphql';
import { EventResolver } from '../analytics/event.resolver.js';
import { StatsResolver } from '../analytics/stats.resolver.js';
import { UserConnectionResolver, UserResolver } from '../analytics/user.resolver.js';
import { ApiKeyResolver } from '../auth/api-key.resolver.js';
import { AuditLogResolver } from '../audit/audit-log.resolver.js';
import { authChecker } from '../auth/auth-checker.js';
import { ViewerResolver } from '../auth/viewer.resolver.js';
import { IngestResolver } from '../ingest/ingest.resolver.js';
import { RealtimeResolver } from '../realtime/realtime.resolver.js';
import { DateTimeScalar, JSONScalar, SafeIntScalar } from '../graphql/scalars.js';

/** Every resolver class of the public API; adding a capability means adding it here. */
const RESOLVERS = [
  ViewerResolver,
  ApiKeyResolver,
  IngestResolver,
  EventResolver,
  UserResolver,
  UserConnectionResolver,
  StatsResolver,
  RealtimeResolver,
  AuditLogResolver,
] as const;

/**
 * type-graphql insists on a PubSub once there are subscriptions, though ours bring their own
 * iterators (realtime.resolver.ts). The gateway passes the live feed's; printing the SDL needs none.
 */
const NO_PUBSUB: PubSub = {
  publish: () => {
    throw new Error('this schema was built without a pub/sub: it can print the SDL, not serve subscriptions');
  },
  subscribe: () => {
    throw new Error('this schema was built without a pub/sub: it can print the SDL, not serve subscriptions');
  },
};

/**
 * Builds the executable schema from the type-graphql classes. The contract's scalars are always
 * part of it, referenced by a field or not yet, so clients can generate code against all of them.
 */
export async function buildGatewaySchema(pubSub: PubSub = NO_PUBSUB): Promise<GraphQLSchema> {
  const built = await buildSchema({
    resolvers: RESOLVERS,
    pubSub,
    authChecker,
    authMode: 'error',
    validate: false,
    scalarsMap: [{ type: Date, scalar: DateTimeScalar }],
  });
  const config = built.toConfig();
  const present = new Set(config.types.map((t) => t.name));
  const missing = [DateTimeScalar, JSONScalar, SafeIntScalar].filter((s) => !present.has(s.name));
  return new GraphQLSchema({ ...config, types: [...config.types, ...missing] });
}

/** schema/schema.graphql at the package root (this module runs from dist/src/app). */
export const SCHEMA_FILE = fileURLToPath(new URL('../../../schema/schema.graphql', import.meta.url));

/** The SDL checked in as schema/schema.graphql: sorted, so only real changes show as drift. */
export function printGatewaySchema(schema: GraphQLSchema): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
