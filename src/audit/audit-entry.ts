import { isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';
import { isSpanContextValid, trace } from '@opentelemetry/api';
import { API_KEY_MARKER, API_KEY_PREFIX_LENGTH } from '../auth/api-key.js';
import type { Viewer } from '../auth/viewer.js';
import { requestTraceIds } from '../observability/request-trace-ids.js';

/**
 * What happened, in the words the audit log uses (README, "Audit log"):
 * success, partial (a batch with some events rejected), error (a mutation failed otherwise),
 * denied (FORBIDDEN: the key lacks the scope), rejected (a limit: cost, rate, payload size),
 * unauthenticated (a missing, unknown, revoked or malformed key).
 */
export type AuditResult = 'success' | 'partial' | 'error' | 'denied' | 'rejected' | 'unauthenticated';

/** One row of audit_log, as the request path hands it to the writer (details are masked on write). */
export interface AuditEntry {
  readonly occurredAt: Date;
  /** Null when no key was verified: such rows belong to no tenant. */
  readonly tenantId: string | null;
  readonly keyId: string | null;
  readonly keyPrefix: string | null;
  /** The root field (`recordEvents`, `createApiKey`, `auditLog`…), `authenticate`, `subscribe` or `request`. */
  readonly action: string;
  readonly operationName: string | null;
  readonly result: AuditResult;
  readonly ip: string | null;
  readonly userAgent: string | null;
  readonly traceId: string | null;
  readonly requestId: string | null;
  /** Small, JSON-serializable, built fresh for the row (never a live object of the request). */
  readonly details: Record<string, unknown>;
}

/** Where a request came from, as audit rows record it. */
export interface RequestClient {
  readonly ip: string | null;
  readonly userAgent: string | null;
  /** The request's trace: its span's when tracing records, else the ids its log lines carry. */
  readonly traceId?: string | null;
}

const MAX_USER_AGENT = 512;

/**
 * The peer address of the socket (the app sets `trust proxy` off, so a forwarded-for header is not
 * believed) with IPv4-mapped IPv6 written as plain IPv4, and the user agent, bounded.
 */
export function requestClient(req: IncomingMessage): RequestClient {
  let ip = req.socket?.remoteAddress ?? null;
  if (ip?.startsWith('::ffff:') && isIP(ip.slice(7)) === 4) ip = ip.slice(7);
  const agent = req.headers['user-agent'];
  return {
    ip: ip && isIP(ip) ? ip : null,
    userAgent: typeof agent === 'string' && agent.length > 0 ? agent.slice(0, MAX_USER_AGENT) : null,
    traceId: activeTraceId() ?? requestTraceIds(req)?.trace_id ?? null,
  };
}

/**
 * The part of a refused credential an audit row may keep: the public prefix of something shaped
 * like one of our keys (which the api_keys table shows in clear anyway). Anything else sent as a
 * key (a password, another service's token) may be short enough that 12 characters are most of
 * it, so nothing of it is kept.
 */
export function presentedKeyPrefix(token: string | undefined): string | null {
  if (!token || !token.startsWith(API_KEY_MARKER) || token.length < 2 * API_KEY_PREFIX_LENGTH) return null;
  return token.slice(0, API_KEY_PREFIX_LENGTH);
}

/** The trace of the active span; null when tracing is off (the API alone has no spans). */
export function activeTraceId(): string | null {
  const context = trace.getActiveSpan()?.spanContext();
  return context && isSpanContextValid(context) ? context.traceId : null;
}

/** An entry stamped now, in the active trace, with the viewer's tenant and key when there is one. */
export function auditEntry(
  fields: Pick<AuditEntry, 'action' | 'result'> &
    Partial<Pick<AuditEntry, 'operationName' | 'requestId' | 'details' | 'keyPrefix'>> & {
      readonly viewer?: Viewer | null;
      readonly client?: RequestClient | null;
      /**
       * Without a viewer: the key a refused credential names (auth/key-verifier.ts, a revoked key
       * or a wrong secret for a known prefix), so the row belongs to that key's tenant.
       */
      readonly owner?: Pick<Viewer, 'tenantId' | 'keyId' | 'keyPrefix'> | null;
    },
): AuditEntry {
  const { viewer, client } = fields;
  const owner = viewer ?? fields.owner;
  return {
    occurredAt: new Date(),
    tenantId: owner?.tenantId ?? null,
    keyId: owner?.keyId ?? null,
    keyPrefix: owner?.keyPrefix ?? fields.keyPrefix ?? null,
    action: fields.action,
    operationName: fields.operationName ?? null,
    result: fields.result,
    ip: client?.ip ?? null,
    userAgent: client?.userAgent ?? null,
    traceId: client?.traceId ?? activeTraceId(),
    requestId: fields.requestId ?? null,
    details: fields.details ?? {},
  };
}
