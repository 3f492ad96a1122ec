import type { GraphQLFormattedError } from 'graphql';
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
const APOLLO_UNCODED_REQUEST_ERRORS = new Map([['provided sha does not match query', 'BAD_REQUEST']]);

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
  const requestCode = !formatted.path && !(error as { originalError?: unknown }).originalError
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
