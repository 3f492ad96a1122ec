import type { ApolloServer } from '@apollo/server';
import { expressMiddleware } from '@as-integrations/express5';
import express, { type ErrorRequestHandler, type Request, type Router } from 'express';
import { parseBearerToken } from '../auth/bearer-token.js';
import type { KeyVerifier } from '../auth/key-verifier.js';
import type { GatewayContext, Services } from '../graphql/context.js';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Metrics } from '../observability/metrics.js';
import { batchLimitMiddleware, type BatchLimitOptions } from './batch-limit.middleware.js';

export interface GraphqlMiddlewareDeps {
  readonly apollo: ApolloServer<GatewayContext>;
  readonly keyVerifier: KeyVerifier;
  readonly services: Services;
  readonly maxBodyBytes: number;
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
  router.use(bodyErrorHandler);
  if (deps.batchLimit) router.use(batchLimitMiddleware(deps.batchLimit.metrics, deps.batchLimit));
  router.use(
    expressMiddleware(deps.apollo, {
      context: async ({ req }: { req: Request }): Promise<GatewayContext> => {
        const token = parseBearerToken(req.headers.authorization);
        const viewer = token === undefined ? null : await deps.keyVerifier.verify(token);
        return {
          viewer,
          requestId: String(req.id),
          logger: req.log,
          services: deps.services,
          // Fresh DataLoaders per request, bound to the key's tenant.
          analytics: viewer ? deps.services.analytics.scope(viewer.tenantId) : null,
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
  } else {
    next(err);
  }
};
