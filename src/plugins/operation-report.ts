import { performance } from 'node:perf_hooks';
import type { GraphQLRequestContext, GraphQLRequestListener } from '@apollo/server';
import type { RequestContext } from '../auth/request-context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Logger } from '../observability/logger.js';

export type OperationType = 'query' | 'mutation' | 'subscription' | 'unknown';

/** success: executed without errors; error: executed, with errors; rejected: refused before execution. */
export type OperationOutcome = 'success' | 'error' | 'rejected';

/** What the tracing and logging plugins learn about one finished GraphQL operation. */
export interface OperationReport {
  /** From the document once the operation is resolved; before that, as the client sent it; null when unnamed. */
  readonly name: string | null;
  /** False while the name is only the client's claim (parse or validation failed). */
  readonly validated: boolean;
  readonly type: OperationType;
  readonly outcome: OperationOutcome;
  readonly durationMs: number;
  /** The distinct `extensions.code` values of the errors the client got, in order. */
  readonly errorCodes: readonly string[];
}

/**
 * Something told about every finished operation. Apollo Server plugins hear about HTTP operations
 * through their hooks; WebSocket subscriptions bypass those, so the subscription server calls
 * this itself when a subscription has been set up or refused.
 */
export interface OperationObserver {
  operationFinished(report: OperationReport, logger: Logger): void;
}

/**
 * The distinct codes, in order. Over HTTP every formatted error has one (a masked error is
 * INTERNAL_SERVER_ERROR); graphql-ws leaves graphql-js's own errors without, so the caller names
 * what such an error is: internal during execution, a validation failure before it.
 */
export function errorCodesOf(
  errors: ReadonlyArray<{ extensions?: { code?: unknown } }> | undefined,
  withoutCode: string = ErrorCode.INTERNAL_SERVER_ERROR,
): string[] {
  if (!errors?.length) return [];
  const codes = new Set<string>();
  for (const error of errors) {
    const code = error.extensions?.code;
    codes.add(typeof code === 'string' ? code : withoutCode);
  }
  return [...codes];
}

interface RequestState {
  readonly started: number;
  executed: boolean;
  report?: OperationReport;
}

/** Keyed by the request: the tracing and logging plugins each listen, and share one report. */
const requests = new WeakMap<object, RequestState>();

/**
 * A request listener that hands over the report of an HTTP operation once the response is ready.
 * Shared by the plugins so "rejected" and the duration mean the same in the metric, the span and
 * the log line; the report is built once per request, whichever plugin asks first.
 */
export function reportingListener(
  requestContext: GraphQLRequestContext<RequestContext>,
  finished: (report: OperationReport, requestContext: GraphQLRequestContext<RequestContext>) => void,
): GraphQLRequestListener<RequestContext> {
  let state = requests.get(requestContext.request);
  if (!state) requests.set(requestContext.request, (state = { started: performance.now(), executed: false }));
  const shared = state;
  return {
    async executionDidStart() {
      shared.executed = true;
    },
    async willSendResponse(rc) {
      shared.report ??= reportOf(rc, requestContext, shared);
      finished(shared.report, rc);
    },
  };
}

function reportOf(
  rc: GraphQLRequestContext<RequestContext>,
  requestContext: GraphQLRequestContext<RequestContext>,
  state: RequestState,
): OperationReport {
  const body = rc.response.body!;
  // Formatted errors: the codes the client received (masked ones as INTERNAL_SERVER_ERROR).
  const errors = body.kind === 'single' ? body.singleResult.errors : body.initialResult.errors;
  const operation = rc.operation;
  return {
    name: operation ? (rc.operationName ?? null) : (requestContext.request.operationName ?? null),
    validated: operation !== undefined,
    type: operation?.operation ?? 'unknown',
    outcome: !state.executed ? 'rejected' : errors?.length ? 'error' : 'success',
    durationMs: performance.now() - state.started,
    errorCodes: errorCodesOf(errors),
  };
}
