import { register } from 'node:module';
import { DiagLogLevel, diag } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { GraphQLInstrumentation } from '@opentelemetry/instrumentation-graphql';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { IORedisInstrumentation } from '@opentelemetry/instrumentation-ioredis';
import { PgInstrumentation } from '@opentelemetry/instrumentation-pg';
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchSpanProcessor,
  NodeTracerProvider,
  ParentBasedSampler,
  TraceIdRatioBasedSampler,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-node';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { Config } from '../config/config.js';
import type { Logger } from './logger.js';

export interface TelemetryOptions {
  /** Where OpenTelemetry's own warnings (a collector that refuses spans, say) are written. */
  readonly logger: Logger;
  /** Processors added to the OTLP one, e.g. an in-memory exporter in tests. Default none. */
  readonly spanProcessors?: readonly SpanProcessor[];
}

export interface Telemetry {
  readonly enabled: boolean;
  /** Exports the spans still buffered, then stops the instrumentations. Safe to call more than once. */
  shutdown(): Promise<void>;
}

/** Probes and scrapes: a span every few seconds that says nothing about traffic. */
const UNTRACED_PATHS = new Set(['/health', '/ready', '/metrics']);

/**
 * Packages the instrumentations patch that an ES module may import directly. pg and graphql load
 * through require() (patched by require-in-the-middle without the loader), but listing them costs
 * nothing; ioredis and node:http are only seen through the import-in-the-middle loader. Every
 * other module is left unwrapped, which keeps start-up and module semantics as they were.
 */
const HOOKED_PACKAGES = ['http', 'https', 'pg', 'pg-pool', 'graphql', 'ioredis'];

/**
 * The OpenTelemetry SDK: spans per request, per operation and per non-trivial resolver, with pg
 * and Redis spans under the resolver that issued them, continuing a caller's W3C `traceparent`.
 *
 * Must run before pg, ioredis, graphql, fastify or node:http are imported anywhere in the
 * process: the instrumentations patch those modules as they load, and a module loaded earlier
 * stays unpatched. Hence main.ts starts telemetry first and imports the app dynamically after.
 *
 * Runs only when spans have somewhere to go: `OTEL_EXPORTER_OTLP_ENDPOINT` (batched OTLP export)
 * or, in tests, extra span processors.
 */
export function startTelemetry(config: Config['tracing'], options: TelemetryOptions): Telemetry {
  // Without anywhere to send spans, none is made: on Node 20 the context propagation alone
  // (AsyncLocalStorage over every promise) costs more per request than all other plugins
  // together (bench:plugins). Log lines and audit rows still carry the request's trace ids,
  // continued from traceparent (observability/request-trace-ids.ts).
  const spanProcessors: SpanProcessor[] = [...(options.spanProcessors ?? [])];
  if (!config.enabled || (!config.otlpEndpoint && spanProcessors.length === 0)) {
    return { enabled: false, shutdown: async () => undefined };
  }

  const log = options.logger.child({ component: 'telemetry' });
  diag.setLogger(
    {
      error: (message, ...args) => log.error({ args }, message),
      warn: (message, ...args) => log.warn({ args }, message),
      info: () => undefined,
      debug: () => undefined,
      verbose: () => undefined,
    },
    DiagLogLevel.WARN,
  );
  register('@opentelemetry/instrumentation/hook.mjs', import.meta.url, { data: { include: HOOKED_PACKAGES } });

  if (config.otlpEndpoint) {
    // The base URL of the OTLP spec: traces go to <endpoint>/v1/traces.
    const url = `${config.otlpEndpoint.replace(/\/+$/, '')}/v1/traces`;
    spanProcessors.push(new BatchSpanProcessor(new OTLPTraceExporter({ url })));
  }
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ [ATTR_SERVICE_NAME]: config.serviceName }),
    // A caller's sampling decision is kept, so one trace is recorded whole or not at all.
    sampler: new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(config.sampleRatio) }),
    spanProcessors,
  });
  provider.register({
    contextManager: new AsyncLocalStorageContextManager(),
    propagator: new W3CTraceContextPropagator(),
  });

  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        ignoreIncomingRequestHook: (req) => UNTRACED_PATHS.has((req.url ?? '').split('?', 1)[0]!),
        // The gateway calls no HTTP service; the OTLP exporter's own requests are not traffic.
        disableOutgoingRequestInstrumentation: true,
      }),
      // Trivial resolvers (a property read by graphql-js's default resolver) get no span; the
      // object types mark their plain fields simpleResolvers so type-graphql adds no resolver.
      new GraphQLInstrumentation({ ignoreTrivialResolveSpans: true }),
      // Background loops (stream consumers, refresher, key verifier) run outside any request:
      // without a parent their statements would each start a trace of their own.
      new PgInstrumentation({ requireParentSpan: true }),
      new IORedisInstrumentation({ requireParentSpan: true }),
    ],
  });

  let stopping: Promise<void> | undefined;
  return {
    enabled: true,
    shutdown: () =>
      (stopping ??= (async () => {
        try {
          await provider.shutdown();
        } catch (err) {
          log.warn({ err }, 'exporting the last spans failed');
        }
        unregister();
      })()),
  };
}
