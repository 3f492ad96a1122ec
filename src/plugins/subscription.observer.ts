import { performance } from 'node:perf_hooks';
import { ROOT_CONTEXT, SpanKind, context, trace, type Span } from '@opentelemetry/api';
import { suppressTracing } from '@opentelemetry/core';
import { getOperationAST, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { RequestContext } from '../auth/request-context.js';
import type { Logger } from '../observability/logger.js';
import { errorCodesOf, type OperationObserver, type OperationReport } from './operation-report.js';

type Run<T> = (args: ExecutionArgs) => T;

/**
 * The WebSocket path of the tracing and logging plugins: graphql-ws runs operations outside
 * Apollo Server, so the subscription server calls these hooks at the matching points.
 *
 * Each operation gets one span, from the start of its execution (for a subscription: setting up
 * its source stream, Redis subscribe included) until graphql-ws has its result, with pg and Redis
 * spans under it, and one report to the observers (operation metric, log line) written inside
 * that span. Refusals before execution (validation, limits in onSubscribe) are reported as
 * rejected. The messages pushed afterwards are not traced: every connection's frames run with
 * tracing suppressed (`untraced`), else each push of a live window would start a trace of its own.
 */
export function createSubscriptionObserver(observers: readonly OperationObserver[], logger: Logger) {
  const tracer = trace.getTracer('analytics-gateway');
  const startedAt = new WeakMap<object, Map<string, number>>();
  const spans = new WeakMap<ExecutionArgs, Span>();
  const untracedContext = suppressTracing(ROOT_CONTEXT);

  const report = (r: OperationReport, log: Logger) => {
    for (const observer of observers) observer.operationFinished(r, log);
  };
  const take = (extra: object, id: string): number | undefined => {
    const started = startedAt.get(extra)?.get(id);
    startedAt.get(extra)?.delete(id);
    return started;
  };

  return {
    /** For each new socket, before graphql-ws adds its listeners. */
    untraced<T extends NodeJS.EventEmitter>(socket: T): T {
      return context.bind(untracedContext, socket);
    },

    /** First thing in onSubscribe: the operation's clock starts. */
    subscribing(extra: object, id: string): void {
      let started = startedAt.get(extra);
      if (!started) startedAt.set(extra, (started = new Map()));
      started.set(id, performance.now());
    },

    /** Wraps graphql-ws's execute and subscribe: the operation span, active while it runs. */
    run<T>(args: ExecutionArgs, run: Run<T>): T {
      const operation = getOperationAST(args.document, args.operationName);
      const type = operation?.operation ?? 'unknown';
      const name = operation?.name?.value;
      const span = tracer.startSpan(
        name ? `${type} ${name}` : type,
        {
          kind: SpanKind.SERVER,
          attributes: {
            'graphql.operation.type': type,
            'network.protocol.name': 'websocket',
            ...(name ? { 'graphql.operation.name': name } : {}),
          },
        },
        ROOT_CONTEXT,
      );
      spans.set(args, span);
      try {
        return context.with(trace.setSpan(ROOT_CONTEXT, span), () => run(args));
      } catch (err) {
        // graphql-ws closes the socket; onOperation never comes to end the span.
        span.recordException(err as Error);
        span.end();
        throw err;
      }
    },

    /** onOperation: the execution result or the source stream is there. */
    operated(extra: object, id: string, args: ExecutionArgs, result: unknown): void {
      const started = take(extra, id) ?? performance.now();
      const span = spans.get(args);
      // graphql-ws awaits the result before onOperation: a source stream, or one ExecutionResult.
      const errors =
        typeof result === 'object' && result !== null && !(Symbol.asyncIterator in result)
          ? (result as ExecutionResult).errors
          : undefined;
      const operation = getOperationAST(args.document, args.operationName);
      const r: OperationReport = {
        name: operation?.name?.value ?? null,
        validated: true,
        type: operation?.operation ?? 'unknown',
        outcome: errors?.length ? 'error' : 'success',
        durationMs: performance.now() - started,
        errorCodes: errorCodesOf(errors),
      };
      const log = (args.contextValue as RequestContext | undefined)?.logger ?? logger;
      if (!span) return report(r, log);
      context.with(trace.setSpan(ROOT_CONTEXT, span), () => report(r, log));
      span.setAttribute('graphql.operation.outcome', r.outcome);
      if (r.errorCodes.length) span.setAttribute('graphql.error.codes', [...r.errorCodes]);
      span.end();
    },

    /** onError: errors before onOperation are a refusal; later ones belong to a running subscription. */
    refused(
      extra: object,
      id: string,
      payload: { operationName?: string | null },
      errors: ReadonlyArray<{ extensions?: { code?: unknown } }>,
    ): void {
      const started = take(extra, id);
      if (started === undefined) return;
      report(
        {
          name: payload.operationName ?? null,
          validated: false,
          type: 'unknown',
          outcome: 'rejected',
          durationMs: performance.now() - started,
          // graphql-ws's own refusals before execution: the document did not validate.
          errorCodes: errorCodesOf(errors, 'GRAPHQL_VALIDATION_FAILED'),
        },
        logger,
      );
    },

    /** onComplete: a subscription stopped by the client before it was set up needs no report. */
    forget(extra: object, id: string): void {
      take(extra, id);
    },
  };
}
