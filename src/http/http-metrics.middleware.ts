import type { RequestHandler } from 'express';
import type { Metrics } from '../observability/metrics.js';

/**
 * Times every response by route. Only the gateway's own paths become label values; anything else
 * (scanners probing /wp-admin, say) shares "unmatched", so the label set stays bounded.
 */
export function httpMetricsMiddleware(metrics: Metrics, knownPaths: readonly string[]): RequestHandler {
  const known = new Set(knownPaths);
  return (req, res, next) => {
    const end = metrics.httpRequestDuration.startTimer();
    res.once('finish', () => {
      const path = req.originalUrl.split('?', 1)[0] ?? '';
      end({ method: req.method, route: known.has(path) ? path : 'unmatched', status_code: String(res.statusCode) });
    });
    next();
  };
}
