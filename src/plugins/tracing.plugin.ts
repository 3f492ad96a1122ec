import { performance } from 'node:perf_hooks';
import type { ApolloServerPlugin } from '@apollo/server';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { ATTR_HTTP_ROUTE } from '@opentelemetry/semantic-conventions';
import { isObjectType, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql';
import type { RequestContext } from '../auth/request-context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Metrics } from '../observability/metrics.js';
import { OperationNameLabels } from './operation-name.labels.js';
import { reportingListener, type OperationObserver, type OperationReport } from './operation-report.js';

export interface TracingPluginOptions {
  /** Where the two histograms live. */
  readonly metrics: Pick<Metrics, 'graphqlResolverDuration' | 'graphqlOperationDuration'>;
  /** Distinct operation names kept as labels; later ones are counted as `other`. Default 100. */
  readonly maxOperationNames?: number;
  /** Time resolvers into graphql_resolver_duration_seconds. Default true. */
  readonly resolverMetrics?: boolean;
}

/** Codes that say the gateway failed, not the caller: they mark the request span as an error. */
const SERVER_FAULTS = new Set<string>([ErrorCode.INTERNAL_SERVER_ERROR, ErrorCode.SERVICE_UNAVAILABLE]);

type Resolver = GraphQLFieldResolver<unknown, unknown>;
type Observe = (seconds: number) => void;

/**
 * Timing of operations and resolvers, and the GraphQL facts on the request's span.
 *
 * Spans themselves come from OpenTelemetry's instrumentations (observability/telemetry.ts): the
 * HTTP server span, graphql's parse/validate/execute spans, one span per non-trivial resolver,
 * pg and Redis spans under them. This plugin names the request span after its route and adds the
 * operation's name, type, outcome and error codes to it.
 *
 * Resolver timing does not use Apollo's willResolveField, which would wrap every field of every
 * list item (a plain `type` of 100 events included) for every request. Instead, when the server
 * starts, the resolver functions of the schema are wrapped once: only fields with a resolver of
 * their own (query and mutation fields, field resolvers) have one, since plain fields are read by
 * graphql-js's default resolver (object types are marked simpleResolvers). Labels are the schema
 * coordinates, a set bounded by the schema, and each label's series is bound once, up front. The
 * wrapping is independent of OpenTelemetry, so the metric works with TRACING_ENABLED=false.
 */
export function tracingPlugin(options: TracingPluginOptions): ApolloServerPlugin<RequestContext> & OperationObserver {
  const { metrics } = options;
  const names = new OperationNameLabels(options.maxOperationNames ?? 100);
  const observe = (report: OperationReport) =>
    metrics.graphqlOperationDuration.observe(
      {
        operation_name: names.label(report.name, report.validated),
        operation_type: report.type,
        outcome: report.outcome,
      },
      report.durationMs / 1000,
    );

  return {
    async serverWillStart({ schema }) {
      if (options.resolverMetrics ?? true) timeResolvers(schema, metrics.graphqlResolverDuration);
    },

    async requestDidStart(requestContext) {
      // The HTTP server span (or none without tracing): Apollo's hooks run in the request's context.
      const span = trace.getActiveSpan();
      return reportingListener(requestContext, (report, rc) => {
        observe(report);
        if (!span?.isRecording()) return;
        span.updateName(`${rc.request.http?.method ?? 'POST'} /graphql`);
        span.setAttributes({
          [ATTR_HTTP_ROUTE]: '/graphql',
          'graphql.operation.type': report.type,
          'graphql.operation.outcome': report.outcome,
          ...(report.name ? { 'graphql.operation.name': report.name } : {}),
          ...(report.errorCodes.length ? { 'graphql.error.codes': [...report.errorCodes] } : {}),
        });
        const fault = report.errorCodes.find((code) => SERVER_FAULTS.has(code));
        if (fault) span.setStatus({ code: SpanStatusCode.ERROR, message: fault });
      });
    },

    operationFinished(report) {
      observe(report);
    },
  };
}

const TIMED = Symbol('graphql_resolver_duration_seconds');

/** Wraps, in place and once, every resolver the schema's object types define themselves. */
function timeResolvers(schema: GraphQLSchema, histogram: Metrics['graphqlResolverDuration']): void {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const resolve = field.resolve as (Resolver & { [TIMED]?: true }) | undefined;
      if (!resolve || resolve[TIMED]) continue;
      const child = histogram.labels(type.name, field.name);
      field.resolve = timed(resolve, (seconds) => child.observe(seconds));
    }
  }
}

function timed(resolve: Resolver, observe: Observe): Resolver {
  const wrapped: Resolver & { [TIMED]?: true } = function (this: unknown, source, args, context, info) {
    const started = performance.now();
    let result: unknown;
    try {
      result = resolve.call(this, source, args, context, info);
    } catch (err) {
      observe((performance.now() - started) / 1000);
      throw err;
    }
    if (result instanceof Promise) {
      return result.then(
        (value: unknown) => {
          observe((performance.now() - started) / 1000);
          return value;
        },
        (err: unknown) => {
          observe((performance.now() - started) / 1000);
          throw err;
        },
      );
    }
    observe((performance.now() - started) / 1000);
    return result;
  };
  wrapped[TIMED] = true;
  return wrapped;
}
