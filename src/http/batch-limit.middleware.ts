import type { Request, RequestHandler } from 'express';
import { ErrorCode } from '../graphql/error-codes.js';
import type { Metrics } from '../observability/metrics.js';

export interface BatchLimitOptions {
  /** Most operations in one batched request (MAX_BATCH_OPERATIONS, 10). */
  readonly maxOperations: number;
  /** COST_MODE: with `measure` an oversized batch is counted and served; otherwise it is refused. */
  readonly mode: 'enforce' | 'measure' | 'off';
  /** Told of each refused batch (the audit log: Apollo's plugins never see it). */
  readonly onRefused?: (req: Request, details: { maximum: number; found: number }) => void;
}

/**
 * Refuses a batched HTTP request (a JSON array of operations) longer than the limit before any of
 * them runs: each operation is then costed and charged on its own by the cost plugin, so without
 * this a single request could carry any number of them. Runs after the JSON body parser.
 */
export function batchLimitMiddleware(metrics: Metrics, options: BatchLimitOptions): RequestHandler {
  return (req, res, next) => {
    const body: unknown = req.body;
    if (!Array.isArray(body) || body.length <= options.maxOperations) return next();
    const mode = options.mode === 'measure' ? 'measure' : 'enforce';
    metrics.costRejections.inc({ reason: 'batch', mode });
    if (mode === 'measure') {
      req.log?.info(
        { operations: body.length, maximum: options.maxOperations },
        'batch over the limit, served because COST_MODE=measure',
      );
      return next();
    }
    options.onRefused?.(req, { maximum: options.maxOperations, found: body.length });
    res.status(400).json({
      errors: [
        {
          message: `A batch may hold at most ${options.maxOperations} operations; this one has ${body.length}`,
          extensions: {
            code: ErrorCode.COST_LIMIT_EXCEEDED,
            limit: 'batch',
            maximum: options.maxOperations,
            found: body.length,
          },
        },
      ],
    });
  };
}
