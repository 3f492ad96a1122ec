import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type Request, type Router } from 'express';
import { auditEntry, presentedKeyPrefix, requestClient } from '../audit/audit-entry.js';
import type { AuditLogWriter } from '../audit/audit-log.writer.js';
import { parseBearerToken } from '../auth/bearer-token.js';
import { AuthThrottledError, type AuthThrottle } from '../auth/auth-throttle.js';
import type { KeyVerifier, RefusedKeyError } from '../auth/key-verifier.js';
import type { Viewer } from '../auth/viewer.js';
import type { GatewayContext, Services } from '../graphql/context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Metrics } from '../observability/metrics.js';
import { batchLimitMiddleware, type BatchLimitOptions } from './batch-limit.middleware.js';

export interface GraphqlMiddlewareDeps {
  readonly apollo: ApolloServer<GatewayContext>;
  readonly keyVerifier: KeyVerifier;
  readonly services: Services;
  readonly maxBodyBytes: number;
  /** Authentication failures and body-size refusals happen before Apollo's plugins run: audited here. */
  readonly audit?: Pick<AuditLogWriter, 'record'>;
  /** Failed authentications counted per address and key prefix; throttled clients refused before the lookup. */
  readonly authThrottle?: AuthThrottle;
  /** Batched requests (a JSON array of operations) longer than this are refused before any runs. */
  readonly batchLimit?: BatchLimitOptions & { readonly metrics: Metrics };
}

/**
 * `/graphql` over HTTP. The context function authenticates before any resolver runs: a request
 * that sends a bad key is refused whole with 401; one that sends none gets a null viewer, and
 * fields that need one answer UNAUTHENTICATED (so introspection works without a key in development).
 */
export function graphqlMiddleware(deps: GraphqlMiddlewareDeps): Router {
  const router = express.Router();
  router.use(express.json({ limit: deps.maxBodyBytes }));
  router.use(auditBodyRefusal(deps));
  router.use(bodyErrorHandler);
  if (deps.batchLimit) {
    router.use(
      batchLimitMiddleware(deps.batchLimit.metrics, {
        ...deps.batchLimit,
        onRefused: (req, sizes) =>
          void auditRequestRefusal(deps, req, { code: ErrorCode.COST_LIMIT_EXCEEDED, limit: 'batch', ...sizes }),
      }),
    );
  }
  router.use(
    expressMiddleware(deps.apollo, {
      context: async ({ req }: { req: Request }): Promise<GatewayContext> => {
        const client = requestClient(req);
        const header = req.headers.authorization;
        const keyPrefix = presentedKeyPrefix(/^\s*Bearer\s+(\S+)/i.exec(String(header))?.[1]);
        let viewer: Viewer | null;
        try {
          // Before the key costs a lookup: RATE_LIMITED with Retry-After (auth/auth-throttle.ts).
          if (header) await deps.authThrottle?.check(client.ip, keyPrefix);
          const token = parseBearerToken(header);
          viewer = token === undefined ? null : await deps.keyVerifier.verify(token);
        } catch (err) {
          if ((err as { code?: unknown }).code === ErrorCode.UNAUTHENTICATED) {
            void deps.authThrottle?.recordFailure(client.ip, keyPrefix);
            deps.audit?.record(
              auditEntry({
                action: 'authenticate',
                result: 'unauthenticated',
                client,
                requestId: String(req.id),
                keyPrefix,
                // A revoked key, or a wrong secret for a known prefix: the row goes to that key's tenant.
                owner: (err as Partial<RefusedKeyError>).owner,
                details: { reason: (err as Error).message },
              }),
            );
          } else if (err instanceof AuthThrottledError) {
            deps.audit?.record(
              auditEntry({
                action: 'authenticate',
                result: 'rejected',
                client,
                requestId: String(req.id),
                keyPrefix,
                details: { code: err.code, subject: err.subject },
              }),
            );
          }
          throw err;
        }
        return {
          viewer,
          requestId: String(req.id),
          logger: req.log,
          services: deps.services,
          // Fresh DataLoaders per request, bound to the key's tenant.
          analytics: viewer ? deps.services.analytics.scope(viewer.tenantId) : null,
          client,
        };
      },
    }),
  );
  return router;
}

/** Body-parser failures answered in the GraphQL error shape, with the contract's codes. */
const bodyErrorHandler: ErrorRequestHandler = (err: { type?: string; limit?: number }, _req, res, next) => {
  if (err.type === 'entity.too.large') {
    res.status(413).json({
      errors: [
        { message: `Request body exceeds ${err.limit} bytes`, extensions: { code: ErrorCode.PAYLOAD_TOO_LARGE } },
      ],
    });
  } else if (err.type === 'entity.parse.failed') {
    res.status(400).json({
      errors: [{ message: 'Request body is not valid JSON', extensions: { code: ErrorCode.BAD_USER_INPUT } }],
    });
  } else if (err.type === 'charset.unsupported' || err.type === 'encoding.unsupported') {
    res.status(415).json({
      errors: [{ message: 'Request body must be UTF-8 JSON', extensions: { code: ErrorCode.BAD_USER_INPUT } }],
    });
  } else {
    next(err);
  }
};

/** A body too large is a limit rejection: passed on to bodyErrorHandler and audited meanwhile. */
const auditBodyRefusal =
  (deps: GraphqlMiddlewareDeps): ErrorRequestHandler =>
  (err: { type?: string; limit?: number; length?: number }, req, _res, next) => {
    if (err.type === 'entity.too.large') {
      void auditRequestRefusal(deps, req, {
        code: ErrorCode.PAYLOAD_TOO_LARGE,
        limitBytes: err.limit ?? null,
        bodyBytes: err.length ?? null,
      });
    }
    next(err);
  };

/**
 * A request refused before Apollo runs (body too large, batch too long) is a limit rejection:
 * audited under the sender's tenant when its key checks out, while the answer goes out at once.
 */
async function auditRequestRefusal(
  deps: GraphqlMiddlewareDeps,
  req: Request,
  details: Record<string, unknown>,
): Promise<void> {
  if (!deps.audit) return;
  let viewer: Viewer | null = null;
  try {
    const token = parseBearerToken(req.headers.authorization);
    viewer = token === undefined ? null : await deps.keyVerifier.verify(token);
  } catch {
    // An unverifiable key: the row belongs to no tenant.
  }
  deps.audit.record(
    auditEntry({
      action: 'request',
      result: 'rejected',
      viewer,
      client: requestClient(req),
      requestId: String(req.id),
      details,
    }),
  );
}
