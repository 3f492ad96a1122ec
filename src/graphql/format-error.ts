import { Kind, type GraphQLError, type GraphQLFormattedError } from 'graphql';
import { ErrorCode } from './error-codes.js';
import { GatewayError } from './errors.js';

/**
 * Errors Apollo Server raises itself about a malformed request: safe, and what GraphQL clients
 * expect. Everything else that is not a GatewayError is a bug or an infrastructure failure.
 */
const APOLLO_REQUEST_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/**
 * Request errors Apollo Server raises without a code (so they would be masked), by message, with
 * the code they deserve: the client's own mistake, answered 400 already.
 */
const APOLLO_UNCODED_REQUEST_ERRORS = new Map([
  ['provided sha does not match query', 'BAD_REQUEST'],
  // graphql-js stops coercing variables after 50 errors with this one, which has no variable node.
  ['Too many errors processing variables, error limit reached. Execution aborted.', 'BAD_USER_INPUT'],
]);

/** True when the error was made safe to show on purpose (anywhere along its cause chain). */
function isSafeError(error: unknown): boolean {
  for (let e = error, depth = 0; e && depth < 5; depth++) {
    if (e instanceof GatewayError) return true;
    e = (e as { originalError?: unknown }).originalError;
  }
  return false;
}

/** Whether a client may see this error as it is; every other error is masked and logged. */
export function isExposed(shape: Pick<GraphQLFormattedError, 'extensions' | 'path'>, error: unknown): boolean {
  if (isSafeError(error)) return true;
  const code = shape.extensions?.code;
  // Request-level errors (parse, validation, variable coercion) carry no path; a resolver's error
  // always does, so a resolver cannot smuggle a raw message out by borrowing one of these codes.
  return typeof code === 'string' && APOLLO_REQUEST_CODES.has(code) && !shape.path;
}

/**
 * Apollo Server's formatError: lets safe errors through and replaces every other message with a
 * generic one. The original is logged with the request id by error-logging.plugin.ts, which sees
 * the same errors before they are formatted.
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  if (isExposed(formatted, error)) return formatted;
  const requestCode =
    !formatted.path && !(error as { originalError?: unknown }).originalError
      ? APOLLO_UNCODED_REQUEST_ERRORS.get(formatted.message)
      : undefined;
  if (requestCode) return { message: formatted.message, extensions: { code: requestCode } };
  return {
    message: 'Internal server error',
    ...(formatted.locations ? { locations: formatted.locations } : {}),
    ...(formatted.path ? { path: formatted.path } : {}),
    extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR },
  };
}

/**
 * The errors of one result outside Apollo Server (graphql-ws executes on its own): given the codes
 * Apollo would give them, then formatted as over HTTP, so a subscription or a query over WebSocket
 * is masked the same way. A variable that does not fit its type is BAD_USER_INPUT, as Apollo's
 * request pipeline makes it. `onMasked` sees each original that was masked, to log it.
 */
export function formatResultErrors(
  errors: readonly GraphQLError[],
  onMasked?: (error: GraphQLError) => void,
  options: {
    /**
     * The errors are refusals the caller made itself before execution (the WebSocket admission in
     * plugins/cost/websocket-admission.ts copies its GatewayErrors into plain GraphQLErrors): a
     * contract code on an error without a path is kept. Default false.
     */
    readonly trustRequestCodes?: boolean;
  } = {},
): GraphQLFormattedError[] {
  const contractCodes = new Set<unknown>(Object.values(ErrorCode).filter((c) => c !== ErrorCode.INTERNAL_SERVER_ERROR));
  return errors.map((error) => {
    const shape = error.toJSON();
    if (options.trustRequestCodes && !shape.path && contractCodes.has(shape.extensions?.code)) {
      // `http` sets a status over HTTP (errors.ts); there is none on a socket.
      const { http: _http, ...extensions } = shape.extensions ?? {};
      return { ...shape, extensions };
    }
    const isVariableError =
      shape.extensions?.code === undefined &&
      error.nodes?.length === 1 &&
      error.nodes[0]!.kind === Kind.VARIABLE_DEFINITION;
    const coded = isVariableError ? { ...shape, extensions: { ...shape.extensions, code: 'BAD_USER_INPUT' } } : shape;
    const formatted = formatError(coded, error);
    if (formatted.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR) onMasked?.(error);
    return formatted;
  });
}
