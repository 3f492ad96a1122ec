import type { ApolloServerPlugin } from '@apollo/server';
import { ApolloServerErrorCode } from '@apollo/server/errors';
import {
  GraphQLError,
  getOperationAST,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { RequestContext } from '../auth/request-context.js';
import { BadUserInputError } from '../graphql/errors.js';
import { UNSTORABLE_TEXT, findUnstorableText } from '../graphql/unstorable-text.js';

export interface OperationGuardPluginOptions {
  /**
   * Input types whose text is validated where they are used, not refused here for the whole
   * request. Default `['EventInput']`: ingest/event-validation.ts reports a bad event at its index
   * in recordEvents' errors and keeps the rest of the batch.
   */
  readonly skipInputTypes?: readonly string[];
}

/**
 * Refusals of what a client sends that nothing further down should have to handle, answered
 * before any other plugin's `didResolveOperation` (this one is listed first) and before any
 * resolver runs:
 * - an `operationName` that names no operation of the document, or a document of several
 *   operations without one: 400 GRAPHQL_VALIDATION_FAILED (Apollo would run the other plugins
 *   with no operation at all);
 * - a subscription over HTTP: 400 BAD_REQUEST, since subscriptions are served by graphql-ws
 *   (realtime/websocket.server.ts) and HTTP has no way to stream them;
 * - an argument holding text Postgres cannot store (graphql/unstorable-text.ts): BAD_USER_INPUT
 *   naming the argument, instead of the statement failing as an internal error later.
 */
/** Input types validated per event where they are used (ingest/event-validation.ts). */
export const PER_EVENT_INPUT_TYPES: readonly string[] = ['EventInput'];
const PER_EVENT_SKIP: ReadonlySet<string> = new Set(PER_EVENT_INPUT_TYPES);

/** BAD_USER_INPUT naming the first argument that holds text Postgres cannot store, or undefined. */
export function unstorableTextError(
  schema: GraphQLSchema,
  document: DocumentNode,
  operation: OperationDefinitionNode,
  variables: Readonly<Record<string, unknown>> | undefined,
  skip: ReadonlySet<string> = PER_EVENT_SKIP,
): BadUserInputError | undefined {
  const unstorable = findUnstorableText(schema, document, operation, variables, skip);
  return unstorable
    ? new BadUserInputError(`Argument "${unstorable.path}" holds ${UNSTORABLE_TEXT}`, { argument: unstorable.path })
    : undefined;
}

export function operationGuardPlugin(options: OperationGuardPluginOptions = {}): ApolloServerPlugin<RequestContext> {
  const skip = new Set(options.skipInputTypes ?? PER_EVENT_INPUT_TYPES);
  return {
    async requestDidStart({ schema }) {
      return {
        async didResolveOperation({ document, operation, request }) {
          if (!operation) {
            const name = request.operationName;
            throw new GraphQLError(
              name
                ? `Unknown operation named "${String(name)
                    .slice(0, 100)
                    .replace(/[^\x20-\x7e]/g, '?')}": the document has no operation of that name`
                : getOperationAST(document) === null
                  ? 'The document holds several operations: say which one to run with operationName'
                  : 'The document holds no operation to run',
              { extensions: { code: ApolloServerErrorCode.GRAPHQL_VALIDATION_FAILED, http: { status: 400 } } },
            );
          }
          if (operation.operation === 'subscription') {
            throw new GraphQLError(
              'Subscriptions are served over WebSocket (graphql-ws) at /graphql, not over HTTP POST or GET',
              { extensions: { code: ApolloServerErrorCode.BAD_REQUEST, http: { status: 400 } } },
            );
          }
          const unstorable = unstorableTextError(schema, document, operation, request.variables, skip);
          if (unstorable) throw unstorable;
        },
      };
    },
  };
}
