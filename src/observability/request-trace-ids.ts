import { randomFillSync } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isSpanContextValid, trace } from '@opentelemetry/api';

/** The ids a request's log lines and audit rows carry, in the shape of log fields. */
export interface RequestTraceIds {
  readonly trace_id: string;
  readonly span_id: string;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/;
const ZERO_TRACE = '0'.repeat(32);
const ZERO_SPAN = '0'.repeat(16);

const assigned = new WeakMap<IncomingMessage, RequestTraceIds>();

// Random bytes drawn 4 KiB at a time (as randomUUID does): one call into the system's generator
// per 170 requests instead of two per request.
const pool = Buffer.alloc(4096);
let used = pool.length;
function randomHex(bytes: number): string {
  if (used + bytes > pool.length) {
    randomFillSync(pool);
    used = 0;
  }
  used += bytes;
  return pool.toString('hex', used - bytes, used);
}

/**
 * Trace ids for a request served without the OpenTelemetry SDK (no exporter configured, see
 * telemetry.ts): the caller's trace from a valid W3C `traceparent`, or a new one, and a span id
 * of the request's own. Log lines and audit rows then name the same trace as the caller's logs,
 * without the per-promise cost of AsyncLocalStorage that spans which go nowhere would need.
 * When the SDK runs, the request already has a span and this answers undefined: the logger's
 * mixin takes the ids from the active span instead. Computed once per request.
 */
export function assignRequestTraceIds(req: IncomingMessage): RequestTraceIds | undefined {
  const known = assigned.get(req);
  if (known) return known;
  const active = trace.getActiveSpan()?.spanContext();
  if (active && isSpanContextValid(active)) return undefined;
  const header = req.headers.traceparent;
  const caller = typeof header === 'string' ? TRACEPARENT.exec(header.trim().toLowerCase()) : null;
  const callerTrace = caller && caller[1] !== ZERO_TRACE && caller[2] !== ZERO_SPAN ? caller[1]! : undefined;
  const ids = { trace_id: callerTrace ?? randomHex(16), span_id: randomHex(8) };
  assigned.set(req, ids);
  return ids;
}

/** The ids given to this request by assignRequestTraceIds, if it gave any. */
export function requestTraceIds(req: IncomingMessage): RequestTraceIds | undefined {
  return assigned.get(req);
}
