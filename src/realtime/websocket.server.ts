import type { Server } from 'node:http';
import { GraphQLError, execute, getOperationAST, OperationTypeNode, type GraphQLSchema } from 'graphql';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { randomUUID } from 'node:crypto';
import { auditEntry, requestClient, type AuditEntry, type RequestClient } from '../audit/audit-entry.js';
import type { RequestContext } from '../auth/request-context.js';
import { AuthThrottledError } from '../auth/auth-throttle.js';
import { grants } from '../auth/scopes.js';
import type { Viewer } from '../auth/viewer.js';
import { RequestDeadline } from '../db/request-deadline.js';
import { ErrorCode } from '../graphql/error-codes.js';
import { formatResultErrors } from '../graphql/format-error.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';
import type { CostLimits } from '../plugins/cost/cost-limits.js';
import { admitWebSocketOperation } from '../plugins/cost/websocket-admission.js';
import type { OperationObserver } from '../plugins/operation-report.js';
import { createSubscriptionObserver } from '../plugins/subscription.observer.js';
import { createSubscriptionFanout } from './subscription-fanout.js';

export interface WebSocketServerOptions {
  /** Close a connection that sends no connection_init within this (4408). WS_CONNECTION_INIT_TIMEOUT_MS, 5 s. */
  readonly connectionInitTimeoutMs: number;
  /** Ping every connection this often; one that never pongs is closed. WS_KEEPALIVE_MS, 12 s. */
  readonly keepAliveMs: number;
  /** Running subscriptions per connection. WS_MAX_SUBSCRIPTIONS_PER_CONNECTION, 20. */
  readonly maxPerConnection: number;
  /** Running subscriptions per API key on this replica. WS_MAX_SUBSCRIPTIONS_PER_KEY, 200. */
  readonly maxPerKey: number;
  /** Lexical tokens of a document (MAX_TOKENS, 10,000), as over HTTP. */
  readonly maxTokens?: number;
  /**
   * REQUEST_TIMEOUT_MS for a query or mutation sent over the socket, as over HTTP; a
   * subscription gets none, since no request deadline bounds its life. 0 or absent: none.
   */
  readonly requestTimeoutMs?: number;
}

interface ConnectionState {
  viewer?: Viewer;
  readonly subscriptions: Set<string>;
}

/** A refusal in the contract's error shape, sent as graphql-ws's `error` message. */
const refusal = (message: string, code: ErrorCode) => [new GraphQLError(message, { extensions: { code } })];

/**
 * graphql-ws on the HTTP server's port and path. Apollo Server has no subscriptions, so this is
 * the WebSocket path of what its plugins do over HTTP: the key in `connectionParams.authorization`
 * is checked in onConnect (4401 when bad or missing, 4403 without analytics:read), and the limits
 * on running subscriptions are checked in onSubscribe.
 */
