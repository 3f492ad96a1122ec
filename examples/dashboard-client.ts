/**
 * A dashboard's client, with Apollo Client: queries over HTTP, the live windows over graphql-ws
 * (one link for each, split by operation type), both authenticated by the same API key.
 *
 *   API_KEY=agk_... node dist/examples/dashboard-client.js --url http://127.0.0.1:4000 --type checkout --window ONE_MINUTE
 *
 * Prints the tenant's event types, then one line per metricUpdated push.
 */
import { ApolloClient, ApolloLink, HttpLink, InMemoryCache } from '@apollo/client';
import { GraphQLWsLink } from '@apollo/client/link/subscriptions';
import { getMainDefinition } from '@apollo/client/utilities';
import { createClient } from 'graphql-ws';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import WebSocket from 'ws';
import {
  DashboardEventTypesDocument,
  DashboardMetricUpdatedDocument,
  type DashboardEventTypesQuery,
  type DashboardMetricUpdatedSubscription,
  type Window,
} from './generated/graphql.js';

export type MetricWindow = DashboardMetricUpdatedSubscription['metricUpdated'];

export interface DashboardClient {
  readonly apollo: ApolloClient;
  eventTypes(first?: number): Promise<DashboardEventTypesQuery>;
  /** Calls `onUpdate` with every push of the window (the current state first); returns a stop function. */
  watch(
    variables: { type: string | null; window: Window },
    onUpdate: (window: MetricWindow) => void,
    onError?: (err: unknown) => void,
  ): () => void;
  close(): Promise<void>;
}

export function createDashboardClient(options: { url: string; key: string }): DashboardClient {
  const authorization = `Bearer ${options.key}`;
  const sockets = createClient({
    url: `${options.url.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: { authorization },
    // A refused key (4401) or scope (4403) stays refused; anything else is worth a few retries.
    shouldRetry: (event) => ![4401, 4403].includes((event as { code?: number }).code ?? 0),
    retryAttempts: 5,
  });
  const link = ApolloLink.split(
    ({ query }) => {
      const main = getMainDefinition(query);
      return main.kind === 'OperationDefinition' && main.operation === 'subscription';
    },
    new GraphQLWsLink(sockets),
    new HttpLink({ uri: `${options.url}/graphql`, headers: { authorization } }),
  );
  const apollo = new ApolloClient({ link, cache: new InMemoryCache() });

  return {
    apollo,
    async eventTypes(first = 20) {
      const result = await apollo.query({
        query: DashboardEventTypesDocument,
        variables: { first },
        fetchPolicy: 'network-only',
      });
      if (result.error) throw result.error;
      return result.data!;
    },
    watch(variables, onUpdate, onError = () => undefined) {
      const subscription = apollo.subscribe({ query: DashboardMetricUpdatedDocument, variables }).subscribe({
        next: (result) => {
          if (result.error) onError(result.error);
          else if (result.data) onUpdate(result.data.metricUpdated);
        },
        error: onError,
      });
      return () => subscription.unsubscribe();
    },
    async close() {
      apollo.stop();
      await sockets.dispose();
    },
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'http://127.0.0.1:4000' },
      type: { type: 'string' },
      window: { type: 'string', default: 'ONE_MINUTE' },
      // Stop after this many milliseconds (0: run until interrupted).
      for: { type: 'string', default: '0' },
    },
  });
  const key = process.env.API_KEY;
  if (!key) throw new Error('set API_KEY to a key with the analytics:read scope');
  const client = createDashboardClient({ url: values.url!, key });
  const { eventTypes, freshness } = await client.eventTypes();
  console.table(eventTypes);
  console.table(freshness);
  const stop = client.watch(
    { type: values.type ?? null, window: values.window as Window },
    (w) => console.log(JSON.stringify(w)),
    (err) => {
      console.error(err instanceof Error ? err.message : err);
      process.exitCode = 1;
    },
  );
  const finish = () => {
    stop();
    void client.close();
  };
  process.once('SIGINT', finish);
  if (Number(values.for) > 0) setTimeout(finish, Number(values.for));
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err);
    process.exitCode = 1;
  });
}
