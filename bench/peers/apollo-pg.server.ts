import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import pg from 'pg';

/**
 * bench:peers: Apollo Server 5 standalone and a pg pool answering the same "newest 20 events of
 * the tenant" list as the gateway's `events(first: 20)`, hand-written over one unpartitioned
 * table holding the same events (peers.bench.ts copies them once): one statement per request, no
 * auth, no limits, no logging.
 *
 *   node apollo-pg.server.js <port> <databaseUrl> <tenantId>
 */
const [port, databaseUrl, tenantId] = process.argv.slice(2) as [string, string, string];
const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
const server = new ApolloServer({
  typeDefs: `scalar JSON
    type Event { id: ID! type: String! userId: String timestamp: String! value: Float properties: JSON }
    type Query { events(first: Int = 20): [Event!]! }`,
  resolvers: {
    Query: {
      events: async (_root: unknown, args: { first: number }) =>
        (
          await pool.query<{ id: string; type: string; userId: string | null; ts: Date; value: number | null }>({
            name: 'newest_events',
            text: `SELECT id, type, user_id AS "userId", occurred_at AS ts, value, properties
                   FROM peer_events WHERE tenant_id = $1 ORDER BY occurred_at DESC, id DESC LIMIT $2`,
            values: [tenantId, Math.min(args.first, 100)],
          })
        ).rows.map((r) => ({ ...r, timestamp: r.ts.toISOString() })),
    },
  },
});
await startStandaloneServer(server, { listen: { port: Number(port), host: '127.0.0.1' } });
