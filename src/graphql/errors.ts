import { GraphQLError } from 'graphql';
import { ErrorCode } from './error-codes.js';

/**
 * An error that is safe to show a client as it is. Anything else thrown in a resolver is masked
 * (see format-error.ts). `http.status` sets the response status when the error ends the whole
 * request (authentication in the context function); Apollo strips it from the response body.
 */
export abstract class GatewayError extends GraphQLError {
  abstract readonly code: ErrorCode;

  protected constructor(message: string, code: ErrorCode, status: number, extensions: Record<string, unknown> = {}) {
    super(message, { extensions: { ...extensions, code, http: { status } } });
    this.name = new.target.name;
  }
}

export class UnauthenticatedError extends GatewayError {
  readonly code = ErrorCode.UNAUTHENTICATED;
  constructor(message = 'A valid API key is required: send "Authorization: Bearer <key>"') {
    super(message, ErrorCode.UNAUTHENTICATED, 401);
  }
}

export class ForbiddenError extends GatewayError {
  readonly code = ErrorCode.FORBIDDEN;
  constructor(message: string) {
    super(message, ErrorCode.FORBIDDEN, 403);
  }
}

export class BadUserInputError extends GatewayError {
  readonly code = ErrorCode.BAD_USER_INPUT;
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(message, ErrorCode.BAD_USER_INPUT, 400, extensions);
  }
}

export class PayloadTooLargeError extends GatewayError {
  readonly code = ErrorCode.PAYLOAD_TOO_LARGE;
  constructor(message: string) {
    super(message, ErrorCode.PAYLOAD_TOO_LARGE, 413);
  }
}

export class ServiceUnavailableError extends GatewayError {
  readonly code = ErrorCode.SERVICE_UNAVAILABLE;
  constructor(message: string) {
    super(message, ErrorCode.SERVICE_UNAVAILABLE, 503);
  }
}

/**
 * A request over a size limit (cost, depth, aliases, directives, batch): refused before anything
 * runs, and refused again if retried as it is. `limit` says which limit; `cost` (for cost limits)
 * carries the requested cost and the key's budget, as Shopify and GitHub do.
 */
export class CostLimitExceededError extends GatewayError {
  readonly code = ErrorCode.COST_LIMIT_EXCEEDED;
  constructor(message: string, extensions: { limit: string } & Record<string, unknown>) {
    super(message, ErrorCode.COST_LIMIT_EXCEEDED, 400, extensions);
  }
}

/** The key's budget cannot pay for the operation now; `retryAfterMs` says when it will. */
export class RateLimitedError extends GatewayError {
  readonly code = ErrorCode.RATE_LIMITED;
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(message, ErrorCode.RATE_LIMITED, 429, extensions);
  }
}
