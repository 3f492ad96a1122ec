import type { RequestClient } from '../audit/audit-entry.js';
import type { RequestDeadline } from '../db/request-deadline.js';
import type { Logger } from '../observability/logger.js';
import type { Viewer } from './viewer.js';

/**
 * What every GraphQL operation's context holds, over HTTP and WebSocket alike (built by
 * app/context.ts). `viewer` is null for a request without credentials: fields that need one fail
 * with UNAUTHENTICATED through the auth checker. Each capability adds the services its resolvers
 * reach in a context type of its own (analytics-scope.ts, ingest.context.ts, …), so no capability
 * depends on the composition root.
 */
export interface RequestContext {
  readonly viewer: Viewer | null;
  readonly requestId: string;
  readonly logger: Logger;
  /** The caller's address and user agent, for audit rows; absent where there is no HTTP request. */
  readonly client?: RequestClient;
  /**
   * Over HTTP, where the logging plugin puts each operation's summary so that the request's one
   * log line carries it (http/request-log.ts); absent on WebSocket, where it writes a line itself.
   */
  readonly operationLog?: Record<string, unknown>[];
  /**
   * Over HTTP: answers an operation's `data` with text that is already JSON, returning the
   * placeholder to put in the response instead (graphql/serialized-data.ts); absent elsewhere.
   */
  readonly serializeData?: (json: string) => Readonly<Record<string, string>>;
  /**
   * The time this operation may still take (REQUEST_TIMEOUT_MS, db/request-deadline.ts): over HTTP
   * one per request; absent for a subscription, whose life no request deadline bounds.
   */
  readonly deadline?: RequestDeadline;
}
