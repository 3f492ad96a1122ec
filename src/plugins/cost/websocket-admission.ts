import { GraphQLError, getOperationAST, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import type { Viewer } from '../../auth/viewer.js';
import { unstorableTextError } from '../operation-guard.plugin.js';
import type { CostLimits } from './cost-limits.js';

/** What graphql-ws's onSubscribe may answer: errors (sent as an `error` message), or what to execute. */
export type WebSocketAdmission =
  | { readonly errors: readonly GraphQLError[] }
  | {
      readonly args: {
        schema: GraphQLSchema;
        document: DocumentNode;
        operationName?: string | null;
        variableValues?: Record<string, unknown> | null;
      };
    };

/**
 * The WebSocket path of the HTTP pipeline's limits: parse with the token limit, validate, then the
 * same depth, alias, directive, cost and budget checks as over HTTP (cost-limits.ts). A
 * subscription is charged its requested cost when it starts; nothing is refunded, since it holds
 * its channel for as long as it runs. Refusals carry the same `extensions.code` as over HTTP
 * (GRAPHQL_PARSE_FAILED past the token limit, COST_LIMIT_EXCEEDED, RATE_LIMITED).
 */
export async function admitWebSocketOperation(
  deps: { schema: GraphQLSchema; limits: CostLimits; maxTokens: number },
  viewer: Viewer,
  payload: { query: string; operationName?: string | null; variables?: Record<string, unknown> | null },
): Promise<WebSocketAdmission> {
  let document: DocumentNode;
  try {
    document = parse(payload.query, { maxTokens: deps.maxTokens });
  } catch (err) {
    const error = err instanceof GraphQLError ? err : new GraphQLError(String(err));
    if (/contains more th\w+ \d+ tokens/.test(error.message)) deps.limits.countTokenRejection();
    return { errors: [new GraphQLError(error.message, { extensions: { code: 'GRAPHQL_PARSE_FAILED' } })] };
  }
  const invalid = validate(deps.schema, document);
  // The code Apollo gives them over HTTP; without one they would be masked as internal errors.
  if (invalid.length > 0) {
    return {
      errors: invalid.map(
        (e) =>
          new GraphQLError(e.message, {
            nodes: e.nodes,
            extensions: { ...e.extensions, code: 'GRAPHQL_VALIDATION_FAILED' },
          }),
      ),
    };
  }
  const args = {
    schema: deps.schema,
    document,
    operationName: payload.operationName ?? null,
    variableValues: payload.variables ?? null,
  };
  const operation = getOperationAST(document, payload.operationName);
  // No single operation to run: graphql-ws answers that itself.
  if (!operation) return { args };
  // As operation-guard.plugin.ts does over HTTP.
  const unstorable = unstorableTextError(deps.schema, document, operation, payload.variables ?? undefined);
  if (unstorable) {
    const { http: _http, ...extensions } = unstorable.extensions;
    return { errors: [new GraphQLError(unstorable.message, { extensions })] };
  }
  const admission = await deps.limits.admit({
    viewer,
    document,
    operation,
    variables: payload.variables ?? undefined,
  });
  if (admission.error) {
    // `http` (the HTTP status) means nothing on a socket; the rest of the extensions is the contract.
    const { http: _http, ...extensions } = admission.error.extensions;
    return {
      errors: [
        new GraphQLError(admission.error.message, {
          extensions: { ...extensions, cost: deps.limits.report(admission, 0) },
        }),
      ],
    };
  }
  return { args };
}
