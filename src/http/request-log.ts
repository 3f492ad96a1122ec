import { isSpanContextValid, trace } from '@opentelemetry/api';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import { assignRequestTraceIds, type RequestTraceIds } from '../observability/request-trace-ids.js';

/** What one HTTP request's operations said about themselves (logging.plugin.ts fills it). */
export interface RequestLogRecord {
  readonly requestId: string;
  readonly traceIds?: RequestTraceIds;
  /** One entry per GraphQL operation the request carried (more than one when batched). */
  readonly operations: Record<string, unknown>[];
}

declare module 'fastify' {
  interface FastifyRequest {
    gatewayLog: RequestLogRecord;
  }
}

export interface RequestLogOptions {
  /** Paths that get a route label of their own in the metric; anything else is "unmatched". */
  readonly routes: readonly string[];
  /** Without the OpenTelemetry SDK, the trace ids come from traceparent (request-trace-ids.ts). */
  readonly tracingEnabled: boolean;
}

/** Probes and scrapes arrive every few seconds; logging them would drown real traffic. */
const QUIET = new Set(['/health', '/metrics']);

/**
 * One log line per HTTP request, written when the response has gone out, carrying the request id,
 * the trace ids and what its GraphQL operations were (name, type, outcome, duration, error
 * codes), and one observation of `http_request_duration_seconds`. No per-request child logger is
 * made: a resolver that logs gets one lazily (app/api.ts).
 */
export function registerRequestLog(
  app: FastifyInstance,
  deps: { logger: Logger; metrics: Metrics },
  options: RequestLogOptions,
): void {
  const known = new Set(options.routes);
  const { logger, metrics } = deps;
  app.decorateRequest('gatewayLog', null as unknown as RequestLogRecord);

  app.addHook('onRequest', (request, reply, done) => {
    request.gatewayLog = {
      requestId: request.id,
      traceIds: options.tracingEnabled ? traceIdsOf(request) : undefined,
      operations: [],
    };
    void reply.header('x-request-id', request.id);
    done();
  });

  app.addHook('onResponse', (request, reply, done) => {
    const path = pathOf(request.url);
    const status = reply.statusCode;
    const seconds = reply.elapsedTime / 1000;
    metrics.httpRequestDuration.observe(
      { method: request.method, route: known.has(path) ? path : 'unmatched', status_code: String(status) },
      seconds,
    );
    if (QUIET.has(path)) return done();
    const record = request.gatewayLog;
    const operations = record?.operations ?? [];
    const line: Record<string, unknown> = {
      reqId: request.id,
      ...record?.traceIds,
      req: {
        id: request.id,
        method: request.method,
        url: request.url,
        remoteAddress: request.socket?.remoteAddress,
        userAgent: request.headers['user-agent'],
      },
      res: { statusCode: status },
      responseTime: Math.round(reply.elapsedTime * 100) / 100,
    };
    if (operations.length === 1) line.operation = operations[0];
    else if (operations.length > 1) line.operations = operations;
    const level = status >= 500 ? 'error' : status >= 400 ? 'warn' : 'info';
    logger[level](line, 'request completed');
    done();
  });
}

/** The request span's ids when the SDK records one (onRequest runs inside it), else traceparent's. */
function traceIdsOf(request: FastifyRequest): RequestTraceIds | undefined {
  const active = trace.getActiveSpan()?.spanContext();
  if (active && isSpanContextValid(active)) return { trace_id: active.traceId, span_id: active.spanId };
  return assignRequestTraceIds(request.raw);
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
