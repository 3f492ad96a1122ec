import { readFileSync } from 'node:fs';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { buildSchema, type GraphQLFieldResolver, type GraphQLObjectType } from 'graphql';
import pg from 'pg';
import { EventReadRepository, type EventRow } from '../src/analytics/event-read.repository.js';
import { UserOrder } from '../src/analytics/user-order.enum.js';
import { UserRepository, type UserRow } from '../src/analytics/user.repository.js';
import { SCHEMA_FILE } from '../src/app/schema.js';

/**
 * Baseline (b) of bench:query: the same schema and the same repositories as the gateway, but the
 * resolvers every tutorial starts with — each relation fetched per parent (one SQL per user for
 * its events, one per event for its user), no DataLoader, no cache, no auth. Only the fields the
 * relation queries of the benchmark use are wired.
 *
 *   node naive-gateway.server.js <port> <databaseUrl> <tenantId>
 */
const [port, databaseUrl, tenantId] = process.argv.slice(2) as [string, string, string];
// Two pools as in the gateway: event reads that gain from generic plans get them (src/db/pool.ts).
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10, options: '-c timezone=UTC' });
const eventReadPool = new pg.Pool({
  connectionString: databaseUrl,
  max: 10,
  options: '-c timezone=UTC -c plan_cache_mode=force_generic_plan',
});
const events = new EventReadRepository(pool, eventReadPool);
const users = new UserRepository(pool);

const schema = buildSchema(readFileSync(SCHEMA_FILE, 'utf8'));
const wire = (type: string, field: string, resolve: GraphQLFieldResolver<unknown, unknown>) => {
  (schema.getType(type) as GraphQLObjectType).getFields()[field]!.resolve = resolve;
};
const oneUser = async (id: string) => (await users.byIds(tenantId, [id]))[0] ?? null;

wire('Query', 'users', async (_root, args: { first?: number }) => {
  const rows = await users.page(tenantId, { order: UserOrder.LAST_SEEN, limit: args.first ?? 20 });
  return { edges: rows.map((node) => ({ cursor: '', node })), pageInfo: { hasNextPage: false, endCursor: null } };
});
wire('Query', 'user', (_root, args: { id: string }) => oneUser(args.id));
wire('AnalyticsUser', 'events', async (user, args: { first?: number; type?: string }) => {
  const { id, firstSeen, lastSeen } = user as UserRow;
  const seen = { first: firstSeen, last: lastSeen };
  return (await events.latestByUsers(tenantId, [{ id, seen }], args.first ?? 10, args.type ?? null)).get(id) ?? [];
});
wire('Event', 'user', (event) => ((event as EventRow).userId ? oneUser((event as EventRow).userId!) : null));

const apollo = new ApolloServer({ schema });
// Standalone serves every path; the benchmark posts to /graphql.
await startStandaloneServer(apollo, { listen: { port: Number(port), host: '127.0.0.1' } });
console.log(`listening ${port}`);
