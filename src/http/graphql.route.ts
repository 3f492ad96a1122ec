import type { ApolloServer, BaseContext } from '@apollo/server';
import { fastifyApolloHandler } from '@as-integrations/fastify';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { RequestDeadline } from '../db/request-deadline.js';
import { ErrorCode } from '../graphql/error-codes.js';
import { spliceSerializedData, type SerializedData } from '../graphql/serialized-data.js';
import type { Logger } from '../observability/logger.js';
import type { Metrics } from '../observability/metrics.js';

export interface GraphqlRouteOptions {
  /** MAX_BODY_BYTES: a larger body is refused with 413 before it is parsed. */
  readonly maxBodyBytes: number;
  /** MAX_BATCH_OPERATIONS: a batched request (a JSON array) longer than this is refused whole. */
  readonly maxBatchOperations: number;
  /** COST_MODE: with `measure` an oversized batch is counted and served; otherwise it is refused. */
  readonly costMode: 'enforce' | 'measure' | 'off';
  /** REQUEST_TIMEOUT_MS: the time a request may take, from its arrival (db/request-deadline.ts); 0 none. */
  readonly requestTimeoutMs: number;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** This request's deadline on `/graphql` when REQUEST_TIMEOUT_MS is set; the context carries it. */
    deadline: RequestDeadline | undefined;
    /** Answers whose data is already JSON text, put into the response as it is sent (graphql/serialized-data.ts). */
    serializedData: SerializedData[] | null;
  }
}

export interface GraphqlRouteDeps<TContext extends BaseContext> {
  readonly apollo: ApolloServer<TContext>;
  /** Builds the operation's context (authentication included); a throw ends the request. */
  readonly context: (request: FastifyRequest, reply: FastifyReply) => Promise<TContext>;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Told of a request refused before Apollo runs (body too large, batch too long): Apollo's
   * plugins never see it, so the audit log hears of it here.
   */
  readonly onRefused?: (request: FastifyRequest, details: Record<string, unknown>) => void;
}

/** A refusal in the GraphQL error shape, with the contract's code. */
function refusal(reply: FastifyReply, status: number, message: string, extensions: Record<string, unknown>) {
  return reply
    .code(status)
    .type('application/json; charset=utf-8')
    .send({ errors: [{ message, extensions }] });
}

/**
 * `/graphql` over HTTP (POST, GET, OPTIONS), in a plugin scope of its own so its body limit,
 * parsers and error handler apply to it alone. Apollo answers everything that reaches it; what
 * is refused before (size, JSON syntax, batch length) is answered here in the same error shape.
 */
export async function registerGraphqlRoute<TContext extends BaseContext>(
  app: FastifyInstance,
  deps: GraphqlRouteDeps<TContext>,
  options: GraphqlRouteOptions,
): Promise<void> {
  await app.register(async (scope) => {
    // JSON in UTF-8 only (RFC 8259): a body that declares another charset would be misread, so it
    // is refused with 415 rather than decoded as UTF-8. Fastify's own parser does the rest (its
    // guard against __proto__ keys included).
    const json = scope.getDefaultJsonParser('error', 'error');
    scope.addContentTypeParser(
      'application/json',
      { parseAs: 'string', bodyLimit: options.maxBodyBytes },
      (request, body, done) => {
        const charset = /;\s*charset\s*=\s*"?([^";\s]+)/i.exec(request.headers['content-type'] ?? '')?.[1];
        if (charset && !/^utf-?8$/i.test(charset)) {
          return done(Object.assign(new Error('Request body must be UTF-8 JSON'), { statusCode: 415 }), undefined);
        }
        json(request, body as string, done);
      },
    );
    // Anything not JSON reaches Apollo without a body, as Apollo expects of a framework: it then
    // answers 400 itself (and its CSRF check sees the content type).
    scope.addContentTypeParser('*', { bodyLimit: options.maxBodyBytes }, (_request, payload, done) => {
      payload.resume();
      payload.once('end', () => done(null, undefined));
      payload.once('error', (err) => done(err, undefined));
    });

    scope.setErrorHandler((error: FastifyError, request, reply) => {
      if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
        deps.onRefused?.(request, {
          code: ErrorCode.PAYLOAD_TOO_LARGE,
          limitBytes: options.maxBodyBytes,
          bodyBytes: Number(request.headers['content-length']) || null,
        });
        return refusal(reply, 413, `Request body exceeds ${options.maxBodyBytes} bytes`, {
          code: ErrorCode.PAYLOAD_TOO_LARGE,
        });
      }
      const status = error.statusCode ?? 500;
      if (status >= 400 && status < 500) {
        const unparsed = error.code?.startsWith('FST_ERR_CTP_') || error instanceof SyntaxError || status === 400;
        return refusal(reply, status, unparsed ? 'Request body is not valid JSON' : error.message, {
          code: ErrorCode.BAD_USER_INPUT,
        });
      }
      deps.logger.error({ err: error, reqId: request.id }, 'request failed');
      return refusal(reply, 500, 'Internal server error', { code: ErrorCode.INTERNAL_SERVER_ERROR });
    });

    // One deadline per request, batches included: from arrival, so body parsing and
    // authentication count against it; its one timer goes when the answer has been sent.
    if (options.requestTimeoutMs > 0) {
      scope.decorateRequest('deadline', undefined);
      scope.addHook('onRequest', (request, _reply, done) => {
        request.deadline = new RequestDeadline(options.requestTimeoutMs);
        done();
      });
      scope.addHook('onResponse', (request, _reply, done) => {
        if (request.deadline?.end()) deps.metrics.requestDeadlinesExceeded.inc({ transport: 'http' });
        done();
      });
    }

    const handler = fastifyApolloHandler(deps.apollo, { context: deps.context });
    scope.decorateRequest('serializedData', null);
    scope.addHook('onSend', (request, _reply, payload, done) => {
      const pieces = request.serializedData;
      if (!pieces || typeof payload !== 'string') return done(null, payload);
      done(null, spliceSerializedData(payload, pieces));
    });
    scope.route({
      method: ['GET', 'POST', 'OPTIONS'],
      url: '/graphql',
      bodyLimit: options.maxBodyBytes,
      // Each operation of a batch is costed and charged on its own (cost-limit.plugin.ts): without
      // this bound one request could carry any number of them.
      preHandler: (request, reply, done) => {
        const body: unknown = request.body;
        if (!Array.isArray(body) || body.length <= options.maxBatchOperations) return done();
        const mode = options.costMode === 'measure' ? 'measure' : 'enforce';
        deps.metrics.costRejections.inc({ reason: 'batch', mode });
        if (mode === 'measure') return done();
        const details = { maximum: options.maxBatchOperations, found: body.length };
        deps.onRefused?.(request, { code: ErrorCode.COST_LIMIT_EXCEEDED, limit: 'batch', ...details });
        void refusal(
          reply,
          400,
          `A batch may hold at most ${options.maxBatchOperations} operations; this one has ${body.length}`,
          { code: ErrorCode.COST_LIMIT_EXCEEDED, limit: 'batch', ...details },
        );
      },
      handler,
    });
  });
}
