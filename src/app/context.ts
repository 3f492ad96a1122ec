import type { AnalyticsContext } from '../analytics/analytics-scope.js';
import type { AuditContext } from '../audit/audit.context.js';
import { auditEntry, presentedKeyPrefix, type RequestClient } from '../audit/audit-entry.js';
import type { AuditLogWriter } from '../audit/audit-log.writer.js';
import type { AuthContext } from '../auth/auth.context.js';
import { AuthThrottledError, type AuthThrottle } from '../auth/auth-throttle.js';
import { parseBearerToken } from '../auth/bearer-token.js';
import type { KeyVerifier, RefusedKeyError } from '../auth/key-verifier.js';
import type { RequestContext } from '../auth/request-context.js';
import type { Viewer } from '../auth/viewer.js';
import type { RequestDeadline } from '../db/request-deadline.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { IngestContext } from '../ingest/ingest.context.js';
import type { Logger } from '../observability/logger.js';
import type { OpsContext } from '../ops/ops.context.js';
import type { PrivacyContext } from '../privacy/privacy.context.js';
import type { RealtimeContext } from '../realtime/realtime.context.js';

/**
 * The context of every GraphQL operation: what each capability's resolvers declare they reach
 * (analytics-scope.ts, auth.context.ts, ingest.context.ts, realtime.context.ts, audit.context.ts),
 * so TypeScript checks here that the one builder below satisfies all of them.
 */
export type GatewayContext = RequestContext &
  AnalyticsContext &
  AuthContext &
  IngestContext &
  RealtimeContext &
  AuditContext &
  OpsContext &
  PrivacyContext;

/** The shared services resolvers reach; built once in gateway.ts, everything else per operation. */
export type Services = GatewayContext['services'];

const MAKE_LOGGER = Symbol('makeLogger');
const MADE_LOGGER = Symbol('madeLogger');
interface LazyLogger {
  [MAKE_LOGGER]: () => Logger;
  [MADE_LOGGER]?: Logger;
}
/**
 * `logger` as a getter on the prototype: Apollo Server copies the context's own properties into a
 * fresh object for every operation (Object.assign), which would run an own getter, and so make the
 * child logger, on every request. Symbol-keyed own properties are copied along, the getter is not.
 */
const LAZY_LOGGER = {
  get logger(): Logger {
    const self = this as unknown as LazyLogger;
    return (self[MADE_LOGGER] ??= self[MAKE_LOGGER]());
  },
};

/** Who is calling, as the transport (HTTP request or WebSocket connection) knows it. */
export interface Caller {
  readonly transport: 'http' | 'websocket';
  /** The Authorization header, or `connectionParams.authorization` (there a bare key is accepted too). */
  readonly authorization: unknown;
  readonly client: RequestClient;
  readonly requestId?: string;
}

export interface ContextBuilderDeps {
  readonly keyVerifier: Pick<KeyVerifier, 'verify'>;
  readonly services: Services;
  /** Authentication failures become audit rows (prefix of the key only). */
  readonly audit?: Pick<AuditLogWriter, 'record'>;
  /** Failed authentications counted per address and key prefix; throttled callers refused before the lookup. */
  readonly authThrottle?: Pick<AuthThrottle, 'check' | 'recordFailure'>;
}

/**
 * The one place that turns a caller into a viewer and a viewer into an operation's context, for
 * HTTP (api.ts, once per request) and WebSocket (websocket.server.ts, once per connection and
 * per subscription) alike: the same key parsing, the same audit row for a refused key, the same
 * tenant-scoped DataLoaders.
 */
