import { isSpanContextValid, trace } from '@opentelemetry/api';
import { pino, type Logger } from 'pino';
import type { Config } from '../config/config.js';
import { maskSecrets } from './mask-secrets.js';

export type { Logger } from 'pino';

/**
 * Paths removed from every log line. Headers are never put on the request line (http/request-log.ts); the
 * config object is never logged whole, but a stray `log.info({ config })` must not leak the key.
 */
const REDACT_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'res.headers["set-cookie"]',
  'headers.authorization',
  'authorization',
  'apiKey',
  'plaintextKey',
  'config.auth.bootstrapApiKey',
  'auth.bootstrapApiKey',
  'connectionParams.authorization',
];

/**
 * The active span's ids on every line written while it runs (a request, a resolver, a worker
 * step that has a span), so a log line leads to its trace. Without tracing there is no span.
 */
function traceIds(): object {
  const context = trace.getActiveSpan()?.spanContext();
  // A fresh object each time: pino merges the line's own fields into it.
  if (!context || !isSpanContextValid(context)) return {};
  return { trace_id: context.traceId, span_id: context.spanId };
}

export function createLogger(config: Pick<Config, 'log'>, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level: config.log.level,
      base: { service: 'analytics-gateway' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: traceIds,
      redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
      hooks: {
        // The serialized line, so structured fields are masked as well as messages: keys, tokens and
        // personal data never reach the destination (one pass per line; see mask-secrets.ts).
        streamWrite: maskSecrets,
      },
      serializers: {
        err: (err: Error) => {
          const out = pino.stdSerializers.err(err);
          out.message = maskSecrets(out.message);
          if (out.stack) out.stack = maskSecrets(out.stack);
          return out;
        },
      },
    },
    destination,
  );
}
