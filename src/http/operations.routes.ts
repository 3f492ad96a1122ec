import type { Express } from 'express';
import type { Metrics } from '../observability/metrics.js';
import { readinessHttpStatus, type Readiness } from '../observability/readiness.js';

/**
 * Probes and metrics for operators. `/health` says only that the process serves HTTP (a restart
 * would not fix a database outage, so liveness must not depend on one); `/ready` checks every
 * dependency and answers 503 naming the failing ones when the replica cannot serve, so a load
 * balancer stops sending traffic, and 200 "degraded" naming them when it still serves without them.
 */
export function mountOperationsRoutes(app: Express, deps: { readiness: Readiness; metrics: Metrics }): void {
  // Mounted on the app itself, not a nested Router: every GraphQL request walks past these.
  app.get('/health', (_req, res) => {
    res.json({ status: 'ok', uptime_s: Math.round(process.uptime()) });
  });
  app.get('/ready', async (_req, res) => {
    const report = await deps.readiness.report();
    res.status(readinessHttpStatus(report)).json(report);
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
  });
}