export function createContextBuilder(deps: ContextBuilderDeps) {
  const { services } = deps;

  /**
   * The caller's viewer; null when no credentials were sent. A bad, unknown or revoked key throws
   * UNAUTHENTICATED after its audit row is queued; SERVICE_UNAVAILABLE passes through unaudited
   * (the key was never judged).
   */
  async function authenticate(caller: Caller): Promise<Viewer | null> {
    const raw = caller.authorization;
    const presented = typeof raw === 'string' ? raw.replace(/^\s*bearer\s+/i, '').trim() : undefined;
    const keyPrefix = presentedKeyPrefix(presented);
    const audit = (fields: Parameters<typeof auditEntry>[0]) => deps.audit?.record(auditEntry(fields));
    try {
      // Before the key costs a lookup: RATE_LIMITED with Retry-After (auth/auth-throttle.ts).
      if (raw !== undefined && raw !== null && raw !== '') await deps.authThrottle?.check(caller.client.ip, keyPrefix);
      const token =
        caller.transport === 'websocket' && typeof raw === 'string' && raw.trim() && !/^\s*bearer\s/i.test(raw)
          ? raw.trim()
          : parseBearerToken(raw ?? undefined);
      return token === undefined ? null : await deps.keyVerifier.verify(token);
    } catch (err) {
      if (err instanceof AuthThrottledError) {
        audit({
          action: 'authenticate',
          result: 'rejected',
          client: caller.client,
          requestId: caller.requestId,
          keyPrefix,
          details: { transport: caller.transport, code: ErrorCode.RATE_LIMITED, subject: err.subject },
        });
      } else if ((err as { extensions?: { code?: unknown } }).extensions?.code === ErrorCode.UNAUTHENTICATED) {
        void deps.authThrottle?.recordFailure(caller.client.ip, keyPrefix);
        audit({
          action: 'authenticate',
          result: 'unauthenticated',
          client: caller.client,
          requestId: caller.requestId,
          keyPrefix,
          // A revoked key, or a wrong secret for a known prefix: the row goes to that key's tenant.
          owner: (err as Partial<RefusedKeyError>).owner,
          details: { transport: caller.transport, reason: (err as Error).message },
        });
      }
      throw err;
    }
  }

  /**
   * The caller's viewer when its key checks out, else null, with no audit row: for requests
   * refused before they run (body too large, batch too long), whose row is about the refusal.
   */
  async function identify(caller: Caller): Promise<Viewer | null> {
    try {
      const token = parseBearerToken(caller.authorization ?? undefined);
      return token === undefined ? null : await deps.keyVerifier.verify(token);
    } catch {
      return null;
    }
  }

  /**
   * A request's context: fresh DataLoaders, bound to the viewer's tenant. The logger is made on
   * first use only (most requests never log from a resolver); the operation summaries go into
   * the request's one log line (http/request-log.ts).
   */
  function forRequest(
    viewer: Viewer | null,
    fields: {
      requestId: string;
      logger: () => Logger;
      client?: RequestClient;
      operationLog?: Record<string, unknown>[];
      serializeData?: (json: string) => Readonly<Record<string, string>>;
      /** REQUEST_TIMEOUT_MS over HTTP (http/graphql.route.ts); the analytics pools see it. */
      deadline?: RequestDeadline;
    },
  ): GatewayContext {
    const context = Object.create(LAZY_LOGGER) as GatewayContext & LazyLogger;
    return Object.assign(context, {
      viewer,
      requestId: fields.requestId,
      client: fields.client,
      operationLog: fields.operationLog,
      serializeData: fields.serializeData,
      deadline: fields.deadline,
      services,
      analytics: viewer ? services.analytics.scope(viewer.tenantId, fields.deadline) : null,
      [MAKE_LOGGER]: fields.logger,
    });
  }

  /**
   * A subscription's context. One context serves every push for as long as the subscription runs:
   * DataLoaders built once would cache every user they ever loaded, so each use gets fresh ones.
   */
  function forSubscription(
    viewer: Viewer | null,
    fields: { requestId: string; logger: Logger; client?: RequestClient; deadline?: RequestDeadline },
  ): GatewayContext {
    return {
      viewer,
      requestId: fields.requestId,
      logger: fields.logger,
      client: fields.client,
      // A query or mutation over the socket only (realtime/websocket.server.ts).
      deadline: fields.deadline,
      services,
      get analytics() {
        return viewer ? services.analytics.scope(viewer.tenantId, fields.deadline) : null;
      },
    };
  }

  return { authenticate, identify, forRequest, forSubscription };
}

export type ContextBuilder = ReturnType<typeof createContextBuilder>;
