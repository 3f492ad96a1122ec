import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

/** bench:peers: Apollo Server 5 standalone with a constant resolver, the framework's ceiling. */
const port = Number(process.argv[2]);
const server = new ApolloServer({
  typeDefs: 'type Query { hello: String! }',
  resolvers: { Query: { hello: () => 'world' } },
});
await startStandaloneServer(server, { listen: { port, host: '127.0.0.1' } });
