import { createServer } from 'node:http';
import { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import express from 'express';

/**
 * The baseline of bench:http: Apollo Server 5 on Express 5 answering the same query shape with a
 * constant resolver, no auth, no logging, no metrics. What the gateway adds is measured against it.
 */
const port = Number(process.argv[2]);
const apollo = new ApolloServer({
  typeDefs: 'type Viewer { tenant: String! scopes: [String!]! } type Query { viewer: Viewer! }',
  resolvers: { Query: { viewer: () => ({ tenant: 'demo', scopes: ['admin'] }) } },
});
await apollo.start();
const app = express();
app.use('/graphql', express.json(), expressMiddleware(apollo));
createServer(app).listen(port, '127.0.0.1', () => console.log(`listening ${port}`));