export function createWebSocketServer(
  deps: {
    httpServer: Server;
    schema: GraphQLSchema;
    /**
     * The key in `connectionParams.authorization` to a viewer (app/context.ts, shared with HTTP):
     * null without one; throws UNAUTHENTICATED for a bad key (its audit row already queued) and
     * SERVICE_UNAVAILABLE when it cannot be checked.
     */
    authenticate: (caller: {
      transport: 'websocket';
      authorization: unknown;
      client: RequestClient;
    }) => Promise<Viewer | null>;
    /** A subscription's context (app/context.ts), built once per subscription. */
    context: (
      viewer: Viewer | null,
      fields: { requestId: string; logger: Logger; deadline?: RequestDeadline },
    ) => RequestContext;
    logger: Logger;
    metrics: Metrics;
    /** Refused connections and subscriptions become audit rows, as over HTTP. */
    audit?: { record(entry: AuditEntry): void };
    /** Depth, alias, directive, cost and budget limits, as over HTTP; none when absent. */
    costLimits?: CostLimits;
    /** Told about every operation, as Apollo plugins are over HTTP (tracing, logging). */
    operationObservers?: readonly OperationObserver[];
  },
  options: WebSocketServerOptions,
) {
  const { metrics } = deps;
  const log = deps.logger.child({ component: 'websocket' });
  const wss = new WebSocketServer({ server: deps.httpServer, path: '/graphql' });
  const observer = createSubscriptionObserver(deps.operationObservers ?? [], log);
  // One execution and one serialization per pushed message and selection (subscription-fanout.ts).
  const fanout = createSubscriptionFanout({ metrics });
  const states = new WeakMap<object, ConnectionState>();
  const perKey = new Map<string, number>();
  const stateOf = (extra: object) => {
    let state = states.get(extra);
    if (!state) states.set(extra, (state = { subscriptions: new Set() }));
    return state;
  };
  const release = (state: ConnectionState, id: string) => {
    if (!state.subscriptions.delete(id) || !state.viewer) return;
    const left = (perKey.get(state.viewer.keyId) ?? 1) - 1;
    if (left > 0) perKey.set(state.viewer.keyId, left);
    else perKey.delete(state.viewer.keyId);
  };

  wss.on('connection', (socket) => {
    // Registered before graphql-ws's listener, so its handlers of this socket run untraced.
    observer.untraced(socket);
    fanout.attach(socket);
    metrics.wsConnections.inc();
    socket.once('close', () => metrics.wsConnections.dec());
  });

  const server = useServer<Record<string, unknown> | undefined, Record<PropertyKey, never>>(
    {
      schema: deps.schema,
      connectionInitWaitTimeout: options.connectionInitTimeoutMs,
      execute: (args) => observer.run(args, execute),
      subscribe: (args) => observer.run(args, fanout.subscribe),
      // A result with errors is masked and coded as over HTTP (variables that do not fit, resolver
      // failures), per subscriber; every other result goes out as the shared bytes.
      onNext: (ctx, id, _payload, _args, result) =>
        result.errors?.length
          ? {
              ...result,
              errors: formatResultErrors(result.errors, (err) => log.error({ err }, 'operation failed over WebSocket')),
            }
          : fanout.prepare(ctx.extra.socket, id, result),
      onOperation: (ctx, id, _payload, args, result) => {
        // A query's or mutation's execution has ended here: its deadline's timer goes.
        if ((args.contextValue as RequestContext | undefined)?.deadline?.end())
          metrics.requestDeadlinesExceeded.inc({ transport: 'websocket' });
        return observer.operated(ctx.extra, id, args, result);
      },
      onConnect: async (ctx) => {
        const socket = ctx.extra.socket;
        const client = requestClient(ctx.extra.request);
        let viewer: Viewer | null;
        try {
          viewer = await deps.authenticate({
            transport: 'websocket',
            authorization: ctx.connectionParams?.authorization,
            client,
          });
        } catch (err) {
          if ((err as { extensions?: { code?: string } }).extensions?.code === ErrorCode.SERVICE_UNAVAILABLE) {
            socket.close(CloseCode.InternalServerError, 'Service unavailable');
            return false;
          }
          if (err instanceof AuthThrottledError) {
            // graphql-ws's 4429 ("too many requests") with the wait, as HTTP's Retry-After.
            socket.close(CloseCode.TooManyInitialisationRequests, err.message.slice(0, 120));
            return false;
          }
          viewer = null;
        }
        if (!viewer) {
          // A bad key was audited by authenticate(); a missing one is audited here.
          if (!ctx.connectionParams?.authorization) {
            deps.audit?.record(
              auditEntry({
                action: 'authenticate',
                result: 'unauthenticated',
                client,
                details: { transport: 'websocket', reason: 'no key in connectionParams.authorization' },
              }),
            );
          }
          metrics.subscriptionsRefused.inc({ reason: 'unauthenticated' });
          socket.close(CloseCode.Unauthorized, 'Unauthorized');
          return false;
        }
        if (!grants(viewer.scopes, 'analytics:read')) {
          deps.audit?.record(
            auditEntry({
              action: 'subscribe',
              result: 'denied',
              viewer,
              client,
              details: { transport: 'websocket', code: ErrorCode.FORBIDDEN },
            }),
          );
          metrics.subscriptionsRefused.inc({ reason: 'forbidden' });
          socket.close(CloseCode.Forbidden, 'Forbidden: analytics:read is required');
          return false;
        }
        stateOf(ctx.extra).viewer = viewer;
        return true;
      },
      onSubscribe: async (ctx, id, payload) => {
        observer.subscribing(ctx.extra, id);
        const state = stateOf(ctx.extra);
        const viewer = state.viewer!;
        const refused = (reason: string, code: string = ErrorCode.RATE_LIMITED) =>
          deps.audit?.record(
            auditEntry({
              action: 'subscribe',
              result: 'rejected',
              viewer,
              client: requestClient(ctx.extra.request),
              operationName: payload.operationName ?? null,
              details: { transport: 'websocket', code, reason },
            }),
          );
        if (state.subscriptions.size >= options.maxPerConnection) {
          refused('connection_limit');
          metrics.subscriptionsRefused.inc({ reason: 'connection_limit' });
          return refusal(
            `at most ${options.maxPerConnection} subscriptions may run on one connection`,
            ErrorCode.RATE_LIMITED,
          );
        }
        if ((perKey.get(viewer.keyId) ?? 0) >= options.maxPerKey) {
          refused('key_limit');
          metrics.subscriptionsRefused.inc({ reason: 'key_limit' });
          return refusal(`at most ${options.maxPerKey} subscriptions may run for one API key`, ErrorCode.RATE_LIMITED);
        }
        // The slot is taken before the first await, so concurrent subscribes see each other.
        state.subscriptions.add(id);
        perKey.set(viewer.keyId, (perKey.get(viewer.keyId) ?? 0) + 1);
        // Parsed, validated and charged here, so graphql-ws runs what was admitted as it is.
        const admitted = deps.costLimits
          ? await admitWebSocketOperation(
              { schema: deps.schema, limits: deps.costLimits, maxTokens: options.maxTokens ?? 10_000 },
              viewer,
              payload,
            )
          : undefined;
        if (admitted && 'errors' in admitted) {
          release(state, id);
          const [first] = admitted.errors;
          const { code, limit } = (first?.extensions ?? {}) as { code?: string; limit?: string };
          // Limit refusals are audited; a plain invalid document (unknown field, bad syntax) is not.
          if (code === ErrorCode.COST_LIMIT_EXCEEDED || code === ErrorCode.RATE_LIMITED)
            refused(limit ?? 'budget', code);
          else if (first && /contains more th\w+ \d+ tokens/.test(first.message)) refused('tokens', code);
          return [...admitted.errors];
        }
        return admitted?.args;
      },
      onComplete: (ctx, id) => {
        observer.forget(ctx.extra, id);
        release(stateOf(ctx.extra), id);
      },
      onError: (ctx, id, payload, errors) => {
        observer.refused(ctx.extra, id, payload, errors);
        release(stateOf(ctx.extra), id);
        // Masked and coded as over HTTP (graphql/format-error.ts).
        return formatResultErrors(errors, (err) => log.error({ err }, 'subscription refused with an internal error'), {
          trustRequestCodes: true,
        });
      },
      onClose: (ctx) => {
        const state = stateOf(ctx.extra);
        for (const id of [...state.subscriptions]) release(state, id);
      },
      context: (ctx, _id, _payload, args) => {
        const requestId = randomUUID();
        const timeoutMs = options.requestTimeoutMs ?? 0;
        const deadline =
          timeoutMs > 0 &&
          getOperationAST(args.document, args.operationName)?.operation !== OperationTypeNode.SUBSCRIPTION
            ? new RequestDeadline(timeoutMs)
            : undefined;
        return deps.context(stateOf(ctx.extra).viewer ?? null, {
          requestId,
          logger: log.child({ requestId }),
          deadline,
        });
      },
    },
    wss,
    options.keepAliveMs,
  );

  return {
    /** Closes every connection (1001) and stops accepting new ones. */
    async dispose(): Promise<void> {
      await server.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
